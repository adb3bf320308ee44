"""Verify-cost curve of the twin target under OpenVINO's paged_attention_transformation vs the
stateful IR, interleaved in one process (hard-coded .cache/twin2-bundle):
    .venv/bin/python lab/experiments/pa_verify_curve.py
"""

import time

import numpy as np
import openvino as ov
from openvino._offline_transformations import paged_attention_transformation

core = ov.Core()
X = ".cache/twin2-bundle/target/openvino_model.xml"
cfg = {"KV_CACHE_PRECISION": "u8", "INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"}
m = core.read_model(X)
paged_attention_transformation(m, False, False)
cm = core.compile_model(m, "CPU", cfg)
rq = cm.create_infer_request()
B = 32
NB = 2048 // B + 1
for i in cm.inputs:
    n = i.get_any_name()
    if "cache" in n:
        s = i.get_partial_shape()
        shp = [NB] + [s[j].get_length() for j in range(1, 4)]
        rq.set_tensor(n, ov.Tensor(i.get_element_type(), shp))


def run(ids, past):
    n = len(ids)
    tot = past + n
    nb = (tot + B - 1) // B
    rq.set_tensor("input_ids", ov.Tensor(np.array(ids, dtype=np.int64)))
    rq.set_tensor("position_ids", ov.Tensor(np.arange(past, tot, dtype=np.int64)))
    rq.set_tensor("past_lens", ov.Tensor(np.array([past], dtype=np.int32)))
    rq.set_tensor("subsequence_begins", ov.Tensor(np.array([0, n], dtype=np.int32)))
    rq.set_tensor("block_indices_begins", ov.Tensor(np.array([0, nb], dtype=np.int32)))
    rq.set_tensor("block_indices", ov.Tensor(np.arange(nb, dtype=np.int32)))
    rq.set_tensor("max_context_len", ov.Tensor(np.array(tot, dtype=np.int32)))
    rq.infer()
    return rq.get_output_tensor(0).data


rng = np.random.default_rng(0)
prompt = list(rng.integers(100, 16000, 190))
t = time.perf_counter()
lg = run(prompt, 0)
print("prefill", time.perf_counter() - t, lg.shape)
past = 190
tok = int(lg[-1].argmax())
toks = []
for i in range(12):
    t = time.perf_counter()
    lg = run([tok], past)
    toks.append(time.perf_counter() - t)
    past += 1
    tok = int(lg[-1].argmax())
print("PA decode ms", [round(x * 1000, 1) for x in toks])
for n in (2, 3, 5):
    ts = []
    for r in range(4):
        t = time.perf_counter()
        run([5] * n, past)
        ts.append(time.perf_counter() - t)
    print("PA verify", n, round(min(ts) * 1000, 1), round(np.median(ts) * 1000, 1))
# stateful
sm = core.compile_model(core.read_model(X), "CPU", cfg)
sr = sm.create_infer_request()


def srun(ids, past):
    n = len(ids)
    sr.set_tensor("input_ids", ov.Tensor(np.array([ids], dtype=np.int64)))
    sr.set_tensor("attention_mask", ov.Tensor(np.ones((1, past + n), dtype=np.int64)))
    sr.set_tensor("position_ids", ov.Tensor(np.arange(past, past + n, dtype=np.int64)[None]))
    sr.set_tensor("beam_idx", ov.Tensor(np.zeros(1, dtype=np.int32)))
    sr.infer()
    return sr.get_output_tensor(0).data


t = time.perf_counter()
lg = srun(prompt, 0)
print("S prefill", time.perf_counter() - t, lg.shape)
past = 190
toks = []
for i in range(12):
    t = time.perf_counter()
    lg = srun([tok], past)
    toks.append(time.perf_counter() - t)
    past += 1
print("S decode ms", [round(x * 1000, 1) for x in toks])
print("--- interleaved")
pp = 190 + 12
sp = 190 + 12  # both states at same past? PA past currently 'past' var of PA section lost; recompute
pp = 190 + 12 + 4 * (2 + 3 + 5)
res = {}
for r in range(10):
    for n in (1, 3, 5):
        ids = [int(x) for x in rng.integers(100, 16000, n)]
        t = time.perf_counter()
        run(ids, pp)
        res.setdefault(("PA", n), []).append(time.perf_counter() - t)
        pp += n
        t = time.perf_counter()
        srun(ids, sp)
        res.setdefault(("S", n), []).append(time.perf_counter() - t)
        sp += n
for k, v in sorted(res.items()):
    print(k, "median", round(np.median(v) * 1000, 1), "min", round(min(v) * 1000, 1))
