"""Does the cost probe time a target decode step as edgespec's plain-decoding loop runs it? In one
process, interleaved: the probe's T_ar (bench_runners.CostRunner) timed in rounds that interleave
it with the verify widths 2, 3, 5, 6 (as lab/bench.py did before session 12: cfg ar_interleaved)
or in a block of its own (as it does now), and edgespec's own time per decode call in a plain
generation ((verify_ms - prefill_ms) / (target_calls - 1)) on the same prompts.
    .venv/bin/python lab/experiments/probe_vs_loop_decode.py BUNDLE [short|long] [ROUNDS]"""

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_runners import CostRunner  # noqa: E402

import edgespec  # noqa: E402

bundle, pset = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "short"
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
rows = [
    json.loads(x)
    for x in (Path(__file__).resolve().parents[1] / "prompts" / f"{pset}.jsonl").read_text().splitlines()[:4]
]
ctx = int(statistics.mean(r.get("tokens", len(r["prompt"]) / 3.2) for r in rows) + 32)
probe = CostRunner(bundle, {"draft_name": "draft"})
pipe = edgespec.Pipeline.load(str(bundle), draft="draft")
for r in rows:
    pipe.generate(r["prompt"], max_new_tokens=8, policy="autoregressive", ignore_eos=True)
out = {"probe, widths 1,2,3,5,6": [], "probe, width 1 alone": [], "edgespec plain decoding": []}
for _ in range(rounds):
    cfg = {"context": ctx, "n_values": [2, 3, 5, 6], "calls": 8, "rounds": 6}
    out["probe, widths 1,2,3,5,6"].append(probe.generate("", dict(cfg, ar_interleaved=True))["T_ar_ms"])
    out["probe, width 1 alone"].append(probe.generate("", cfg)["T_ar_ms"])
    per = []
    for r in rows:
        s = pipe.generate(r["prompt"], max_new_tokens=64, policy="autoregressive", ignore_eos=True).stats
        per.append((s.verify_ms - s.prefill_ms) / (s.target_calls - 1))
    out["edgespec plain decoding"].append(statistics.median(per))
print(f"context {ctx}; ms per target decode call, median of {rounds} interleaved rounds (each round's figures):")
for k, v in out.items():
    print(f"  {k:28s} {statistics.median(v):.3f}   ({', '.join(f'{x:.2f}' for x in v)})")
