"""Target-call cost T(n) for n = 1, 2, 3, 5 tokens after a prefill of each context, per KV precision
(plain OpenVINO on the stateful IR, random ids):
    .venv/bin/python lab/experiments/vcurve.py BUNDLE 64,1024 u8,f16
"""

import sys
import time

import numpy as np
import openvino as ov

B = sys.argv[1]
ctxs = [int(x) for x in sys.argv[2].split(",")]
core = ov.Core()
m = core.read_model(f"{B}/target/openvino_model.xml")
rng = np.random.default_rng(0)
for kvp in sys.argv[3].split(","):
    c = core.compile_model(
        m, "CPU", {"KV_CACHE_PRECISION": kvp, "INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"}
    )
    names = {i.get_any_name() for i in c.inputs}
    for ctx in ctxs:
        req = c.create_infer_request()
        past = 0

        def feed(n):
            global past
            inp = {
                "input_ids": rng.integers(3, 256, size=(1, n), dtype=np.int64),
                "attention_mask": np.ones((1, past + n), dtype=np.int64),
            }
            if "position_ids" in names:
                inp["position_ids"] = np.arange(past, past + n, dtype=np.int64)[None]
            if "beam_idx" in names:
                inp["beam_idx"] = np.zeros((1,), dtype=np.int32)
            t = time.perf_counter()
            req.infer(inp)
            past += n
            return (time.perf_counter() - t) * 1e3

        req.reset_state()
        feed(ctx)
        for n in (1, 2, 3, 5):
            feed(n)
        out = {n: [] for n in (1, 2, 3, 5)}
        for _ in range(5):
            for n in (1, 2, 3, 5):
                out[n].append(feed(n))
        med = {n: float(np.median(v)) for n, v in out.items()}
        print(
            kvp,
            "ctx",
            ctx,
            " ".join(f"T{n}={med[n]:.0f}" for n in med),
            " ratios",
            " ".join(f"{med[n] / med[1]:.2f}" for n in (2, 3, 5)),
            flush=True,
        )
