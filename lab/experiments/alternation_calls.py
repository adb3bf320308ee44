"""What alternating two models costs per call, with plain OpenVINO (no edgespec code):
    .venv/bin/python lab/experiments/alternation_calls.py BUNDLE CTX ROUNDS K [VARIANT;VARIANT...]
Per round, interleaved: the target's T(K+1) four times in a row and the drafter's T(1) four times
in a row (each model alone, as the cost probe measures it), then four loop rounds (K drafter
calls, one T(K+1) verify), each call timed, twice: with every drafter call of one token, and with
the first call of every other round feeding two (the catch-up after a fully accepted draft; its
shape change is timed too). A VARIANT is name=PROP:VALUE,PROP:VALUE for the
drafter's compile properties (e.g. 't1=INFERENCE_NUM_THREADS:1'); the target keeps the runtime's
(LATENCY, 2 threads, u8 KV). Prints the median per-call ms alone and in the loop, and of a round's first drafter call."""

import statistics
import sys
import time

import numpy as np
import openvino as ov

sys.path.insert(0, __import__("os").path.dirname(__file__))
from pa_vs_stateful_calls_lib import paged_call, paged_request  # noqa: E402

bundle, ctx, rounds, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
variants = {"base": {}}
for v in sys.argv[5].split(";") if len(sys.argv) > 5 and sys.argv[5] else []:
    name, _, spec = v.partition("=")
    variants[name] = dict(p.split(":", 1) for p in spec.split(",") if p)
core = ov.Core()
base = {"KV_CACHE_PRECISION": "u8", "PERFORMANCE_HINT": "LATENCY"}
blocks = (ctx + rounds * 40 * (k + 1) + 64) // 32 + 1
target = paged_request(core, f"{bundle}/target/openvino_model.xml", base, blocks)
drafts = {
    n: paged_request(core, f"{bundle}/draft/openvino_model.xml", {**base, **p}, blocks) for n, p in variants.items()
}
vocab = int(core.read_model(f"{bundle}/target/openvino_model.xml").output("logits").get_partial_shape()[2].get_length())
rng = np.random.default_rng(0)
prompt = [int(x) for x in rng.integers(0, vocab, ctx)]
paged_call(target, prompt, 0, 1)
for d in drafts.values():
    paged_call(d, prompt, 0, 1)
res = {
    n: {
        "verify alone": [],
        "draft alone": [],
        "verify loop": [],
        "draft loop": [],
        "first draft": [],
        "first draft, 2 ids every other round": [],
    }
    for n in variants
}
past = ctx
names = list(variants)
for i in range(rounds):
    for n in names if i % 2 == 0 else names[::-1]:
        d, r = drafts[n], res[n]
        ids = [int(x) for x in rng.integers(0, vocab, k + 1)]
        paged_call(target, ids, past, k + 1)  # untimed: same shapes as the timed calls
        paged_call(d, ids[:1], past, 1)
        for j in range(4):
            t0 = time.perf_counter()
            paged_call(target, ids, past + j, k + 1)
            r["verify alone"].append(time.perf_counter() - t0)
        for j in range(4):
            t0 = time.perf_counter()
            paged_call(d, ids[:1], past + j, 1)
            r["draft alone"].append(time.perf_counter() - t0)
        for key in ("first draft", "first draft, 2 ids every other round"):
            for j in range(4):
                for m in range(k):
                    first = ids[:2] if m == 0 and j % 2 and key != "first draft" else ids[:1]
                    t0 = time.perf_counter()
                    paged_call(d, first, past + j + m, 1)
                    dt = time.perf_counter() - t0
                    r["draft loop" if m else key].append(dt)
                t0 = time.perf_counter()
                paged_call(target, ids, past + j, k + 1)
                r["verify loop"].append(time.perf_counter() - t0)
    past += 1
for n in names:
    r = {key: 1000 * statistics.median(v) for key, v in res[n].items()}
    print(
        f"{n:>8} ctx {ctx} k {k}: verify alone {r['verify alone']:.2f} loop {r['verify loop']:.2f} ms "
        f"({r['verify loop'] / r['verify alone']:.2f}x) | draft alone {r['draft alone']:.2f} loop {r['draft loop']:.2f} ms "
        f"({r['draft loop'] / r['draft alone']:.2f}x) | round alone {r['verify alone'] + k * r['draft alone']:.2f} "
        f"loop {r['verify loop'] + k * r['draft loop']:.2f} ms\n         first draft call of a round {r['first draft']:.2f} ms, "
        f"2 ids every other round {r['first draft, 2 ids every other round']:.2f} ms"
    )
