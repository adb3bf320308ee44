"""What draft_window does to an EAGLE-3 head on long prompts: its prompt read, its acceptance and the
tokens/s, windows interleaved prompt by prompt (pass 0 warms up); the output must not change.
    .venv/bin/python lab/experiments/head_window.py BUNDLE [--draft head] [--prompt-set long] [--prompts 8]
        [--windows 0,128,256,512] [--k 2] [--max-new-tokens 64] [--repeats 1]
Prompt lookup is off, so the acceptance is the head's own.
"""

import statistics
import sys

from exp_common import fail, load_prompts, parser, user_errors

import edgespec

ap = parser(__doc__, draft="head", prompt_set="long", prompts=8, repeats=1)
ap.add_argument("--windows", default="0,128,256,512")
ap.add_argument("--k", type=int, default=2)
a = ap.parse_args()
try:
    windows = [int(w) for w in a.windows.split(",")]
except ValueError:
    fail(f"--windows must be a comma list of draft_window values (got {a.windows!r})")
prompts = load_prompts(a.prompt_set, a.prompts)
with user_errors():
    pipe = edgespec.Pipeline.load(a.bundle, draft=a.draft, profile=False)
runs: dict[int, list] = {w: [] for w in windows}
for rep in range(a.repeats + 1):
    for i, p in enumerate(prompts):
        for w in windows:
            with user_errors():
                r = pipe.generate(
                    p,
                    max_new_tokens=a.max_new_tokens,
                    ignore_eos=True,
                    policy="draft",
                    k=a.k,
                    lookup=False,
                    draft_window=w,
                )
            if rep:
                runs[w].append(r)
        print(f"pass {rep}/{a.repeats} prompt {i + 1}/{len(prompts)}", file=sys.stderr, flush=True)

print(
    f"{a.bundle} ({a.draft}), {len(prompts)} {a.prompt_set} prompts x {a.max_new_tokens} tokens, k={a.k}, {a.repeats} repeats"
)
first = runs[windows[0]]
for w in windows:
    rs = runs[w]
    acc = sum(r.stats.accepted for r in rs) / max(1, sum(r.stats.drafted for r in rs))
    same = sum(r.tokens == f.tokens for r, f in zip(rs, first))
    print(
        f"window {w:5}: acceptance {acc:.3f}  head prompt read {statistics.mean(r.stats.draft_prefill_ms for r in rs):6.1f} ms "
        f"({statistics.mean(r.stats.draft_prefill_tokens for r in rs):.0f} tokens)  "
        f"tok/s {statistics.mean(r.stats.tokens_per_s for r in rs):6.1f}  same tokens as window {windows[0]}: {same}/{len(rs)}"
    )
