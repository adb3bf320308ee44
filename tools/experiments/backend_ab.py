"""edgespec's paged-attention and stateful backends against OpenVINO GenAI, one process, generations
alternated, paired per-repeat decode ratios (AR and draft k=2):
    .venv/bin/python tools/experiments/backend_ab.py BUNDLE [short|long] [max_new_tokens] [repeats]
"""
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_runners import EdgespecRunner, GenAIRunner  # noqa: E402

bundle = Path(sys.argv[1])
which = sys.argv[2] if len(sys.argv) > 2 else "short"
n = int(sys.argv[3]) if len(sys.argv) > 3 else 48
reps = int(sys.argv[4]) if len(sys.argv) > 4 else 4
prompt = json.loads((ROOT / "prompts" / f"{which}.jsonl").read_text().splitlines()[0])["prompt"]
spec = dict(draft_name="draft", kv_precision="u8", threads=2)
paged = EdgespecRunner(bundle, dict(spec, backend="openvino-paged"))
state = EdgespecRunner(bundle, dict(spec, backend="openvino-stateful"))
genai = GenAIRunner(bundle, dict(spec, mode="draft"))
genai_ar = GenAIRunner(bundle, dict(spec, mode="ar"))
runs = [("paged_ar", paged, dict(policy="ar")), ("stateful_ar", state, dict(policy="ar")), ("genai_ar", genai_ar, {}),
        ("paged_k2", paged, dict(policy="draft", k=2)), ("stateful_k2", state, dict(policy="draft", k=2)),
        ("genai_k2", genai, dict(k=2))]
for name, r, c in runs:
    r.generate(prompt[:300], dict(c, max_new_tokens=4, ignore_eos=True))
res = {name: [] for name, _, _ in runs}
ttft = {name: [] for name, _, _ in runs}
for rep in range(reps):
    order = runs[rep % len(runs):] + runs[:rep % len(runs)]
    for name, r, c in order:
        o = r.generate(prompt, dict(c, max_new_tokens=n, ignore_eos=True))
        res[name].append((o["wall_ms"] - o["ttft_ms"]) / (o["n_new"] - 1))
        ttft[name].append(o["ttft_ms"])
        print(rep, name, "tpot", round(res[name][-1], 1), "ttft", round(o["ttft_ms"]), flush=True)
print("median tpot_ms", {k: round(statistics.median(v), 1) for k, v in res.items()})
print("median ttft_ms", {k: round(statistics.median(v)) for k, v in ttft.items()})
for a, b in (("paged_ar", "stateful_ar"), ("paged_ar", "genai_ar"), ("stateful_ar", "genai_ar"),
             ("paged_k2", "stateful_k2"), ("paged_k2", "genai_k2"), ("stateful_k2", "genai_k2")):
    paired = [y / x for x, y in zip(res[a], res[b])]
    pt = [y / x for x, y in zip(ttft[a], ttft[b])]
    print(f"{a} vs {b}: decode speed {statistics.median(paired):.3f} (per repeat {[round(p, 2) for p in paired]}), "
          f"ttft speed {statistics.median(pt):.3f}")
