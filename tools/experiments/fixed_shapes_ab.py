"""Fixed-width copies of the models (Pipeline.load(fixed_shapes=True)) against one dynamic-shape
compile each (fixed_shapes=False), in ONE process: two pipelines, generations alternated, paired
per-repeat decode-speed ratios at AR, k=2, k=4, adaptive k and n-gram:
    .venv/bin/python tools/experiments/fixed_shapes_ab.py BUNDLE [short|long] [max_new_tokens] [repeats] [prompts]
"""
import json
import sys

from ab_lib import ROOT, SPEC, EdgespecRunner, alternate, paired

bundle = sys.argv[1]
which = sys.argv[2] if len(sys.argv) > 2 else "short"
n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
reps = int(sys.argv[4]) if len(sys.argv) > 4 else 4
n_prompts = int(sys.argv[5]) if len(sys.argv) > 5 else 4
dyn = EdgespecRunner(bundle, dict(SPEC, fixed_shapes=False))
sta = EdgespecRunner(bundle, dict(SPEC, fixed_shapes=True))
print("fixed widths:", sta.pipe.info, flush=True)
configs = {"ar": dict(policy="ar"), "k2": dict(policy="draft", k=2), "k4": dict(policy="draft", k=4),
           "adaptive": dict(policy="draft", k=None), "ngram": dict(policy="ngram", k=4)}
runs = [(f"{name}_{side}", r, c) for name, c in configs.items() for side, r in (("dyn", dyn), ("static", sta))]
prompts = [json.loads(x)["prompt"] for x in (ROOT / "prompts" / f"{which}.jsonl").read_text().splitlines()[:n_prompts]]
res = {name: [] for name, _, _ in runs}
for p in prompts:
    tpot, _ = alternate(runs, p, n, reps, rotate=2)
    for k, v in tpot.items():
        res[k] += v
for name in configs:
    speed, per = paired(res[f"{name}_static"], res[f"{name}_dyn"])
    print(f"{name}: static/dynamic decode speed {speed:.3f} (per repeat {[round(x, 3) for x in per]})")
