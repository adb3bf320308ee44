"""The light side: import hygiene, the native library, doctor, and the bundle schema."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgespec import bundle
from edgespec.errors import BundleError


def run_cli(*args, check=False):
    return subprocess.run([sys.executable, "-m", "edgespec", *args], capture_output=True, text=True, check=check)


def test_runtime_side_imports_without_torch_or_transformers():
    code = (
        "import sys, edgespec, edgespec.bundle, edgespec.cli, edgespec._native as n; n.versions();"
        "bad=[m for m in ('torch','transformers','optimum','nncf') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, f"runtime side imported heavy modules: {r.stdout} {r.stderr}"


def test_native_library_reports_openvino_version_and_cpu_device():
    import openvino as ov

    from edgespec import _native

    v = _native.versions()
    import re
    from pathlib import Path

    header = (Path(__file__).resolve().parents[1] / "runtimes" / "include" / "edgespec.h").read_text()
    abi = int(re.search(r"#define ES_ABI_VERSION (\d+)", header).group(1))
    assert v["abi_version"] == abi == _native.ABI_VERSION  # library, header and ctypes mirror agree
    assert v["openvino"] == ov.get_version()
    assert "CPU" in v["devices"]


def test_doctor_json_lists_versions_devices_and_export_extra():
    r = run_cli("doctor", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert "CPU" in rep["native"]["devices"]
    assert rep["export_ready"] is True
    assert rep["export_extra"]["torch"].endswith("+cpu")


def test_help_and_version():
    r = run_cli("--help")
    assert r.returncode == 0 and "doctor" in r.stdout
    r = run_cli("--version")
    assert r.returncode == 0 and "0.1.0" in r.stdout


def test_native_two_call_string_query_reports_needed_size():
    import ctypes

    from edgespec import _native

    h = _native.lib()
    size = ctypes.c_size_t(0)
    assert h.es_available_devices(None, ctypes.byref(size)) == 0
    need = size.value
    small = ctypes.c_size_t(1)
    buf = ctypes.create_string_buffer(1)
    assert h.es_available_devices(buf, ctypes.byref(small)) == 6  # ES_ERR_BUFFER_TOO_SMALL
    assert small.value == need
    assert "too small" in _native.last_error()


def _manifest(**over):
    m = {
        "name": "target",
        "role": "target",
        "path": "target",
        "format": "openvino",
        "files": {
            "model": "openvino_model.xml",
            "tokenizer": "openvino_tokenizer.xml",
            "detokenizer": "openvino_detokenizer.xml",
        },
        "weights": {"precision": "int4", "group_size": 128},
        "vocab_size": 512,
        "tokenizer": {"vocab_hash": "sha256:00", "size": 512},
        "special_tokens": {"eos": [2]},
        "context_length": 512,
    }
    m.update(over)
    return {"schema_version": 1, "producer": {"name": "edgespec", "version": "0.1.0"}, "models": [m]}


def test_manifest_schema_accepts_a_valid_manifest():
    bundle.validate_manifest(_manifest())


@pytest.mark.parametrize(
    "change, words",
    [
        ({"role": "boss"}, "models/0/role"),
        ({"format": "gguf"}, "models/0/format"),
        ({"weights": {"precision": "int3"}}, "precision"),
    ],
)
def test_manifest_schema_rejects_bad_fields_with_the_field_named(change, words):
    with pytest.raises(BundleError, match=words):
        bundle.validate_manifest(_manifest(**change))


def test_manifest_of_another_schema_version_says_to_reexport():
    m = _manifest()
    m["schema_version"] = 99
    with pytest.raises(BundleError, match="re-export"):
        bundle.validate_manifest(m)


def test_load_missing_bundle_is_a_sentence(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        bundle.load(tmp_path / "nope")
    with pytest.raises(BundleError, match="not an edgespec bundle"):
        bundle.load(tmp_path)
    (tmp_path / "edgespec.json").write_text("{not json")
    with pytest.raises(BundleError, match="not readable JSON"):
        bundle.load(tmp_path)


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "b"
    with pytest.raises(RuntimeError):
        with bundle.atomic_directory(out) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_refuses_non_empty_output_without_force(tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(BundleError, match="--force"):
        with bundle.atomic_directory(out):
            pass
    with bundle.atomic_directory(out, force=True) as tmp:
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in out.iterdir()) == ["new"]


def test_vocab_hash_depends_on_ids_not_dict_order():
    a = bundle.vocab_hash({"a": 0, "b": 1})
    assert a == bundle.vocab_hash({"b": 1, "a": 0})
    assert a != bundle.vocab_hash({"a": 1, "b": 0})
