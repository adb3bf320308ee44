"""Where the gap between `efficiency` (BENCHMARKS.md's formula on back-to-back call costs) and
`efficiency_loop` (every call a perfect loop must make, timed in the loop's order) comes from, for
edgespec's fixed-k configurations of a lab/bench.py JSON report (.json or .json.gz):
    .venv/bin/python lab/experiments/efficiency_decomposition.py REPORT.json[.gz] ...
Prints efficiency, efficiency_pattern (the formula on calls timed in the loop's order: the
drafter's calls right after the target's) and efficiency_loop, and the shares of the loop ideal's
time that the two other terms take: the drafter's two-token first calls after rounds that
accepted everything, and its read of the prompt (which edgespec makes after the first token)."""

import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench  # noqa: E402

for path in sys.argv[1:]:
    raw = gzip.open(path, "rt").read() if path.endswith(".gz") else Path(path).read_text()
    for name, s in json.loads(raw)["sets"].items():
        R, c = s["results"], s["costs"]
        for cname, m in R.items():
            if not (cname.startswith("es_spec_k") and m.get("efficiency_loop")):
                continue
            k = int(m["k"])
            runs = [bench._median_run(pp["runs"]) for pp in m["per_prompt"] if pp["runs"]]
            t = bench.loop_ideal_terms(runs, k, c["pattern"][str(k)], c["T_draft_read_ms"])
            base, catch, read = t["rounds_ms"], t["catchup_ms"], t["read_ms"]
            total = base + catch + read
            print(
                f"{Path(path).name} [{name}] k={k}: efficiency {m['efficiency']:.2f}, efficiency_pattern "
                f"{m['efficiency_pattern']:.2f}, efficiency_loop {m['efficiency_loop']:.2f}; of the loop ideal's time: "
                f"two-token catch-ups {100 * catch / total:+.1f} %, the drafter's prompt read {100 * read / total:.1f} %"
            )
