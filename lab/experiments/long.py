"""edgespec AR / k=2 / adaptive on the long prompt, one pipeline, with per-call verify cost:
.venv/bin/python lab/experiments/long.py BUNDLE [max_new_tokens]
"""

import json
import sys

import edgespec

B = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 48
prompt = [json.loads(l)["prompt"] for l in open("lab/prompts/long.jsonl")][0]
pipe = edgespec.Pipeline.load(B, draft="draft", kv_precision="u8", threads=2)
print("prompt tokens", len(pipe.tokenize(prompt)), flush=True)
pipe.generate(prompt[:200], max_new_tokens=8)
ref = None
for rep in range(2):
    for name, kw in (
        ("ar", dict(policy="autoregressive")),
        ("k2", dict(policy="draft", k=2)),
        ("auto", dict(policy="draft", k=-1)),
    ):
        r = pipe.generate(prompt, max_new_tokens=n, ignore_eos=True, **kw)
        s = r.stats
        if name == "ar":
            ref = r.tokens
        calls = s.target_calls - 1
        print(
            rep,
            name,
            "ttft",
            round(s.ttft_ms),
            "prefill",
            round(s.prefill_ms),
            "tpot",
            round(s.tpot_ms, 1),
            "decode verify/call",
            round((s.verify_ms - s.prefill_ms) / max(calls, 1), 1),
            "drafted",
            s.drafted,
            "acc",
            s.accepted,
            "calls",
            s.target_calls,
            "draft_ms",
            round(s.draft_ms),
            "compactions",
            s.kv_compactions,
            "same",
            r.tokens == ref,
            flush=True,
        )
