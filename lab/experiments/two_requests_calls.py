"""Whether a second infer request keeps its own input-shape state (plain OpenVINO, one paged model):
    .venv/bin/python lab/experiments/two_requests_calls.py MODEL.xml [ROUNDS]
Calls alternate 1 and 2 tokens (a drafter's step and its catch-up after a fully accepted draft),
over the same cache tensors, through: one request; two requests of one compiled model; requests of
two compiled models; and, for reference, one request fed 1 token every call. Prints the median and
mean ms per infer() (inputs set before the clock starts)."""

import statistics
import sys
import time

import numpy as np
import openvino as ov

sys.path.insert(0, __import__("os").path.dirname(__file__))
from pa_vs_stateful_calls_lib import paged_request, set_paged_inputs  # noqa: E402

xml = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
ctx = 200
core = ov.Core()
props = {"KV_CACHE_PRECISION": "u8", "PERFORMANCE_HINT": "LATENCY"}
a = paged_request(core, xml, props, 20)
b_same = a.get_compiled_model().create_infer_request()
b_other = paged_request(core, xml, props, 20)
for r in (b_same, b_other):  # one cache, as a drafter's two requests would share it
    for i in a.get_compiled_model().inputs:
        if "cache" in i.get_any_name():
            r.set_tensor(i.get_any_name(), a.get_tensor(i.get_any_name()))
rng = np.random.default_rng(0)


set_paged_inputs(a, list(range(ctx)), 0)
a.infer()
variants = {
    "one request, 1 and 2 tokens": ((1, a), (2, a)),
    "two requests of one compiled model": ((1, a), (2, b_same)),
    "requests of two compiled models": ((1, a), (2, b_other)),
    "one request, 1 token every call": ((1, a), (1, a)),
}
times: dict = {k: [] for k in variants}
for i in range(rounds):
    for name, calls in variants.items():
        for _ in range(4):
            for n, r in calls:
                set_paged_inputs(r, [int(x) for x in rng.integers(0, 1000, n)], ctx - 2)
                t0 = time.perf_counter()
                r.infer()
                times[name].append(time.perf_counter() - t0)
for name, t in times.items():
    print(f"{name:>36}: {1000 * statistics.median(t):.3f} ms median, {1000 * statistics.mean(t):.3f} mean")
