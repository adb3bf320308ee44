"""What an input-shape change costs one OpenVINO CPU call of a paged model (plain OpenVINO):
    .venv/bin/python lab/experiments/shape_calls.py MODEL.xml CTX ROUNDS [PATTERN;PATTERN...] [PROP:VALUE,...]
A PATTERN is a comma list of token counts fed call after call (default '1;2;1,2;2,1,1'): '1' is
single-token calls, '1,2' alternates 1 and 2 tokens (the drafter's first call of a round feeds 2
when the whole draft was accepted). Inputs are set before the clock starts; only infer() is timed.
Patterns are interleaved round by round; prints the median ms per call and per token fed."""

import statistics
import sys
import time

import numpy as np
import openvino as ov

sys.path.insert(0, __import__("os").path.dirname(__file__))
from pa_vs_stateful_calls_lib import paged_request, set_paged_inputs  # noqa: E402

xml, ctx, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
patterns = [[int(x) for x in p.split(",")] for p in (sys.argv[4] if len(sys.argv) > 4 else "1;2;1,2;2,1,1").split(";")]
core = ov.Core()
props = {
    "KV_CACHE_PRECISION": "u8",
    "PERFORMANCE_HINT": "LATENCY",
    **dict(p.split(":", 1) for p in (sys.argv[5] if len(sys.argv) > 5 else "").split(",") if p),
}
blocks = (ctx + rounds * 64 + 64) // 32 + 2
reqs = [paged_request(core, xml, props, blocks) for _ in patterns]
vocab = int(core.read_model(xml).output("logits").get_partial_shape()[2].get_length())
rng = np.random.default_rng(0)


prompt = [int(x) for x in rng.integers(0, vocab, ctx)]
for r in reqs:
    set_paged_inputs(r, prompt, 0)
    r.infer()
times = [[] for _ in patterns]
fed = [[] for _ in patterns]
past = [ctx] * len(patterns)
for i in range(rounds):
    order = range(len(patterns)) if i % 2 == 0 else reversed(range(len(patterns)))
    for p in order:
        for n in patterns[p] * 4:
            past[p] -= 1  # re-feed over the same positions, so every pattern sees the same context
            set_paged_inputs(reqs[p], [int(x) for x in rng.integers(0, vocab, n)], past[p])
            t0 = time.perf_counter()
            reqs[p].infer()
            times[p].append(time.perf_counter() - t0)
            fed[p].append(n)
            past[p] += 1
for p, pat in enumerate(patterns):
    per_tok = [t / n for t, n in zip(times[p], fed[p])]
    print(
        f"ctx {ctx} pattern {','.join(map(str, pat)):>8}: {1000 * statistics.median(times[p]):.3f} ms per call, "
        f"mean {1000 * statistics.mean(times[p]):.3f}, {1000 * statistics.median(per_tok):.3f} ms per token"
    )
