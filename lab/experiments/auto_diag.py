"""edgespec AR vs adaptive k, one pipeline, short prompt 0, 3 x 64 tokens, with draft stats:
.venv/bin/python lab/experiments/auto_diag.py BUNDLE
"""

import json
import sys

import edgespec

B = sys.argv[1]
prompts = [json.loads(l)["prompt"] for l in open("lab/prompts/short.jsonl")][:1]
pipe = edgespec.Pipeline.load(B, draft="draft", kv_precision="u8", threads=2)
pipe.generate(prompts[0][:300], max_new_tokens=4, policy="draft")
for rep in range(3):
    for name, kw in (("ar", dict(policy="autoregressive")), ("auto", dict(policy="draft"))):
        r = pipe.generate(prompts[0], max_new_tokens=64, ignore_eos=True, **kw)
        s = r.stats
        print(
            rep,
            name,
            "tpot",
            round(s.tpot_ms, 1),
            "verify/call",
            round((s.verify_ms - s.prefill_ms) / max(1, s.target_calls - 1), 1),
            "drafted",
            s.drafted,
            "acc",
            s.accepted,
            "calls",
            s.target_calls,
            "draft_ms",
            round(s.draft_ms),
            "hist",
            list(s.accepted_hist)[:6],
            flush=True,
        )
