#!/usr/bin/env python
"""Build the demo corpus, the held-out prompt file and the two demo tokenizers.

    .venv/bin/python tools/build_corpus.py [--out .cache/demo] [--prompts models/demo/prompts_heldout.jsonl]

Writes OUT/corpus/train.jsonl, OUT/corpus/heldout.jsonl, OUT/corpus/manifest.json (file lists,
data hash), OUT/tok-target (byte-level BPE, 16k), OUT/tok-xvocab (Llama-2-style metaspace with byte
fallback, 8k), and the prompt file (a function's signature + docstring from held-out modules).
Deterministic: the same interpreter gives the same files and hashes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "demo")
    ap.add_argument("--prompts", type=Path, default=ROOT / "models" / "demo" / "prompts_heldout.jsonl")
    ap.add_argument("--stdlib", type=Path, default=None, help="source tree (default: this interpreter's stdlib)")
    ap.add_argument("--target-vocab", type=int, default=16000)
    ap.add_argument("--xvocab", type=int, default=8000)
    ap.add_argument("--no-check", action="store_true", help="skip the openvino-tokenizers round trip")
    ap.add_argument(
        "--library-only",
        action="store_true",
        help="leave out the library's tests, IDLE and lib2to3 (added to the training split by default)",
    )
    ap.add_argument(
        "--only",
        choices=["tok-target", "tok-xvocab"],
        default=None,
        help="rebuild only this tokenizer (the corpus files are rewritten identically)",
    )
    a = ap.parse_args()

    import demo_tokenizers as dt  # beside this script
    from edgespec.export.draft import corpus

    split = corpus.build_split(a.stdlib, include_extra=not a.library_only)
    cdir = a.out / "corpus"
    h_train = corpus.write_jsonl(cdir / "train.jsonl", [{"path": p, "text": t} for p, t in split.train])
    h_held = corpus.write_jsonl(cdir / "heldout.jsonl", [{"path": p, "text": t} for p, t in split.heldout])
    prompts = corpus.extract_prompts(split.heldout)
    h_prompts = corpus.write_jsonl(a.prompts, prompts)
    manifest = {
        "source": str(a.stdlib or corpus.stdlib_root()),
        "python": sys.version.split()[0],
        "train_only_dirs": [] if a.library_only else list(corpus.TRAIN_ONLY_DIRS),
        "data_sha256": split.sha256(),
        "train_jsonl_sha256": h_train,
        "heldout_jsonl_sha256": h_held,
        "prompts_sha256": h_prompts,
        "n_prompts": len(prompts),
        "train_files": [p for p, _ in split.train],
        "heldout_files": [p for p, _ in split.heldout],
        "train_chars": sum(len(t) for _, t in split.train),
        "heldout_chars": sum(len(t) for _, t in split.heldout),
    }
    (cdir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(
        f"corpus: {len(split.train)} train files ({manifest['train_chars'] / 1e6:.1f} M chars), "
        f"{len(split.heldout)} held-out files, {len(prompts)} prompts; data sha256 {manifest['data_sha256'][:16]}"
    )

    texts = [t for _, t in split.train]
    samples = [
        "def f(x):\n    return x + 1\n",
        "s = 'Grüße, 世界 🙂'  # café naïve\n",
        "    \tindented\n\n\nclass A:\n    pass",
        prompts[0]["prompt"] if prompts else "x",
    ]
    for name, fn, size in (
        ("tok-target", dt.train_byte_level, a.target_vocab),
        ("tok-xvocab", dt.train_metaspace, a.xvocab),
    ):
        if a.only and name != a.only:
            continue
        tok = fn(texts, size)
        tok.save_pretrained(a.out / name)
        n_tokens = sum(len(tok(t)["input_ids"]) for t in texts[:50])
        n_chars = sum(len(t) for t in texts[:50])
        print(f"{name}: vocab {len(tok)}, {n_chars / n_tokens:.2f} chars/token on 50 train files")
        if not a.no_check:
            problems = dt.check_openvino_roundtrip(tok, samples)
            print(f"  openvino-tokenizers round trip: {'exact' if not problems else problems}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
