"""Per-call cost of one paged model at different INFERENCE_NUM_THREADS, in the loop's pattern
(runs of same-size calls, so no shape change is timed), variants interleaved run by run:
    .venv/bin/python lab/experiments/threads_calls.py MODEL.xml CTX ROUNDS N_TOKENS [THREADS,...]
Prints the median per-call ms of each thread count and the paired ratio against the first.
"""

import statistics
import sys
import time

import numpy as np
import openvino as ov

sys.path.insert(0, __import__("os").path.dirname(__file__))
from pa_vs_stateful_calls_lib import paged_call, paged_request  # noqa: E402

xml, ctx, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
threads = [int(t) for t in (sys.argv[5] if len(sys.argv) > 5 else "2,1").split(",")]
core = ov.Core()
reqs = {}
blocks = (ctx + rounds * 8 * n + 64) // 32 + 1
for t in threads:
    props = {"KV_CACHE_PRECISION": "u8", "INFERENCE_NUM_THREADS": t, "PERFORMANCE_HINT": "LATENCY"}
    r = paged_request(core, xml, props, blocks)
    reqs[t] = r


def call(r, ids, past):
    return paged_call(r, ids, past, len(ids))


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
