"""edgespec and OpenVINO GenAI in ONE process, generations alternated, paired ratios per repeat
(the separate-process bench cannot resolve 5-10 % on a noisy 2-core host):
    .venv/bin/python tools/experiments/paired_ab.py BUNDLE [long|short] [max_new_tokens] [repeats]
Configurations: AR, draft_model k=2, adaptive k vs GenAI's assistant_confidence_threshold 0.4
(drafter `draft`, KV cache u8, 2 threads, greedy, ignore_eos). Prints decode-speed ratios
(tpot of the second / tpot of the first) per repeat and their median.
"""
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_runners import EdgespecRunner, GenAIRunner  # noqa: E402

bundle = Path(sys.argv[1])
which = sys.argv[2] if len(sys.argv) > 2 else "long"
n = int(sys.argv[3]) if len(sys.argv) > 3 else 40
reps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
prompt = json.loads((ROOT / "prompts" / f"{which}.jsonl").read_text().splitlines()[0])["prompt"]
spec = dict(draft_name="draft", kv_precision="u8", threads=2)
es = EdgespecRunner(bundle, spec)
g_ar = GenAIRunner(bundle, dict(spec, mode="ar"))
g_sp = GenAIRunner(bundle, dict(spec, mode="draft"))
runs = [("es_ar", es, dict(policy="ar")), ("genai_ar", g_ar, {}), ("es_k2", es, dict(policy="draft", k=2)),
        ("genai_k2", g_sp, dict(k=2)), ("es_auto", es, dict(policy="draft", k=None)), ("genai_conf", g_sp, dict(k=None))]
for name, r, c in runs:  # warm-up: first calls of every shape
    r.generate(prompt[:300], dict(c, max_new_tokens=4, ignore_eos=True))
res = {name: [] for name, _, _ in runs}
for rep in range(reps):
    order = runs[rep % 2:] + runs[:rep % 2]  # odd repeats start with the other runtime
    for name, r, c in order:
        o = r.generate(prompt, dict(c, max_new_tokens=n, ignore_eos=True))
        tpot = (o["wall_ms"] - o["ttft_ms"]) / (o["n_new"] - 1)
        res[name].append(tpot)
        print(rep, name, "tpot", round(tpot, 1), "ttft", round(o["ttft_ms"]), "acceptance", o.get("native_stats", {}).get("acceptance_rate"), flush=True)
print("median tpot_ms", {k: round(statistics.median(v), 1) for k, v in res.items()})
for a, b in (("es_ar", "genai_ar"), ("es_k2", "genai_k2"), ("es_auto", "genai_conf"), ("es_k2", "es_ar"),
             ("genai_k2", "genai_ar"), ("es_auto", "es_ar"), ("genai_conf", "genai_ar")):
    paired = [y / x for x, y in zip(res[a], res[b])]
    print(f"{a} vs {b}: decode speed ratio {statistics.median(paired):.3f} (per repeat {[round(p, 2) for p in paired]})")
