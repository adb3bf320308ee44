"""One process that loads bundles for the reliability harness (lab/reliability/run.py): it reads
case directories on stdin, one per line, and for each prints ``start`` then one JSON line with the
outcome, so the parent can tell which case a crash (the process dies) or a hang (no answer in
time) belongs to. Each case: Pipeline.load, then a 4-token generation when the load succeeds."""

from __future__ import annotations

import json
import sys


def main() -> None:
    from edgespec import Pipeline
    from edgespec.errors import EdgespecError

    for line in sys.stdin:
        case = line.strip()
        if not case:
            continue
        print("start", flush=True)
        out: dict = {}
        try:
            with Pipeline.load(case, precision="f32", kv_precision="f32") as pipe:
                res = pipe.generate("def fib(n):", max_new_tokens=4, ignore_eos=True)
                out = {"outcome": "ok", "tokens": len(res.tokens), "integrity": pipe.info.get("integrity")}
        except EdgespecError as e:
            out = {"outcome": "error", "type": type(e).__name__, "message": str(e)}
        except Exception as e:  # noqa: BLE001 - not a user-facing error: a finding
            out = {"outcome": "unexpected", "type": type(e).__name__, "message": str(e)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
