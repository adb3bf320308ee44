"""One model's calls on a compile with the input width fixed, against the same calls on the
dynamic-shape compile (plain OpenVINO, paged-attention form with the runtime's logits slice, all
compiles on one set of cache tensors, the bounded-dynamic [1..8] and [1..4096] forms too):
    .venv/bin/python lab/experiments/fixed_width_target_calls.py BUNDLE CTX ROUNDS [target|draft]
Patterns: '1' decode steps, '3' 3-token verifies, '1,3' the two alternating; 'dyn' runs them on the
dynamic compile, 'sta' on the compile of each width, 'b8' / 'b4k' on bounded-dynamic compiles.
Patterns interleave round by round; inputs are set before the clock; prints median ms per call."""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov

sys.path.insert(0, str(Path(__file__).parent))
from pa_vs_stateful_calls_lib import set_paged_inputs, with_rows  # noqa: E402

bundle, ctx, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
which = sys.argv[4] if len(sys.argv) > 4 else "target"
core = ov.Core()


def paged(xml, width=None):
    from openvino._offline_transformations import paged_attention_transformation

    m = core.read_model(str(xml))
    paged_attention_transformation(m, False, False)
    m = with_rows(m, 0)
    if width is not None:
        dim = ov.Dimension(width) if isinstance(width, int) else ov.Dimension(*width)
        m.reshape({"input_ids": ov.PartialShape([dim]), "position_ids": ov.PartialShape([dim])})
    return core.compile_model(m, "CPU", {"PERFORMANCE_HINT": "LATENCY"})


xml = bundle / which / "openvino_model.xml"
dyn = paged(xml)
blocks = (ctx + 64) // 32 + 2
caches = {
    i.get_any_name(): ov.Tensor(
        i.get_element_type(), [blocks] + [i.get_partial_shape()[j].get_length() for j in range(1, 4)]
    )
    for i in dyn.inputs
    if "cache" in i.get_any_name()
}
reqs = {
    "dyn": dyn.create_infer_request(),
    1: paged(xml, 1).create_infer_request(),
    3: paged(xml, 3).create_infer_request(),
    "b8": paged(xml, (1, 8)).create_infer_request(),
    "b4k": paged(xml, (1, 4096)).create_infer_request(),
}
for r in reqs.values():
    for name, t in caches.items():
        r.set_tensor(name, t)
vocab = int(dyn.output("logits").get_partial_shape()[2].get_length())
rng = np.random.default_rng(0)
set_paged_inputs(reqs["dyn"], [int(x) for x in rng.integers(3, vocab, ctx)], 0)
reqs["dyn"].infer()
pats = {
    "dyn 1": [("dyn", 1)],
    "sta 1": [(1, 1)],
    "dyn 3": [("dyn", 3)],
    "sta 3": [(3, 3)],
    "dyn 1,3": [("dyn", 1), ("dyn", 3)],
    "sta 1,3": [(1, 1), (3, 3)],
    "b8 1,3": [("b8", 1), ("b8", 3)],
    "b4k 1,3": [("b4k", 1), ("b4k", 3)],
}
times = {p: [[] for _ in v] for p, v in pats.items()}
for r in range(rounds + 2):
    for p in list(pats) if r % 2 == 0 else list(pats)[::-1]:
        for pos, (w, n) in enumerate(pats[p]):
            set_paged_inputs(reqs[w], [int(x) for x in rng.integers(3, vocab, n)], ctx, rows=n)
            t0 = time.perf_counter()
            reqs[w].infer()
            dt = (time.perf_counter() - t0) * 1e3
            if r >= 2:  # two untimed rounds: every compile has seen its shapes
                times[p][pos].append(dt)
print(f"{xml}, context {ctx}, {rounds} rounds: median ms per call")
for p in pats:
    print(f"  {p:>8}: " + " ".join(f"{statistics.median(x):.3f}" for x in times[p]))
