"""The runtime's pure C++ pieces through CTest (runtimes/tests/): the accept rule (greedy prefix,
speculative sampling's chi-square against the target distribution), the adaptive draft-length
controller on synthetic cost curves, prompt-lookup drafting, the translation memo, the adaptation log. No OpenVINO and no model: the engine
tests check the same pieces end to end."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_the_pure_cpp_pieces_pass_their_ctest_suite(tmp_path):
    if not (shutil.which("cmake") and shutil.which("ctest") and (shutil.which("c++") or shutil.which("g++"))):
        pytest.skip("cmake, ctest and a C++ compiler are needed")
    build = tmp_path / "unit"
    r = subprocess.run(
        ["cmake", "-S", str(REPO / "runtimes" / "tests"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        ["ctest", "--test-dir", str(build), "--output-on-failure"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "100% tests passed" in r.stdout and "out of 5" in r.stdout, r.stdout
