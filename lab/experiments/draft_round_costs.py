"""The drafter's time per round at k = 1..4 through the engine (draft_ms / rounds), to split it into
the round's first call (the catch-up: 1 token after a rejection, 2 when all k were accepted) and
the k - 1 single-token calls after it:
    .venv/bin/python lab/experiments/draft_round_costs.py BUNDLE [prompts] [repeats]
k values interleaved prompt by prompt; greedy, 64 new tokens, KV cache u8, 2 threads."""

import json
import sys
from pathlib import Path

import edgespec

bundle = sys.argv[1]
n_prompts = int(sys.argv[2]) if len(sys.argv) > 2 else 4
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
prompts = [
    json.loads(x)["prompt"]
    for x in (Path(__file__).resolve().parents[1] / "prompts" / "short.jsonl").read_text().splitlines()[:n_prompts]
]
pipe = edgespec.Pipeline.load(bundle, draft="draft", kv_precision="u8", threads=2)
for p in prompts:
    pipe.generate(p[:300], max_new_tokens=8, k=2, policy="draft", ignore_eos=True)
rows: dict = {k: [] for k in (1, 2, 3, 4)}
for _ in range(reps):
    for p in prompts:
        for k in rows:
            s = pipe.generate(p, max_new_tokens=64, k=k, policy="draft", ignore_eos=True).stats
            rows[k].append((s.draft_ms, s.drafted, s.target_calls - 1, s.accepted_hist[k]))
per_round = {}
for k, v in rows.items():
    ms, drafted, rounds, full = (sum(x[i] for x in v) for i in range(4))
    per_round[k] = ms / rounds
    print(
        f"k {k}: draft ms per round {ms / rounds:.3f}, per drafted token {ms / drafted:.3f}, "
        f"rounds with all k accepted {full / rounds:.0%}"
    )
step = (per_round[4] - per_round[1]) / 3
print(
    f"a single-token call after the first: {step:.3f} ms; the round's first call: {per_round[1]:.3f} ms "
    f"({per_round[1] - step:+.3f} ms more)"
)
