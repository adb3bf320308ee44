"""What the fixed-width model copies cost at load time:
    .venv/bin/python lab/experiments/fixed_copy_cost.py BUNDLE [MODEL.xml]
Pipeline.load of BUNDLE with fixed_shapes False and True, alternated, 3 times each (median seconds).
With MODEL.xml (e.g. a 1B twin target): compile time and resident memory of its dynamic-shape
paged form, then of one copy with the input width fixed to 3 (plain OpenVINO, one process)."""

import statistics
import sys
import time
from pathlib import Path

import edgespec

sys.path.insert(0, str(Path(__file__).parent))
from pa_vs_stateful_calls_lib import with_rows  # noqa: E402

bundle = sys.argv[1]
loads = {False: [], True: []}
for _ in range(3):
    for fixed in (False, True):
        t0 = time.perf_counter()
        p = edgespec.Pipeline.load(bundle, fixed_shapes=fixed)
        loads[fixed].append(time.perf_counter() - t0)
        widths = p.info["target"]["fixed_widths"], (p.info["draft"] or {}).get("fixed_widths")
        p.close()
    print(f"fixed widths target {widths[0]}, draft {widths[1]}")
print({f"load s, fixed_shapes={k}": round(statistics.median(v), 2) for k, v in loads.items()})

if len(sys.argv) > 2:
    import openvino as ov
    from openvino._offline_transformations import paged_attention_transformation

    def rss_mb() -> float:
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    core = ov.Core()
    m = core.read_model(sys.argv[2])
    paged_attention_transformation(m, False, False)
    m = with_rows(m, 0)
    keep = []
    for width in (None, 3):
        c = m.clone()
        if width:
            c.reshape({"input_ids": ov.PartialShape([width]), "position_ids": ov.PartialShape([width])})
        before, t0 = rss_mb(), time.perf_counter()
        compiled = core.compile_model(c, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        keep += [compiled, compiled.create_infer_request()]
        print(
            f"{'dynamic' if width is None else f'width {width}'}: compile {time.perf_counter() - t0:.1f} s, "
            f"+{rss_mb() - before:.0f} MB resident"
        )
