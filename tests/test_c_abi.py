"""The C ABI as a C user sees it: the header is plain C, `cmake -S runtimes` builds the library
and the example app, the app streams a generation, and bad calls get a status + message."""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from engine_support import engine_bundle, pipeline

REPO = Path(__file__).resolve().parent.parent
HEADER_DIR = REPO / "runtimes" / "include"


def test_header_compiles_as_plain_c99(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "use.c"
    src.write_text(
        '#include "edgespec.h"\n'
        "int use(void) {\n"
        "  es_pipeline_params p = es_pipeline_default_params();\n"
        "  es_generation_config c = es_generation_default_config();\n"
        "  es_stats s; s.accepted_hist[ES_MAX_DRAFT] = 0;\n"
        "  (void)p; (void)c;\n"
        "  return ES_ABI_VERSION + (int)s.accepted_hist[ES_MAX_DRAFT] + (int)ES_FINISH_CALLBACK;\n"
        "}\n"
    )
    r = subprocess.run(
        [
            cc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            f"-I{HEADER_DIR}",
            "-c",
            str(src),
            "-o",
            str(tmp_path / "use.o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def c_build():
    """`cmake -S runtimes -B <dir>` + `cmake --build`: a real (incremental) build into a build
    directory cached under /tmp, keyed by this checkout's path."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    key = hashlib.sha1(str(REPO).encode()).hexdigest()[:10]
    build = Path("/tmp") / f"edgespec-c-abi-build-{key}"
    r = subprocess.run(
        ["cmake", "-S", str(REPO / "runtimes"), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    app = build / "examples" / "edgespec_stream"
    assert app.is_file()
    return app


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return engine_bundle(tiny_bundle, tmp_path_factory, "llama")


def test_example_app_streams_the_same_text_as_python(c_build, bundle):
    r = subprocess.run(
        [str(c_build), str(bundle), "def fib(n):", "24", "draft"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    expected = pipeline(bundle, "draft").generate("def fib(n):", max_new_tokens=24)
    assert r.stdout == expected.text + "\n"
    assert "generated_tokens=" in r.stderr and "draft=draft" in r.stderr
    assert f"tokens={len(expected.tokens)} " in r.stderr


def test_example_app_reports_a_missing_bundle_with_a_sentence(c_build, tmp_path):
    r = subprocess.run([str(c_build), str(tmp_path / "nope"), "x"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "error: No bundle at" in r.stderr and "does not exist" in r.stderr


def test_null_arguments_get_a_status_and_a_message_never_a_crash(bundle):
    from edgespec import _native

    lib = _native.lib()
    out = ctypes.c_void_p()
    assert lib.es_pipeline_load(None, None, ctypes.byref(out)) == 1
    assert "bundle_dir" in _native.last_error()
    assert lib.es_pipeline_load(str(bundle).encode(), None, None) == 1
    params = lib.es_pipeline_default_params()
    assert params.fixed_shapes == -1  # auto
    params.fixed_shapes = 2
    assert lib.es_pipeline_load(str(bundle).encode(), ctypes.byref(params), ctypes.byref(out)) == 1
    assert "fixed_shapes must be -1 (auto), 0 (off) or 1 (on)" in _native.last_error() and not out.value
    assert lib.es_generate(None, b"x", None, _native.STREAM_CALLBACK(), None, ctypes.byref(out)) == 1
    assert "pipeline" in _native.last_error()
    pipe = pipeline(bundle, "draft")
    assert lib.es_generate(pipe._h, None, None, _native.STREAM_CALLBACK(), None, ctypes.byref(out)) == 1
    assert "prompt" in _native.last_error()
    assert lib.es_result_stats(None, None) == 1
    assert lib.es_result_text(None) is None
    lib.es_result_free(None)
    lib.es_pipeline_free(None)
    n = ctypes.c_size_t(0)
    assert lib.es_tokenize(pipe._h, b"hello", None, ctypes.byref(n)) == 0 and n.value > 0
    small = ctypes.c_size_t(1)
    buf = (ctypes.c_int64 * 1)()
    assert lib.es_tokenize(pipe._h, b"hello world", buf, ctypes.byref(small)) == 6  # ES_ERR_BUFFER_TOO_SMALL
    assert small.value > 1


def test_generation_config_is_checked_with_a_sentence(bundle):
    from edgespec import _native

    lib = _native.lib()
    pipe = pipeline(bundle, "draft")
    cases = {
        "max_new_tokens": (0, "max_new_tokens must be at least 1"),
        "temperature": (-1.0, "temperature must be"),
        "top_p": (0.0, "top_p must be in (0, 1]"),
        "k": (_native.MAX_DRAFT + 1, "k must be -1"),
        "k_max": (0, "k_max must be between"),
        "top_k": (-3, "top_k must be"),
        "policy": (9, "policy must be one of"),
    }
    for field, (value, words) in cases.items():
        cfg = lib.es_generation_default_config()
        setattr(cfg, field, value)
        out = ctypes.c_void_p()
        status = lib.es_generate(pipe._h, b"x", ctypes.byref(cfg), _native.STREAM_CALLBACK(), None, ctypes.byref(out))
        assert status == 1 and out.value is None, field
        assert words in _native.last_error(), (field, _native.last_error())
