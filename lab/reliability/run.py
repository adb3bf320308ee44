#!/usr/bin/env python
"""Reliability harness: is edgespec safe to embed? (docs/reliability.md has the figures.)

    .venv/bin/python lab/reliability/run.py fuzz   [--bundle B] [--quick] [--limit N]
    .venv/bin/python lab/reliability/run.py abi    [--bundle B] [--quick]
    .venv/bin/python lab/reliability/run.py soak   [--bundle B] [--generations 2000]
    .venv/bin/python lab/reliability/run.py lengths [--bundle B] [--lengths 120]
    .venv/bin/python lab/reliability/run.py cancel [--bundle B]
    .venv/bin/python lab/reliability/run.py all    [--bundle B] [--quick]
    .venv/bin/python lab/reliability/run.py loadtime [--bundle B] [--repeats 5]

fuzz    every case of lab/reliability/fuzz.py (a broken copy of the bundle) loaded in a worker
        process: a crash (the worker dies) or a hang (no answer in --timeout s) is counted for the
        case it ran; every error must be one sentence (one line, ends with '.', no OpenVINO
        source locations); a path escape that loads cleanly is a file read outside the bundle.
abi     lab/reliability/abi_misuse.c built with the system cc against runtimes/include/edgespec.h
        and the installed libedgespec, run in a subprocess restarted after any case that crashes.
soak    --generations generations in one process (policies, sampling, stop strings, streams
        dropped midway, cancellations from another thread); RSS growth from generation 100 on.
lengths what a new call shape keeps: prompts of --lengths distinct token counts read in one
        process, then the same prompts again; RSS per new length, and growth on the repeat pass.
cancel  how long each way of stopping takes to return: SIGINT to `edgespec run` and to a Python
        process in generate(streamer=...), generate() without a streamer and stream(); es_cancel
        from another thread; close() during a stream; the next call after a dropped stream.
loadtime  what checking the digests costs: Pipeline.load with verify=True and verify=False,
        interleaved, --repeats each, in fresh processes (no warm OpenVINO caches); medians and ratio.

The bundle defaults to the demo bundle (`edgespec demo` exports it once into ~/.cache/edgespec).
--json writes the report. Exit status 1 when a done-when figure fails (a crash, a hang, a read
outside the bundle, an answer that is not one sentence).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))


def one_sentence(msg: str) -> bool:
    """A user-facing answer: one line, ends like a sentence, no traceback or OpenVINO source location."""
    msg = msg.strip()
    return (
        bool(msg)
        and "\n" not in msg
        and msg.endswith((".", ".)"))
        and "Traceback" not in msg
        and "Exception from src" not in msg
        and len(msg) < 800
    )


def default_bundle() -> Path:
    from edgespec.demo import ensure_bundle

    return ensure_bundle(quiet=True)


# -- fuzz -----------------------------------------------------------------------------------------


class Worker:
    """A lab/reliability/worker.py process; restarted after a crash or a hang."""

    def __init__(self):
        self.proc = None

    def run(self, case_dir: Path, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "worker.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        result: dict = {}

        def talk():
            try:
                self.proc.stdin.write(f"{case_dir}\n")
                self.proc.stdin.flush()
                for line in self.proc.stdout:
                    if line.startswith("{"):
                        result.update(json.loads(line))
                        return
            except (BrokenPipeError, OSError):
                return

        t = threading.Thread(target=talk, daemon=True)
        t0 = time.perf_counter()
        t.start()
        t.join(timeout)
        result["seconds"] = round(time.perf_counter() - t0, 2)
        if t.is_alive():
            self.stop()
            return {"outcome": "hang", **result}
        if "outcome" not in result:
            code = self.proc.wait()
            err = self.proc.stderr.read()[-400:]
            self.proc = None
            return {"outcome": "crash", "returncode": code, "stderr": err, **result}
        return result

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


QUICK_FUZZ = (
    "flip middle byte of target/openvino_tokenizer.bin",
    "truncate target/openvino_model.bin (half)",
    "flip random byte of target/openvino_model.xml",
    "target: vocab_size = 1e300",
    "target: special_tokens.bos = 1000000000",
    "integrity: a digest changed",
    "manifest JSON: 100000 nested lists",
    "files.tokenizer = ../ to the canary",
    "target/ is a symlink to the canary",
    "target/openvino_model.bin is a symlink to the canary",
    "ONNX external data = ../ to the canary",  # ONNX bundles only
    "ONNX external data = symlink to the canary",
    "files.model = /etc/passwd",
    "top: models = []",
)


def fuzz(bundle: Path, quick: bool, limit: int | None, timeout: float, seed: int, log=print) -> dict:
    from fuzz import cases, make_canary, make_case

    all_cases = cases(bundle, seed)
    if quick:
        all_cases = [c for c in all_cases if c.name in QUICK_FUZZ]
    if limit:
        all_cases = all_cases[:limit]
    work = Path(tempfile.mkdtemp(prefix="edgespec-fuzz-"))
    canary = make_canary(bundle, work / "canary")
    worker = Worker()
    rows = []
    try:
        for i, case in enumerate(all_cases):
            d = make_case(bundle, case, work / f"case-{i}", canary)
            r = worker.run(d, timeout)
            r.update(name=case.name, kind=case.kind)
            r["one_sentence"] = r["outcome"] == "ok" or (r["outcome"] == "error" and one_sentence(r.get("message", "")))
            r["read_outside"] = case.escape and r["outcome"] == "ok"
            rows.append(r)
            bad = r["outcome"] in ("crash", "hang", "unexpected") or not r["one_sentence"] or r["read_outside"]
            log(
                f"[{i + 1}/{len(all_cases)}] {'FINDING ' if bad else ''}{case.name}: {r['outcome']} "
                f"{r.get('message', '')[:160]}"
            )
            shutil.rmtree(d, ignore_errors=True)
    finally:
        worker.stop()
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        "cases": len(rows),
        "clean_loads": sum(r["outcome"] == "ok" for r in rows),
        "errors": sum(r["outcome"] == "error" for r in rows),
        "crashes": sum(r["outcome"] == "crash" for r in rows),
        "hangs": sum(r["outcome"] == "hang" for r in rows),
        "unexpected": sum(r["outcome"] == "unexpected" for r in rows),
        "not_one_sentence": sum(not r["one_sentence"] for r in rows),
        "read_outside": sum(r["read_outside"] for r in rows),
        "by_kind": {k: sum(r["kind"] == k for r in rows) for k in sorted({r["kind"] for r in rows})},
    }
    summary["pass"] = not (
        summary["crashes"]
        or summary["hangs"]
        or summary["unexpected"]
        or summary["not_one_sentence"]
        or summary["read_outside"]
    )
    return {"summary": summary, "rows": rows}


# -- abi --------------------------------------------------------------------------------------------


def library() -> Path:
    from edgespec import _native

    return Path(_native.lib()._name).resolve()


def build_abi_misuse(out_dir: Path) -> Path:
    """abi_misuse.c compiled with the system cc against the header and the installed library."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("error: no C compiler (cc) found; install one to build the C ABI misuse program.")
    lib = library()
    exe = out_dir / "abi_misuse"
    cmd = [
        cc,
        "-std=c99",
        "-D_POSIX_C_SOURCE=200809L",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-O1",
        f"-I{REPO / 'runtimes' / 'include'}",
        str(HERE / "abi_misuse.c"),
        "-o",
        str(exe),
        str(lib),
        f"-Wl,-rpath,{lib.parent}",
        "-lpthread",
        "-lm",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(
            f"error: building abi_misuse failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}"
        )
    return exe


def abi(bundle: Path, timeout: float, log=print, exe: Path | None = None) -> dict:
    """Runs every case; a process that dies is restarted after the case it was running."""
    work = Path(tempfile.mkdtemp(prefix="edgespec-abi-"))
    try:
        exe = exe or build_abi_misuse(work)
        total = int(subprocess.run([str(exe), "--count"], capture_output=True, text=True, check=True).stdout)
        rows: dict[int, dict] = {}
        first = 0
        cancel_ms = []
        while first < total:
            proc = subprocess.Popen(
                [str(exe), str(bundle), str(first)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "TMPDIR": str(work)},
            )
            current = [first]

            def read():
                for line in proc.stdout:
                    if line.startswith("start "):
                        current[0] = int(line.split()[1])
                    elif line.startswith("cancel_ms="):
                        cancel_ms.append(float(line.split("=")[1]))
                    elif line.startswith("case "):
                        m = re.match(
                            r"case (\d+) (\S+): (ok|FAIL) status=(-?\d+) ms=([\d.]+) msg=(.*)", line.rstrip("\n")
                        )
                        if m:
                            i = int(m[1])
                            rows[i] = {
                                "case": m[2],
                                "outcome": "ok" if m[3] == "ok" else "wrong_answer",
                                "status": int(m[4]),
                                "ms": float(m[5]),
                                "message": m[6],
                            }
                            log(f"[{i + 1}/{total}] {m[2]}: {m[3]} status={m[4]} {m[6][:140]}")
                            current[0] = i + 1

            t = threading.Thread(target=read, daemon=True)
            t.start()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                t.join(5)
                rows[current[0]] = {"case": f"#{current[0]}", "outcome": "hang"}
                log(f"[{current[0] + 1}/{total}] FINDING: hang")
                first = current[0] + 1
                continue
            t.join(5)
            if proc.returncode < 0 or (current[0] < total and current[0] not in rows):
                rows[current[0]] = {
                    "case": f"#{current[0]}",
                    "outcome": "crash",
                    "returncode": proc.returncode,
                    "stderr": proc.stderr.read()[-400:],
                }
                log(f"[{current[0] + 1}/{total}] FINDING: crash ({proc.returncode})")
                first = current[0] + 1
            else:
                first = total
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = sorted(rows.items())
    summary = {
        "cases": total,
        "ok": sum(r["outcome"] == "ok" for _, r in out),
        "wrong_answers": sum(r["outcome"] == "wrong_answer" for _, r in out),
        "crashes": sum(r["outcome"] == "crash" for _, r in out),
        "hangs": sum(r["outcome"] == "hang" for _, r in out),
        "es_cancel_return_ms": cancel_ms,
    }
    summary["pass"] = summary["ok"] == total
    return {"summary": summary, "rows": [r for _, r in out]}


# -- soak -------------------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(bundle: Path, generations: int, log=print, max_new_tokens: int = 16) -> dict:
    """Mixed generations in this process; RSS at generation 100 and every 100 after."""
    from edgespec import Pipeline
    from edgespec._native import CancelledError

    pipe = Pipeline.load(bundle)
    policies = ("draft", "ngram", "autoregressive", "auto") if pipe.draft_name else ("ngram", "autoregressive")
    prompts = ("def fib(n):", "import os\nclass Walker:\n    def __init__(self, root):", "s = 'Grüße, 世界'  # café")
    curve = {}
    kinds = {"generate": 0, "stream_dropped": 0, "cancelled": 0}
    t0 = time.perf_counter()
    for i in range(1, generations + 1):
        cfg = dict(
            max_new_tokens=max_new_tokens,
            policy=policies[i % len(policies)],
            k="auto" if i % 3 else 3,
            temperature=0.0 if i % 2 else 0.8,
            seed=i,
            stop=["\n\n\n"] if i % 5 == 0 else None,
            ignore_eos=i % 4 != 0,
        )
        prompt = prompts[i % len(prompts)]
        if i % 10 == 0:  # a stream dropped after its first chunk
            for _ in pipe.stream(prompt, **cfg):
                break
            kinds["stream_dropped"] += 1
        elif i % 10 == 5:  # cancelled from another thread
            timer = threading.Timer(0.005, pipe.cancel)
            timer.start()
            try:
                pipe.generate(prompt, **cfg)
            except CancelledError:
                kinds["cancelled"] += 1
            timer.join()
        else:
            pipe.generate(prompt, streamer=(lambda _t: None) if i % 2 else None, **cfg)
            kinds["generate"] += 1
        if i % 100 == 0:
            curve[i] = round(rss_mb(), 1)
            log(f"generation {i}: RSS {curve[i]} MB ({time.perf_counter() - t0:.0f} s)")
    pipe.close()
    base = curve.get(100)
    end = curve.get(max(curve)) if curve else None
    growth = (end - base) / base * 100 if base and end else None
    return {
        "summary": {
            "generations": generations,
            "rss_mb_at_100": base,
            "rss_mb_at_end": end,
            "growth_pct_100_to_end": round(growth, 2) if growth is not None else None,
            "kinds": kinds,
            "pass": growth is not None and growth < 2.0,
        },
        "curve": curve,
    }


def lengths(bundle: Path, count: int, log=print) -> dict:
    """Prompts of count distinct token lengths, then the same again; RSS after each pass.

    OpenVINO's CPU plugin keeps memory per input shape it has run (its runtime cache and oneDNN's
    primitive cache), so a process fed prompts of many lengths grows where the soak's three
    prompts do not. The longest prompt runs first, so KV-cache high-water marks are set before
    the first reading.
    """
    from edgespec import Pipeline

    pipe = Pipeline.load(bundle)
    cfg = dict(max_new_tokens=2, policy="autoregressive", ignore_eos=True)
    prompts = ["x = 1\n" * (n // 4) + "y" * (n % 4) for n in range(count, 0, -1)]
    seen = {pipe.generate(prompts[0], **cfg).stats.prompt_tokens}
    start = round(rss_mb(), 1)
    for i, prompt in enumerate(prompts[1:], 2):
        seen.add(pipe.generate(prompt, **cfg).stats.prompt_tokens)
        if i % 20 == 0:
            log(f"{i} prompts, {len(seen)} lengths: RSS {rss_mb():.1f} MB")
    first = round(rss_mb(), 1)
    for prompt in prompts:
        pipe.generate(prompt, **cfg)
    again = round(rss_mb(), 1)
    log(f"same prompts again: RSS {again} MB")
    pipe.close()
    repeat_pct = (again - first) / first * 100
    return {
        "summary": {
            "distinct_lengths": len(seen),
            "rss_mb_after_longest": start,
            "rss_mb_after_all": first,
            "rss_mb_after_repeat": again,
            "mb_per_new_length": round((first - start) / max(len(seen) - 1, 1), 2),
            "growth_pct_on_repeat": round(repeat_pct, 2),
            "pass": repeat_pct < 1.0,
        }
    }


# -- cancel -----------------------------------------------------------------------------------------

_CHILD = r"""
import os, sys, time
from edgespec import Pipeline
mode, bundle = sys.argv[1], sys.argv[2]
pipe = Pipeline.load(bundle)
cfg = dict(max_new_tokens=100000, ignore_eos=True, policy="autoregressive")
try:
    if mode == "prefill":  # Ctrl-C inside one model call: a prompt that fills the context
        ids = pipe.tokenize("def fib(n):\n    return n\n" * 2000)[: pipe.context_length - 64]
        prompt = pipe.detokenize(ids)
        print("READY", flush=True)
        pipe.generate(prompt, streamer=lambda t: None, max_new_tokens=1)
    elif mode == "streamer":
        pipe.generate("def fib(n):", streamer=lambda t: print("READY", flush=True) if t else None, **cfg)
    elif mode == "plain":
        print("READY", flush=True)
        pipe.generate("def fib(n):", **cfg)
    elif mode == "stream":
        for _ in pipe.stream("def fib(n):", **cfg):
            print("READY", flush=True)
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr, flush=True)
    sys.exit(130)
sys.exit(0)
"""


def _sigint_after_ready(cmd: list[str], ready: str, delay: float = 0.3, timeout: float = 300) -> dict:
    """Start cmd, wait for `ready` on stdout (then `delay` s more), send SIGINT, time the exit."""
    # A process started in the background may inherit SIGINT ignored (Python then leaves it so):
    # the child gets the default disposition, as from a terminal.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    t_start = time.perf_counter()
    got = threading.Event()

    def read():
        while True:
            ch = proc.stdout.read(1)
            if not ch:
                return
            if not got.is_set():
                buf = getattr(read, "buf", "") + ch
                read.buf = buf[-64:]
                if ready in buf or (ready == "" and buf):
                    got.set()

    threading.Thread(target=read, daemon=True).start()
    if not got.wait(timeout):
        proc.kill()
        return {"error": "never became ready", "stderr": proc.stderr.read()[-400:]}
    time.sleep(delay)
    err_lines: list[tuple[float, str]] = []  # (when, line): the message comes before the teardown

    def read_err():
        for line in proc.stderr:
            err_lines.append((time.perf_counter(), line.rstrip("\n")))

    threading.Thread(target=read_err, daemon=True).start()
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return {"seconds_to_exit": None, "hang": True}
    secs = time.perf_counter() - t0
    time.sleep(0.2)
    err = "\n".join(line for _, line in err_lines).strip()
    return {
        "seconds_to_message": round(err_lines[0][0] - t0, 3) if err_lines else None,
        "seconds_to_exit": round(secs, 3),
        "returncode": proc.returncode,
        "stderr": err[-300:],
        "stderr_lines": len(err.splitlines()),
        "ran_s": round(t0 - t_start, 1),
    }


def cancel(bundle: Path, log=print) -> dict:
    from edgespec import Pipeline
    from edgespec._native import CancelledError

    out: dict = {}
    edgespec = [sys.executable, "-m", "edgespec"]
    out["sigint_edgespec_run"] = _sigint_after_ready(
        edgespec
        + [
            "run",
            str(bundle),
            "def fib(n):",
            "--max-new-tokens",
            "100000",
            "--ignore-eos",
            "--policy",
            "autoregressive",
        ],
        "",
    )
    log(f"SIGINT to edgespec run: {out['sigint_edgespec_run']}")
    for mode in ("streamer", "plain", "stream"):
        key = f"sigint_python_{mode}"
        out[key] = _sigint_after_ready(
            [sys.executable, "-c", _CHILD, mode, str(bundle)], "READY", delay=1.0 if mode == "plain" else 0.3
        )
        log(f"SIGINT to Python in {mode}: {out[key]}")

    pipe = Pipeline.load(bundle)
    # Inside one model call: a prompt that fills the context, cancelled halfway through its prefill
    # (es_cancel interrupts the running OpenVINO request; it used to wait for the prefill's end).
    ids = pipe.tokenize("def fib(n):\n    return n\n" * 2000)[: pipe.context_length - 64]
    long_prompt = pipe.detokenize(ids)
    t0 = time.perf_counter()
    want = pipe.generate(long_prompt, max_new_tokens=4, ignore_eos=True).tokens
    prefill = time.perf_counter() - t0
    in_prefill = []
    for _ in range(5):
        result = {}

        def run_long():
            try:
                pipe.generate(long_prompt, max_new_tokens=4, ignore_eos=True)
            except CancelledError:
                result["cancelled"] = time.perf_counter()

        th = threading.Thread(target=run_long)
        th.start()
        time.sleep(prefill / 2)
        t0 = time.perf_counter()
        pipe.cancel()
        th.join()
        in_prefill.append(round(result.get("cancelled", float("nan")) - t0, 4))
    out["long_prompt"] = {
        "tokens": len(ids),
        "uncancelled_s": round(prefill, 3),
        "cancel_halfway_s": in_prefill,
        "same_output_after": pipe.generate(long_prompt, max_new_tokens=4, ignore_eos=True).tokens == want,
    }
    log(f"cancel halfway through a {len(ids)}-token prefill: {out['long_prompt']}")
    # Cancels at random points (inside calls, between them, drafter or target), each followed by a
    # generation checked against the uncancelled output: a call cancelled part-way must leave the
    # models as good as new (openvino.hpp, heal_width).
    import random

    rng = random.Random(0)
    ref_cfg = dict(max_new_tokens=30, k=3, temperature=1.0, seed=3, ignore_eos=True)
    ref = pipe.generate("def fib(n):", **ref_cfg).tokens
    broken = []
    for i in range(200):
        errors: list = []

        def run_random(policy, errors=errors):
            try:
                pipe.generate("def fib(n):", policy=policy, max_new_tokens=100000, ignore_eos=True)
            except Exception as e:  # noqa: BLE001 - counted below
                errors.append(e)

        th = threading.Thread(target=run_random, args=(rng.choice(["draft", "autoregressive"]),))
        th.start()
        time.sleep(rng.random() * 0.05)
        pipe.cancel()
        th.join()
        try:
            same = pipe.generate("def fib(n):", **ref_cfg).tokens == ref
        except Exception as e:  # noqa: BLE001 - a finding
            same = repr(e)[:200]
        if same is not True or not all(isinstance(e, CancelledError) for e in errors):
            broken.append({"at": i, "next": same, "cancelled_call": repr(errors[:1])[:200]})
    out["random_cancels"] = {"cancels": 200, "broken": len(broken), "findings": broken[:5]}
    log(f"200 cancels at random points, then a checked generation: {out['random_cancels']}")
    out["sigint_python_prefill"] = _sigint_after_ready(
        [sys.executable, "-c", _CHILD, "prefill", str(bundle)], "READY", delay=min(0.3, prefill / 2)
    )
    log(f"SIGINT to Python in generate(streamer=) during a long prefill: {out['sigint_python_prefill']}")
    cfg = dict(max_new_tokens=100000, ignore_eos=True, policy="autoregressive")
    # es_cancel from another thread
    started = threading.Event()
    times = []
    for _ in range(5):
        started.clear()
        result = {}

        def run():
            try:
                pipe.generate("def fib(n):", streamer=lambda t: started.set(), **cfg)
            except CancelledError:
                result["cancelled"] = time.perf_counter()

        th = threading.Thread(target=run)
        th.start()
        started.wait(60)
        t0 = time.perf_counter()
        pipe.cancel()
        th.join()
        times.append(round(result.get("cancelled", float("nan")) - t0, 4))
    out["cancel_from_thread_s"] = times
    log(f"Pipeline.cancel() from another thread: {times}")
    # a dropped stream: how long the next call waits
    waits = []
    for _ in range(5):
        for _chunk in pipe.stream("def fib(n):", **cfg):
            break
        t0 = time.perf_counter()
        pipe.generate("x", max_new_tokens=1)
        waits.append(round(time.perf_counter() - t0, 4))
    out["next_call_after_dropped_stream_s"] = waits
    log(f"the next call after a dropped stream: {waits}")
    # close() while a stream's worker generates
    closes = []
    for _ in range(3):
        p = Pipeline.load(bundle)
        st = p.stream("def fib(n):", **cfg)
        next(iter(st))
        t0 = time.perf_counter()
        p.close()
        closes.append(round(time.perf_counter() - t0, 4))
        st.close()
    out["close_during_stream_s"] = closes
    log(f"close() during a stream: {closes}")
    pipe.close()
    # SIGINT: time until the one-line message (the generation has stopped); the process exit after
    # it adds OpenVINO's teardown, reported as seconds_to_exit.
    worst = [v.get("seconds_to_message") for k, v in out.items() if k.startswith("sigint") and isinstance(v, dict)]
    worst += times + closes + in_prefill
    ok_exit = all(
        isinstance(v, dict) and v.get("returncode") == 130 and v.get("stderr_lines") == 1
        for k, v in out.items()
        if k.startswith("sigint")
    )
    out["summary"] = {
        "worst_s": max(x for x in worst if x is not None) if worst else None,
        "all_exit_130_one_line": ok_exit,
        "pass": ok_exit
        and all(x is not None and x < 1.0 for x in worst)
        and out["long_prompt"]["same_output_after"]
        and not out["random_cancels"]["broken"],
    }
    return out


# -- loadtime ---------------------------------------------------------------------------------------

_LOAD = r"""
import sys, time
from edgespec import Pipeline
t0 = time.perf_counter()
pipe = Pipeline.load(sys.argv[1], verify=sys.argv[2] == "1")
print(time.perf_counter() - t0, pipe.info.get("integrity_ms", 0.0))
pipe.close()
"""


def loadtime(bundle: Path, repeats: int, log=print) -> dict:
    import statistics

    times: dict[str, list[float]] = {"verify": [], "sizes_only": []}
    checks: dict[str, list[float]] = {"verify": [], "sizes_only": []}  # the load's own integrity_ms
    for i in range(repeats):
        for name, flag in (
            (("verify", "1"), ("sizes_only", "0")) if i % 2 == 0 else (("sizes_only", "0"), ("verify", "1"))
        ):
            r = subprocess.run(
                [sys.executable, "-c", _LOAD, str(bundle), flag], capture_output=True, text=True, check=True
            )
            total, check = r.stdout.strip().splitlines()[-1].split()
            times[name].append(round(float(total), 3))
            checks[name].append(round(float(check), 1))
        log(
            f"repeat {i + 1}: verify {times['verify'][-1]} s (digests {checks['verify'][-1]} ms), "
            f"sizes only {times['sizes_only'][-1]} s (sizes {checks['sizes_only'][-1]} ms)"
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    check_ms = {k: statistics.median(v) for k, v in checks.items()}
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    return {
        "summary": {
            "median_s": med,
            "ratio": round(med["verify"] / med["sizes_only"], 3),
            # The end-to-end ratio is as noisy as the load; the check's own time is not.
            "check_ms": check_ms,
            "check_share_of_load": round(check_ms["verify"] / 1000 / med["verify"], 4),
            "bundle_mb": round(size / 2**20, 1),
            "pass": True,
        },
        "times": times,
    }


# -- main -------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["fuzz", "abi", "soak", "lengths", "cancel", "loadtime", "all"])
    ap.add_argument("--bundle", type=Path, default=None, help="Bundle to test (default: the demo bundle).")
    ap.add_argument("--quick", action="store_true", help="CI size: a dozen fuzz cases, 300 soak generations.")
    ap.add_argument("--limit", type=int, default=None, help="At most this many fuzz cases.")
    ap.add_argument("--generations", type=int, default=None, help="Soak generations (default 2000; --quick 300).")
    ap.add_argument("--timeout", type=float, default=300.0, help="Seconds a fuzz case (or the ABI program) may take.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="loadtime: loads per setting.")
    ap.add_argument("--lengths", type=int, default=120, help="lengths: distinct prompt lengths to read.")
    ap.add_argument("--json", type=Path, default=None, help="Write the report here.")
    args = ap.parse_args(argv)
    bundle = args.bundle or default_bundle()
    if not (bundle / "edgespec.json").is_file():
        print(f"error: {bundle} is not an edgespec bundle (no edgespec.json); pass one with --bundle.", file=sys.stderr)
        return 2
    if args.lengths < 2:
        print(f"error: --lengths {args.lengths} is too small; pass 2 or more prompt lengths.", file=sys.stderr)
        return 2
    report: dict = {"bundle": str(bundle)}
    todo = ["fuzz", "abi", "soak", "cancel"] if args.what == "all" else [args.what]
    for what in todo:
        t0 = time.perf_counter()
        if what == "fuzz":
            report["fuzz"] = fuzz(bundle, args.quick, args.limit, args.timeout, args.seed)
        elif what == "abi":
            report["abi"] = abi(bundle, args.timeout * 4)
        elif what == "loadtime":
            report["loadtime"] = loadtime(bundle, args.repeats)
        elif what == "soak":
            report["soak"] = soak(bundle, args.generations or (300 if args.quick else 2000))
        elif what == "lengths":
            report["lengths"] = lengths(bundle, args.lengths)
        else:
            report["cancel"] = cancel(bundle)
        report[what]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{what}: {json.dumps(report[what]['summary'])}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0 if all(report[w]["summary"].get("pass") for w in todo) else 1


if __name__ == "__main__":
    sys.exit(main())
