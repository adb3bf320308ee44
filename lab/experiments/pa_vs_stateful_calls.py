"""Per-call cost of the twin target under paged attention vs the stateful graph, interleaved call by
call (the host drifts over seconds, so finer pairing than whole generations is needed to see a few %):
    .venv/bin/python lab/experiments/pa_vs_stateful_calls.py BUNDLE/target/openvino_model.xml CTX [CALLS] [KV]
Prints, for calls over 1, 3 and 5 tokens at context CTX.., the median per-call ms and the median paired
stateful/paged ratio (> 1: paged is faster), plus one prefill of CTX tokens each.
"""

import statistics
import sys
import time

import numpy as np
import openvino as ov
from openvino._offline_transformations import paged_attention_transformation

sys.path.insert(0, __import__("os").path.dirname(__file__))
from pa_vs_stateful_calls_lib import with_rows  # noqa: E402  (the runtime's logits slice)

xml, ctx = sys.argv[1], int(sys.argv[2])
calls = int(sys.argv[3]) if len(sys.argv) > 3 else 40
kv = sys.argv[4] if len(sys.argv) > 4 else "u8"
cfg = {"KV_CACHE_PRECISION": kv, "INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"}
core = ov.Core()


pm = core.read_model(xml)
paged_attention_transformation(pm, False, False)
pr = core.compile_model(with_rows(pm, 0), "CPU", cfg).create_infer_request()
blocks = (ctx + calls * 10 + 64) // 32 + 1
for i in pr.get_compiled_model().inputs:
    if "cache" in i.get_any_name():
        s = i.get_partial_shape()
        pr.set_tensor(
            i.get_any_name(), ov.Tensor(i.get_element_type(), [blocks] + [s[j].get_length() for j in range(1, 4)])
        )
sr = core.compile_model(with_rows(core.read_model(xml), 1), "CPU", cfg).create_infer_request()


def paged(ids, past):
    n = len(ids)
    tot = past + n
    nb = (tot + 31) // 32
    pr.infer(
        {
            "input_ids": np.array(ids, np.int64),
            "position_ids": np.arange(past, tot, dtype=np.int64),
            "past_lens": np.array([past], np.int32),
            "subsequence_begins": np.array([0, n], np.int32),
            "block_indices_begins": np.array([0, nb], np.int32),
            "block_indices": np.arange(nb, dtype=np.int32),
            "max_context_len": np.array(tot, np.int32),
            "es_logits_rows": np.array([min(n, 8)], np.int64),
        }
    )


def stateful(ids, past):
    n = len(ids)
    sr.infer(
        {
            "input_ids": np.array([ids], np.int64),
            "attention_mask": np.ones((1, past + n), np.int64),
            "position_ids": np.arange(past, past + n, dtype=np.int64)[None],
            "beam_idx": np.zeros(1, np.int32),
            "es_logits_rows": np.array([min(n, 8)], np.int64),
        }
    )


rng = np.random.default_rng(0)
prompt = [int(x) for x in rng.integers(100, 16000, ctx)]
for name, f in (("paged", paged), ("stateful", stateful)):
    t = time.perf_counter()
    f(prompt, 0)
    print(f"prefill {ctx} tokens, {name}: {time.perf_counter() - t:.2f} s", flush=True)
res: dict = {}
past = ctx
for i in range(calls):
    for n in (1, 3, 5):
        ids = [int(x) for x in rng.integers(100, 16000, n)]
        for name, f in (
            (("paged", paged), ("stateful", stateful)) if i % 2 == 0 else (("stateful", stateful), ("paged", paged))
        ):
            t = time.perf_counter()
            f(ids, past)
            res.setdefault((name, n), []).append(time.perf_counter() - t)
        past += 1  # keep one of the n tokens (a verify round that accepted nothing)
for n in (1, 3, 5):
    p, s = res[("paged", n)], res[("stateful", n)]
    print(
        f"T({n}) at context {ctx}..{past}: paged {1000 * statistics.median(p):.1f} ms, stateful "
        f"{1000 * statistics.median(s):.1f} ms, stateful/paged paired median {statistics.median([b / a for a, b in zip(p, s)]):.3f}"
    )
