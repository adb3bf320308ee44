#!/usr/bin/env python
"""The target's call cost against its number of input tokens, OpenVINO INT4 IR vs ONNX Runtime
MatMulNBits INT4, side by side on one machine (issue #20, "the backend the curve asks for").

    .venv/bin/python lab/backend_curve/curve.py --ir .cache/twin2-ir --onnx .cache/twin2-onnx \\
        [--accuracy-level 4] [--contexts 200,1000] [--widths 1..8] [--rounds 6] [--calls 6] [--json OUT]

OpenVINO: edgespec's own probe (edgespec.profiling.probe.CostProbe: paged-attention form, the
engine's fixed-width compiles and call layout, inputs set before the clock). ONNX Runtime: the
bundle's target ONNX graph with every MatMulNBits node's ``accuracy_level`` set (4: int8 compute,
which AVX2 runs without VNNI), run as edgespec's onnxruntime backend runs it (runtimes/src/
ort_model.cpp): past KV as inputs, present KV and logits into pre-allocated buffers (I/O binding),
so each call writes the whole present (past + new) as that backend does. Each call after a prefill
of ``context`` tokens, back to back after an untimed call of the same width; the two backends
alternate round by round (order swapped each round), contexts interleaved within a round; the
median per figure. Threads: the physical cores on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path


def _widths(v: str) -> list[int]:
    if ".." in v:
        lo, hi = (int(x) for x in v.split("..", 1))
        return list(range(lo, hi + 1))
    return [int(x) for x in v.split(",")]


def physical_cores() -> int:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return len({ln for ln in text.splitlines() if ln.startswith("core id")}) or os.cpu_count() or 1
    except OSError:
        return os.cpu_count() or 1


def with_accuracy_level(onnx_dir: Path, level: int, out_dir: Path) -> Path:
    """A copy of the target's ONNX graph with MatMulNBits accuracy_level = level, beside symlinks
    to its weight files (the graph only is rewritten)."""
    import onnx

    src = next(onnx_dir.glob("*.onnx"))
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in onnx_dir.iterdir():
        if f.suffix != ".onnx" and not (out_dir / f.name).exists():
            os.symlink(f.resolve(), out_dir / f.name)
    dst = out_dir / src.name
    if not dst.exists():
        m = onnx.load(str(src), load_external_data=False)
        n = 0
        for node in m.graph.node:
            if node.op_type == "MatMulNBits":
                for a in list(node.attribute):
                    if a.name == "accuracy_level":
                        node.attribute.remove(a)
                node.attribute.append(onnx.helper.make_attribute("accuracy_level", level))
                n += 1
        onnx.save(m, str(dst))
        print(f"accuracy_level={level} on {n} MatMulNBits nodes -> {dst}", file=sys.stderr)
    return dst


def accuracy_level_bundle(onnx_bundle: Path, level: int) -> Path:
    """BUNDLE-al<level> beside an ONNX bundle: the same bundle (symlinks) whose target graph has
    MatMulNBits accuracy_level = level, for edgespec's onnxruntime backend end to end too. Returns
    the target graph's path."""
    out = onnx_bundle.parent / f"{onnx_bundle.name}-al{level}"
    mf = json.loads((onnx_bundle / "edgespec.json").read_text())
    out.mkdir(exist_ok=True)
    for m in mf["models"]:
        if m["role"] != "target" and not (out / m["path"]).exists():
            os.symlink((onnx_bundle / m["path"]).resolve(), out / m["path"], target_is_directory=True)
    shutil.copy(onnx_bundle / "edgespec.json", out / "edgespec.json")
    tpath = next(m for m in mf["models"] if m["role"] == "target")["path"]
    return with_accuracy_level(onnx_bundle / tpath, level, out / tpath)


def report(samples: dict, ctxs: list[int], ns: list[int], a, threads: int, rounds_done: int) -> None:
    out = {
        "threads": threads,
        "accuracy_level": a.accuracy_level,
        "rounds": rounds_done,
        "calls": a.calls,
        "curves": {},
    }
    for b in ("openvino", "onnxruntime"):
        for c in ctxs:
            ms = {n: statistics.median(samples[(b, c, n)]) for n in ns}
            out["curves"][f"{b}@{c}"] = {
                "T_ms": ms,
                "steps": {n: v / ms[1] for n, v in ms.items()},
                "spread_T1": (max(samples[(b, c, 1)]) - min(samples[(b, c, 1)])) / ms[1],
            }
    lines = [
        "| backend @ context | T(1) ms | " + " | ".join(f"T({n})/T(1)" for n in ns if n > 1) + " | spread T(1) |",
        "|---|---|" + "---|" * (len(ns) - 1) + "---|",
    ]
    for k, v in out["curves"].items():
        lines.append(
            f"| {k} | {v['T_ms'][1]:.1f} | "
            + " | ".join(f"{v['steps'][n]:.2f}" for n in ns if n > 1)
            + f" | {100 * v['spread_T1']:.0f}% |"
        )
    print(f"after {rounds_done} round(s):\n" + "\n".join(lines), flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ir", type=Path, required=True, help="OpenVINO IR bundle")
    ap.add_argument("--onnx", type=Path, required=True, help="ONNX bundle of the same target")
    ap.add_argument("--accuracy-level", type=int, default=4)
    ap.add_argument("--contexts", default="200,1000")
    ap.add_argument("--widths", default="1..8")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--calls", type=int, default=6)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    from edgespec.profiling.probe import CostProbe, OrtCallTimer

    threads = a.threads or physical_cores()
    ctxs, ns = [int(x) for x in a.contexts.split(",")], _widths(a.widths)
    model = accuracy_level_bundle(a.onnx, a.accuracy_level)
    t0 = time.perf_counter()
    ov = CostProbe(a.ir, {"threads": threads, "backend": "openvino", "draft_name": None})
    ort_p = OrtCallTimer(model, threads)
    for c in ctxs:
        ort_p.prefill(c)
    print(f"loaded in {time.perf_counter() - t0:.0f} s; threads {threads}", file=sys.stderr)
    samples = {(b, c, n): [] for b in ("openvino", "onnxruntime") for c in ctxs for n in ns}
    bindings: dict = {}
    for r in range(a.rounds):
        order = ("openvino", "onnxruntime") if r % 2 == 0 else ("onnxruntime", "openvino")
        for b in order:
            for c in ctxs:
                if b == "openvino":
                    # one round of the product's probe: T_ar in its own block, then the widths
                    res = ov.measure({"context": c, "n_values": ns, "calls": a.calls, "rounds": 1})
                    for n in ns:
                        samples[(b, c, n)].append(res["T_verify_ms"][str(n)])
                else:
                    for n in ns:
                        ort_p.call(c, n, bindings)  # untimed: the first call of a width
                        samples[(b, c, n)].append(statistics.median(ort_p.call(c, n, bindings) for _ in range(a.calls)))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
        report(samples, ctxs, ns, a, threads, r + 1)  # after every round: an interrupted run keeps its rounds
    return 0


if __name__ == "__main__":
    sys.exit(main())
