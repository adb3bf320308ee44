"""Plain-decoding tpot of edgespec alone (no other runtime loaded):
.venv/bin/python lab/experiments/ar_tpot.py BUNDLE none|DRAFT
"""

import sys

import edgespec

b = sys.argv[1]
draft = None if sys.argv[2] == "none" else sys.argv[2]
pipe = edgespec.Pipeline.load(b, draft=draft, kv_precision="u8")
prompt = open(__import__("pathlib").Path(__file__).resolve().parents[1] / "prompts" / "short.jsonl").readline()
import json

prompt = json.loads(prompt)["prompt"]
pipe.generate(prompt, max_new_tokens=4, policy="autoregressive")
r = [pipe.generate(prompt, max_new_tokens=24, policy="autoregressive", ignore_eos=True).stats for _ in range(2)]
print(
    b,
    draft,
    "tpot",
    [round(s.tpot_ms, 1) for s in r],
    "verify/call",
    [round(s.verify_ms / s.target_calls, 1) for s in r],
    "prefill",
    [round(s.prefill_ms) for s in r],
    "prompt",
    r[0].prompt_tokens,
)
