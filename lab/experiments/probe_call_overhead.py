"""What the bench cost probe's Python call path adds to a call: the demo target's decode step and
3-token verify (paged form, fixed-width compiles, default KV cache) timed as req.infer(dict) (the
probe's path until session 11: inputs converted and outputs copied per call), as
req.infer(dict, share_inputs=True, share_outputs=True), and as a bare req.infer() on tensors
written in place beforehand (what the native runtime does), interleaved call by call, median ms:
    .venv/bin/python lab/experiments/probe_call_overhead.py BUNDLE [ctx] [calls] [model]
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
from openvino._offline_transformations import paged_attention_transformation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_runners import paged_inputs  # noqa: E402

bundle = Path(sys.argv[1])
ctx = int(sys.argv[2]) if len(sys.argv) > 2 else 200
calls = int(sys.argv[3]) if len(sys.argv) > 3 else 100
name = sys.argv[4] if len(sys.argv) > 4 else "target"
xml = bundle / name / "openvino_model.xml"
if not xml.exists():
    xml = bundle / "drafts" / name / "openvino_model.xml"
core = ov.Core()
m = core.read_model(str(xml))
paged_attention_transformation(m, False, False)
compiles = {}
for w in (1, 3):
    c = m.clone()
    c.reshape({"input_ids": ov.PartialShape([w]), "position_ids": ov.PartialShape([w])})
    compiles[w] = core.compile_model(c, "CPU", {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"})
dyn = core.compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"})
rng = np.random.default_rng(0)


for w in (1, 3):
    reqs = {}
    for mode in ("dict", "shared", "bare"):
        r = compiles[w].create_infer_request()
        caches = [i for i in dyn.inputs if "cache." in i.get_any_name()]
        for i in caches:
            t = ov.Tensor(
                i.get_element_type(), [ctx // 32 + 4] + [i.get_partial_shape()[j].get_length() for j in range(1, 4)]
            )
            r.set_tensor(i.get_any_name(), t)
        reqs[mode] = r
    # one-token subsequences (edgespec's layout), context ctx, same call repeated (cache rows rewritten)
    feed = paged_inputs(rng.integers(3, 256, size=w, dtype=np.int64), ctx, 32, w > 1)
    for k, v in feed.items():  # the bare request's own tensors, written once
        reqs["bare"].set_tensor(k, ov.Tensor(v))
    t = {mode: [] for mode in reqs}
    for i in range(calls + 3):
        for mode, r in reqs.items():
            t0 = time.perf_counter()
            if mode == "dict":
                r.infer(feed)
            elif mode == "shared":
                r.infer(feed, share_inputs=True, share_outputs=True)
            else:
                r.infer()
            if i >= 3:
                t[mode].append((time.perf_counter() - t0) * 1e3)
    print(
        f"{xml.parent.name}, width {w}, context {ctx}: "
        + ", ".join(f"{mode} {statistics.median(v):.3f} ms" for mode, v in t.items()),
        flush=True,
    )
