"""Does a drafter compiled once per call width (static input_ids shape) cost less per call than
one dynamic-shape compile whose width changes between calls? Plain OpenVINO, paged-attention form
with the runtime's logits slice; every variant shares one set of KV-cache tensors (the paged
caches are inputs the caller owns), so switching compiled models loses nothing.

    .venv/bin/python lab/experiments/static_width_calls.py BUNDLE CTX ROUNDS [TARGET_BETWEEN]

Patterns per round (each is one drafting round's catch-up + next call):
  dyn 2,1   one dynamic compile, a 2-token call then a 1-token call (the width changes twice)
  sta 2,1   the 2-token call on a compile fixed at width 2, the 1-token one on width 1
  dyn 1,1   one dynamic compile, two 1-token calls (no width change)
  sta 1,1   width-1 compile, two 1-token calls
With TARGET_BETWEEN=1 the target runs a 3-token verify before each pattern's round, as in the loop.
Patterns interleave round by round; only infer() is timed (inputs set before the clock starts).
Prints the median ms of each call position."""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov

sys.path.insert(0, str(Path(__file__).parent))
from pa_vs_stateful_calls_lib import set_paged_inputs, with_rows  # noqa: E402

bundle, ctx, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
target_between = len(sys.argv) > 4 and sys.argv[4] == "1"
core = ov.Core()
props = {"PERFORMANCE_HINT": "LATENCY"}


def paged(xml, width=None):
    from openvino._offline_transformations import paged_attention_transformation

    m = core.read_model(str(xml))
    paged_attention_transformation(m, False, False)
    m = with_rows(m, 0)
    if width is not None:
        m.reshape({"input_ids": ov.PartialShape([width]), "position_ids": ov.PartialShape([width])})
    return core.compile_model(m, "CPU", props)


def caches_for(compiled, blocks):
    out = {}
    for i in compiled.inputs:
        if "cache" in i.get_any_name():
            s = i.get_partial_shape()
            out[i.get_any_name()] = ov.Tensor(i.get_element_type(), [blocks] + [s[j].get_length() for j in range(1, 4)])
    return out


blocks = (ctx + 64) // 32 + 2
dxml = bundle / "draft" / "openvino_model.xml"
dyn = paged(dxml)
caches = caches_for(dyn, blocks)
reqs = {
    "dyn": dyn.create_infer_request(),
    1: paged(dxml, 1).create_infer_request(),
    2: paged(dxml, 2).create_infer_request(),
}
for r in reqs.values():
    for name, t in caches.items():
        r.set_tensor(name, t)
target = None
if target_between:
    t = paged(bundle / "target" / "openvino_model.xml")
    target = t.create_infer_request()
    for name, tt in caches_for(t, blocks).items():
        target.set_tensor(name, tt)

vocab = int(dyn.output("logits").get_partial_shape()[2].get_length())
rng = np.random.default_rng(0)
prompt = [int(x) for x in rng.integers(3, vocab, ctx)]
set_paged_inputs(reqs["dyn"], prompt, 0)
reqs["dyn"].infer()
if target is not None:
    set_paged_inputs(target, prompt, 0)
    target.infer()

patterns = {
    "dyn 2,1": [("dyn", 2), ("dyn", 1)],
    "sta 2,1": [(2, 2), (1, 1)],
    "dyn 1,1": [("dyn", 1), ("dyn", 1)],
    "sta 1,1": [(1, 1), (1, 1)],
}
times = {p: [[], []] for p in patterns}
names = list(patterns)
for r in range(rounds + 2):
    for p in names if r % 2 == 0 else names[::-1]:
        if target is not None:
            set_paged_inputs(target, [int(x) for x in rng.integers(3, vocab, 3)], ctx, rows=3)
            target.infer()
        past = ctx
        for pos, (which, n) in enumerate(patterns[p]):
            req = reqs[which]
            set_paged_inputs(req, [int(x) for x in rng.integers(3, vocab, n)], past)
            t0 = time.perf_counter()
            req.infer()
            dt = (time.perf_counter() - t0) * 1e3
            past += n
            if r >= 2:  # two untimed rounds: every compile has seen every shape
                times[p][pos].append(dt)
print(f"drafter {dxml}, context {ctx}, {rounds} rounds, target verify between rounds: {target_between}")
for p in names:
    a, b = (statistics.median(x) for x in times[p])
    print(f"  {p}: first call {a:.3f} ms, second {b:.3f} ms, round {a + b:.3f} ms")
