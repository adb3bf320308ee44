"""Prefill time of a stateful OpenVINO IR in one call vs in chunks (random ids):
.venv/bin/python lab/experiments/prefill_chunks.py BUNDLE/target/openvino_model.xml 1800 1800,256
"""

import sys
import time

import numpy as np
import openvino as ov

xml = sys.argv[1]
n = int(sys.argv[2])
chunks = [int(c) for c in sys.argv[3].split(",")]
core = ov.Core()
cm = core.compile_model(xml, "CPU", {"PERFORMANCE_HINT": "LATENCY", "KV_CACHE_PRECISION": "u8"})
req = cm.create_infer_request()
rng = np.random.default_rng(0)
ids = rng.integers(3, 16000, size=n).astype(np.int64)


def run(chunk):
    req.reset_state()
    t = time.perf_counter()
    for off in range(0, n, chunk):
        m = min(chunk, n - off)
        req.infer(
            {
                "input_ids": ids[None, off : off + m],
                "attention_mask": np.ones((1, off + m), np.int64),
                "position_ids": np.arange(off, off + m, dtype=np.int64)[None],
                "beam_idx": np.zeros(1, np.int32),
            }
        )
    return time.perf_counter() - t


run(64)
res = {c: [] for c in chunks}
for rep in range(2):
    for c in chunks:
        res[c].append(run(c))
for c in chunks:
    print(f"chunk {c}: {min(res[c]):.2f} s  ({n / min(res[c]):.0f} tok/s)", flush=True)
