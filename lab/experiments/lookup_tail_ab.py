"""Lookup tails on and off (EDGESPEC_LOOKUP_TAIL=0), interleaved on one pipeline: per k, tokens/s
(prefill included) and decode time per token, each generation against the one beside it without
tails (the median of those ratios: "paired"), target calls, tail tokens verified, and whether the
texts matched (bf16 texts may differ at near-ties; identity is tested in f32). Every prompt runs
every (k, tails) pair in turn, `--repeats` times, after one warm-up pass.
    .venv/bin/python lab/experiments/lookup_tail_ab.py BUNDLE [--draft head] [--k 2,3,auto]
        [--prompt-set short] [--prompts 4] [--max-new-tokens 64] [--repeats 4]
"""

import statistics
import sys

from exp_common import fail, load_prompts, parser, traced, user_errors

import edgespec

ap = parser(__doc__, repeats=4)
ap.add_argument("--k", default="2,3,auto")
a = ap.parse_args()
ks = [k.strip() for k in a.k.split(",") if k.strip()]
for k in ks:
    if k != "auto" and not (k.isdigit() and int(k) >= 1):
        fail(f"--k names {k!r}; each is a positive integer or auto")
prompts = load_prompts(a.prompt_set, a.prompts)
with user_errors():
    pipe = edgespec.Pipeline.load(a.bundle, draft=a.draft, profile=False)
res = {}
for rep in range(a.repeats + 1):  # pass 0 warms up
    for i, p in enumerate(prompts):
        for k in ks:
            for tails in ("1", "0"):
                cfg = dict(
                    policy="draft", k=-1 if k == "auto" else int(k), ignore_eos=True, max_new_tokens=a.max_new_tokens
                )
                r, rounds = traced(pipe, p, {"EDGESPEC_LOOKUP_TAIL": tails}, **cfg)
                if rep:
                    d = res.setdefault((k, tails), dict(tps=[], tpot=[], calls=0, tail=0, texts={}))
                    d["tps"].append(r.stats.tokens_per_s)
                    d["tpot"].append(r.stats.tpot_ms)
                    d["calls"] += r.stats.target_calls
                    d["tail"] += sum(x.get("tail", 0) for x in rounds)
                    d["texts"][(i, rep)] = r.text
        print(f"pass {rep}/{a.repeats} prompt {i + 1}/{len(prompts)}", file=sys.stderr, flush=True)

print(f"{a.bundle} ({a.draft}), {len(prompts)} {a.prompt_set} prompts x {a.max_new_tokens} tokens, {a.repeats} repeats")
for k in ks:
    on, off = res[(k, "1")], res[(k, "0")]
    speed = statistics.median(x / y for x, y in zip(on["tps"], off["tps"]))
    decode = statistics.median(y / x for x, y in zip(on["tpot"], off["tpot"]))
    same = sum(on["texts"][key] == off["texts"][key] for key in on["texts"])
    print(
        f"k={k}: tokens/s {statistics.median(on['tps']):.1f} with tails, {statistics.median(off['tps']):.1f} without; "
        f"paired {speed:.3f}x, decode paired {decode:.3f}x; target calls {on['calls']} vs {off['calls']}; "
        f"tail tokens {on['tail']}; same text {same}/{len(on['texts'])}"
    )
