"""The target's verify call in a draft-model loop's order against the same call back to back, and
against a plain decode step, in one process with plain OpenVINO (no edgespec code):
    .venv/bin/python lab/experiments/verify_after_draft.py BUNDLE [CTX] [ROUNDS] [K]
Cases, interleaved round by round (inputs set before the clock starts; only infer() is timed):
  ar            the target's 1-token call after its own 1-token call (plain decoding);
  verify-alone  the target's K+1-token call after its own K+1-token call (as the cost probe);
  verify-loop   the target's K+1-token call after K single-token drafter calls (a round);
  draft-loop    those K drafter calls, summed.
Prints the medians and verify-loop / ar, the ratio that the loop's own timers show as
T_call_inloop(k) / T_call_inloop(ar) in lab/bench.py."""

import os
import statistics
import sys
import time

import numpy as np
import openvino as ov

sys.path.insert(0, os.path.dirname(__file__))
from pa_vs_stateful_calls_lib import paged_call, paged_request, set_paged_inputs  # noqa: E402

bundle = sys.argv[1]
ctx = int(sys.argv[2]) if len(sys.argv) > 2 else 200
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 60
k = int(sys.argv[4]) if len(sys.argv) > 4 else 2
core = ov.Core()
props = {"KV_CACHE_PRECISION": "u8", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2}
blocks = (ctx + 64) // 32 + 2
target = paged_request(core, f"{bundle}/target/openvino_model.xml", props, blocks)
ar = paged_request(core, f"{bundle}/target/openvino_model.xml", props, blocks)  # its own request: no shape change
draft = paged_request(core, f"{bundle}/draft/openvino_model.xml", props, blocks)
rng = np.random.default_rng(0)
prompt = [int(x) for x in rng.integers(3, 250, ctx)]
for r in (target, ar, draft):
    paged_call(r, prompt, 0, 1)
ids = [int(x) for x in rng.integers(3, 250, k + 1)]


def timed(r, tokens, past, rows):
    set_paged_inputs(r, tokens, past, rows)
    t = time.perf_counter()
    r.infer()
    return (time.perf_counter() - t) * 1e3


res = {n: [] for n in ("ar", "verify-alone", "verify-loop", "draft-loop")}
cases = ["ar", "alone", "loop"]
for i in range(rounds):
    for c in cases[i % 3 :] + cases[: i % 3]:
        if c == "ar":
            timed(ar, ids[:1], ctx, 1)
            res["ar"].append(timed(ar, ids[:1], ctx, 1))
        elif c == "alone":
            timed(target, ids, ctx, k + 1)
            res["verify-alone"].append(timed(target, ids, ctx, k + 1))
        else:
            timed(target, ids, ctx, k + 1)
            res["draft-loop"].append(sum(timed(draft, ids[:1], ctx + j, 1) for j in range(k)))
            res["verify-loop"].append(timed(target, ids, ctx, k + 1))
m = {n: statistics.median(v) for n, v in res.items()}
print(f"ctx {ctx}, k {k}, {rounds} rounds: " + ", ".join(f"{n} {v:.3f} ms" for n, v in m.items()))
print(
    f"verify-alone / ar {m['verify-alone'] / m['ar']:.2f}, verify-loop / ar {m['verify-loop'] / m['ar']:.2f}, "
    f"verify-loop / verify-alone {m['verify-loop'] / m['verify-alone']:.2f}"
)
