"""Every Python and C example in README.md runs, against a tiny bundle standing in for "bundle",
so an example can never rot: code blocks are taken from the README as it is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from engine_support import engine_bundle

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.S | re.M)


@pytest.fixture(scope="module")
def workdir(tiny_bundle, tmp_path_factory):
    """A directory where ./bundle is a tiny bundle with a drafter."""
    d = tmp_path_factory.mktemp("readme")
    (d / "bundle").symlink_to(engine_bundle(tiny_bundle, tmp_path_factory, "llama"))
    return d


def test_the_readme_has_python_and_c_examples():
    assert blocks("python") and blocks("c")


@pytest.mark.parametrize("i", range(len(blocks("python"))))
def test_each_python_example_runs(workdir, i):
    code = blocks("python")[i]
    r = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"README python example {i} failed:\n{code}\n{r.stderr[-2000:]}"
    assert r.stdout.rstrip().endswith("True")  # the speculative and plain tokens are the same


@pytest.mark.parametrize("i", range(len(blocks("c"))))
def test_each_c_example_compiles_and_runs(workdir, tmp_path, i):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    from edgespec import _native

    lib = Path(_native.lib()._name).resolve()
    src = tmp_path / "example.c"
    src.write_text(blocks("c")[i])
    exe = tmp_path / "example"
    r = subprocess.run(
        [
            cc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{REPO / 'runtimes' / 'include'}",
            str(src),
            str(lib),
            f"-Wl,-rpath,{lib.parent}",
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [str(exe)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LD_LIBRARY_PATH": str(lib.parent)},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"tokens/s, \d+ target calls", r.stdout), r.stdout
