#!/usr/bin/env python
"""Train the demo target (a small Llama on the standard-library corpus); resumable.

    .venv/bin/python tools/build_corpus.py
    .venv/bin/python tools/train_demo.py target --steps 1100 -o .cache/demo/target
    .venv/bin/python tools/train_demo.py bench           # measure training throughput (a few steps)
    .venv/bin/python tools/train_demo.py publish         # fp16 copies of the trained models -> models/demo/
    .venv/bin/python tools/train_demo.py figures         # held-out loss, acceptance figures, samples

Re-running the same command resumes from OUT/.train/state.safetensors. The drafters are trained with
`edgespec draft train` (see models/demo/RECIPE.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".cache" / "demo"

TARGET_ARCH = dict(hidden=384, layers=6, heads=6, kv_heads=6, intermediate=1024, ctx=2048)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["target", "bench", "publish", "figures"])
    ap.add_argument("--prompts-n", type=int, default=16, help="figures: prompts for the acceptance figures")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1100)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto", help="cpu, cuda, or auto (a CUDA GPU when torch sees one)")
    ap.add_argument("--ctx", type=int, default=TARGET_ARCH["ctx"], help="context length (max positions)")
    ap.add_argument("--eval-every", type=int, default=0, help="log the held-out loss every N steps")
    ap.add_argument("--data", type=Path, default=DEMO)
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this HF checkpoint's weights (a continuation run) instead of random init",
    )
    ap.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="end this run at that step (checkpoint kept), as the recorded demo run was interrupted",
    )
    ap.add_argument("-o", "--out", type=Path, default=DEMO / "target")
    a = ap.parse_args()

    import torch
    import transformers as tf
    from edgespec.export.draft import corpus, lmtrain

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.what == "publish":
        return publish()
    if a.what == "figures":
        return figures(a.prompts_n, a.k)
    tok = tf.AutoTokenizer.from_pretrained(a.data / "tok-target")
    docs = corpus.load_documents(a.data / "corpus" / "train.jsonl")
    held = corpus.load_documents(a.data / "corpus" / "heldout.jsonl")
    data = lmtrain.tokenize_documents(tok, docs, a.data / "tokens")
    held_ids = lmtrain.tokenize_documents(tok, held, a.data / "tokens")
    print(f"train tokens {len(data):,}  held-out tokens {len(held_ids):,}", flush=True)
    arch = TARGET_ARCH | {"ctx": max(a.ctx, a.seq_len)}
    cfg_m = lmtrain.llama_config(len(tok), **arch)
    model = tf.LlamaForCausalLM(cfg_m)
    if a.init is not None:
        model.load_state_dict(tf.LlamaForCausalLM.from_pretrained(a.init, dtype=torch.float32).state_dict())
        print(f"initialised from {a.init}", flush=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"target params {n / 1e6:.2f} M", flush=True)
    if a.what == "bench":
        cfg = lmtrain.TrainConfig(
            steps=3,
            seq_len=a.seq_len,
            batch_size=a.batch_size,
            lr=a.lr,
            warmup=1,
            log_every=1,
            checkpoint_every_s=1e9,
            threads=a.threads,
        )
        t = time.time()
        lmtrain.train(model, data, Path("/tmp/edgespec-bench-target"), cfg, progress=False)
        dt = (time.time() - t) / 3
        print(f"{dt:.2f} s/step, {a.batch_size * a.seq_len / dt:.0f} tok/s")
        import shutil

        shutil.rmtree("/tmp/edgespec-bench-target", ignore_errors=True)
        return 0
    cfg = lmtrain.TrainConfig(
        steps=a.steps,
        seq_len=a.seq_len,
        batch_size=a.batch_size,
        lr=a.lr,
        warmup=a.warmup,
        seed=a.seed,
        threads=a.threads,
        checkpoint_every_s=150,
        log_every=10,
        device=lmtrain.resolve_device(a.device),
        eval_every=a.eval_every,
    )
    t = time.time()
    summary = lmtrain.train(
        model,
        data,
        a.out,
        cfg,
        eval_data=held_ids,
        progress=False,
        log=lambda s: print(s, flush=True),
        stop_after=a.stop_after,
    )
    if summary["steps"] < a.steps:
        print(f"stopped at step {summary['steps']} (--stop-after); re-run to continue", flush=True)
        return 0
    summary["wall_s_this_run"] = round(time.time() - t, 1)
    summary["params"] = n
    summary["train_tokens"] = int(len(data))
    summary["arch"] = arch
    summary["train_config"] = vars(a) | {"data": str(a.data), "out": str(a.out)}
    model.generation_config.do_sample = False
    lmtrain.save_hf(model, tok, a.out)
    lmtrain.write_json(a.out / "train_summary.json", summary)
    print(json.dumps({k: summary[k] for k in ("steps", "heldout_loss", "final_loss_ema")}), flush=True)
    return 0


PUBLISH = {
    "target": DEMO / "target",
    "draft-stage1": DEMO / "draft-s1",
    "draft": DEMO / "draft",
    "draft-trimmed": DEMO / "draft-trimmed",
    "draft-xvocab": DEMO / "draft-xvocab",
}
MODELS = ROOT / "models" / "demo"


def publish() -> int:
    """fp16 safetensors copies (loadable in fp32) of the trained checkpoints, plus their reports."""
    import shutil

    import torch
    import transformers as tf
    from edgespec.export.draft import lmtrain

    for name, src in PUBLISH.items():
        if not (src / "config.json").is_file():
            print(f"skip {name}: {src} not trained yet")
            continue
        if name == "draft-stage1":
            continue  # kept in the cache only; its figures go into figures.json
        m = tf.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
        tok = tf.AutoTokenizer.from_pretrained(src)
        extra = {}
        for f in ("edgespec_draft.json", "edgespec_trim.json", "train_summary.json"):
            if (src / f).is_file():
                extra[f] = (src / f).read_text()
        dst = MODELS / name
        if dst.exists():
            shutil.rmtree(dst)
        lmtrain.save_hf(m, tok, dst, extra_files=extra, dtype=torch.float16)
        if (src / "trim_id_map.i32").is_file():
            shutil.copy(src / "trim_id_map.i32", dst / "trim_id_map.i32")
        size = sum(f.stat().st_size for f in dst.iterdir())
        print(f"{name}: {size / 1e6:.1f} MB -> {dst}")
    publish_head(DEMO / "head-eagle3", MODELS / "head-eagle3")
    return 0


def publish_head(src, dst) -> None:
    """The EAGLE-3 head in fp16 without the target's embedding table (the export and the runtimes
    take the target's), with the target's tokenizer and its training report."""
    import json

    import transformers as tf
    from edgespec.export.draft import eagle3

    if not (src / "config.json").is_file():
        print(f"skip head-eagle3: {src} not trained yet")
        return
    head = eagle3.load_head(src)
    meta = json.loads((src / eagle3.META_FILE).read_text())
    eagle3.save_head(
        head, dst, tf.AutoTokenizer.from_pretrained(src), meta=meta, dtype=__import__("torch").float16, embedding=False
    )
    size = sum(f.stat().st_size for f in dst.iterdir())
    print(f"head-eagle3: {size / 1e6:.1f} MB -> {dst} (step {meta['step']})")


def figures(n_prompts: int, k: int) -> int:
    """Held-out loss (per token and per character), acceptance figures at k, sample completions."""
    import torch
    from edgespec.export.draft import acceptance, corpus, fastdraft, lmtrain

    fastdraft.quiet_transformers()
    held = corpus.load_documents(DEMO / "corpus" / "heldout.jsonl")
    n_chars = sum(len(d) for d in held)
    prompts = acceptance.default_prompts(n_prompts)
    out = {
        "k": k,
        "n_prompts": len(prompts),
        "prompts_file": "models/demo/prompts_heldout.jsonl",
        "prompts_sha256": __import__("hashlib").sha256((MODELS / "prompts_heldout.jsonl").read_bytes()).hexdigest(),
        "models": {},
        "acceptance": {},
        "samples": [],
    }
    dirs = {
        "target": MODELS / "target",
        "draft-stage1": DEMO / "draft-s1",
        "draft": MODELS / "draft",
        "draft-trimmed": MODELS / "draft-trimmed",
        "draft-xvocab": MODELS / "draft-xvocab",
    }
    for name, d in dirs.items():
        if not (d / "config.json").is_file():
            continue
        m, tok = fastdraft.load_model(d)
        ids = lmtrain.tokenize_documents(tok, held, DEMO / "tokens") if not (d / "trim_id_map.i32").is_file() else None
        rec = {"params": sum(p.numel() for p in m.parameters()), "weight_params": acceptance.weight_params(m)}
        if ids is not None:
            n = min(len(ids) - 1, 256 * 200)
            loss = lmtrain.eval_loss(m, ids[: n + 1], seq=256, max_windows=200)
            rec.update(
                heldout_loss=round(loss, 4), heldout_nats_per_char=round(loss * len(ids) / n_chars, 4)
            )  # approx.
        out["models"][name] = rec
        print(name, rec, flush=True)
        if name != "target":
            fig = acceptance.evaluate(dirs["target"], d, prompts, k=k, timing=True, show_progress=False)
            out["acceptance"][name] = fig.to_dict()
            print(name, out["acceptance"][name], flush=True)
    target, ttok = fastdraft.load_model(dirs["target"])
    for p in prompts[:3]:
        ids = torch.tensor([ttok(p)["input_ids"]])
        g = target.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=96, do_sample=False, pad_token_id=ttok.pad_token_id
        )
        out["samples"].append({"prompt": p, "completion": ttok.decode(g[0, ids.shape[1] :], skip_special_tokens=True)})
    lmtrain.write_json(MODELS / "figures.json", out)
    print(json.dumps(out["acceptance"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
