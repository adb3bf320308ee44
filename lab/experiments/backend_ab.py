"""edgespec's paged-attention and stateful backends against OpenVINO GenAI, one process, generations
alternated, paired per-repeat decode ratios (AR and draft k=2):
    .venv/bin/python lab/experiments/backend_ab.py BUNDLE [short|long] [max_new_tokens] [repeats]
"""

import statistics

from ab_lib import SPEC, EdgespecRunner, GenAIRunner, alternate, args, paired

bundle, prompt, n, reps = args("short", 48, 4)
paged = EdgespecRunner(bundle, dict(SPEC, backend="openvino-paged"))
state = EdgespecRunner(bundle, dict(SPEC, backend="openvino-stateful"))
genai = GenAIRunner(bundle, dict(SPEC, mode="draft"))
genai_ar = GenAIRunner(bundle, dict(SPEC, mode="ar"))
runs = [
    ("paged_ar", paged, dict(policy="ar")),
    ("stateful_ar", state, dict(policy="ar")),
    ("genai_ar", genai_ar, {}),
    ("paged_k2", paged, dict(policy="draft", k=2)),
    ("stateful_k2", state, dict(policy="draft", k=2)),
    ("genai_k2", genai, dict(k=2)),
]
res, ttft = alternate(runs, prompt, n, reps, rotate=len(runs))
print("median ttft_ms", {k: round(statistics.median(v)) for k, v in ttft.items()})
for a, b in (
    ("paged_ar", "stateful_ar"),
    ("paged_ar", "genai_ar"),
    ("stateful_ar", "genai_ar"),
    ("paged_k2", "stateful_k2"),
    ("paged_k2", "genai_k2"),
    ("stateful_k2", "genai_k2"),
):
    speed, per = paired(res[a], res[b])
    print(f"{a} vs {b}: decode speed {speed:.3f} (per repeat {per}), ttft speed {paired(ttft[a], ttft[b])[0]:.3f}")
