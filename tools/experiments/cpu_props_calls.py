"""Per-call cost of the paged target under different CPU plugin properties, interleaved call by call:
    .venv/bin/python tools/experiments/cpu_props_calls.py BUNDLE/target/openvino_model.xml CTX CALLS 'NAME=K:V,K:V;NAME2=...'
An empty property list is the runtime's default (u8 KV, 2 threads, LATENCY). Prints per variant the median
per-call ms for 1/3/5-token calls and the paired ratio against the first variant (> 1: faster than it).
"""
import statistics
import sys
import time

import numpy as np
import openvino as ov
from openvino._offline_transformations import paged_attention_transformation

sys.path.insert(0, __import__("os").path.dirname(__file__))
from pa_vs_stateful_calls_lib import with_rows  # noqa: E402

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
    pm = core.read_model(xml)
    paged_attention_transformation(pm, False, False)
    r = core.compile_model(with_rows(pm, 0), "CPU", props).create_infer_request()
    for i in r.get_compiled_model().inputs:
        if "cache" in i.get_any_name():
            s = i.get_partial_shape()
            r.set_tensor(i.get_any_name(), ov.Tensor(i.get_element_type(), [blocks] + [s[j].get_length() for j in range(1, 4)]))
    reqs[name] = r
    print("compiled", name, props, flush=True)


def call(r, ids, past):
    n = len(ids); tot = past + n; nb = (tot + 31) // 32
    r.infer({"input_ids": np.array(ids, np.int64), "position_ids": np.arange(past, tot, dtype=np.int64),
             "past_lens": np.array([past], np.int32), "subsequence_begins": np.array([0, n], np.int32),
             "block_indices_begins": np.array([0, nb], np.int32), "block_indices": np.arange(nb, dtype=np.int32),
             "max_context_len": np.array(tot, np.int32), "es_logits_rows": np.array([min(n, 8)], np.int64)})
    return r.get_tensor("logits").data.copy()


rng = np.random.default_rng(0)
prompt = [int(x) for x in rng.integers(100, 16000, ctx)]
for name, r in reqs.items():
    t = time.perf_counter(); call(r, prompt, 0); print(f"prefill {ctx}, {name}: {time.perf_counter() - t:.2f} s", flush=True)
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
            t = time.perf_counter(); outs[name] = call(reqs[name], ids, past); res.setdefault((name, n), []).append(time.perf_counter() - t)
        for name in names[1:]:
            agree.setdefault(name, []).append(float((outs[name].reshape(-1, outs[name].shape[-1]).argmax(-1) == outs[names[0]].reshape(-1, outs[name].shape[-1]).argmax(-1)).mean()))
        past += 1
base = names[0]
for n in (1, 3, 5):
    for name in names:
        p = res[(name, n)]
        ratio = statistics.median([b / a for a, b in zip(p, res[(base, n)])])
        print(f"T({n}) ctx {ctx}: {name:>10} {1000 * statistics.median(p):7.1f} ms  {base}/{name} paired {ratio:.3f}")
for name in names[1:]:
    print(f"argmax agreement of {name} with {base}: {statistics.mean(agree[name]):.3f}")
