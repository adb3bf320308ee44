"""Shared by the lab experiments that generate on a bundle (round_trace.py, head_window.py,
dyn_quant_prefill.py, head_second_choice.py, lookup_tail_ab.py): the common arguments, the prompts of a set, and bad
input (a missing bundle or model, an unreadable prompt set, an option the runtime refuses) ended in
one sentence and exit status 2 instead of a traceback."""

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

from edgespec.errors import EdgespecError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
from bench_prompts import load_set  # noqa: E402


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def positive(text: str) -> int:
    """An argparse type: a count of at least 1 (0 prompts or repeats would leave nothing to report)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return n


def parser(doc: str | None, *, draft: str = "auto", prompt_set: str = "short", prompts: int = 4, repeats: int = 2):
    """BUNDLE --draft --prompt-set --prompts --max-new-tokens --repeats; the script adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--draft", default=draft)
    ap.add_argument("--prompt-set", default=prompt_set)
    ap.add_argument("--prompts", type=positive, default=prompts)
    ap.add_argument("--max-new-tokens", type=positive, default=64)
    ap.add_argument("--repeats", type=positive, default=repeats)
    return ap


def load_prompts(name: str, n: int) -> list[str]:
    """The first n prompts of a prompt set (a name in lab/prompts or a JSON-lines file)."""
    try:
        rows = load_set(name)[0]
        return [r["prompt"] for r in rows][:n]
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"--prompt-set {name} is not a readable JSON-lines prompt set with a 'prompt' per line ({e})")


@contextlib.contextmanager
def user_errors():
    """edgespec's own errors (a bundle or head it refuses, an option out of range) as one sentence."""
    try:
        yield
    except EdgespecError as e:
        fail(str(e))


_TRACE = Path(tempfile.mkdtemp()) / "rounds.jsonl"


def traced(pipe, prompt: str, env: dict[str, str] | None = None, **config):
    """One generation with EDGESPEC_TRACE_ROUNDS (and env: developer switches for A/B runs) set
    around it: (its result, its rounds as the trace's dicts)."""
    env = {"EDGESPEC_TRACE_ROUNDS": str(_TRACE), **(env or {})}
    saved = {k: os.environ.get(k) for k in env}
    _TRACE.unlink(missing_ok=True)
    os.environ.update(env)
    try:
        with user_errors():
            r = pipe.generate(prompt, **config)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return r, [json.loads(line) for line in _TRACE.read_text().splitlines()]
