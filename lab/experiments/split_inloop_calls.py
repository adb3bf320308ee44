"""Historical: the runtime no longer reads EDGESPEC_PAGED_SPLIT_MAX (A/B knobs left the library);
rerun this at commit e66e029, where it still did.

The target's verify call and the drafter's time per round inside edgespec generations, short
calls as one-token subsequences (the CPU default) against one sequence (EDGESPEC_PAGED_SPLIT_MAX=0
at load), two pipelines in one process, generations alternated; per k: median over prompts and
repeats of verify ms per call ((verify_ms - prefill_ms) / (target_calls - 1)), drafter ms per
round (draft_ms / (target_calls - 1)), tpot, target calls and other_ms:
    .venv/bin/python lab/experiments/split_inloop_calls.py BUNDLE [short|long] [prompts] [repeats] [k,...]
"""

import json
import os
import statistics
import sys
from pathlib import Path

import edgespec

bundle = sys.argv[1]
which = sys.argv[2] if len(sys.argv) > 2 else "short"
n_prompts = int(sys.argv[3]) if len(sys.argv) > 3 else 4
reps = int(sys.argv[4]) if len(sys.argv) > 4 else 2
ks = [int(x) for x in (sys.argv[5] if len(sys.argv) > 5 else "2,4").split(",")]
root = Path(__file__).resolve().parents[1]
prompts = [json.loads(x)["prompt"] for x in (root / "prompts" / f"{which}.jsonl").read_text().splitlines()[:n_prompts]]
pipes = {}
for side, env in (("one", "0"), ("split", None)):
    if env is None:
        os.environ.pop("EDGESPEC_PAGED_SPLIT_MAX", None)
    else:
        os.environ["EDGESPEC_PAGED_SPLIT_MAX"] = env
    pipes[side] = edgespec.Pipeline.load(bundle, draft="draft", threads=2)
os.environ.pop("EDGESPEC_PAGED_SPLIT_MAX", None)
for p in pipes.values():
    for k in ks:
        p.generate(prompts[0][:300], max_new_tokens=8, k=k, policy="draft", ignore_eos=True)
rows = {(side, k): {"verify": [], "draft": [], "tpot": [], "calls": [], "other": []} for side in pipes for k in ks}
for rep in range(reps):
    for pr in prompts:
        for k in ks:
            order = list(pipes.items()) if rep % 2 == 0 else list(reversed(pipes.items()))
            for side, p in order:
                s = p.generate(pr, max_new_tokens=64, k=k, policy="draft", ignore_eos=True).stats
                r = rows[(side, k)]
                r["verify"].append((s.verify_ms - s.prefill_ms) / (s.target_calls - 1))
                r["draft"].append(s.draft_ms / (s.target_calls - 1))
                r["tpot"].append(s.tpot_ms)
                r["calls"].append(s.target_calls)
                r["other"].append(s.other_ms)
for k in ks:
    med = {side: {m: statistics.median(v) for m, v in rows[(side, k)].items()} for side in pipes}
    print(
        f"{which} k={k}: "
        + "; ".join(
            f"{side}: verify {m['verify']:.2f} ms/call, drafter {m['draft']:.2f} ms/round, "
            f"tpot {m['tpot']:.2f}, target calls {m['calls']:.0f}, other {m['other']:.2f} ms"
            for side, m in med.items()
        ),
        flush=True,
    )
