"""The C ABI under misuse (lab/reliability/abi_misuse.c, built here with the system cc against
edgespec.h and the installed library): NULL and freed handles, double frees, a free, a second
generation, tokenize and detokenize during a generation (from another thread and from inside the
stream callback), es_cancel from another thread, huge max_new_tokens, invalid UTF-8, bad config
values... Every case answers with a status and one line, none crashes or hangs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from engine_support import engine_bundle, engine_ready

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lab" / "reliability"))

pytestmark = pytest.mark.skipif(not engine_ready(), reason="native library or exporter not available")


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return engine_bundle(tiny_bundle, tmp_path_factory, "llama")


def test_every_c_abi_misuse_case_gets_a_status_and_a_sentence(bundle, tmp_path):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    import run

    exe = run.build_abi_misuse(tmp_path)
    report = run.abi(bundle, timeout=600, log=lambda _m: None, exe=exe)
    s = report["summary"]
    bad = [r for r in report["rows"] if r["outcome"] != "ok"]
    assert s["cases"] >= 100
    assert s["crashes"] == 0 and s["hangs"] == 0, bad
    assert s["ok"] == s["cases"], bad
    assert len(s["es_cancel_return_ms"]) == 2  # both cancel-from-another-thread cases ran and returned
