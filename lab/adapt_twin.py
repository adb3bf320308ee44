#!/usr/bin/env python
"""What adaptation buys in speed: the drafters before and after `edgespec adapt`, timed against the
1B twin of the demo target (which writes exactly what the 17M target writes, at a 1B model's cost).

    .venv/bin/python lab/adapt_domain.py .cache/demo2 --package click     # writes .cache/adapt-click
    .venv/bin/edgespec demo --no-run ...   # or any run of `edgespec demo`: the twin bundle in the cache
    .venv/bin/python lab/adapt_twin.py .cache/adapt-click TWIN_BUNDLE [--max-new-tokens 64] [--repeats 1]

The adapted bundle's drafters (parents and adapted ones) are put beside the twin's target in one
bundle (hard links; its integrity table recomputed), and lab/bench.py times edgespec's plain
decoding and adaptive speculation with each drafter, side by side in one run, on the held-out
prompts of the adaptation split. Writes lab/runs/<date>-adapt-<package>-twin.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

LAB = Path(__file__).resolve().parent


def link_tree(src: Path, dst: Path) -> None:
    """dst as a copy of src whose files are hard links (the twin's target is ~0.6 GB)."""
    shutil.copytree(src, dst, copy_function=os.link)


def compose(adapted: Path, twin: Path, out: Path) -> list[str]:
    """A bundle at ``out``: the twin's target, the adapted bundle's drafters. Returns the drafter names."""
    from edgespec.bundle import MANIFEST, write_manifest

    am = json.loads((adapted / MANIFEST).read_text())
    tm = json.loads((twin / MANIFEST).read_text())
    target = next(m for m in tm["models"] if m["role"] == "target")
    drafts = [m for m in am["models"] if m["role"] == "draft"]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    link_tree(twin / target["path"], out / target["path"])
    for d in drafts:
        link_tree(adapted / d["path"], out / d["path"])
    manifest = {k: v for k, v in am.items() if k != "integrity"}
    manifest["models"] = [target] + drafts
    write_manifest(out, manifest)
    return [d["name"] for d in drafts]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work", type=Path, help="the adapt_domain.py work directory (.cache/adapt-PACKAGE)")
    ap.add_argument("twin", type=Path, help="an exported twin bundle (its target is used)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=8, help="the first N held-out prompts (0: all)")
    ap.add_argument("--heldout", type=float, default=0.25, help="the held-out share adapt_domain.py used")
    a = ap.parse_args()

    from edgespec.export.draft import adapt as ad

    for p, what in ((a.work / "bundle", "adapted bundle"), (a.work / "log", "adaptation log"), (a.twin, "twin bundle")):
        if not p.is_dir():
            raise SystemExit(
                f"error: the {what} {p} does not exist; run lab/adapt_domain.py (and edgespec demo) first."
            )
    samples = ad.read_log(a.work / "log")
    _, held = ad.split(samples, a.heldout)
    held = held[: a.prompts] if a.prompts else held
    prompts = a.work / "heldout.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": s.prompt}) + "\n" for s in held), encoding="utf-8")
    bundle = a.work / "twin-bundle"
    names = compose(a.work / "bundle", a.twin, bundle)
    print(f"{len(held)} held-out prompts; drafters {', '.join(names)}; bundle {bundle}", flush=True)
    day = datetime.date.today().isoformat()
    out = LAB / "runs" / f"{day}-{a.work.name}-twin"
    cmd = [
        sys.executable,
        str(LAB / "bench.py"),
        str(bundle),
        "--prompt-set",
        str(prompts),
        "--draft",
        ",".join(names),
        "--configs",
        "es_ar,es_spec_adaptive*,es_spec_k4*",
        "--k",
        "4",
        "--no-costs",
        "--max-new-tokens",
        str(a.max_new_tokens),
        "--repeats",
        str(a.repeats),
        "--json",
        str(out.with_suffix(".json")),
        "--md",
        str(out.with_suffix(".md")),
    ]
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
