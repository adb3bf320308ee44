#!/usr/bin/env python
"""Fault runs for `edgespec export` and `edgespec draft train`: kill -9 at random times, full
disks (a small tmpfs, root only) and file-size limits (RLIMIT_FSIZE, anyone).

    .venv/bin/python lab/reliability/export_faults.py all --runs 10
    .venv/bin/python lab/reliability/export_faults.py kill-export --runs 10 [--target DIR --draft DIR]
    .venv/bin/python lab/reliability/export_faults.py kill-train --runs 10
    .venv/bin/python lab/reliability/export_faults.py disk-export --runs 5     # needs mount -t tmpfs
    .venv/bin/python lab/reliability/export_faults.py disk-train --runs 5
    .venv/bin/python lab/reliability/export_faults.py fsize

Each run is a real CLI subprocess. What is checked:
  kill-export  after each kill: no output at -o (or, if the export had finished, a bundle that
               loads); the next export removes every partial directory left and says so; the
               last one succeeds with nothing partial beside it.
  kill-train   after each kill: the saved state loads and its step never goes back; -o holds no
               half-written checkpoint (config.json only with the weights and tokenizer); the
               next run resumes from exactly the saved step and removes temporary files left.
  disk-*       a disk filled before or at a random time during the run: exit 2, one `error:`
               sentence naming disk space, nothing half-written (export: nothing; training: the
               last state still loads, no temporary files); training then resumes once freed.
  fsize        the same with a 100 KiB file-size limit instead of a full disk.

Tiny models are built from tests/tiny.py into --work (default /tmp/edgespec-faults). Prints one
line per run and a JSON summary; exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

FAILS: list[str] = []
COUNTS: dict[str, int] = {}


def check(ok: bool, what: str) -> bool:
    COUNTS[what] = COUNTS.get(what, 0) + (1 if ok else 0)
    COUNTS[f"{what} (runs)"] = COUNTS.get(f"{what} (runs)", 0) + 1
    if not ok:
        FAILS.append(what)
        print(f"    FAILED: {what}", flush=True)
    return ok


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "edgespec", *map(str, args)]


def one_sentence(rc: int, err: str, *words) -> bool:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    ok = rc == 2 and "Traceback" not in err and len(errors) == 1 and lines[-1] == errors[0]
    ok = ok and all(w in errors[0] for w in words)
    print(f"    rc {rc}: {errors[0] if errors else (lines[-1] if lines else '')}"[:220], flush=True)
    return ok


def models(work: Path) -> tuple[Path, Path, Path]:
    """(target, drafter, corpus): tiny same-vocabulary pair and a small text corpus."""
    from tiny import build_tiny, corpus_lines, train_tokenizer

    target, draft, corpus = work / "target", work / "draft", work / "corpus"
    if not (draft / "config.json").is_file():
        tok = train_tokenizer()
        build_tiny("llama", target, tokenizer=tok)
        build_tiny("llama", draft, tokenizer=tok, seed=100, hidden=32, layers=1)
    if not corpus.is_dir():
        corpus.mkdir()
        (corpus / "a.py").write_text("\n".join(corpus_lines(60_000)) + "\n")
    return target, draft, corpus


def partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.partial-*")) + sorted(out.parent.glob(f".{out.name}.old-*"))


def bundle_loads(out: Path) -> bool:
    from edgespec import bundle

    try:
        bundle.load(out)
        return True
    except Exception as e:
        print(f"    bundle does not load: {e}", flush=True)
        return False


def export_args(target, draft, out):
    return ["export", target, *(["--draft", draft] if draft else []), "-o", out, "--weights", "int8"]


def kill_export(a, target, draft) -> None:
    out = a.work / "kill-export" / "b"
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir(parents=True)
    t = time.time()
    r = subprocess.run(cli(*export_args(target, draft, out)), capture_output=True, text=True)
    full_s = time.time() - t
    check(r.returncode == 0, "kill-export: baseline export succeeds")
    print(f"kill-export: a whole export takes {full_s:.1f} s; {a.runs} runs killed at random times", flush=True)
    killed_with_partial = 0
    for i in range(a.runs):
        shutil.rmtree(out, ignore_errors=True)
        before = partials(out)
        p = subprocess.Popen(
            cli(*export_args(target, draft, out)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        at = random.uniform(0.5, full_s)
        time.sleep(at)
        finished = p.poll() is not None
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate()
        left = partials(out)
        new = [d for d in left if d not in before]
        killed_with_partial += bool(new)
        print(
            f"  run {i + 1}: kill at {at:.1f} s{' (already finished)' if finished else ''}: "
            f"{len(new)} new partial, {len(left)} partial in all",
            flush=True,
        )
        check(not out.exists() or bundle_loads(out), "kill-export: nothing at -o, or a complete bundle")
        gone = [d for d in before if not d.exists()]
        if gone:
            check(f"removed {len(gone)} partial director" in err, "kill-export: removal of earlier partials said")
    left = partials(out)
    r = subprocess.run(cli(*export_args(target, draft, out)), capture_output=True, text=True)
    check(r.returncode == 0 and bundle_loads(out), "kill-export: the next export succeeds")
    if left:
        check(f"removed {len(left)} partial director" in r.stderr, "kill-export: the next export says what it removed")
    check(partials(out) == [], "kill-export: no partial directory after the next export")
    COUNTS["kill-export: kills that left a partial directory"] = killed_with_partial
    print(
        f"kill-export: {killed_with_partial}/{a.runs} kills left a partial directory; the next export removed "
        f"{len(left)} and succeeded",
        flush=True,
    )


def train_args(target, corpus, out, steps):
    return [
        "draft",
        "train",
        "--stage",
        "pretrain",
        "--corpus",
        corpus,
        "--tokenizer",
        target,
        "--hidden",
        "32",
        "--layers",
        "1",
        "--steps",
        str(steps),
        "--seq-len",
        "16",
        "--batch-size",
        "4",
        "--eval-prompts",
        "0",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--checkpoint-every",
        "0",
        "-o",
        out,
    ]


def saved_step(out: Path) -> int | None:
    from edgespec.export.draft import lmtrain, trainstate

    try:
        return int(trainstate.read_meta(out / lmtrain.STATE)["step"])
    except Exception:
        if (out / lmtrain.STATE).is_file():
            raise
        return None


def temp_files(out: Path) -> list[Path]:
    return (
        sorted(out.glob(".train/.*.tmp"))
        + sorted(out.parent.glob(f".{out.name}.save-*"))
        + sorted(out.glob(".train/tokens/.tokens-*.npy"))
    )


def checkpoint_whole(out: Path) -> bool:
    """No half-written HF checkpoint: config.json (moved in last) only beside the weights and tokenizer."""
    return not (out / "config.json").exists() or all(
        (out / f).is_file() for f in ("model.safetensors", "tokenizer.json")
    )


def kill_train(a, target, corpus) -> None:
    out = a.work / "kill-train" / "d"
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir(parents=True)
    steps = a.train_steps
    t = time.time()
    p = subprocess.Popen(
        cli(*train_args(target, corpus, out, steps)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(lambda: saved_step(out) is not None, p)
    t_first = time.time()
    check(p.wait() == 0, "kill-train: baseline training succeeds")
    train_s = time.time() - t_first
    shutil.rmtree(out)
    print(
        f"kill-train: a whole run of {steps} steps takes {time.time() - t:.1f} s, {train_s:.1f} s of it after the "
        f"first save; {a.runs} runs killed at uniform(0, {2 * train_s / a.runs:.1f} s) after their first save",
        flush=True,
    )
    resumed_ok = 0
    for i in range(a.runs):
        prev = saved_step(out)
        tmp_before = temp_files(out)
        p = subprocess.Popen(
            cli(*train_args(target, corpus, out, steps)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: saved_step(out) not in (None, prev), p)  # this run is training and saving
        at = random.uniform(0, 2 * train_s / a.runs)  # the runs share the training between them
        time.sleep(at)
        finished = p.poll() is not None
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate()
        m = re.search(r"resuming from step (\d+)", err)
        if m:  # (a kill before the trainer started prints nothing)
            resumed_ok += check(int(m.group(1)) == prev, "kill-train: resumed from the saved step")
        if tmp_before and "partial file" in err:
            check(not any(f.exists() for f in tmp_before), "kill-train: temporary files of a killed run removed")
        try:
            now = saved_step(out)
            check(now is None or prev is None or now >= prev, "kill-train: the saved step never goes back")
        except Exception as e:
            now = None
            check(False, f"kill-train: the saved state loads ({e})")
        check(checkpoint_whole(out), "kill-train: no half-written checkpoint at -o")
        print(
            f"  run {i + 1}: kill {at:.1f} s after its first save{' (already finished)' if finished else ''}: "
            f"saved step {prev} -> {now}, "
            f"{len(temp_files(out))} temporary files left",
            flush=True,
        )
    r = subprocess.run(cli(*train_args(target, corpus, out, steps)), capture_output=True, text=True)
    check(r.returncode == 0 and (out / "edgespec_draft.json").is_file(), "kill-train: the last run completes")
    check(temp_files(out) == [], "kill-train: no temporary files at the end")
    from edgespec.export.draft import fastdraft

    fastdraft.load_model(out)
    print(f"kill-train: {resumed_ok} resumes from exactly the saved step; the last run completed", flush=True)


class Tmpfs:
    def __init__(self, path: Path, size: str = "8m"):
        self.path, self.size = path, size

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)], capture_output=True, text=True
        )
        if r.returncode:
            raise RuntimeError(f"mount -t tmpfs failed ({r.stderr.strip()})")
        return self.path

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> Path:
    filler = disk / "filler"
    with open(filler, "ab") as f:
        try:
            f.write(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
            f.flush()
        except OSError:
            pass
    return filler


def others(disk: Path) -> list[str]:
    return sorted(p.name for p in disk.iterdir() if p.name != "filler" and not p.name.startswith("torchinductor"))


def wait_for(find, p, timeout=600):
    t = time.time()
    while time.time() - t < timeout and p.poll() is None:
        if find():
            return True
        time.sleep(0.05)
    return False


def disk_export(a, target, draft) -> None:
    with Tmpfs(a.work / "disk-export") as disk:
        env = dict(os.environ, TMPDIR=str(disk))
        out = disk / "b"
        filler = fill(disk, leave=256 * 1024)
        r = subprocess.run(cli(*export_args(target, draft, out)), capture_output=True, text=True, env=env)
        check(
            one_sentence(r.returncode, r.stderr, "Not enough disk space", "needs about"),
            "disk-export: a full disk before the export is one sentence",
        )
        check(others(disk) == [], "disk-export: nothing written before the refusal")
        for i in range(a.runs):
            filler.unlink()
            shutil.rmtree(out, ignore_errors=True)
            p = subprocess.Popen(
                cli(*export_args(target, draft, out)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            wait_for(lambda: any(disk.glob(".b.partial-*/.edgespec-owner.json")), p)
            at = random.uniform(0, 5)
            time.sleep(at)
            filler = fill(disk)
            _, err = p.communicate()
            print(f"  run {i + 1}: disk filled {at:.1f} s after the partial directory appeared", flush=True)
            if p.returncode == 0:
                check(bundle_loads(out), "disk-export: an export that finished first is complete")
            else:
                check(
                    one_sentence(p.returncode, err, "Not enough disk space", "filled up during the export"),
                    "disk-export: a disk filling up during the export is one sentence",
                )
                check(others(disk) == [], "disk-export: nothing left after a full disk")


def disk_train(a, target, corpus) -> None:
    with Tmpfs(a.work / "disk-train", size="4m") as disk:
        out = disk / "d"
        env = dict(os.environ, TMPDIR=str(disk))
        for i in range(a.runs):
            shutil.rmtree(out, ignore_errors=True)
            (disk / "filler").unlink(missing_ok=True)
            p = subprocess.Popen(
                cli(*train_args(target, corpus, out, a.train_steps)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            wait_for(lambda: (out / ".train").is_dir(), p)
            at = random.uniform(0, 3)
            time.sleep(at)
            filler = fill(disk)
            _, err = p.communicate()
            print(f"  run {i + 1}: disk filled {at:.1f} s after .train appeared", flush=True)
            if p.returncode == 0:
                check((out / "edgespec_draft.json").is_file(), "disk-train: a run that finished first is complete")
                continue
            check(
                one_sentence(p.returncode, err, "Not enough disk space", "during training"),
                "disk-train: a disk filling up during training is one sentence",
            )
            try:
                step = saved_step(out)
                check(True, "disk-train: the last saved state still loads")
            except Exception as e:
                step = None
                check(False, f"disk-train: the last saved state still loads ({e})")
            check(temp_files(out) == [] and checkpoint_whole(out), "disk-train: no temporary or half-written files")
            filler.unlink()
            r = subprocess.run(
                cli(*train_args(target, corpus, out, a.train_steps)), capture_output=True, text=True, env=env
            )
            resumed = step is None or f"resuming from step {step}" in r.stderr
            check(r.returncode == 0 and resumed, "disk-train: once freed, training resumes and completes")


def fsize(a, target, draft, corpus) -> None:
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    d = a.work / "fsize"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    r = subprocess.run(cli(*export_args(target, draft, d / "b")), capture_output=True, text=True, preexec_fn=limit)
    check(one_sentence(r.returncode, r.stderr, "file-size limit"), "fsize: export is one sentence")
    check(list(d.iterdir()) == [], "fsize: export leaves nothing")
    big = ["--hidden", "128", "--layers", "2"]  # a state larger than the limit
    args = train_args(target, corpus, d / "t", 3)
    r = subprocess.run(cli(*args[:-2], *big, *args[-2:]), capture_output=True, text=True, preexec_fn=limit)
    check(one_sentence(r.returncode, r.stderr, "file-size limit"), "fsize: training is one sentence")
    check(temp_files(d / "t") == [], "fsize: training leaves no temporary files")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["all", "kill-export", "kill-train", "disk-export", "disk-train", "fsize"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=Path, default=None, help="export this target instead of the tiny one")
    ap.add_argument("--draft", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgespec-faults"))
    a = ap.parse_args()
    random.seed(a.seed)
    a.work.mkdir(parents=True, exist_ok=True)
    target, draft, corpus = models(a.work)
    if a.target:
        target, draft = a.target, a.draft
    t0 = time.time()
    for name, fn, args in (
        ("kill-export", kill_export, (target, draft)),
        ("kill-train", kill_train, (target, corpus)),
        ("disk-export", disk_export, (target, draft)),
        ("disk-train", disk_train, (target, corpus)),
        ("fsize", fsize, (target, draft, corpus)),
    ):
        if a.what in ("all", name):
            print(f"== {name}", flush=True)
            try:
                fn(a, *args)
            except RuntimeError as e:
                print(f"  skipped: {e}", flush=True)
    print(json.dumps({"seconds": round(time.time() - t0), "failed": FAILS, "counts": COUNTS}, indent=1))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
