"""Safe to embed, the export and training side (issue #22).

No pickle is ever loaded (a planted one never runs); a pickle-only checkpoint is refused; an
export killed with SIGKILL leaves a partial directory that the next export removes; a full disk
or a file-size limit is one sentence and leaves nothing; out-of-range numbers and bad prompt
files are one sentence. Tiny models from tests/tiny.py; exports run as real subprocesses.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from edgespec.export import leftovers
from edgespec.export.draft import fastdraft, lmtrain, trainstate

from edgespec import bundle
from edgespec.errors import EdgespecError

ROOT = Path(__file__).resolve().parent.parent


class _Plant:
    """Unpickling this creates the file ``path`` (``open(path, "w")``): proof that a pickle ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _cli(capsys, *args) -> subprocess.CompletedProcess:
    from edgespec.cli import main

    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, cap.out, cap.err)


def _export(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgespec", "export", *map(str, args)], capture_output=True, text=True, timeout=600, **kw
    )


def _one_sentence(r, *words) -> str:
    """Exit code 2, no traceback, exactly one ``error:`` line and it is the last; returns it."""
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr[-3000:]
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def _wait_for(find, proc, timeout=300.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        hit = find()
        if hit:
            return hit
        assert proc.poll() is None, "the export ended before the point this test waits for"
        time.sleep(0.05)
    raise AssertionError("timed out")


# --------------------------------------------------------------------------- no pickle anywhere

# Calls that unpickle (the patterns are regexes, so this file does not match itself).
_PICKLE_LOADS = [
    r"\btorch\.load\s*\(",
    r"\bpickle\.loads?\s*\(",
    r"\bUnpickler\s*\(",
    r"allow_pickle\s*=\s*True",
    r"weights_only\s*=\s*False",
    r"^\s*(import|from)\s+(dill|joblib|cloudpickle|shelve)\b",
    r"\bjoblib\.load\s*\(",
    r"\bread_pickle\s*\(",
    r"\bmarshal\.loads?\s*\(",
    r"from\s+pickle\s+import\s+.*\bload",
]


def test_no_tracked_python_file_loads_a_pickle():
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True)
    paths = (
        files.stdout.split()
        if files.returncode == 0
        else [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if ".venv" not in p.parts and "build" not in p.parts]
    )
    assert len(paths) > 50
    pattern = re.compile("|".join(f"(?:{p})" for p in _PICKLE_LOADS), re.M)
    hits = []
    for rel in paths:
        text = (ROOT / rel).read_text(encoding="utf-8", errors="replace")
        for m in pattern.finditer(text):
            hits.append(f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0).strip()}")
    assert not hits, "pickle loads (a pickle runs the code it names when loaded):\n" + "\n".join(hits)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from tiny import corpus_lines

    d = tmp_path_factory.mktemp("corpus")
    (d / "a.py").write_text("\n".join(corpus_lines(40_000)) + "\n")
    return d


def _train_args(corpus, target, out, *extra):
    return (
        "draft",
        "train",
        "--stage",
        "pretrain",
        "--corpus",
        corpus,
        "--target",
        target,
        "--hidden",
        "32",
        "--layers",
        "1",
        "--steps",
        "2",
        "--seq-len",
        "16",
        "--batch-size",
        "2",
        "--eval-prompts",
        "0",
        "--device",
        "cpu",
        "-o",
        out,
        *extra,
    )


def test_a_planted_training_state_is_never_unpickled(tiny_dir, corpus, tmp_path, capsys):
    target = tiny_dir("llama")
    ran = tmp_path / "pickle-ran"
    out = tmp_path / "d"
    (out / ".train").mkdir(parents=True)
    (out / lmtrain.LEGACY_STATE).write_bytes(pickle.dumps({"model": _Plant(ran)}))
    r = _cli(capsys, *_train_args(corpus, target, out))
    _one_sentence(r, "old pickle format", "delete", ".train")
    assert not ran.exists()
    # the same bytes under the new name: a file that is not a safetensors state, refused unread
    (out / lmtrain.LEGACY_STATE).rename(out / lmtrain.STATE)
    r = _cli(capsys, *_train_args(corpus, target, out))
    _one_sentence(r, "is unreadable", "delete")
    assert not ran.exists()
    assert (out / lmtrain.STATE).read_bytes() == pickle.dumps({"model": _Plant(ran)})  # left as it was


def test_a_planted_token_cache_is_never_unpickled(tiny_dir, corpus, tmp_path):
    """The token cache (.npy) is read without pickle: a planted object array is re-tokenized."""
    tok = fastdraft.load_tokenizer(tiny_dir("llama"))
    docs = ["def f(x):\n    return x\n"] * 50
    cache = tmp_path / "tokens"
    ref = lmtrain.tokenize_documents(tok, docs, cache)
    (f,) = cache.glob("tokens-*.npy")
    ran = tmp_path / "pickle-ran"
    body = pickle.dumps(np.array([_Plant(ran)], dtype=object))
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    f.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + body)
    again = lmtrain.tokenize_documents(tok, docs, cache)
    assert not ran.exists()
    assert np.array_equal(again, ref) and np.array_equal(np.load(f), ref)  # rewritten as a plain array


def test_training_state_is_safetensors_and_resumes(tmp_path):
    """The state holds weights and optimizer tensors as tensors, the rest (RNG too) as JSON; tied weights once."""
    import torch
    import transformers as tf
    from safetensors import safe_open

    data = np.arange(3000, dtype=np.int32) % 97
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(lmtrain.llama_config(100, 32, 1, ctx=64, tie=True))
    cfg = lmtrain.TrainConfig(steps=3, seq_len=16, batch_size=2, lr=1e-2, warmup=1, log_every=1000)
    lmtrain.train(model, data, tmp_path, cfg, progress=False, log=lambda s: None)
    with safe_open(str(tmp_path / lmtrain.STATE), "pt") as f:
        keys = set(f.keys())
        meta = json.loads(f.metadata()["meta"])
    assert meta["step"] == 3 and meta["config"]["steps"] == 3 and meta["rng"]["torch"]
    assert "model.model.embed_tokens.weight" in keys and "model.lm_head.weight" not in keys  # tied: once
    assert any(k.endswith(".exp_avg_sq") for k in keys)
    logs = []
    lmtrain.train(
        model,
        data,
        tmp_path,
        lmtrain.TrainConfig(steps=4, seq_len=16, batch_size=2, lr=1e-2, warmup=1, log_every=1000),
        progress=False,
        log=logs.append,
    )
    assert "resuming from step 3" in logs[0] and trainstate.read_meta(tmp_path / lmtrain.STATE)["step"] == 4
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / ".train").iterdir())


_TRAIN_SCRIPT = """
import sys
import numpy as np, torch, transformers as tf
from edgespec.export.draft import lmtrain
torch.manual_seed(0)
model = tf.LlamaForCausalLM(lmtrain.llama_config(100, 32, 1, ctx=64))
data = np.arange(20000, dtype=np.int32) % 97
cfg = lmtrain.TrainConfig(steps=int(sys.argv[2]), seq_len=16, batch_size=4, lr=1e-2, warmup=2, log_every=10**9,
                          checkpoint_every_s=float(sys.argv[3]))
lmtrain.train(model, data, sys.argv[1], cfg, progress=False, log=lambda s: None)
"""


def test_training_killed_with_sigkill_resumes_from_its_last_saved_step(tmp_path):
    import torch
    import transformers as tf

    steps = 24
    p = subprocess.Popen([sys.executable, "-c", _TRAIN_SCRIPT, str(tmp_path / "k"), str(steps), "0"])
    state = tmp_path / "k" / lmtrain.STATE
    _wait_for(lambda: state.is_file() and trainstate.read_meta(state)["step"] >= 3, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    saved = trainstate.read_meta(state)["step"]
    assert 3 <= saved < steps
    stale = state.with_name(f".{state.name}.{p.pid}.tmp")  # as a kill during a save leaves it
    stale.write_bytes(b"half a state")

    def fresh():
        torch.manual_seed(0)
        return tf.LlamaForCausalLM(lmtrain.llama_config(100, 32, 1, ctx=64))

    cfg = lmtrain.TrainConfig(steps=steps, seq_len=16, batch_size=4, lr=1e-2, warmup=2, log_every=10**9)
    data = np.arange(20000, dtype=np.int32) % 97
    logs = []
    resumed = fresh()
    lmtrain.train(resumed, data, tmp_path / "k", cfg, progress=False, log=logs.append)
    assert f"resuming from step {saved} ({state})" in logs
    assert any("removed 1 partial file left by an interrupted run" in s for s in logs) and not stale.exists()
    whole = fresh()
    lmtrain.train(whole, data, tmp_path / "w", cfg, progress=False, log=lambda s: None)
    for (n, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), n


@pytest.fixture(scope="module")
def pickle_only(tiny_dir, tmp_path_factory):
    """A checkpoint whose weights are only pytorch_model.bin (a pickle that, loaded, creates a file)."""
    d = tmp_path_factory.mktemp("pickle-only") / "m"
    shutil.copytree(tiny_dir("llama"), d)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Plant(d.parent / "pickle-ran")}))
    return d


def test_a_pickle_only_checkpoint_is_refused_before_loading(pickle_only, tiny_dir, tmp_path, capsys):
    out = tmp_path / "b"
    r = _cli(capsys, "export", pickle_only, "-o", out)
    _one_sentence(r, "holds only pickle weights (pytorch_model.bin)", "only safetensors checkpoints", "save_pretrained")
    assert not out.exists() and not list(tmp_path.glob(".b.*"))
    r = _cli(capsys, "draft", "eval", "--target", tiny_dir("llama"), "--draft", pickle_only, "-n", "1")
    _one_sentence(r, "holds only pickle weights", "only safetensors checkpoints")
    with pytest.raises(EdgespecError, match="only safetensors checkpoints"):
        fastdraft.load_model(pickle_only)
    assert not (pickle_only.parent / "pickle-ran").exists()


# --------------------------------------------------------------------------- killed exports


@pytest.mark.slow
def test_an_export_killed_with_sigkill_is_cleaned_up_by_the_next(tiny_dir, tiny_tokenizer, tmp_path):
    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    out = tmp_path / "b"
    p = subprocess.Popen(
        [sys.executable, "-m", "edgespec", "export", str(target), "-o", str(out), "--weights", "int8"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    owner = _wait_for(lambda: next(tmp_path.glob(f".b.partial-*/{leftovers.OWNER_FILE}"), None), p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    partial = owner.parent
    assert partial.is_dir() and not out.exists()
    assert json.loads(owner.read_text())["pid"] == p.pid
    r = _export(target, "-o", out, "--weights", "int8", "--no-validate")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"removed 1 partial directory left by an interrupted export ({partial.name})" in r.stderr
    assert not partial.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    assert bundle.load(out).target.name == "target" and not (out / leftovers.OWNER_FILE).exists()


def test_only_partial_directories_of_ended_runs_are_removed(tmp_path):
    final = tmp_path / "b"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    live, dead, unowned_new, unowned_old = (tmp_path / f".b.partial-{n}" for n in ("live", "dead", "new", "old"))
    for d in (live, dead, unowned_new, unowned_old):
        d.mkdir()
    leftovers.write_owner(live)  # this process: running
    (dead / leftovers.OWNER_FILE).write_text(json.dumps(dict(leftovers.owner_record(), pid=dead_pid)))
    other_host = tmp_path / ".b.partial-elsewhere"
    other_host.mkdir()
    (other_host / leftovers.OWNER_FILE).write_text(json.dumps({"pid": dead_pid, "host": "another-machine"}))
    old = time.time() - 2 * leftovers.UNOWNED_STALE_S
    os.utime(unowned_old, (old, old))
    swapped = tmp_path / f".b.old-{dead_pid}"  # killed between the two renames of --force: final missing
    (swapped / "target").mkdir(parents=True)
    removed = leftovers.remove_stale_partials(final)
    assert sorted(p.name for p in removed) == [dead.name, unowned_old.name]
    assert live.exists() and unowned_new.exists() and other_host.exists()
    assert (final / "target").is_dir() and not swapped.exists()  # the previous bundle put back


# --------------------------------------------------------------------------- full disks


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs (needs root and mount; skipped elsewhere, the file-size test still runs)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()[:100]})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(disk: Path, leave: int = 0) -> Path:
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with open(filler, "ab") as f:
        try:
            f.write(b"\0" * max(0, free - leave))
            f.flush()
        except OSError:
            pass
    return filler


@pytest.mark.slow
def test_a_full_disk_is_one_sentence_before_and_during_export(tiny_dir, tiny_tokenizer, small_disk):
    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    out = small_disk / "b"
    env = dict(os.environ, TMPDIR=str(small_disk))
    filler = _fill(small_disk, leave=256 * 1024)
    line = _one_sentence(_export(target, "-o", out, "--weights", "int8", env=env), "Not enough disk space in")
    need = re.search(r"needs about ([\d.]+) (KiB|MiB|GiB)", line)
    assert need and float(need.group(1)) > 0 and "KiB free" in line, line
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]

    filler.unlink()
    p = subprocess.Popen(
        [sys.executable, "-m", "edgespec", "export", str(target), "-o", str(out), "--weights", "int8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _wait_for(lambda: next(small_disk.glob(f".b.partial-*/{leftovers.OWNER_FILE}"), None), p)
    _fill(small_disk)
    _, err = p.communicate(timeout=600)
    _one_sentence(
        subprocess.CompletedProcess(p.args, p.returncode, "", err),
        "Not enough disk space in",
        "filled up during the export",
        "use -o on another disk",
    )
    assert [p.name for p in small_disk.iterdir() if p.name != "filler" and not p.name.startswith("torchinductor")] == []


@pytest.mark.slow
def test_a_file_size_limit_during_export_is_one_sentence(tiny_dir, tiny_tokenizer, tmp_path):
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    out = tmp_path / "b"
    r = _export(tiny_dir("llama", tokenizer=tiny_tokenizer), "-o", out, "--weights", "int8", preexec_fn=limit)
    _one_sentence(r, "file-size limit (ulimit -f)")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- numbers and prompt files


def test_out_of_range_numbers_are_one_sentence(tiny_dir, corpus, tmp_path, capsys):
    target = tiny_dir("llama")
    base = ("draft", "train", "--stage", "pretrain", "--corpus", corpus, "--target", target, "-o", tmp_path / "o")
    for args, words in [
        (("--steps", "0"), "--steps must be at least 1 (got 0)"),
        (("--steps", "-5"), "--steps must be at least 1"),
        (("--seed", "-1"), "--seed must be at least 0"),
        (("--kl-weight", "2"), "--kl-weight must be between 0.0 and 1.0"),
        (("--lr", "0"), "--lr must be a positive number"),
        (("--lr", "nan"), "--lr must be a positive number"),
        (("--seq-len", "1"), "--seq-len must be at least 2"),
        (("--hidden", "30", "--heads", "4"), "multiple of the number of attention heads"),
        (("--k", "0"), "--k must be between 1 and 32"),
    ]:
        _one_sentence(_cli(capsys, *base, *args), words)
    trim = ("draft", "trim", "--draft", target, "--calibration", corpus, "-o", tmp_path / "t")
    _one_sentence(_cli(capsys, *trim, "--keep", "0"), "--keep must be at least 1")
    _one_sentence(_cli(capsys, *trim, "--coverage", "0"), "--coverage must be above 0")
    _one_sentence(_cli(capsys, *trim, "--coverage", "1.5"), "--coverage must be at most 1.0")
    ev = ("draft", "eval", "--target", target, "--draft", target)
    _one_sentence(_cli(capsys, *ev, "-n", "0"), "--num-prompts must be at least 1")
    _one_sentence(_cli(capsys, *ev, "--max-new-tokens", "0"), "--max-new-tokens must be at least 1")
    _one_sentence(_cli(capsys, "export", target, "-o", tmp_path / "x", "--ratio", "nan"), "--ratio nan")
    _one_sentence(_cli(capsys, "export", target, "-o", tmp_path / "x", "--min-agreement", "2"), "outside [0, 1]")
    _one_sentence(_cli(capsys, "profile", tmp_path, "--repeats", "0"), "--repeats must be between 1 and 100")
    with pytest.raises(EdgespecError, match="training steps must be at least 1"):
        lmtrain.train(None, None, tmp_path / "api", lmtrain.TrainConfig(steps=0))
    assert not any((tmp_path / n).exists() for n in ("o", "t", "x", "api"))


def test_bad_profile_prompt_files_are_one_sentence(tmp_path, capsys):
    files = {
        "missing.txt": None,
        "empty.txt": b"",
        "blank.txt": b"\n  \n",
        "binary.txt": b"def f():\x00\x01\x02",
        "latin1.txt": "café\n".encode("latin-1"),
        "bad.json": b'["a", ',
        "dict.json": b'{"prompt": "a"}',
        "bad.jsonl": b'{"prompt": "a"}\nnot json\n',
        "noprompt.jsonl": b'{"text": "a"}\n',
    }
    words = {  # edgespec/profiling/prompts.py's sentences
        "missing.txt": "does not exist",
        "empty.txt": "holds no prompts",
        "blank.txt": "holds no prompts",
        "binary.txt": "is a binary file, not text",
        "latin1.txt": "is not UTF-8 text",
        "bad.json": "is not valid JSON",
        "dict.json": "must hold a JSON list of prompts",
        "bad.jsonl": "Line 2 of",
        "noprompt.jsonl": "Line 1 of",
    }
    for name, data in files.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        # the prompts are read before the bundle is opened: a bad file is named even without one
        _one_sentence(_cli(capsys, "profile", tmp_path / "no-bundle", "--prompts", tmp_path / name), words[name])
    _one_sentence(_cli(capsys, "profile", tmp_path / "no-bundle", "--prompts", tmp_path), "is not a file")
    from edgespec.profiling.prompts import read_prompts as _read_prompts

    (tmp_path / "ok.jsonl").write_text('{"prompt": "def f():"}\n\n{"prompt": "x = 1"}\n')
    assert _read_prompts(tmp_path / "ok.jsonl") == ["def f():", "x = 1"]


def test_a_full_disk_is_recognised_however_a_library_wrapped_it(tmp_path):
    import errno

    from edgespec.errors import ExportError

    def wrapped(inner):  # as OpenVINO and then export_ir re-raise a failed write
        try:
            try:
                try:
                    raise inner
                except OSError as e:
                    raise RuntimeError("Exception from src/core/src/pass/serialize.cpp: write failed") from e
            except RuntimeError as e:
                raise ExportError(f"optimum-intel could not convert x ({e}); the architecture may need ...") from e
        except ExportError as e:
            return e

    assert leftovers.disk_error(wrapped(OSError(errno.ENOSPC, "No space left on device")), tmp_path) == "full"
    assert leftovers.disk_error(wrapped(OSError(errno.EFBIG, "File too large")), tmp_path) == "file-size"
    assert leftovers.disk_error(RuntimeError("PytorchStreamWriter failed: No space left on device"), tmp_path) == "full"
    if shutil.disk_usage(tmp_path).free > leftovers.FULL_BELOW_BYTES:
        assert leftovers.disk_error(ValueError("a shape mismatch"), tmp_path) is None
    assert [leftovers.size_text(n) for n in (0, 3000, 5 * 2**20, 3 * 2**30)] == ["0 KiB", "3 KiB", "5 MiB", "3.0 GiB"]
