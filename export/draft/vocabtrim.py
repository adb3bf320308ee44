"""VocabTrim: keep only the drafter vocabulary rows for the tokens its target actually emits.

Design (so that `edgespec export` exports the result as an ordinary ``LlamaForCausalLM``):
the trimmed drafter is a normal HF checkpoint whose ``config.vocab_size`` is K. Its input
embedding and its LM head both hold the K kept rows (taken from the untrimmed drafter; a tied
drafter stays tied). Trimmed id ``i`` stands for target id ``id_map[i]``:

* ``trim_id_map.i32``: K little-endian int32, entry i = target id of trimmed id i, ascending, so
  the special tokens (always kept) keep small ids (ids 0/1/2 stay 0/1/2 in the demo vocabulary);
* inputs: the runtime feeds the drafter ``inverse[target_id]``; a target id outside the kept set
  becomes the trimmed id of ``<unk>`` (or 0). Only the drafter's view of rare prompt tokens
  degrades; proposals stay lossless because the target verifies them;
* outputs: the drafter's argmax ``i`` is proposed as ``id_map[i]``.

The directory keeps the untrimmed tokenizer files (the target's vocabulary, so the bundle can
check it against the target) plus ``edgespec_trim.json``:
``{"keep": K, "coverage": c, "original_vocab_size": V, "tokenizer_vocab_sha256": ..., "source": ...}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from edgespec.errors import EdgespecError

from . import corpus as corpus_mod
from .fastdraft import _log, load_model

MAP_FILE = "trim_id_map.i32"
META_FILE = "edgespec_trim.json"


def vocab_sha256(tok) -> str:
    """Hash of a tokenizer's vocabulary (token -> id pairs, sorted by id)."""
    items = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()


def count_tokens(tok, texts: list[str], vocab_size: int):
    import numpy as np

    counts = np.zeros(vocab_size, dtype=np.int64)
    for ids in tok(texts, add_special_tokens=False)["input_ids"]:
        np.add.at(counts, np.asarray(ids, dtype=np.int64), 1)
    return counts


def choose_keep(counts, specials: list[int], keep: int | None = None, coverage: float | None = None):
    """Sorted ids to keep: the specials plus the most frequent tokens (ties by lower id).

    Exactly ``keep`` ids, or the fewest covering ``coverage`` of the counted tokens.
    """
    import numpy as np

    v = len(counts)
    specials = sorted({s for s in specials if s is not None and 0 <= s < v})
    if keep is not None:
        if keep > v:
            raise EdgespecError(f"--keep {keep} is larger than the vocabulary ({v} tokens); choose K <= {v}.")
        if keep < len(specials) + 1:
            raise EdgespecError(f"--keep {keep} leaves no room next to the {len(specials)} special tokens.")
    if coverage is not None and not 0 < coverage <= 1:
        raise EdgespecError(f"--coverage must be in (0, 1], not {coverage}.")
    total = counts.sum()
    if total == 0:
        raise EdgespecError("the calibration text holds no tokens; give more text or a target to generate it.")
    order = np.lexsort((np.arange(v), -counts))  # by count desc, then id asc
    order = [int(i) for i in order if i not in set(specials)]
    if keep is None:
        cum = np.cumsum(counts[order]) / total
        n = int(np.searchsorted(cum, coverage if coverage is not None else 0.99) + 1)
    else:
        n = keep - len(specials)
    kept = sorted(set(specials) | set(order[:n]))
    return np.asarray(kept, dtype=np.int64)


def build_trimmed(model, kept):
    """A copy of ``model`` whose embedding and LM head hold only the rows ``kept`` (K = len(kept))."""
    import copy

    import torch

    m = copy.deepcopy(model)
    idx = torch.as_tensor(kept, dtype=torch.long)
    emb = m.get_input_embeddings()
    head = m.get_output_embeddings()
    tied = head is not None and head.weight is emb.weight
    k, h = len(kept), emb.weight.shape[1]
    new_emb = torch.nn.Embedding(k, h, padding_idx=None)
    new_emb.weight.data = emb.weight.data[idx].clone()
    m.set_input_embeddings(new_emb)
    if head is not None:
        new_head = torch.nn.Linear(h, k, bias=head.bias is not None)
        new_head.weight.data = new_emb.weight.data if tied else head.weight.data[idx].clone()
        if head.bias is not None:
            new_head.bias.data = head.bias.data[idx].clone()
        m.set_output_embeddings(new_head)
    m.config.vocab_size = k
    inv = {int(t): i for i, t in enumerate(kept)}
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        v = getattr(m.config, name, None)
        if isinstance(v, int):
            setattr(m.config, name, inv.get(v, None))
        gv = getattr(m.generation_config, name, None)
        if isinstance(gv, int):
            setattr(m.generation_config, name, inv.get(gv, None))
    if tied:
        m.tie_weights()
    return m


def calibration_texts(
    target_dir: Path | None, calibration: Path | None, n_sequences: int, new_tokens: int = 128, seed: int = 0, log=_log
) -> list[str]:
    if calibration is not None:
        return corpus_mod.load_documents(calibration)
    import torch

    target, ttok = load_model(Path(target_dir), "target")
    # Unconditional samples (from <s>) follow the target's own token distribution.
    texts = []
    torch.manual_seed(seed)
    bs = 16
    t0 = time.time()
    for b in range(0, n_sequences, bs):
        n = min(bs, n_sequences - b)
        ids = torch.full((n, 1), ttok.bos_token_id)
        with torch.no_grad():
            out = target.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                pad_token_id=ttok.pad_token_id,
                eos_token_id=ttok.eos_token_id,
            )
        texts += ttok.batch_decode(out[:, 1:], skip_special_tokens=True)
        log(f"calibration: {b + n}/{n_sequences} target sequences ({time.time() - t0:.0f} s)")
    return texts


def trim(
    draft_dir: Path,
    out: Path,
    *,
    target: Path | None = None,
    calibration: Path | None = None,
    keep: int | None = None,
    coverage: float | None = None,
    n_sequences: int = 128,
    log=_log,
) -> dict:
    """Write the trimmed drafter of ``draft_dir`` into ``out`` (atomically); returns the report."""
    import numpy as np

    draft_dir, out = Path(draft_dir), Path(out)
    if (draft_dir / MAP_FILE).is_file():
        raise EdgespecError(f"{draft_dir} is already trimmed; trim the original drafter instead.")
    model, tok = load_model(draft_dir, "drafter")
    v = model.get_input_embeddings().weight.shape[0]
    if target is not None:
        import transformers as tf

        ttok = tf.AutoTokenizer.from_pretrained(target)
        if ttok.get_vocab() != tok.get_vocab():
            raise EdgespecError(
                f"the drafter in {draft_dir} has another vocabulary than the target {target}; "
                "VocabTrim needs a same-vocabulary drafter (use it as a cross-vocabulary drafter instead)."
            )
    if keep is not None and keep > v:
        raise EdgespecError(f"--keep {keep} is larger than the vocabulary ({v} tokens); choose K <= {v}.")
    texts = calibration_texts(target, calibration, n_sequences, log=log)
    counts = count_tokens(tok, texts, v)
    specials = list(tok.all_special_ids) + [
        model.config.bos_token_id,
        model.config.eos_token_id,
        model.config.pad_token_id,
    ]
    kept = choose_keep(counts, [s for s in specials if isinstance(s, int)], keep=keep, coverage=coverage)
    covered = float(counts[kept].sum() / counts.sum())
    trimmed = build_trimmed(model, kept)
    src_hash = hashlib.sha256()
    for f in sorted(draft_dir.glob("*.safetensors")):
        src_hash.update(f.read_bytes())
    report = {
        "keep": int(len(kept)),
        "coverage": round(covered, 6),
        "original_vocab_size": int(v),
        "tokenizer_vocab_sha256": vocab_sha256(tok),
        "calibration_tokens": int(counts.sum()),
        "calibration": str(calibration) if calibration else f"{n_sequences} sequences sampled from {target}",
        "source": {"draft": str(draft_dir), "weights_sha256": src_hash.hexdigest()},
        "id_map": {"file": MAP_FILE, "dtype": "int32-le", "meaning": "entry i = target id of trimmed id i"},
        "inputs": "target id -> trimmed id; ids outside the kept set map to the trimmed <unk>",
    }
    from edgespec.bundle import atomic_directory

    with atomic_directory(out, force=True) as tmp:  # nothing half-written, the old OUT kept until done
        trimmed.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        np.asarray(kept, dtype="<i4").tofile(tmp / MAP_FILE)
        (tmp / META_FILE).write_text(json.dumps(report, indent=1))
    log(f"VocabTrim: kept {len(kept)} of {v} tokens, covering {covered:.4f} of the calibration tokens")
    return report


def compare(target: Path, draft: Path, trimmed: Path, prompts: list[str], k: int = 4) -> dict:
    """Acceptance and MBSU of the trimmed drafter next to the untrimmed one (plus ms per drafted token)."""
    from .acceptance import evaluate

    rows = {}
    for name, d in (("untrimmed", draft), ("trimmed", trimmed)):
        rows[name] = evaluate(target, d, prompts, k=k, timing=True).to_dict()
    u, t = rows["untrimmed"], rows["trimmed"]
    rows["acceptance_loss"] = round(u["acceptance_rate"] - t["acceptance_rate"], 4)
    rows["mbsu_gain"] = round(t["mbsu"] / u["mbsu"], 4) if u["mbsu"] else None
    if u.get("draft_ms_per_token") and t.get("draft_ms_per_token"):
        rows["draft_wallclock_gain"] = round(u["draft_ms_per_token"] / t["draft_ms_per_token"], 3)
    return rows


def write_report(out: Path, report: dict) -> None:
    p = Path(out) / META_FILE
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, p)
