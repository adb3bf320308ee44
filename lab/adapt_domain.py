#!/usr/bin/env python
"""Adaptation on a "user domain" the demo drafters never saw: the source of a Python package
installed in the venv (not in the standard-library corpus the demo models were trained on), or a
folder of documents (`--docs DIR --glob '*.md'`: text the code-trained demo models never read).

    .venv/bin/edgespec export models/demo/target --draft models/demo/draft --draft models/demo/draft-xvocab \
        --draft-name draft --draft-name xvocab -o .cache/demo2 --weights int8
    .venv/bin/python lab/adapt_domain.py .cache/demo2 [--package click] [--prompts 160] [--steps 300]
    .venv/bin/python lab/adapt_domain.py .cache/demo2 --docs /usr/share/doc/nodejs/api --glob '*.md'
    .venv/bin/python lab/adapt_domain.py BUNDLE --package rich --source-text --tag=-control   # control

Prompts are the package's functions (signature + docstring, the model writes the body) or the
documents' paragraphs (a run of whole paragraphs of about 500 characters; the model writes what
follows), split by a hash into an adaptation and a held-out part; the target writes its outputs once (an adaptation log,
as `edgespec run --adapt-log` records it); then `edgespec adapt` runs for the same-vocabulary
drafter and the cross-vocabulary one. Writes lab/runs/<date>-adapt-<package>.{json,md}: acceptance
before and after on the held-out prompts, the steps and the seconds each took.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import re
import shutil
import sys
import time
from pathlib import Path

LAB = Path(__file__).resolve().parent
sys.path.insert(0, str(LAB))

import bench_prompts  # noqa: E402  (the lab's function-prompt extraction)


def package_functions(package: str, n: int) -> list[tuple[str, str]]:
    """(prompt, the function's own body) for about ``n`` functions of the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: package {package!r} is not installed in this venv; pick another with --package.")
    root = Path(list(spec.submodule_search_locations)[0])
    docs = [(str(p.relative_to(root)), p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.py"))]
    funcs = []
    for _, lines, node in bench_prompts._functions(docs):
        head, full = bench_prompts._head(lines, node)
        funcs.append((head, full[len(head) :] if full.startswith(head) else ""))
    step = max(1, len(funcs) // n)
    return funcs[::step][:n]


def docs_prompts(root: Path, glob: str, n: int, chars: int = 500) -> list[str]:
    """Runs of whole paragraphs, ``chars`` characters or more, each ending with a paragraph break."""
    files = sorted(p for p in root.rglob(glob) if p.is_file())
    if not files:
        raise SystemExit(f"error: no file matches {glob!r} under {root}; pass a folder of text documents.")
    prompts = []
    for p in files:
        buf = ""
        for para in re.split(r"\n\s*\n", p.read_text(encoding="utf-8", errors="replace")):
            if not para.strip():
                continue
            buf = f"{buf}{para.strip()}\n\n"
            if len(buf) >= chars:
                prompts.append(buf[-4 * chars :])
                buf = ""
    step = max(1, len(prompts) // n)
    return prompts[::step][:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--package", default="click")
    ap.add_argument("--docs", type=Path, default=None, help="a folder of documents instead of a package")
    ap.add_argument("--glob", default="*.md", help="which files of --docs")
    ap.add_argument("--prompts", type=int, default=160)
    ap.add_argument("--steps", type=int, default=300, help="at most (validation stops earlier)")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--drafters", default="draft,xvocab")
    ap.add_argument("--tag", default="", help="appended to the work folder's and the reports' names")
    ap.add_argument(
        "--source-text",
        action="store_true",
        help="control (packages only): adapt on the functions' own bodies instead of the target's outputs",
    )
    a = ap.parse_args()

    from edgespec.export.draft import adapt as ad

    # the domain's prompts first: bad input stops here, before the work folder is touched
    if a.source_text and a.docs:
        raise SystemExit("error: --source-text is a control for --package runs.")
    domain = f"docs-{a.docs.name}" if a.docs else a.package
    funcs = None if a.docs else package_functions(a.package, a.prompts)
    prompts = docs_prompts(a.docs, a.glob, a.prompts) if a.docs else [head for head, _ in funcs]
    print(f"{len(prompts)} prompts from {a.docs or a.package}", flush=True)
    work = LAB.parent / ".cache" / f"adapt-{domain}{a.tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    bundle = work / "bundle"
    shutil.copytree(a.bundle, bundle)
    t0 = time.perf_counter()
    if a.source_text:
        samples = [ad.Sample(h, body[: 4 * a.max_new_tokens]) for h, body in funcs if body.strip()]
    else:
        samples = ad.target_outputs(bundle, prompts, a.max_new_tokens)
    gen_s = time.perf_counter() - t0
    log = work / "log"
    log.mkdir()
    with open(log / ad.LOG_FILE, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps({"v": 1, "prompt": s.prompt, "output": s.output}, ensure_ascii=False) + "\n")
    results = {"package": domain, "prompts": len(prompts), "target_outputs_seconds": round(gen_s, 1), "drafters": {}}
    for name in a.drafters.split(","):
        t0 = time.perf_counter()
        rep = ad.run(
            bundle,
            log_dir=log,
            drafter=name,
            steps=a.steps,
            batch=8,
            lr=a.lr,
            heldout=0.25,
            max_new_tokens=a.max_new_tokens,
            k=4,
            progress=True,
        )
        rep["wall_seconds"] = round(time.perf_counter() - t0, 1)
        results["drafters"][name] = rep
        print(json.dumps(rep["acceptance"]), flush=True)
    day = datetime.date.today().isoformat()
    out = LAB / "runs" / f"{day}-adapt-{domain}{a.tag}"
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    rows = [
        "| drafter | relation | acceptance_rate before → after | mean_accepted before → after | steps run (best) | train s | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rep in results["drafters"].items():
        b, c = rep["acceptance"][rep["parent"]], rep["acceptance"][rep["name"]]
        rows.append(
            f"| {name} | {rep['relation']} | {b['acceptance_rate']:.3f} → {c['acceptance_rate']:.3f} | "
            f"{b['mean_accepted']:.2f} → {c['mean_accepted']:.2f} | {rep['steps_run']} ({rep['best_step']}) | {rep['train_seconds']:.0f} | "
            f"{rep['wall_seconds']:.0f} |"
        )
    out.with_suffix(".md").write_text(
        f"# Adaptation to {domain} ({day})\n\n`{' '.join(sys.argv)}`\n\n{len(prompts)} prompts, held-out share 0.25, "
        f"k=4 greedy, max_new_tokens {a.max_new_tokens}; target outputs took {gen_s:.0f} s.\n\n"
        + "\n".join(rows)
        + "\n"
    )
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
