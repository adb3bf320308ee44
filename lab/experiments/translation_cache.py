"""What the persisted translation cache saves a cross-vocabulary drafter on a second process run.

    .venv/bin/edgespec export models/demo/target --draft models/demo/draft-xvocab -o .cache/xv-bundle
    .venv/bin/python lab/experiments/translation_cache.py .cache/xv-bundle [N_PROMPTS] [MAX_NEW_TOKENS]

Runs the same held-out prompts in two fresh processes over one empty cache directory: the first
(cold) starts from nothing and saves its translations when the pipeline is freed, the second
(warm) loads them. Prints each run's translation-cache hit rate, the hits served from disk, the
tokenizer time spent on misses and the time the disk hits saved (hits x the cold run's mean miss
cost), and checks that both runs wrote the same tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD = r"""
import json, sys
from edgespec import Pipeline
bundle, cache, n, m = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
prompts = [json.loads(x)["prompt"] for x in open(sys.argv[5]).read().splitlines()[:n]]
tot = dict(hits=0, misses=0, disk=0, ms=0.0, tokens=[])
with Pipeline.load(bundle, translation_cache=cache) as p:
    assert p.info["draft"]["relation"] == "cross_vocab", p.info
    loaded = p.info["translation_cache"]["loaded"]
    for q in prompts:
        r = p.generate(q, max_new_tokens=m, k=4)
        tot["hits"] += r.stats.translation_hits; tot["misses"] += r.stats.translation_misses
        tot["disk"] += r.stats.translation_disk_hits; tot["ms"] += r.stats.translation_ms
        tot["tokens"].append(r.tokens)
tot["loaded"] = loaded
print(json.dumps(tot))
"""


def main() -> None:
    bundle = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    m = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    prompts = ROOT / "models" / "demo" / "prompts_heldout.jsonl"
    with tempfile.TemporaryDirectory() as cache:
        runs = []
        for label in ("cold", "warm"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, bundle, cache, str(n), str(m), str(prompts)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        cold, warm = runs
        per_miss = cold["ms"] / max(cold["misses"], 1)
        for label, r in zip(("cold", "warm"), runs):
            total = r["hits"] + r["misses"]
            print(
                f"{label}: loaded {r['loaded']} entries, hit rate {r['hits'] / max(total, 1):.3f} "
                f"({r['hits']} of {total}), disk hits {r['disk']}, tokenizer time on misses {r['ms']:.1f} ms, "
                f"saved by disk hits ~{r['disk'] * per_miss:.1f} ms"
            )
        print("same tokens in both runs:", cold["tokens"] == warm["tokens"])


if __name__ == "__main__":
    main()
