"""Per-call cost of the paged target under different CPU plugin properties, interleaved call by call:
    .venv/bin/python lab/experiments/cpu_props_calls.py BUNDLE/target/openvino_model.xml CTX CALLS 'NAME=K:V,K:V;NAME2=...'
An empty property list is the runtime's default (u8 KV, 2 threads, LATENCY). Prints per variant the median
per-call ms for 1/3/5-token calls and the paired ratio against the first variant (> 1: faster than it).
"""

import statistics
import sys
import time

import numpy as np
import openvino as ov

sys.path.insert(0, __import__("os").path.dirname(__file__))
from pa_vs_stateful_calls_lib import paged_call, paged_request  # noqa: E402

xml, ctx, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
variants = []
for spec in sys.argv[4].split(";"):
    name, _, kvs = spec.partition("=")
    props = {"KV_CACHE_PRECISION": "u8", "INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"}
    for kv in filter(None, kvs.split(",")):
        k, v = kv.split(":")
        props[k] = int(v) if v.isdigit() else v
    variants.append((name, props))
core = ov.Core()
reqs = {}
blocks = (ctx + calls * 10 + 64) // 32 + 1
for name, props in variants:
    r = paged_request(core, xml, props, blocks)
    reqs[name] = r
    print("compiled", name, props, flush=True)


def call(r, ids, past):
    return paged_call(r, ids, past, min(len(ids), 8)).copy()


rng = np.random.default_rng(0)
prompt = [int(x) for x in rng.integers(100, 16000, ctx)]
for name, r in reqs.items():
    t = time.perf_counter()
    call(r, prompt, 0)
    print(f"prefill {ctx}, {name}: {time.perf_counter() - t:.2f} s", flush=True)
res: dict = {}
agree: dict = {}
names = list(reqs)
past = ctx
for i in range(calls):
    for n in (1, 3, 5):
        ids = [int(x) for x in rng.integers(100, 16000, n)]
        order = names if i % 2 == 0 else names[::-1]
        outs = {}
        for name in order:
            t = time.perf_counter()
            outs[name] = call(reqs[name], ids, past)
            res.setdefault((name, n), []).append(time.perf_counter() - t)
        for name in names[1:]:
            agree.setdefault(name, []).append(
                float(
                    (
                        outs[name].reshape(-1, outs[name].shape[-1]).argmax(-1)
                        == outs[names[0]].reshape(-1, outs[name].shape[-1]).argmax(-1)
                    ).mean()
                )
            )
        past += 1
base = names[0]
for n in (1, 3, 5):
    for name in names:
        p = res[(name, n)]
        ratio = statistics.median([b / a for a, b in zip(p, res[(base, n)])])
        print(f"T({n}) ctx {ctx}: {name:>10} {1000 * statistics.median(p):7.1f} ms  {base}/{name} paired {ratio:.3f}")
for name in names[1:]:
    print(f"argmax agreement of {name} with {base}: {statistics.mean(agree[name]):.3f}")
