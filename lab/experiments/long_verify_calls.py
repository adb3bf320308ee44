"""The target's per-call cost inside edgespec generations on the long prompts, edgespec alone in the
process: per prompt, a k=2 generation's verify call ((verify_ms - prefill_ms) / (target_calls - 1))
and an autoregressive generation's decode step, with fixed-width copies on and off, KV cache at the
runtime default and u8:
    .venv/bin/python lab/experiments/long_verify_calls.py BUNDLE [prompts]
Compare with lab/bench.py's probe (T_verify(3), T_ar at the long set's context)."""

import json
import sys
from pathlib import Path

import edgespec

bundle = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 4
root = Path(__file__).resolve().parents[1]
prompts = [json.loads(x)["prompt"] for x in (root / "prompts" / "long.jsonl").read_text().splitlines()[:n]]
for kv in (None, "u8"):
    for fixed in (True, False):
        p = edgespec.Pipeline.load(bundle, fixed_shapes=fixed, kv_precision=kv, threads=2)
        p.generate(prompts[0][:300], max_new_tokens=8, k=2, policy="draft", ignore_eos=True)  # warm-up
        out = []
        for pr in prompts:
            s = p.generate(pr, max_new_tokens=64, k=2, policy="draft", ignore_eos=True).stats
            a = p.generate(pr, max_new_tokens=64, policy="autoregressive", ignore_eos=True).stats
            out.append(
                f"verify {(s.verify_ms - s.prefill_ms) / (s.target_calls - 1):.2f} ms, "
                f"decode {(a.verify_ms - a.prefill_ms) / (a.target_calls - 1):.2f} ms"
            )
        print(f"kv {kv or 'default'}, fixed_shapes {fixed}: " + "; ".join(out), flush=True)
        p.close()
