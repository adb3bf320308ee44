"""Broken bundles: a flipped byte or a cut file in any kind of file, manifest keys removed or
retyped, paths that leave the bundle. Each ends in a clean load or one sentence, never a crash or
a hang (the CI-size slice of `lab/reliability/run.py fuzz`; the full run is in docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from engine_support import engine_bundle, engine_ready, link_tree

from edgespec.errors import BundleError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lab" / "reliability"))

pytestmark = pytest.mark.skipif(not engine_ready(), reason="native library or exporter not available")


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return engine_bundle(tiny_bundle, tmp_path_factory, "llama")


def _copy(bundle: Path, out: Path) -> Path:
    link_tree(bundle, out)
    return out


def test_fuzzed_bundles_load_cleanly_or_answer_one_sentence(bundle):
    import run

    report = run.fuzz(bundle, quick=True, limit=None, timeout=600, seed=0, log=lambda _m: None)
    s = report["summary"]
    findings = [r for r in report["rows"] if r["outcome"] != "error" or not r["one_sentence"] or r["read_outside"]]
    assert s["cases"] >= 10
    assert s["crashes"] == s["hangs"] == s["unexpected"] == s["not_one_sentence"] == s["read_outside"] == 0, findings
    assert s["errors"] == s["cases"], findings  # every quick case breaks the bundle


def test_the_fuzzer_has_hundreds_of_cases_over_every_file_kind(bundle):
    from fuzz import cases, model_files

    all_cases = cases(bundle)
    assert len(all_cases) >= 300
    kinds = {c.kind for c in all_cases}
    assert {"flip", "truncate", "append", "manifest", "integrity", "json", "escape", "legacy"} <= kinds
    for rel in model_files(bundle):
        assert any(c.name.endswith(f"byte of {rel}") for c in all_cases), rel


def test_a_flipped_byte_names_the_file_and_the_fix(bundle, tmp_path):
    from edgespec import Pipeline

    b = _copy(bundle, tmp_path / "b")
    f = b / "target" / "openvino_tokenizer.bin"  # the tokenizer extension would crash on this one
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.unlink()
    f.write_bytes(bytes(data))
    with pytest.raises(
        BundleError,
        match=r"^The bundle file target/openvino_tokenizer.bin does not match the digest.*re-export the bundle\.$",
    ):
        Pipeline.load(b)


def test_a_truncated_file_fails_even_without_hashing(bundle, tmp_path):
    from edgespec import Pipeline

    b = _copy(bundle, tmp_path / "b")
    f = b / "draft" / "openvino_model.bin"
    data = f.read_bytes()
    f.unlink()
    f.write_bytes(data[:-1])
    with pytest.raises(BundleError, match="draft/openvino_model.bin is shorter"):
        Pipeline.load(b, verify=False)


def test_integrity_is_reported_and_bundles_without_it_still_load(bundle, tmp_path):
    from edgespec import Pipeline

    assert Pipeline.load(bundle, draft=None).info["integrity"] == "verified"
    assert Pipeline.load(bundle, draft=None, verify=False).info["integrity"] == "sizes"
    old = _copy(bundle, tmp_path / "old")
    manifest = json.loads((old / "edgespec.json").read_text())
    del manifest["integrity"]
    (old / "edgespec.json").unlink()
    (old / "edgespec.json").write_text(json.dumps(manifest))
    pipe = Pipeline.load(old, draft=None)
    assert pipe.info["integrity"] == "none"
    assert len(pipe.generate("def fib(n):", max_new_tokens=3, ignore_eos=True).tokens) == 3


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink_dir", "symlink_file", "symlink_manifest"])
def test_paths_that_leave_the_bundle_are_refused_by_python_and_the_runtime(bundle, tmp_path, how):
    from edgespec import Pipeline
    from edgespec.bundle import load

    outside = _copy(bundle, tmp_path / "outside")  # a working copy: an escape would load cleanly
    b = _copy(bundle, tmp_path / "b")
    manifest = json.loads((b / "edgespec.json").read_text())
    target = next(m for m in manifest["models"] if m["role"] == "target")
    if how == "dotdot":
        target["files"]["tokenizer"] = "../../outside/target/openvino_tokenizer.xml"
    elif how == "absolute":
        target["path"] = str(outside / "target")
    elif how == "symlink_dir":
        shutil.rmtree(b / "target")
        os.symlink(outside / "target", b / "target")
    elif how == "symlink_file":
        (b / "target" / "openvino_model.bin").unlink()
        os.symlink(outside / "target" / "openvino_model.bin", b / "target" / "openvino_model.bin")
    (b / "edgespec.json").unlink()
    if how == "symlink_manifest":
        os.symlink(outside / "edgespec.json", b / "edgespec.json")
    else:
        (b / "edgespec.json").write_text(json.dumps(manifest))
    words = r"(climbs out of the bundle|is an absolute path|outside the bundle)"
    with pytest.raises(BundleError, match=words):
        load(b)
    with pytest.raises(BundleError, match=words):
        Pipeline.load(b)
