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


def test_onnx_external_data_must_stay_inside_the_bundle(tiny_bundle, tmp_path):
    """ONNX Runtime and OpenVINO read the external-data files an ONNX model names: inside the
    bundle they load (same output as inline weights); '..', absolute paths and links out are refused
    by Python and by the runtime before either reads the model, and a missing one is named."""
    from fuzz import EXTERNAL_DATA, externalize, make_canary, make_case, onnx_escape_cases, reseal

    from edgespec import Pipeline
    from edgespec.bundle import load, onnx_external_data

    base = link_tree(tiny_bundle("llama", drafts=1, weights="fp32", format="onnx"), tmp_path / "base")
    inside = make_canary(base, tmp_path / "inside")  # the target's weights in target/ext.data
    assert set(onnx_external_data(inside / "target" / "model.onnx")) == {EXTERNAL_DATA}
    load(inside)
    for backend in ("openvino", "onnxruntime"):
        f32 = {} if backend == "onnxruntime" else dict(precision="f32", kv_precision="f32")
        with Pipeline.load(base, backend=backend, **f32) as a, Pipeline.load(inside, backend=backend, **f32) as b:
            want = a.generate("def fib(n):", max_new_tokens=6, ignore_eos=True).tokens
            assert b.generate("def fib(n):", max_new_tokens=6, ignore_eos=True).tokens == want

    words = r"^The external data of the ONNX model target/model\.onnx names .*(climbs out of the bundle|is an absolute path|outside the bundle)"
    escapes = onnx_escape_cases(base)
    assert len(escapes) == 3
    for i, case in enumerate(escapes):
        d = make_case(base, case, tmp_path / f"case-{i}", inside)
        with pytest.raises(BundleError, match=words) as python:
            load(d)
        assert "\n" not in str(python.value) and str(python.value).endswith("re-export the bundle.")
        for backend in ("openvino", "onnxruntime"):
            with pytest.raises(BundleError, match=words):
                Pipeline.load(d, backend=backend)

    unlisted = link_tree(inside, tmp_path / "unlisted")  # external data added after export: never read unchecked
    manifest = json.loads((unlisted / "edgespec.json").read_text())
    del manifest["integrity"]["files"][f"target/{EXTERNAL_DATA}"]
    (unlisted / "edgespec.json").unlink()
    (unlisted / "edgespec.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"integrity table does not list .*target/ext\.data, which the runtime reads"):
        Pipeline.load(unlisted)

    missing = link_tree(base, tmp_path / "missing")
    externalize(missing / "target" / "model.onnx", "gone.data", None)
    reseal(missing)
    with pytest.raises(BundleError, match=r"The bundle is incomplete: .*target/gone\.data is missing"):
        load(missing)
    with pytest.raises(BundleError, match=r"The bundle is incomplete: .*target/gone\.data is missing"):
        Pipeline.load(missing)
