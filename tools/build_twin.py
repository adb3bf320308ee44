#!/usr/bin/env python
"""Build the `twin` rung: a ~1B-parameter Llama that computes exactly what a small Llama computes.

    .venv/bin/python tools/build_twin.py --from models/demo/target --hidden 2048 --layers 20 \\
        --intermediate 5632 -o .cache/twin-hf
    .venv/bin/edgespec export .cache/twin-hf --draft models/demo/draft -o .cache/twin-bundle

With --head DIR (an EAGLE-3 head of the source, e.g. models/demo/head-eagle3) the head is widened to
the twin's width too and written to --head-out (default OUT-head): it drafts exactly what the small
head drafts, reading the twin's layers where the twin put the source's, at a twin-sized head's cost.

The widening is function-preserving (edgespec.export.twin): the extra width and layers contribute
exactly zero, so the twin's next-token choices are the source's while each call costs what a
model of the twin's shape costs. After saving, the twin's logits are compared with the source's
on a few token sequences (fp32; --no-check skips it). Needs about 2 × 4 bytes per twin parameter
of RAM (a 1B twin: ~8 GB) and a few minutes of CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _copy_tokenizer_files(src: Path, dst: Path) -> None:
    """The files export copies beside a model (tokenizer, generation config), from ``src`` to ``dst``
    where ``dst`` has none yet; config.json is the model's own."""
    from edgespec.export.api import _HF_FILES

    for name in _HF_FILES:
        if name != "config.json" and (src / name).is_file() and not (dst / name).exists():
            shutil.copy2(src / name, dst / name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="src", type=Path, required=True, help="small Llama HF checkpoint directory")
    ap.add_argument("--hidden", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--intermediate", type=int, required=True)
    ap.add_argument("--kv-heads", type=int, default=None, help="default: keep the source's query heads per kv head")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--context",
        type=int,
        default=None,
        help="max_position_embeddings of the twin (default: the source's), e.g. for ~2k-token prompts",
    )
    ap.add_argument("--head", type=Path, default=None, help="an EAGLE-3 head of the source to widen as well")
    ap.add_argument("--head-out", type=Path, default=None, help="where the widened head goes (default: OUT-head)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--no-check", dest="check", action="store_false", help="skip the logits comparison")
    a = ap.parse_args(argv)

    import torch
    from edgespec.export.twin import parameter_count, widen_llama
    from transformers import AutoModelForCausalLM

    from edgespec.errors import EdgespecError

    t0 = time.perf_counter()
    src = AutoModelForCausalLM.from_pretrained(a.src, dtype=torch.float32).eval()
    try:
        twin = widen_llama(src, a.hidden, a.layers, a.intermediate, kv_heads=a.kv_heads, seed=a.seed, context=a.context)
    except EdgespecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n0, n1 = parameter_count(src.config), parameter_count(twin.config)
    print(
        f"twin: {n0 / 1e6:.1f}M -> {n1 / 1e6:.1f}M parameters (hidden {src.config.hidden_size}->{a.hidden}, "
        f"layers {src.config.num_hidden_layers}->{a.layers}, intermediate {src.config.intermediate_size}->"
        f"{a.intermediate}, heads {twin.config.num_attention_heads}/{twin.config.num_key_value_heads} kv) "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    if a.check:
        gen = torch.Generator().manual_seed(1)
        ids = torch.randint(0, src.config.vocab_size, (2, 48), generator=gen)
        with torch.inference_mode():
            la, lb = src(ids).logits, twin(ids).logits
        diff = (la - lb).abs().max().item()
        rel = diff / max(la.abs().max().item(), 1e-9)
        top1 = (la.argmax(-1) == lb.argmax(-1)).float().mean().item()
        print(
            f"check: max |logit difference| twin vs source {diff:.2e} ({rel:.1e} of the largest logit), "
            f"top-1 agreement {top1:.3f} (fp32)"
        )
        if rel > 1e-4 or top1 < 0.99:
            print("error: the twin does not reproduce the source's logits", file=sys.stderr)
            return 1
    wide_head = None
    if a.head is not None:
        try:
            wide_head, head_out = _widen_head(a, src, twin)
        except EdgespecError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if wide_head is None:
            return 1
    a.out.mkdir(parents=True, exist_ok=True)
    twin.save_pretrained(a.out, safe_serialization=True)
    _copy_tokenizer_files(a.src, a.out)
    (a.out / "twin.json").write_text(
        json.dumps(
            {
                "source": str(a.src.resolve()),
                "source_parameters": n0,
                "parameters": n1,
                "seed": a.seed,
                "hidden": a.hidden,
                "layers": a.layers,
                "intermediate": a.intermediate,
                "kv_heads": twin.config.num_key_value_heads,
                "context": twin.config.max_position_embeddings,
            },
            indent=1,
        )
    )
    if wide_head is not None:
        from edgespec.export.draft import eagle3

        eagle3.save_head(wide_head, head_out, meta={"twin_of": str(a.head.resolve()), "seed": a.seed})
        _copy_tokenizer_files(a.src, head_out)
        print(f"wrote {head_out}")
    print(f"wrote {a.out} in {time.perf_counter() - t0:.0f} s")
    return 0


def _widen_head(a, src, twin):
    """The widened head and where it goes, after comparing its logits with the small head's."""
    import torch
    from edgespec.export.draft import eagle3
    from edgespec.export.twin import widen_eagle3

    head = eagle3.load_head(a.head)
    eagle3.attach_target_embedding(head, src)
    wide = widen_eagle3(
        head,
        a.hidden,
        a.intermediate,
        src.config.num_hidden_layers,
        a.layers,
        kv_heads=a.kv_heads,
        seed=a.seed,
        context=a.context,
    )
    out = a.head_out or a.out.with_name(a.out.name + "-head")
    print(
        f"head: {eagle3.head_weight_params(head) / 1e6:.1f}M -> {eagle3.head_weight_params(wide) / 1e6:.1f}M "
        f"parameters per call, target layers {eagle3.aux_layers_of(head.config)} -> {eagle3.aux_layers_of(wide.config)}"
    )
    if a.check:
        ids = torch.randint(0, src.config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(2))
        fa, _, _ = eagle3.target_features(src, ids, eagle3.aux_layers_of(head.config))
        fb, _, _ = eagle3.target_features(twin, ids, eagle3.aux_layers_of(wide.config))
        with torch.inference_mode():
            la, lb = head(ids, fa)[0], wide(ids, fb)[0]
        rel = (la - lb).abs().max().item() / max(la.abs().max().item(), 1e-9)
        top1 = (la.argmax(-1) == lb.argmax(-1)).float().mean().item()
        print(f"check: head logits twin vs source {rel:.1e} of the largest logit, top-1 agreement {top1:.3f} (fp32)")
        if rel > 1e-4 or top1 < 0.99:
            print("error: the widened head does not reproduce the source head's logits", file=sys.stderr)
            return None, out
    return wide, out


if __name__ == "__main__":
    sys.exit(main())
