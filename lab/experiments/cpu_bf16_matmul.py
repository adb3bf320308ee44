#!/usr/bin/env python
"""fp32 against bf16 matrix products on this CPU, interleaved, at the shapes of the demo's training
(2048 rows = a batch of 8 x 256 tokens; widths of the demo target: 384, MLP 1024, the head's 4 096
draft ids, the 16 000-token vocabulary). What `draft train --precision auto` bets on.

    .venv/bin/python lab/experiments/cpu_bf16_matmul.py [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"oneDNN native bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    print("| m x k x n | fp32 GFLOPS | bf16 GFLOPS | bf16 / fp32 |\n|---|---|---|---|")
    for m, k, n in [(2048, 384, 1024), (2048, 768, 384), (2048, 384, 4096), (2048, 384, 16000)]:
        x, y = torch.randn(m, k), torch.randn(k, n)
        pairs = {dt: (x.to(dt), y.to(dt)) for dt in (torch.float32, torch.bfloat16)}
        best = {dt: float("inf") for dt in pairs}
        for _ in range(a.repeats):  # alternated, best of the repeats
            for dt, (p, q) in pairs.items():
                p @ q
                t = time.perf_counter()
                p @ q
                best[dt] = min(best[dt], time.perf_counter() - t)
        g = {dt: 2 * m * k * n / s / 1e9 for dt, s in best.items()}
        f, b = g[torch.float32], g[torch.bfloat16]
        print(f"| {m} x {k} x {n} | {f:.0f} | {b:.0f} | {b / f:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
