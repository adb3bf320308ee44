"""What OpenVINO's CPU dynamic quantization group size buys and costs on a weight-compressed target:
prefill and decode time, interleaved variant by variant, and teacher-forced top-1 agreement with f32
(no dynamic quantization) over the text of a prompt set.
    .venv/bin/python lab/experiments/dyn_quant_prefill.py BUNDLE [--groups 32,64,128] [--tokens 182]
        [--repeats 5] [--prompt-set long] [--texts 8]
The target's stateful IR (BUNDLE/target/openvino_model.xml), bf16 (the CPU default) with a f32 KV cache;
the runtime runs the paged form, so the times are a proxy for its prefill, the agreement is exact.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
from exp_common import fail, load_prompts, positive
from tokenizers import Tokenizer

ap = argparse.ArgumentParser()
ap.add_argument("bundle")
ap.add_argument("--groups", default="32,64,128")
ap.add_argument("--tokens", type=int, default=182, help="prefill length timed")
ap.add_argument("--repeats", type=positive, default=5)
ap.add_argument("--prompt-set", default="long")
ap.add_argument("--texts", type=int, default=8)
a = ap.parse_args()

target = Path(a.bundle) / "target"
if not (target / "openvino_model.xml").is_file() or not (target / "tokenizer.json").is_file():
    fail(
        f"{a.bundle} has no target/openvino_model.xml and tokenizer.json; pass a bundle `edgespec export` wrote as OpenVINO IR"
    )
groups = a.groups.split(",")
if not all(g.isdigit() for g in groups):
    fail(f"--groups must be a comma list of group sizes (got {a.groups!r})")
core = ov.Core()
model = core.read_model(target / "openvino_model.xml")
tok = Tokenizer.from_file(str(target / "tokenizer.json"))
texts = [tok.encode(p).ids[:256] for p in load_prompts(a.prompt_set, a.texts)]
base = {"PERFORMANCE_HINT": "LATENCY", "KV_CACHE_PRECISION": "f32"}
variants = {f"dq{g}": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": int(g)} for g in groups}
variants["dq0"] = {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}
compiled = {n: core.compile_model(model, "CPU", {**base, **p}) for n, p in variants.items()}
ref = core.compile_model(
    model, "CPU", {**base, "INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}
)


def feed(ids, start=0):
    n = len(ids)
    return {
        "input_ids": np.array([ids], np.int64),
        "attention_mask": np.ones((1, start + n), np.int64),
        "position_ids": np.arange(start, start + n, dtype=np.int64)[None],
        "beam_idx": np.zeros(1, np.int32),
    }


def argmaxes(cm):
    out = []
    for ids in texts:
        r = cm.create_infer_request()
        r.infer(feed(ids))
        out.append(r.get_tensor("logits").data[0].argmax(-1))
    return out


want = argmaxes(ref)
times = {n: {"prefill": [], "decode": []} for n in compiled}
rng = np.random.default_rng(0)
for rep in range(a.repeats + 1):  # pass 0 warms up
    for n, cm in compiled.items():
        r = cm.create_infer_request()
        ids = rng.integers(100, 1000, a.tokens).tolist()
        t = time.perf_counter()
        r.infer(feed(ids))
        pre = (time.perf_counter() - t) * 1e3
        dec = []
        for i in range(8):
            t = time.perf_counter()
            r.infer(feed([5], a.tokens + i))
            dec.append((time.perf_counter() - t) * 1e3)
        if rep:
            times[n]["prefill"].append(pre)
            times[n]["decode"].append(statistics.median(dec))
    print(f"pass {rep}/{a.repeats}", file=sys.stderr, flush=True)

print(f"{a.bundle}: prefill of {a.tokens} tokens and decode steps (median ms over {a.repeats} interleaved passes);")
print(f"top-1 agreement with f32 (no dynamic quantization), teacher-forced over {len(texts)} {a.prompt_set} texts")
first = next(iter(compiled))
for n, cm in compiled.items():
    got = argmaxes(cm)
    agree = np.mean([np.mean(x == y) for x, y in zip(got, want)])
    truth = np.mean([np.mean(x[:-1] == np.array(ids[1:])) for x, ids in zip(got, texts)])
    pre, dec = statistics.median(times[n]["prefill"]), statistics.median(times[n]["decode"])
    rel = statistics.median(x / y for x, y in zip(times[n]["prefill"], times[first]["prefill"]))
    print(
        f"{n:6} prefill {pre:7.1f} ms ({rel:.2f}x {first}, paired)  decode {dec:6.1f} ms  "
        f"agree {agree:.4f}  top-1 vs text {truth:.4f}"
    )
