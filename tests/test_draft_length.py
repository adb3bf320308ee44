"""The adaptive draft-length controller (runtimes/src/draft_length.cpp) on synthetic cost curves.

The controller is plain C++ with no OpenVINO in it, so its unit test is compiled and run here
directly; the engine tests check that whatever k it picks, the output stays lossless.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_adaptive_k_settles_on_the_fastest_k_for_the_measured_costs(tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path / "test_draft_length"
    src = REPO / "runtimes"
    r = subprocess.run([cxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{src / 'src'}",
                        str(src / "tests" / "test_draft_length.cpp"), str(src / "src" / "draft_length.cpp"),
                        "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "all draft-length checks passed" in r.stdout, r.stdout + r.stderr
