"""The look stays uniform: ruff (lint and format) over the Python files and clang-format over the
runtime's C/C++ sources, with the versions pinned in pyproject.toml's test extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return path


def tracked(*patterns: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--", *patterns], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in out.stdout.split() if "third_party" not in f]


def test_ruff_finds_nothing():
    r = subprocess.run(
        [tool("ruff"), "check", "--no-cache", *tracked("*.py")], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr


def test_ruff_format_changes_nothing():
    r = subprocess.run(
        [tool("ruff"), "format", "--check", "--no-cache", *tracked("*.py")], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0, "run `ruff format` on:\n" + r.stdout[-4000:]


def test_clang_format_changes_nothing():
    files = tracked("runtimes/*.cpp", "runtimes/*.hpp", "runtimes/*.h", "runtimes/*.c")
    r = subprocess.run(
        [tool("clang-format"), "--style=file", "--dry-run", "-Werror", *files], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0, "run `clang-format -i` on:\n" + r.stderr[-4000:]
