"""Where fixed k and adaptive k differ, round by round (EDGESPEC_TRACE_ROUNDS): per configuration, the
rounds by source (prompt lookup, drafter, plain step), how wide each verified (of a drafter round's
width, the lookup tail verified after its drafted tokens), how much of it was accepted and what the
verify cost per width. Interleaved: every prompt runs every configuration in
turn, `--repeats` times, after one warm-up pass.
    .venv/bin/python lab/experiments/round_trace.py BUNDLE [--draft head] [--configs k2,auto,k2-nolookup]
        [--prompt-set short] [--prompts 4] [--max-new-tokens 64] [--repeats 2]
"""

import statistics
import sys
from collections import defaultdict

from exp_common import fail, load_prompts, parser, traced, user_errors

import edgespec

ap = parser(__doc__)
ap.add_argument("--configs", default="k2,auto")
ap.add_argument("--k-max", type=int, default=8)
ap.add_argument(
    "--per-generation",
    action="store_true",
    help="also print each generation's lookups as they run (warm-up included): rounds where lookup found tokens, "
    "lookup rounds as (verified, accepted), tails as (drafted, tail, accepted)",
)
a = ap.parse_args()


def config(name: str) -> dict:
    lookup = not name.endswith("-nolookup")
    k = name.removesuffix("-nolookup")
    if k != "auto" and not k.removeprefix("k").isdigit():
        fail(f"--configs names {name!r}; each is kN, auto, kN-nolookup or auto-nolookup")
    k = "auto" if k == "auto" else int(k.removeprefix("k"))
    return dict(policy="draft", k=k, k_max=a.k_max, lookup=lookup, ignore_eos=True, max_new_tokens=a.max_new_tokens)


names = [c.strip() for c in a.configs.split(",") if c.strip()]
cfgs = {n: config(n) for n in names}
prompts = load_prompts(a.prompt_set, a.prompts)
with user_errors():
    pipe = edgespec.Pipeline.load(a.bundle, draft=a.draft, profile=False)
rounds = defaultdict(list)
tps = defaultdict(list)
for rep in range(a.repeats + 1):  # pass 0 warms up
    for i, p in enumerate(prompts):
        for n in names:
            r, rows = traced(pipe, p, **cfgs[n])
            if a.per_generation:
                found = sum(1 for x in rows if x["looked_up"] > 0)
                looks = [(x["m"], x["acc"]) for x in rows if x["src"] == "lookup"]
                tails = [(x["m"] - x["tail"], x["tail"], x["acc"]) for x in rows if x.get("tail")]
                print(
                    f"pass {rep} prompt {i + 1} {n}: {len(rows)} rounds, found {found}, lookups {looks}, tails {tails}"
                )
            if rep:
                rounds[n] += rows
                tps[n].append(r.stats.tokens_per_s)
        print(f"pass {rep}/{a.repeats} prompt {i + 1}/{len(prompts)}", file=sys.stderr, flush=True)

print(f"{a.bundle} ({a.draft}), {len(prompts)} {a.prompt_set} prompts x {a.max_new_tokens} tokens, {a.repeats} repeats")
print(
    f"{'config':14} {'tok/s':>7} {'rounds':>6} {'src':7} {'n':>5} {'mean m':>6} {'of it tail':>10} {'mean acc':>8} "
    f"{'verify ms':>9}"
)
for n in names:
    rs = rounds[n]
    by = defaultdict(list)
    for r in rs:
        by[r["src"]].append(r)
    first = True
    for src in ("lookup", "draft", "plain"):
        g = by.get(src, [])
        if not g:
            continue
        head = (
            f"{n:14} {statistics.mean(tps[n]):7.1f} {len(rs) / (len(prompts) * a.repeats):6.1f}" if first else " " * 29
        )
        first = False
        print(
            f"{head} {src:7} {len(g):5d} {statistics.mean(r['m'] for r in g):6.2f} "
            f"{statistics.mean(r.get('tail', 0) for r in g):10.2f} "
            f"{statistics.mean(r['acc'] for r in g):8.2f} {statistics.mean(r['verify_ms'] for r in g):9.2f}"
        )
print("\nverify ms by width m (median, rounds), all configurations:")
width = defaultdict(list)
for rs in rounds.values():
    for r in rs:
        width[r["m"]].append(r["verify_ms"])
print("  ".join(f"m={m}: {statistics.median(v):.1f} ({len(v)})" for m, v in sorted(width.items())))
print("\nwidth histogram of drafter and lookup rounds (m: rounds), and mean accepted at that width:")
for n in names:
    for src, label in (("draft", n), ("lookup", "  lookup")):
        h = defaultdict(list)
        for r in rounds[n]:
            if r["src"] == src:
                h[r["m"]].append(r["acc"])
        if h:
            print(
                f"  {label:14} " + "  ".join(f"{m}: {len(v)} ({statistics.mean(v):.2f})" for m, v in sorted(h.items()))
            )
