"""Prompt lookup beside the drafter: how much of the demo target's greedy text it proposes and gets
accepted, with and without it, per drafter and k, on the held-out demo prompts and a bench set (f32,
so every generation is checked token for token against plain decoding):
    .venv/bin/python lab/experiments/lookup_share.py BUNDLE [drafter] [max_new_tokens] [n_prompts]
BUNDLE: the demo target with its head and drafter (`edgespec export models/demo/target --draft
models/demo/head-eagle3 --draft-name head --draft models/demo/draft --draft-name draft -o B`).
Tokens per target call (after the prefill) is what the rounds yield; which lookups pay is decided
from this machine's call costs of the small demo target, not the twin's.
"""

import json
import sys
from pathlib import Path

import edgespec

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
from bench_prompts import load_set  # noqa: E402

bundle = sys.argv[1]
drafter = sys.argv[2] if len(sys.argv) > 2 else "head"
n_new = int(sys.argv[3]) if len(sys.argv) > 3 else 64
n_prompts = int(sys.argv[4]) if len(sys.argv) > 4 else 16
heldout = ROOT / "models/demo/prompts_heldout.jsonl"
sets = {
    "heldout": [json.loads(line)["prompt"] for line in heldout.open()][:n_prompts],
    "short": [p["prompt"] for p in load_set("short")[0]][:n_prompts],
}
pipe = edgespec.Pipeline.load(bundle, draft=drafter, precision="f32", kv_precision="f32", profile=False)
print(
    f"{'set':8} {'k':>4} {'lookup':>6} {'same':>6} {'tok/call':>8} {'lookup drafted/accepted':>24} {'all drafted/accepted':>21}"
)
for name, prompts in sets.items():
    plain = [pipe.generate(p, max_new_tokens=n_new, policy="autoregressive", ignore_eos=True).tokens for p in prompts]
    for k in (2, 3, "auto"):
        for lookup in (False, True):
            tot = dict(accepted=0, calls=0, drafted=0, lookup_drafted=0, lookup_accepted=0, same=0)
            for p, ref in zip(prompts, plain):
                r = pipe.generate(p, max_new_tokens=n_new, policy="draft", k=k, ignore_eos=True, lookup=lookup)
                s = r.stats
                tot["same"] += r.tokens == ref
                tot["calls"] += s.target_calls - 1
                for key in ("accepted", "drafted", "lookup_drafted", "lookup_accepted"):
                    tot[key] += getattr(s, key)
            per_call = (tot["accepted"] + tot["calls"]) / max(1, tot["calls"])
            print(
                f"{name:8} {k!s:>4} {lookup!s:>6} {tot['same']:>3}/{len(prompts):<2} {per_call:8.2f} "
                f"{tot['lookup_drafted']:>12}/{tot['lookup_accepted']:<11} {tot['drafted']:>10}/{tot['accepted']:<10}",
                flush=True,
            )
