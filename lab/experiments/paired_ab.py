"""edgespec and OpenVINO GenAI in ONE process, generations alternated, paired ratios per repeat
(the separate-process bench cannot resolve 5-10 % on a noisy 2-core host):
    .venv/bin/python lab/experiments/paired_ab.py BUNDLE [long|short] [max_new_tokens] [repeats]
Configurations: AR, draft_model k=2, adaptive k vs GenAI's assistant_confidence_threshold 0.4
(drafter `draft`, KV cache u8, 2 threads, greedy, ignore_eos). Prints decode-speed ratios
(tpot of the second / tpot of the first) per repeat and their median.
"""

from ab_lib import SPEC, EdgespecRunner, GenAIRunner, alternate, args, paired

bundle, prompt, n, reps = args("long", 40, 3)
es = EdgespecRunner(bundle, SPEC)
g_ar = GenAIRunner(bundle, dict(SPEC, mode="ar"))
g_sp = GenAIRunner(bundle, dict(SPEC, mode="draft"))
runs = [
    ("es_ar", es, dict(policy="ar")),
    ("genai_ar", g_ar, {}),
    ("es_k2", es, dict(policy="draft", k=2)),
    ("genai_k2", g_sp, dict(k=2)),
    ("es_auto", es, dict(policy="draft", k=None)),
    ("genai_conf", g_sp, dict(k=None)),
]
# odd repeats start with the other runtime
res, _ = alternate(
    runs, prompt, n, reps, rotate=2, extra=lambda o: f"acceptance {o.get('native_stats', {}).get('acceptance_rate')}"
)
for a, b in (
    ("es_ar", "genai_ar"),
    ("es_k2", "genai_k2"),
    ("es_auto", "genai_conf"),
    ("es_k2", "es_ar"),
    ("genai_k2", "genai_ar"),
    ("es_auto", "es_ar"),
    ("genai_conf", "genai_ar"),
):
    speed, per = paired(res[a], res[b])
    print(f"{a} vs {b}: decode speed ratio {speed:.3f} (per repeat {per})")
