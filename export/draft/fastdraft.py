"""FastDraft: pre-train a small drafter (stage 1), then distil it on text its target wrote (stage 2).

Stage 1 (``pretrain``) trains a small Llama from scratch on a corpus, with the target's tokenizer
(same vocabulary) or its own (cross-vocabulary drafter).

Stage 2 (``distill``):
  1. the target writes continuations of prompts cut from the corpus (half greedy, half sampled at
     temperature 0.8), in batches; every batch is saved as a shard ``OUT/.distill/gen/NNNNN-HASH.jsonl``
     (written to a temporary name, then renamed; HASH covers the target's weights, the batch's
     prompts and the settings), and a re-run skips the shards already there;
  2. the drafter is fine-tuned on those sequences (sequence-level distillation); with
     ``kl_weight > 0`` and a shared vocabulary, a token-level KL(target || drafter) term on the
     target's logits is added. A drafter with its own tokenizer learns from the generated *text*
     re-tokenized with its tokenizer.

Both stages resume from ``OUT/.train/state.safetensors`` (no pickle, see lmtrain) when re-run with the same output directory, and
write a ``edgespec_draft.json`` (recipe, held-out loss, acceptance figures) beside the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgespec.errors import EdgespecError

from ..leftovers import removed_on_error
from ..source import require_safetensors
from . import corpus as corpus_mod
from . import lmtrain

GEN_DIR = ".distill/gen"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def quiet_transformers() -> None:
    """No "Loading weights" bars or advisory warnings from transformers on our stderr."""
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    tf.utils.logging.set_verbosity_error()


def load_tokenizer(path: Path):
    import transformers as tf

    quiet_transformers()
    path = Path(path)
    if not path.is_dir():
        raise EdgespecError(f"tokenizer directory {path} does not exist.")
    try:
        return tf.AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise EdgespecError(
            f"no usable tokenizer in {path} ({e.__class__.__name__}); it needs tokenizer.json "
            "or tokenizer files saved by transformers."
        ) from None


def load_model(path: Path, what: str = "model"):
    """An HF causal LM plus its tokenizer, checked against each other."""
    import torch
    import transformers as tf

    path = Path(path)
    if not (path / "config.json").is_file():
        raise EdgespecError(f"{what} {path} is not an HF checkpoint (no config.json).")
    require_safetensors(path, what)
    tok = load_tokenizer(path)
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    except Exception as e:
        raise EdgespecError(f"cannot load the {what} in {path} ({e.__class__.__name__}: {str(e)[:160]}).") from None
    model.eval()
    check_tokenizer_fits(model, tok, path)
    return model, tok


def check_tokenizer_fits(model, tok, path: Path) -> None:
    rows = model.get_input_embeddings().weight.shape[0]
    if (Path(path) / "trim_id_map.i32").is_file():
        return  # a trimmed drafter keeps the full tokenizer; its rows are the kept ids (see vocabtrim)
    if len(tok) > rows:
        raise EdgespecError(
            f"the tokenizer in {path} has {len(tok)} tokens but the checkpoint's embedding has only "
            f"{rows} rows; the tokenizer files do not belong to this checkpoint."
        )


def _progress(total: int, desc: str):
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)
    return None


def pretrain(
    corpus: Path,
    out: Path,
    *,
    tokenizer: Path | None = None,
    target: Path | None = None,
    hidden: int = 256,
    layers: int = 2,
    heads: int | None = None,
    intermediate: int | None = None,
    steps: int = 1000,
    seq_len: int = 256,
    batch_size: int = 16,
    lr: float = 2e-3,
    warmup: int = 50,
    seed: int = 0,
    threads: int | None = None,
    eval_corpus: Path | None = None,
    eval_prompts: list[str] | None = None,
    k: int = 4,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = _log,
    stop_after: int | None = None,
    device: str = "cpu",
    precision: str = "auto",
    ctx: int | None = None,
    checkpoint_every_s: float = 180.0,
) -> dict | None:
    """Stage 1: train a drafter from scratch on ``corpus``; returns the summary written to OUT."""
    import torch
    import transformers as tf

    if tokenizer is None and target is None:
        raise EdgespecError("stage 1 needs a tokenizer: pass --tokenizer DIR or --target DIR (reuses the target's).")
    tok = load_tokenizer(tokenizer or target)
    docs = corpus_mod.load_documents(corpus)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg_m = lmtrain.llama_config(
        len(tok), hidden, layers, heads=heads, intermediate=intermediate, ctx=max(ctx or 512, seq_len)
    )
    cfg_m.bos_token_id, cfg_m.eos_token_id = tok.bos_token_id, tok.eos_token_id
    cfg_m.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model = tf.LlamaForCausalLM(cfg_m)
    if target is not None:
        _check_smaller_than_target(model, Path(target))
    out = Path(out)
    cache = Path(cache_dir) if cache_dir else out / ".train" / "tokens"
    data = lmtrain.tokenize_documents(tok, docs, cache)
    eval_data = lmtrain.tokenize_documents(tok, corpus_mod.load_documents(eval_corpus), cache) if eval_corpus else None
    cfg = lmtrain.TrainConfig(
        steps=steps,
        seq_len=seq_len,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        seed=seed,
        threads=threads,
        device=lmtrain.resolve_device(device),
        precision=precision,
        checkpoint_every_s=checkpoint_every_s,
    )
    log(
        f"stage 1: drafter {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, {len(data):,} tokens, "
        f"{steps} steps of {batch_size}x{seq_len}"
    )
    t0 = time.time()
    summary = lmtrain.train(model, data, out, cfg, eval_data=eval_data, log=log, stop_after=stop_after)
    if summary["steps"] < steps:
        return None  # interrupted on purpose (stop_after); the checkpoint is in OUT/.train
    summary["wall_s_this_run"] = round(time.time() - t0, 1)
    model.generation_config.do_sample = False
    lmtrain.save_hf(model, tok, out)
    report = {
        "stage": "pretrain",
        "params": sum(p.numel() for p in model.parameters()),
        "recipe": {
            "corpus": str(corpus),
            "corpus_sha256": corpus_mod.text_sha256(docs),
            "hidden": hidden,
            "layers": layers,
            "steps": steps,
            "seq_len": seq_len,
            "batch_size": batch_size,
            "lr": lr,
            "warmup": warmup,
            "seed": seed,
            "tokenizer": str(tokenizer or target),
            "context": cfg_m.max_position_embeddings,
            "device": cfg.device,
        },
        "train": summary,
    }
    if target is not None and eval_prompts:
        report["acceptance"] = _acceptance(Path(target), out, eval_prompts, k, log)
    lmtrain.write_json(out / "edgespec_draft.json", report)
    return report


def _check_smaller_than_target(draft_model, target: Path) -> None:
    import transformers as tf

    if not (target / "config.json").is_file():
        raise EdgespecError(f"target {target} is not an HF checkpoint (no config.json).")
    tcfg = tf.AutoConfig.from_pretrained(target)
    with __import__("torch").device("meta"):
        tmodel = tf.AutoModelForCausalLM.from_config(tcfg)
    nt = sum(p.numel() for p in tmodel.parameters())
    nd = sum(p.numel() for p in draft_model.parameters())
    if nd >= nt:
        raise EdgespecError(
            f"the drafter ({nd / 1e6:.1f} M parameters) is not smaller than its target "
            f"({nt / 1e6:.1f} M); a drafter must be much cheaper than the target to speed it up."
        )


def _acceptance(target: Path, draft: Path, prompts: list[str], k: int, log) -> dict:
    from .acceptance import evaluate

    t = time.time()
    fig = evaluate(target, draft, prompts, k=k)
    d = fig.to_dict()
    log(
        f"acceptance vs target at k={k}: acceptance_rate {d['acceptance_rate']:.3f}, "
        f"mean_accepted {d['mean_accepted']:.3f}, mbsu {d['mbsu']:.3f} ({len(prompts)} prompts, {time.time() - t:.0f} s)"
    )
    return d


# ---------------------------------------------------------------------------------------------
# stage 2


def corpus_prompts(docs: list[str], tok, n: int, prompt_tokens: int, seed: int) -> list[list[int]]:
    """``n`` prompts of ``prompt_tokens`` target tokens cut at line starts of random documents."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    out = []
    tries = 0
    while len(out) < n and tries < n * 20:
        tries += 1
        d = docs[int(rng.integers(len(docs)))]
        lines = [i + 1 for i, c in enumerate(d) if c == "\n"]
        if not lines:
            continue
        start = 0 if rng.random() < 0.1 else lines[int(rng.integers(len(lines)))]
        ids = tok(d[start : start + prompt_tokens * 8])["input_ids"][:prompt_tokens]
        if len(ids) >= max(4, prompt_tokens // 2):
            out.append(ids)
    if not out:
        raise EdgespecError("the corpus yields no prompts (documents are too short).")
    return out


def generation_dir(gen_dir: Path | str | None, out: Path) -> Path:
    """Where the generated shards go: ``gen_dir``, else ``out/.distill/gen``; refused with a
    sentence (before any model loads) when the path exists and is not a directory."""
    path = Path(gen_dir) if gen_dir else Path(out) / GEN_DIR
    if path.exists() and not path.is_dir():
        raise EdgespecError(
            f"--gen-dir {path} is a file, not a directory; pass a directory (it is created if missing)."
        )
    return path


def target_fingerprint(model) -> str:
    """A short hash of a model's weights: every tensor's name, shape and first 1 024 values.

    Shards written by one target are not mistaken for another's, a retrained one included."""
    import numpy as np

    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        h.update(f"{name}{tuple(p.shape)}".encode())
        h.update(p.detach().reshape(-1)[:1024].float().cpu().numpy().astype(np.float32).tobytes())
    return h.hexdigest()[:16]


def shard_paths(gen_dir: Path, key: dict, prompts: list[list[int]], batch_size: int) -> list[Path]:
    """One shard per batch, named by its index and a hash of everything its text depends on.

    ``key`` holds the target's fingerprint and the generation settings; a batch adds its prompts
    and, when it samples, its index (its seed). A shard on disk is reused only by the run that
    would write the same text; another corpus, seed, target or setting writes shards of its own.
    """
    out = []
    for b in range((len(prompts) + batch_size - 1) // batch_size):
        sample = b % 2 == 1
        batch = prompts[b * batch_size : (b + 1) * batch_size]
        h = hashlib.sha256(json.dumps([key, batch, sample, b if sample else None]).encode()).hexdigest()
        out.append(Path(gen_dir) / f"{b:05d}-{h[:12]}.jsonl")
    return out


def generate_shards(
    target,
    tok,
    prompts: list[list[int]],
    shards: list[Path],
    *,
    new_tokens: int = 192,
    batch_size: int = 16,
    temperature: float = 0.8,
    seed: int = 0,
    log: Callable[[str], None] = _log,
) -> list[Path]:
    """Target continuations of ``prompts`` into ``shards`` (one per batch); shards already there are
    kept (resume).

    Even-numbered batches decode greedily, odd-numbered ones sample at ``temperature``.
    """
    import torch

    if not shards:
        return shards
    gen_dir = shards[0].parent
    gen_dir.mkdir(parents=True, exist_ok=True)
    lmtrain.remove_leftovers(gen_dir, ".*.tmp", log)
    dev = next(target.parameters()).device
    n_batches = len(shards)
    todo = [b for b in range(n_batches) if not shards[b].is_file()]
    if len(todo) < n_batches:
        log(f"stage 2: {n_batches - len(todo)} of {n_batches} generated shards already there, skipping them")
    others = sorted(set(gen_dir.glob("*.jsonl")) - set(shards))
    if others:
        log(
            f"{gen_dir} also holds {len(others)} shards of another generation (another target, corpus, "
            "seed or setting); they are not used"
        )
    bar = _progress(len(todo), "generating") if todo else None
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    t0 = time.time()
    for i, b in enumerate(todo):
        batch = prompts[b * batch_size : (b + 1) * batch_size]
        width = max(len(p) for p in batch)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])  # left padding
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        sample = b % 2 == 1
        torch.manual_seed(seed * 100003 + b)
        with torch.no_grad(), lmtrain.autocast(dev.type):
            out = target.generate(
                input_ids=ids.to(dev),
                attention_mask=mask.to(dev),
                max_new_tokens=new_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=0.95 if sample else None,
                top_k=0 if sample else None,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
            )
        rows = []
        for p, o in zip(batch, out[:, width:].cpu().tolist()):
            if tok.eos_token_id in o:
                o = o[: o.index(tok.eos_token_id) + 1]
            else:
                o = [t for t in o if t != pad] if pad == tok.eos_token_id else o
            rows.append(
                {"prompt_ids": p, "ids": o, "sampled": sample, "text": tok.decode(p + o, skip_special_tokens=True)}
            )
        tmp = shards[b].with_name(f".{shards[b].name}.{os.getpid()}.tmp")
        with removed_on_error(tmp):
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            os.replace(tmp, shards[b])
        if bar is not None:
            bar.update(1)
        else:
            log(f"generated shard {i + 1}/{len(todo)} ({time.time() - t0:.0f} s)")
    if bar is not None:
        bar.close()
    return shards


@dataclass(frozen=True)
class Generation:
    """How the target writes training text: stage 2's and EAGLE-3's data, from corpus prompts."""

    n_sequences: int
    prompt_tokens: int
    new_tokens: int
    batch_size: int
    temperature: float
    seed: int

    def plan(self, target, tok, docs: list[str], gen_dir: Path) -> tuple[list[list[int]], list[Path]]:
        """The prompts cut from ``docs`` and the shard of each batch (a pure function of its inputs,
        so every rank of a data-parallel run computes the same)."""
        prompts = corpus_prompts(docs, tok, self.n_sequences, self.prompt_tokens, self.seed)
        key = {
            "target": target_fingerprint(target),
            "new_tokens": self.new_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        return prompts, shard_paths(gen_dir, key, prompts, self.batch_size)

    def write(self, target, tok, docs: list[str], gen_dir: Path, log: Callable[[str], None]) -> list[Path]:
        """The target's continuations of ``n_sequences`` prompts cut from ``docs``, as shards in ``gen_dir``."""
        prompts, shards = self.plan(target, tok, docs, gen_dir)
        return generate_shards(
            target,
            tok,
            prompts,
            shards,
            new_tokens=self.new_tokens,
            batch_size=self.batch_size,
            temperature=self.temperature,
            seed=self.seed,
            log=log,
        )

    def recipe(self, n_rows: int) -> dict:
        """The recipe's generation fields, ``n_rows`` being the sequences actually written."""
        return {
            "n_sequences": n_rows,
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "temperature": self.temperature,
        }


def read_shards(shards: list[Path]) -> list[dict]:
    """The rows of ``shards``, in order."""
    rows = []
    for f in shards:
        rows += [json.loads(line) for line in Path(f).read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def token_stream(seqs: list[list[int]], eos: int):
    """The sequences as one int32 stream, each ending in ``eos`` (added where missing)."""
    import numpy as np

    stream: list[int] = []
    for s in seqs:
        stream += s if s and s[-1] == eos else s + [eos]
    return np.asarray(stream, dtype=np.int32)


def distill(
    target: Path,
    draft: Path,
    corpus: Path,
    out: Path,
    *,
    n_sequences: int = 512,
    prompt_tokens: int = 64,
    new_tokens: int = 192,
    gen_batch: int = 16,
    temperature: float = 0.8,
    steps: int = 300,
    seq_len: int = 256,
    batch_size: int = 16,
    lr: float = 5e-4,
    warmup: int = 20,
    kl_weight: float = 0.0,
    seed: int = 0,
    threads: int | None = None,
    gen_dir: Path | None = None,
    eval_prompts: list[str] | None = None,
    eval_corpus: Path | None = None,
    k: int = 4,
    log: Callable[[str], None] = _log,
    stop_after: int | None = None,
    device: str = "cpu",
    precision: str = "auto",
    checkpoint_every_s: float = 180.0,
) -> dict | None:
    """Stage 2: target-generated data, then fine-tuning of the drafter in ``draft``; writes ``out``."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    device = lmtrain.resolve_device(device)
    out = Path(out)
    gen_dir = generation_dir(gen_dir, out)
    target_dir = Path(target)
    target, ttok = load_model(target_dir, "target")
    target.to(device)
    dmodel, dtok = load_model(Path(draft), "drafter")
    if (Path(draft) / "trim_id_map.i32").is_file():
        raise EdgespecError(f"{draft} is a trimmed drafter; distil the untrimmed drafter and trim afterwards.")
    same_vocab = dtok.get_vocab() == ttok.get_vocab()
    if sum(p.numel() for p in dmodel.parameters()) >= sum(p.numel() for p in target.parameters()):
        raise EdgespecError(
            "the drafter is not smaller than its target; a drafter must be much cheaper than the target."
        )
    if kl_weight > 0 and not same_vocab:
        raise EdgespecError(
            "--kl-weight needs a drafter with the target's vocabulary; this drafter has its own "
            "tokenizer (it learns from the generated text instead)."
        )
    docs = corpus_mod.load_documents(corpus)
    gen = Generation(n_sequences, prompt_tokens, new_tokens, gen_batch, temperature, seed)
    t0 = time.time()
    shards = gen.write(target, ttok, docs, gen_dir, log)
    gen_s = time.time() - t0
    rows = read_shards(shards)
    # One stream: <s> prompt+continuation </s> ... (target ids, or the text re-tokenized for the drafter).
    if same_vocab:
        seqs = [r["prompt_ids"] + r["ids"] for r in rows]
    else:
        seqs = [dtok(r["text"])["input_ids"] for r in rows]
    data = token_stream(seqs, dtok.eos_token_id)
    log(
        f"stage 2: {len(rows)} target sequences ({len(data):,} drafter tokens, generated in {gen_s:.0f} s), "
        f"fine-tuning {steps} steps" + (f" with KL weight {kl_weight}" if kl_weight else "")
    )
    loss_fn = None
    if kl_weight > 0:

        def loss_fn(model, batch):
            x, y = batch[:, :-1], batch[:, 1:]
            logits = model(input_ids=x).logits
            ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            with torch.no_grad():
                tlog = target(input_ids=x).logits
            kl = (
                torch.nn.functional.kl_div(
                    torch.log_softmax(logits, -1), torch.log_softmax(tlog, -1), log_target=True, reduction="batchmean"
                )
                / x.shape[1]
            )
            return (1 - kl_weight) * ce + kl_weight * kl

    dmodel.train()
    cfg = lmtrain.TrainConfig(
        steps=steps,
        seq_len=min(seq_len, max(8, len(data) - 2)),
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        seed=seed,
        threads=threads,
        device=device,
        precision=precision,
        checkpoint_every_s=checkpoint_every_s,
    )
    t1 = time.time()
    eval_data = (
        lmtrain.tokenize_documents(dtok, corpus_mod.load_documents(eval_corpus), out / ".train" / "tokens")
        if eval_corpus
        else None
    )
    summary = lmtrain.train(
        dmodel, data, out, cfg, loss_fn=loss_fn, log=log, eval_data=eval_data, stop_after=stop_after
    )
    if summary["steps"] < steps:
        return None
    summary["wall_s_this_run"] = round(time.time() - t1, 1)
    lmtrain.save_hf(dmodel, dtok, out)
    prev = {}
    if (Path(draft) / "edgespec_draft.json").is_file():
        prev = json.loads((Path(draft) / "edgespec_draft.json").read_text())
    h = hashlib.sha256()
    for f in shards:
        h.update(f.read_bytes())
    report = {
        "stage": "distill",
        "params": sum(p.numel() for p in dmodel.parameters()),
        "recipe": {
            "target": str(target_dir),
            "draft": str(draft),
            "corpus": str(corpus),
            **gen.recipe(len(rows)),
            "steps": steps,
            "seq_len": seq_len,
            "batch_size": batch_size,
            "lr": lr,
            "kl_weight": kl_weight,
            "seed": seed,
            "generated_sha256": h.hexdigest(),
            "same_vocab": same_vocab,
            "device": device,
        },
        "generation_s": round(gen_s, 1),
        "train": summary,
        "stage1": prev,
    }
    if eval_prompts:
        report["acceptance"] = _acceptance(target_dir, out, eval_prompts, k, log)
    lmtrain.write_json(out / "edgespec_draft.json", report)
    return report
