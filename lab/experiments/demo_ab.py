"""The demo pair: plain vs adaptive vs k=1 in one pipeline, 3 alternations, 128 tokens:
.venv/bin/python lab/experiments/demo_ab.py
"""

import edgespec
from edgespec.demo import default_prompt, ensure_bundle

b = ensure_bundle("int8", "draft", quiet=True)
pr = default_prompt()
pipe = edgespec.Pipeline.load(b)
pipe.generate(pr, max_new_tokens=4, policy="draft")
pipe.generate(pr, max_new_tokens=4, policy="autoregressive")
for rep in range(3):
    for name, kw in (
        ("plain", dict(policy="autoregressive")),
        ("auto", dict(policy="draft")),
        ("k0?", dict(policy="draft", k=1)),
    ):
        r = pipe.generate(pr, max_new_tokens=128, **kw)
        s = r.stats
        print(
            rep,
            name,
            "tpot",
            round(s.tpot_ms, 2),
            "verify/call",
            round(s.verify_ms / s.target_calls, 2),
            "draft_ms",
            round(s.draft_ms, 1),
            "drafted",
            s.drafted,
            "acc",
            s.accepted,
            "calls",
            s.target_calls,
            "other",
            round(s.other_ms, 1),
        )
