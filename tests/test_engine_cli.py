"""`edgespec run` and `edgespec profile` end to end, as a subprocess (the profile in full: test_profile.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from engine_support import engine_bundle, pipeline


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return engine_bundle(tiny_bundle, tmp_path_factory, "llama")


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "edgespec", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_run_streams_the_text_and_prints_stats(bundle):
    r = cli(
        "run",
        bundle,
        "def fib(n):",
        "--max-new-tokens",
        16,
        "--precision",
        "f32",
        "--kv-precision",
        "f32",
        "--k",
        3,
        "--stats",
    )
    assert r.returncode == 0, r.stderr
    expected = pipeline(bundle, "draft").generate("def fib(n):", max_new_tokens=16, k=3)
    assert r.stdout == expected.text + "\n"
    assert "acceptance_rate" in r.stderr and "target_calls" in r.stderr


def test_run_json_reports_text_tokens_and_stats(bundle):
    r = cli(
        "run",
        bundle,
        "def fib(n):",
        "--max-new-tokens",
        8,
        "--draft",
        "none",
        "--json",
        "--precision",
        "f32",
        "--ignore-eos",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert len(rep["tokens"]) == 8 and rep["draft"] is None
    assert rep["stats"]["drafted"] == 0 and rep["stats"]["target_calls"] == 8
    assert rep["runtime"]["target"]["backend"] == "openvino-paged" and rep["runtime"]["draft"] is None


def test_run_errors_are_one_sentence_without_traceback(bundle, tmp_path):
    r = cli("run", tmp_path / "missing", "x")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = cli("run", bundle, "x", "--device", "XPU")
    assert r.returncode == 2 and "available devices" in r.stderr and "Traceback" not in r.stderr
    r = cli("run", bundle, "x", "--k", "lots")
    assert r.returncode == 2 and "--k must be" in r.stderr


def test_profile_compares_autoregressive_draft_and_ngram(bundle, tmp_path):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(["def fib(n):", "x = 1\ny = 2\n"]))
    # --no-save: this module's bundle is shared, and a saved profile would change its pipelines' defaults
    r = cli(
        "profile",
        bundle,
        "--drafts",
        "self",
        "--prompts",
        prompts,
        "--max-new-tokens",
        12,
        "--repeats",
        1,
        "--k",
        3,
        "--json",
        "--precision",
        "f32",
        "--no-save",
        "-o",
        tmp_path / "report",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)["configs"]
    assert set(rep) == {"openvino/plain", "openvino/self/k3", "openvino/self/adaptive", "openvino/ngram/k4"}
    assert rep["openvino/plain"]["speedup"] == 1.0
    assert rep["openvino/self/k3"]["acceptance_rate"] == 1.0 and rep["openvino/self/k3"]["mean_accepted"] > 2
    for m in rep.values():
        assert 0 <= m["other_share"] < 1
    assert not (bundle / "profiles").exists()
