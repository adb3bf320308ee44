"""Online adaptation (OmniDraft's third part): fine-tune a bundle's drafter on what the target wrote
for the user's own data, and add the result to the bundle as a new drafter.

Data: the runtime's opt-in log (``Pipeline.load(adapt_log=DIR)``, ``edgespec run --adapt-log DIR``:
prompt + the target's output per generation), or prompts for which the target writes the outputs
here (greedy; speculative decoding with the bundle's drafter, which gives the target's own text).
A deterministic hash of each prompt puts it in the adaptation or the held-out part.

Losses, by the drafter's relation to the target:
  * same_vocab / trimmed: knowledge distillation, KL(p_target || q_drafter) at every position of the
    target's output (the target's distribution from the bundle's own IR; a trimmed drafter's q is
    over its kept ids, p restricted to them);
  * cross_vocab (hybrid, as OmniDraft): the text is tokenized by both tokenizers; where a drafter
    token spans exactly the characters of one target token, the target's distribution at that
    position, carried into the drafter's vocabulary through the tokens both vocabularies spell the
    same, is the soft label (token-level KL); elsewhere, where tokens merge or split across the two
    vocabularies, the drafter learns the target's text itself (sequence-level: cross-entropy on its
    own tokenization of the target's output).
Full fine-tuning: drafters are a few million parameters, so all of them train in minutes on a CPU
and nothing is gained by low-rank adapters (which exist to save memory on large models).

The adapted drafter is converted with the same weight precision as its parent and written into the
bundle atomically (built in a hidden directory inside the bundle, renamed, then the manifest is
replaced in one rename); an interrupted run leaves the bundle as it was. The manifest entry records
its parent, the data's hash and the training settings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgespec.bundle import MANIFEST, TOKEN_BYTES, integrity_table, validate_manifest
from edgespec.bundle import load as load_bundle
from edgespec.errors import EdgespecError

LOG_FILE = "adapt-log.jsonl"


class AdaptError(EdgespecError):
    """Bad input to adaptation (one sentence, exit 2)."""


@dataclass(frozen=True)
class Sample:
    prompt: str
    output: str


# ---- data ------------------------------------------------------------------------------------


def read_log(path: str | os.PathLike) -> list[Sample]:
    """The samples of an adaptation log (a directory holding adapt-log.jsonl, or the file itself).
    Lines that are not whole records (a crash mid-write, hand edits) are skipped."""
    p = Path(path)
    f = p / LOG_FILE if p.is_dir() else p
    if not f.is_file():
        raise AdaptError(
            f"No adaptation log at {f}; record one with `edgespec run --adapt-log {p}` or pass --prompts FILE."
        )
    out = []
    for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (
            isinstance(rec, dict)
            and isinstance(rec.get("prompt"), str)
            and isinstance(rec.get("output"), str)
            and rec["output"]
        ):
            out.append(Sample(rec["prompt"], rec["output"]))
    if not out:
        raise AdaptError(f"The adaptation log {f} holds no complete record; generate with --adapt-log first.")
    return out


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts from a JSONL file (one {"prompt": ...} object a line)."""
    f = Path(path)
    if not f.is_file():
        raise AdaptError(f'The prompts file {f} does not exist; pass a JSONL file with one {{"prompt": ...}} a line.')
    try:
        text = f.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AdaptError(f"The prompts file {f} is not UTF-8 text; pass a JSONL file of prompts.") from None
    prompts = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise AdaptError(
                f'Line {i} of {f} is not JSON; each line must be an object like {{"prompt": "..."}}.'
            ) from None
        if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str) or not rec["prompt"]:
            raise AdaptError(f'Line {i} of {f} has no non-empty "prompt" string; each line needs one.')
        prompts.append(rec["prompt"])
    if not prompts:
        raise AdaptError(f'The prompts file {f} holds no prompt; add lines like {{"prompt": "def f(x):"}}.')
    return prompts


VAL_SHARE = 0.15  # of the adaptation part: validates the fine-tuning (the best weights are kept)


def split(samples: list[Sample], heldout: float) -> tuple[list[Sample], list[Sample]]:
    """(adaptation, held-out) by a hash of each prompt: stable across runs and orders."""

    def h(s: Sample) -> float:
        return int(hashlib.sha256(s.prompt.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16) / 2**32

    held = [s for s in samples if h(s) < heldout]
    return [s for s in samples if h(s) >= heldout], held


def data_hash(samples: list[Sample]) -> str:
    d = hashlib.sha256()
    for s in samples:
        d.update(json.dumps([s.prompt, s.output], ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return "sha256:" + d.hexdigest()


def target_outputs(
    bundle: Path,
    prompts: list[str],
    max_new_tokens: int,
    progress: Callable[[int], None] | None = None,
    drafter: str | None = "auto",
) -> list[Sample]:
    """What the target writes for each prompt (greedy; speculation only makes it faster)."""
    from edgespec import Pipeline

    out = []
    with Pipeline.load(bundle, draft=drafter) as pipe:
        for p in prompts:
            res = pipe.generate(p, max_new_tokens=max_new_tokens)
            if res.text:
                out.append(Sample(p, res.text))
            if progress:
                progress(1)
    return out


# ---- the teacher: the bundle's target IR -------------------------------------------------------


class Teacher:
    """The target's next-token distributions over whole sequences, from the bundle's own IR."""

    def __init__(self, xml: Path):
        import openvino as ov

        cm = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"})
        self._names = {i.get_any_name() for i in cm.inputs}
        self._out = cm.output(0)
        self._req = cm.create_infer_request()

    def logits(self, ids: list[int]) -> np.ndarray:
        """[len(ids), vocab] logits: row i predicts token i + 1."""
        self._req.reset_state()
        n = len(ids)
        feed = {"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, n), dtype=np.int64)}
        if "position_ids" in self._names:
            feed["position_ids"] = np.arange(n, dtype=np.int64)[None]
        if "beam_idx" in self._names:
            feed["beam_idx"] = np.zeros(1, dtype=np.int32)
        return np.asarray(self._req.infer(feed)[self._out])[0].astype(np.float32)


# ---- training examples -------------------------------------------------------------------------


@dataclass
class Example:
    """One training sequence in the drafter's ids, with per-position labels.

    input_ids[i] predicts position i + 1. soft: rows (position, indices into the drafter's
    vocabulary, probabilities) for token-level KL; hard: (position, drafter id) for cross-entropy.
    """

    input_ids: list[int]
    soft: list[tuple[int, np.ndarray, np.ndarray]]
    hard: list[tuple[int, int]]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _top(p: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The `keep` most likely entries of a distribution, renormalised (KD on the head of p: the
    tail carries little mass and would cost memory per position)."""
    idx = np.argpartition(-p, min(keep, len(p) - 1))[:keep]
    q = p[idx]
    return idx.astype(np.int64), (q / q.sum()).astype(np.float32)


def same_vocab_examples(
    samples: list[Sample],
    target_tok,
    teacher: Teacher,
    context: int,
    id_map: np.ndarray | None,
    keep: int = 64,
    progress=None,
    input_fallback: int = 0,
) -> list[Example]:
    """KD examples for a drafter that reads and writes target ids (id_map: a trimmed drafter's
    logit index -> target id; its inputs go through the inverse map, target ids it dropped read as
    input_fallback)."""
    inv = None
    if id_map is not None:
        inv = {int(t): i for i, t in enumerate(id_map)}
    out = []
    for s in samples:
        p_ids = target_tok(s.prompt, add_special_tokens=True)["input_ids"]
        ids = target_tok(s.prompt + s.output, add_special_tokens=True)["input_ids"][:context]
        start = max(1, min(len(p_ids), len(ids) - 1))
        if len(ids) < 2:
            continue
        probs = _softmax(teacher.logits(ids))
        soft = []
        for pos in range(start - 1, len(ids) - 1):
            p = probs[pos]
            if id_map is not None:
                p = p[id_map]
                if p.sum() <= 0:
                    continue
                p = p / p.sum()
            idx, w = _top(p, keep)
            soft.append((pos, idx, w))
        inputs = ids if inv is None else [inv.get(t, input_fallback) for t in ids]
        out.append(Example(inputs, soft, []))
        if progress:
            progress(1)
    return out


def vocab_bridge(
    target_pieces: list[bytes],
    draft_pieces: list[bytes],
    target_kinds: list[int] | None = None,
    draft_kinds: list[int] | None = None,
) -> np.ndarray:
    """target id -> the drafter id spelled by the same bytes, or -1. Where the drafter spells the
    bytes twice, its text token wins over a byte-fallback one (``<0x38>`` and ``8`` both spell b"8";
    its tokenizer writes ``8``, so that is the token it must learn to draft); special tokens map
    to nothing."""
    from edgespec.bundle import TOKEN_BYTE, TOKEN_SPECIAL

    tk = target_kinds or [0] * len(target_pieces)
    dk = draft_kinds or [0] * len(draft_pieces)
    by_bytes: dict[bytes, int] = {}
    for i, b in enumerate(draft_pieces):
        if not b or dk[i] == TOKEN_SPECIAL:
            continue
        j = by_bytes.get(b)
        if j is None or (dk[j] == TOKEN_BYTE and dk[i] != TOKEN_BYTE):
            by_bytes[b] = i
    return np.array(
        [by_bytes.get(b, -1) if b and tk[i] != TOKEN_SPECIAL else -1 for i, b in enumerate(target_pieces)],
        dtype=np.int64,
    )


def cross_vocab_examples(
    samples: list[Sample],
    target_tok,
    draft_tok,
    teacher: Teacher,
    bridge: np.ndarray,
    context: int,
    keep: int = 64,
    min_mass: float = 0.5,
    progress=None,
) -> tuple[list[Example], dict]:
    """OmniDraft's hybrid: token-level KL where a drafter token spans exactly one target token's
    characters (and the target's distribution keeps at least min_mass on tokens the drafter can
    spell the same), sequence-level cross-entropy on the drafter's own tokens elsewhere."""
    out, n_soft, n_hard = [], 0, 0
    for s in samples:
        text = s.prompt + s.output
        t = target_tok(text, add_special_tokens=True, return_offsets_mapping=True)
        d = draft_tok(text, add_special_tokens=True, return_offsets_mapping=True)
        t_ids, t_off = t["input_ids"][:context], t["offset_mapping"][:context]
        d_ids, d_off = d["input_ids"][:context], d["offset_mapping"][:context]
        if len(t_ids) < 2 or len(d_ids) < 2:
            continue
        probs = _softmax(teacher.logits(t_ids))
        # target token j (j >= 1) by its character span: the teacher's row j - 1 predicts it
        t_by_span = {(a, b): j for j, (a, b) in enumerate(t_off) if j >= 1 and b > a}
        first_out = len(s.prompt)
        soft, hard = [], []
        for i in range(len(d_ids) - 1):
            a, b = d_off[i + 1]
            if b <= a or b <= first_out:
                continue  # a special token, or the user's prompt: not the target's output
            j = t_by_span.get((a, b))
            if j is not None:
                p = probs[j - 1]
                mapped = bridge >= 0
                mass = float(p[mapped].sum())
                if mass >= min_mass:
                    dp = np.zeros(int(bridge.max()) + 1, dtype=np.float64)
                    np.add.at(dp, bridge[mapped], p[mapped])
                    idx, w = _top(dp / mass, keep)
                    soft.append((i, idx, w))
                    continue
            hard.append((i, d_ids[i + 1]))
        n_soft += len(soft)
        n_hard += len(hard)
        out.append(Example(d_ids, soft, hard))
        if progress:
            progress(1)
    return out, {"token_level": n_soft, "sequence_level": n_hard}


# ---- training ----------------------------------------------------------------------------------


def _tensors(ex: Example):
    """An example's labels as tensors: (positions, indices, weights) for the soft terms and
    (positions, ids) for the hard ones."""
    import torch

    soft = None
    if ex.soft:
        keep = max(len(idx) for _, idx, _ in ex.soft)
        idx = np.zeros((len(ex.soft), keep), dtype=np.int64)
        w = np.zeros((len(ex.soft), keep), dtype=np.float32)
        for r, (_, i, p) in enumerate(ex.soft):
            idx[r, : len(i)], w[r, : len(p)] = i, p
        soft = (torch.tensor([pos for pos, _, _ in ex.soft]), torch.from_numpy(idx), torch.from_numpy(w))
    hard = (torch.tensor([p for p, _ in ex.hard]), torch.tensor([t for _, t in ex.hard])) if ex.hard else None
    return torch.tensor([ex.input_ids]), soft, hard


def finetune(
    model,
    examples: list[Example],
    steps: int,
    lr: float,
    batch: int,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    hard_weight: float = 0.5,
    val: list[Example] | None = None,
    eval_every: int = 10,
    patience: int = 4,
) -> tuple[list[float], dict]:
    """Full fine-tuning of a torch causal LM on the examples' labels; returns the mean loss per
    label and step, and what the validation chose. A soft label is the target's distribution
    (cross-entropy to it, i.e. KL up to the target's entropy) plus hard_weight times the
    cross-entropy of its most likely token, the token greedy verification accepts.

    With ``val`` (examples held out of training) the loss on them is measured before training and
    every ``eval_every`` steps; the weights with the lowest one are kept (the drafter as it was,
    if no step improved on it) and training stops after ``patience`` measurements without a new
    best. A user's data is small (a hundred outputs of a hundred tokens), so a drafter overfits it
    within a few epochs and then drafts worse on new text of the same kind than before it started:
    on held-out click code the demo's cross-vocabulary drafter fell from acceptance 0.358 to 0.298
    after 300 steps at 1e-3, and rose to 0.390 after 100 steps at 3e-4."""
    import copy

    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = random.Random(seed)
    data = [_tensors(ex) for ex in examples]
    val_data = [_tensors(ex) for ex in val or []]

    def example_loss(ids, soft, hard):
        """(summed loss, labels) of one example under the model as it is."""
        logp = F.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        loss, count = logp.new_zeros(()), 0
        if soft is not None:
            pos, idx, w = soft
            rows = logp[pos].gather(1, idx)
            loss = loss - (w * rows).sum() - hard_weight * rows.gather(1, w.argmax(1, keepdim=True)).sum()
            count += len(pos)
        if hard is not None:
            pos, tok = hard
            loss = loss - logp[pos, tok].sum()
            count += len(pos)
        return loss, count

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            parts = [example_loss(*t) for t in val_data]
        model.train()
        return float(sum(x for x, _ in parts)) / max(1, sum(c for _, c in parts))

    best = {"step": 0, "val_loss": val_loss() if val_data else None, "val_losses": []}
    best_state = copy.deepcopy(model.state_dict()) if val_data else None
    if val_data:
        best["val_losses"].append((0, round(best["val_loss"], 4)))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    losses = []
    order: list[int] = []
    for _ in range(steps):
        opt.zero_grad()
        total, count = None, 0
        for _ in range(batch):
            if not order:
                order = list(range(len(data)))
                rng.shuffle(order)
            loss, n = example_loss(*data[order.pop()])
            count += n
            total = loss if total is None else total + loss
        if count:
            (total / count).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        sched.step()
        losses.append(float(total.detach()) / max(count, 1) if total is not None else 0.0)
        if progress:
            progress(losses[-1])
        step = len(losses)
        if val_data and (step % eval_every == 0 or step == steps):
            v = val_loss()
            best["val_losses"].append((step, round(v, 4)))
            if v < best["val_loss"]:
                best.update(step=step, val_loss=v)
                best_state = copy.deepcopy(model.state_dict())
            elif step - best["step"] >= patience * eval_every:
                break  # no new best for `patience` measurements: it is overfitting
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    best["steps_run"] = len(losses)
    return losses, best


# ---- into the bundle ---------------------------------------------------------------------------


def _unique_name(bundle, base: str) -> str:
    names = {m.name for m in bundle.models}
    name, i = base, 2
    while name in names:
        name, i = f"{base}{i}", i + 1
    return name


def add_drafter(
    bundle_dir: Path, parent: str, hf_dir: Path, name: str, adaptation: dict, progress: bool = True
) -> dict:
    """Convert hf_dir (the adapted parent) with the parent's weight precision and add it to the
    bundle as drafter `name` with the parent's relation. Atomic: the bundle is as it was until
    the manifest is replaced in one rename."""
    from edgespec.export.api import export_bundle

    bundle = load_bundle(bundle_dir)
    par = bundle.draft(parent)
    weights = par.raw["weights"]["precision"]
    rel = par.raw["relation"]
    work = Path(bundle_dir) / f".adapt-{name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        # The drafter alone, exported as the "target" of a one-model bundle, then renamed: the
        # bundle's own target is not touched (it may be large, and its source need not be here).
        sub = export_bundle(
            hf_dir,
            work / "x",
            [],
            weights=weights,
            format=par.raw["format"],
            validate=rel["kind"] != "trimmed",
            progress=progress,
        )
        entry = dict(sub["models"][0])
        src = work / "x" / entry["path"]
        for extra in (TOKEN_BYTES, "trim_id_map.i32"):
            if (par.dir / extra).is_file() and not (src / extra).exists():
                shutil.copy2(par.dir / extra, src / extra)
        if "token_bytes" in par.raw["files"]:
            entry["files"] = dict(entry["files"], token_bytes=par.raw["files"]["token_bytes"])
        entry.update(
            name=name, role="draft", path=name, relation=rel, source=par.raw.get("source", ""), adaptation=adaptation
        )
        manifest = json.loads(json.dumps(bundle.manifest))
        manifest["models"].append(entry)
        validate_manifest(manifest)
        final = Path(bundle_dir) / name
        if final.exists():
            raise AdaptError(f"{final} already exists but is not in the manifest; remove it and run again.")
        src.rename(final)
        # the bundle's integrity table covers the new drafter's files too
        manifest["integrity"] = integrity_table(bundle_dir, manifest)
        tmp_manifest = Path(bundle_dir) / f".{MANIFEST}.{os.getpid()}"
        tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        try:
            os.replace(tmp_manifest, Path(bundle_dir) / MANIFEST)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            tmp_manifest.unlink(missing_ok=True)
            raise
        return entry
    finally:
        shutil.rmtree(work, ignore_errors=True)


def remove_stale_work(bundle_dir: Path) -> list[Path]:
    """Hidden work directories of adapt runs that were killed (their process is gone)."""
    removed = []
    for d in Path(bundle_dir).glob(".adapt-*-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


# ---- measuring it ------------------------------------------------------------------------------


def acceptance(
    bundle_dir: Path, drafters: list[str], samples: list[Sample], k: int, max_new_tokens: int, progress=None
) -> dict[str, dict]:
    """acceptance_rate and mean_accepted of each drafter on the samples' prompts, greedy at fixed
    k, through the runtime itself (the same loop users run)."""
    from edgespec import Pipeline

    figures = {}
    for name in drafters:
        drafted = accepted = calls = generated = 0
        with Pipeline.load(bundle_dir, draft=name, translation_cache=False) as pipe:
            for s in samples:
                r = pipe.generate(s.prompt, max_new_tokens=max_new_tokens, k=k)
                drafted += r.stats.drafted
                accepted += r.stats.accepted
                calls += r.stats.target_calls
                generated += r.stats.generated_tokens
                if progress:
                    progress(1)
        figures[name] = {
            "acceptance_rate": accepted / drafted if drafted else 0.0,
            "mean_accepted": generated / calls if calls else 0.0,
            "k": k,
            "prompts": len(samples),
        }
    return figures


def timer() -> Callable[[], float]:
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


# ---- the command -------------------------------------------------------------------------------


def _source_dir(parent, source: Path | None) -> Path:
    src = Path(source) if source is not None else Path(parent.raw.get("source", ""))
    if source is None and not src.is_dir():
        raise AdaptError(
            f"Drafter {parent.name!r} was exported from {src}, which is not here; pass its Hugging Face "
            "checkpoint with --source DIR."
        )
    if not src.is_dir() or not (src / "config.json").is_file():
        raise AdaptError(
            f"{src} is not a Hugging Face checkpoint directory (no config.json); pass the drafter's "
            "checkpoint with --source DIR."
        )
    if not any(src.glob("*.safetensors")):
        raise AdaptError(
            f"{src} has no .safetensors weights; only safetensors checkpoints are loaded (pickle files "
            "can run code): convert it with transformers' save_pretrained(safe_serialization=True)."
        )
    return src


def run(
    bundle: str | os.PathLike,
    *,
    log_dir=None,
    prompts_file=None,
    drafter: str | None = None,
    source=None,
    steps: int = 200,
    batch: int = 8,
    lr: float = 3e-4,
    heldout: float = 0.2,
    max_new_tokens: int = 128,
    k: int = 4,
    name: str | None = None,
    seed: int = 0,
    keep: int = 64,
    progress: bool = True,
) -> dict:
    """Adapt a drafter of `bundle` (see the module docstring); returns the figures."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    con = Console(stderr=True, quiet=not progress)
    bundle = Path(bundle)
    b = load_bundle(bundle)
    for d in remove_stale_work(bundle):
        con.print(f"removed {d.name}, left by an adapt run that was stopped")
    parent = b.draft(drafter)
    if parent is None:
        raise AdaptError(f"The bundle {bundle} has no drafter to adapt; export one with `edgespec export --draft`.")
    kind = parent.relation
    if kind not in ("same_vocab", "trimmed", "cross_vocab"):
        raise AdaptError(
            f"Drafter {parent.name!r} is a {kind} drafter; adapt works on same_vocab, trimmed and cross_vocab drafters."
        )
    if b.target.raw["format"] != "openvino":
        raise AdaptError(
            "adapt reads the target's distributions from its OpenVINO IR; this bundle's target is "
            f"{b.target.raw['format']}: export one with --format openvino for adaptation."
        )
    src = _source_dir(parent, source)
    name = name or _unique_name(b, f"{parent.name}-adapted")
    if any(m.name == name for m in b.models):
        raise AdaptError(f"The bundle already has a model named {name!r}; pass another --name.")

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=con,
        disable=not progress,
    )
    with bar:
        if log_dir is not None:
            samples = read_log(log_dir)
        else:
            prompts = read_prompts(prompts_file)
            task = bar.add_task("target writes the outputs", total=len(prompts), info="")
            samples = target_outputs(bundle, prompts, max_new_tokens, lambda n: bar.advance(task, n))
        train, held = split(samples, heldout)
        if not train or not held:
            raise AdaptError(
                f"{len(samples)} sample(s) are too few to split into adaptation and held-out parts; "
                "give at least 10 prompts."
            )

        import torch
        import transformers as tf

        tf.utils.logging.set_verbosity_error()
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        target_tok = tf.AutoTokenizer.from_pretrained(b.target.dir)
        draft_tok = tf.AutoTokenizer.from_pretrained(src)
        model = tf.AutoModelForCausalLM.from_pretrained(src, torch_dtype=torch.float32, use_safetensors=True)
        context = min(int(b.target.raw["context_length"]), int(parent.raw["context_length"]), 1024)
        teacher = Teacher(b.target.file("model"))
        task = bar.add_task("target distributions", total=len(train), info="")
        adv = lambda n: bar.advance(task, n)  # noqa: E731
        split_counts = {}
        if kind == "cross_vocab":
            from edgespec.bundle import read_token_bytes

            t_kinds, t_pieces = read_token_bytes(b.target.file("token_bytes"))
            d_kinds, d_pieces = read_token_bytes(parent.file("token_bytes"))
            bridge = vocab_bridge(t_pieces, d_pieces, t_kinds, d_kinds)

            def build(part):
                ex, counts = cross_vocab_examples(
                    part, target_tok, draft_tok, teacher, bridge, context, keep, progress=adv
                )
                for key, v in counts.items():
                    split_counts[key] = split_counts.get(key, 0) + v
                return ex

        else:
            id_map = np.fromfile(parent.dir / "trim_id_map.i32", dtype="<i4") if kind == "trimmed" else None

            def build(part):
                return same_vocab_examples(
                    part,
                    target_tok,
                    teacher,
                    context,
                    id_map,
                    keep,
                    progress=adv,
                    input_fallback=int(parent.raw["relation"].get("input_fallback", 0)),
                )

        # a share of the adaptation data validates the training (finetune keeps the best weights)
        fit, val = split(train, heldout + VAL_SHARE * (1 - heldout))
        if not fit or not val:
            fit, val = train, []
        examples, val_examples = build(fit), build(val)
        teacher = None  # the target's compiled IR goes before training
        task = bar.add_task("fine-tuning", total=steps, info="")
        clock = timer()
        losses, chosen = finetune(
            model,
            examples,
            steps,
            lr,
            batch,
            seed,
            progress=lambda loss: bar.update(task, advance=1, info=f"loss {loss:.3f}"),
            val=val_examples,
        )
        bar.update(task, completed=steps)
        train_s = clock()

    adaptation = {
        "parent": parent.name,
        "data": data_hash(train),
        "samples": len(train),
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "method": "full fine-tuning",
        "loss": "kd" if kind != "cross_vocab" else "hybrid",
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "validation_samples": len(val),
        "steps_run": chosen["steps_run"],
        "best_step": chosen["step"],
        "val_losses": chosen["val_losses"],
        "seconds": round(train_s, 1),
        **split_counts,
    }
    hf_dir = bundle / f".adapt-{name}-hf-{os.getpid()}"
    try:
        model.save_pretrained(hf_dir, safe_serialization=True)
        draft_tok.save_pretrained(hf_dir)
        for extra in ("trim_id_map.i32", "generation_config.json"):
            if (src / extra).is_file():
                shutil.copy2(src / extra, hf_dir / extra)
        con.print(f"converting {name} ({parent.raw['weights']['precision']}) into the bundle")
        entry = add_drafter(bundle, parent.name, hf_dir, name, adaptation, progress=progress)
    finally:
        shutil.rmtree(hf_dir, ignore_errors=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=con,
        disable=not progress,
    ) as bar2:
        task = bar2.add_task("acceptance before and after", total=2 * len(held))
        figures = acceptance(bundle, [parent.name, name], held, k, max_new_tokens, lambda n: bar2.advance(task, n))
    return {
        "parent": parent.name,
        "name": name,
        "relation": kind,
        "entry": entry["path"],
        "train_samples": len(train),
        "heldout_prompts": len(held),
        "steps": steps,
        "steps_run": chosen["steps_run"],
        "best_step": chosen["step"],
        "validation_samples": len(val),
        "train_seconds": round(train_s, 1),
        "losses": losses[:: max(1, steps // 20)],
        "acceptance": figures,
        **split_counts,
    }
