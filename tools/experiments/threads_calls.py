"""Per-call cost of one paged model at different INFERENCE_NUM_THREADS, in the loop's pattern
(runs of same-size calls, so no shape change is timed), variants interleaved run by run:
    .venv/bin/python tools/experiments/threads_calls.py MODEL.xml CTX ROUNDS N_TOKENS [THREADS,...]
Prints the median per-call ms of each thread count and the paired ratio against the first.
"""
import statistics
import sys
import time

import numpy as np
import openvino as ov
from openvino._offline_transformations import paged_attention_transformation

sys.path.insert(0, __import__("os").path.dirname(__file__))
from pa_vs_stateful_calls_lib import with_rows  # noqa: E402

xml, ctx, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
threads = [int(t) for t in (sys.argv[5] if len(sys.argv) > 5 else "2,1").split(",")]
core = ov.Core()
reqs = {}
blocks = (ctx + rounds * 8 * n + 64) // 32 + 1
for t in threads:
    pm = core.read_model(xml)
    paged_attention_transformation(pm, False, False)
    props = {"KV_CACHE_PRECISION": "u8", "INFERENCE_NUM_THREADS": t, "PERFORMANCE_HINT": "LATENCY"}
    r = core.compile_model(with_rows(pm, 0), "CPU", props).create_infer_request()
    for i in r.get_compiled_model().inputs:
        if "cache" in i.get_any_name():
            s = i.get_partial_shape()
            r.set_tensor(i.get_any_name(), ov.Tensor(i.get_element_type(), [blocks] + [s[j].get_length() for j in range(1, 4)]))
    reqs[t] = r


def call(r, ids, past):
    k = len(ids); tot = past + k; nb = (tot + 31) // 32
    r.infer({"input_ids": np.array(ids, np.int64), "position_ids": np.arange(past, tot, dtype=np.int64),
             "past_lens": np.array([past], np.int32), "subsequence_begins": np.array([0, k], np.int32),
             "block_indices_begins": np.array([0, nb], np.int32), "block_indices": np.arange(nb, dtype=np.int32),
             "max_context_len": np.array(tot, np.int32), "es_logits_rows": np.array([k], np.int64)})
    return r.get_tensor("logits").data


rng = np.random.default_rng(0)
vocab = int(ov.Core().read_model(xml).output("logits").get_partial_shape()[2].get_length())
prompt = [int(x) for x in rng.integers(0, vocab, ctx)]
for t, r in reqs.items():
    call(r, prompt, 0)
res: dict = {t: [] for t in threads}
past = ctx
for i in range(rounds):
    order = threads if i % 2 == 0 else threads[::-1]
    ids = [int(x) for x in rng.integers(0, vocab, n)]
    for t in order:
        call(reqs[t], ids, past)  # untimed: same shape as the timed ones
        t0 = time.perf_counter()
        for j in range(4):
            call(reqs[t], ids, past + j * n)
        res[t].append((time.perf_counter() - t0) / 4)
    past += 1
base = threads[0]
for t in threads:
    ratio = statistics.median([b / a for a, b in zip(res[t], res[base])])
    print(f"ctx {ctx} T({n}) threads {t}: {1000 * statistics.median(res[t]):6.2f} ms   paired {base}/{t} {ratio:.3f}")
