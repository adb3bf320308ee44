"""Bad input through the Python API: a sentence naming the problem and the fix, never a crash;
and a soak test (hundreds of generations in one process, bounded memory)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from engine_support import engine_bundle, pipeline

from edgespec import Pipeline
from edgespec.errors import BundleError, EdgespecError


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return engine_bundle(tiny_bundle, tmp_path_factory, "llama")


def _copy(bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(bundle, out, symlinks=True)
    return out


def test_missing_bundle_says_the_path_does_not_exist(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        Pipeline.load(tmp_path / "nope")
    with pytest.raises(BundleError, match="not an edgespec bundle"):
        Pipeline.load(tmp_path)


def test_corrupt_manifest_and_other_schema_version_say_to_reexport(bundle, tmp_path):
    b = _copy(bundle, tmp_path)
    (b / "edgespec.json").write_text('{"schema_version": 1, "models": [')
    with pytest.raises(BundleError, match="not readable JSON.*re-export"):
        Pipeline.load(b)
    manifest = json.loads((bundle / "edgespec.json").read_text())
    manifest["schema_version"] = 2
    (b / "edgespec.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="schema version 2.*re-export"):
        Pipeline.load(b)


def test_missing_model_file_names_the_file(bundle, tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    manifest = json.loads((bundle / "edgespec.json").read_text())
    manifest["models"] = [m for m in manifest["models"] if m["role"] == "target"]
    (b / "target").mkdir()
    (b / "edgespec.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="openvino_model.xml is missing"):
        Pipeline.load(b)


def test_corrupt_model_file_is_an_error_not_a_crash(bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(bundle.resolve() / "target", b / "target")
    manifest = json.loads((bundle / "edgespec.json").read_text())
    manifest["models"] = [m for m in manifest["models"] if m["role"] == "target"]
    (b / "edgespec.json").write_text(json.dumps(manifest))
    (b / "target" / "openvino_model.xml").write_text("<net>garbage")
    with pytest.raises(
        BundleError, match=r"^The bundle file target/openvino_model.xml is shorter .*re-export the bundle\.$"
    ):
        Pipeline.load(b, draft=None)
    # Without the integrity table (an older bundle) OpenVINO reads it: its error is one sentence too.
    del manifest["integrity"]
    (b / "edgespec.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as e:
        Pipeline.load(b, draft=None)
    assert "openvino_model.xml" in str(e.value) and "\n" not in str(e.value) and "re-export the bundle." in str(e.value)


def test_unknown_device_lists_the_available_ones(bundle):
    from edgespec._native import DeviceError

    with pytest.raises(DeviceError, match="Device 'XPU' is not available.*available devices: .*CPU"):
        Pipeline.load(bundle, device="XPU")
    with pytest.raises(DeviceError, match="'NOPE'"):
        Pipeline.load(bundle, draft_device="NOPE")


def test_unknown_drafter_and_precision_are_named(bundle):
    with pytest.raises(EdgespecError, match="no drafter named 'big'.*draft, self"):
        Pipeline.load(bundle, draft="big")
    with pytest.raises(EdgespecError, match="Unknown precision 'f8'"):
        Pipeline.load(bundle, precision="f8")


def test_prompt_longer_than_the_context_is_a_context_error(bundle):
    from edgespec._native import ContextError

    pipe = pipeline(bundle, "draft")
    with pytest.raises(ContextError, match="tokens but the target's context holds 512; shorten the prompt"):
        pipe.generate("x = 1\n" * 600, max_new_tokens=4)


def test_text_that_is_not_utf8_is_refused_not_a_crash(bundle):
    """openvino-tokenizers crashes on malformed UTF-8 (b"Ume\\xf7 -="): the runtime refuses it first."""
    import ctypes

    from edgespec import _native

    pipe = pipeline(bundle, "draft")
    lib = _native.lib()
    for raw in (b"Ume\xf7 -=", b"\xff", b"ok \xc3", b"\xed\xa0\x80"):  # stray, invalid, cut short, surrogate
        n = ctypes.c_size_t(0)
        assert lib.es_tokenize(pipe._handle(), raw, None, ctypes.byref(n)) == 1  # ES_ERR_INVALID_ARGUMENT
        assert "not valid UTF-8" in _native.last_error()
        out = ctypes.c_void_p()
        cfg = lib.es_generation_default_config()
        status = lib.es_generate(
            pipe._handle(), raw, ctypes.byref(cfg), _native.STREAM_CALLBACK(0), None, ctypes.byref(out)
        )
        assert status == 1 and not out.value and "not valid UTF-8" in _native.last_error()
    assert pipe.tokenize("Grüße 🙂") == pipe.tokenize("Grüße 🙂")  # still usable


def test_invalid_generation_options_raise_a_sentence(bundle):
    pipe = pipeline(bundle, "draft")
    for kw, words in [
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"temperature": -0.5}, "temperature must be"),
        ({"top_p": 1.5}, "top_p must be in"),
        ({"k": 99}, "k must be -1"),
        ({"draft_window": 64}, "draft_window must be 0 .* or at least 128"),
        ({"policy": "beam"}, "Unknown policy 'beam'"),
        ({"beams": 2}, "Unknown generation option"),
    ]:
        with pytest.raises(EdgespecError, match=words):
            pipe.generate("x", **kw)
    plain = pipeline(bundle, None)
    with pytest.raises(EdgespecError, match="policy draft needs a drafter"):
        plain.generate("x", policy="draft")
    assert plain.generate("x", max_new_tokens=2, ignore_eos=True).stats.drafted == 0


def test_soak_hundreds_of_generations_keep_memory_flat(bundle):
    import psutil

    pipe = pipeline(bundle, "draft")
    proc = psutil.Process(os.getpid())
    policies = ("draft", "ngram", "autoregressive")

    def burst(n):
        for i in range(n):
            res = pipe.generate(
                "def fib(n):",
                max_new_tokens=6,
                policy=policies[i % 3],
                k=3,
                ignore_eos=True,
                temperature=0.8 if i % 2 else 0.0,
                seed=i,
                stop=["zzz"],
            )
            assert len(res.tokens) == 6

    burst(60)  # warm up allocator pools
    before = proc.memory_info().rss
    burst(300)
    grown_mb = (proc.memory_info().rss - before) / 2**20
    assert grown_mb < 15, f"RSS grew by {grown_mb:.1f} MB over 300 generations"
