"""ONNX bundles through the native loop, on both backends (OpenVINO reading the .onnx file, and
ONNX Runtime loaded at run time): greedy speculative == greedy autoregressive == the OpenVINO IR
bundle of the same tiny model == transformers; INT4 ONNX bundles run; bad input gets a sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_support import PROMPTS, engine_bundle, hf_greedy, pipeline, with_self_drafter

from edgespec import Pipeline
from edgespec.errors import BundleError, EdgespecError

ARCHS = ("llama", "qwen2")
BACKENDS = ("openvino", "onnxruntime")


@pytest.fixture(scope="module")
def onnx_bundles(tiny_bundle, tmp_path_factory):
    """fp32 ONNX bundles (target + random drafter "draft" + the target itself as drafter "self")."""
    return {
        arch: with_self_drafter(
            Path(tiny_bundle(arch, drafts=1, weights="fp32", format="onnx")),
            tmp_path_factory.mktemp(f"onnx-{arch}") / "bundle",
        )
        for arch in ARCHS
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_speculative_is_autoregressive_on_onnx_bundles(onnx_bundles, arch, backend):
    pipe = pipeline(onnx_bundles[arch], "draft", backend=backend)
    ran = "openvino-explicit-kv" if backend == "openvino" else backend
    assert pipe.info["target"]["backend"] == pipe.info["draft"]["backend"] == ran
    for prompt in PROMPTS:
        plain = pipe.generate(prompt, max_new_tokens=20, policy="autoregressive", ignore_eos=True)
        assert len(plain.tokens) == 20 and plain.stats.target_calls == 20
        for policy, k in (("draft", 1), ("draft", 3), ("draft", "auto"), ("ngram", 4)):
            spec = pipe.generate(prompt, max_new_tokens=20, policy=policy, k=k, ignore_eos=True)
            assert spec.tokens == plain.tokens, (policy, k, prompt)
    # Many rejected rounds: dead slots pile up, get compacted, and change nothing.
    long_plain = pipe.generate(PROMPTS[1], max_new_tokens=150, policy="autoregressive", ignore_eos=True)
    long_spec = pipe.generate(PROMPTS[1], max_new_tokens=150, policy="draft", k=8, ignore_eos=True)
    assert long_spec.tokens == long_plain.tokens
    assert long_spec.stats.drafted > long_spec.stats.accepted and long_spec.stats.kv_compactions > 0
    # The target as its own drafter: everything accepted, exact bookkeeping (k = 3, 22 tokens).
    st = (
        pipeline(onnx_bundles[arch], "self", backend=backend)
        .generate(PROMPTS[0], max_new_tokens=22, policy="draft", k=3, ignore_eos=True)
        .stats
    )
    assert st.drafted == st.accepted == 22 - st.target_calls and st.target_calls == 1 + 6


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_output_equals_openvino_ir_output_and_transformers(
    tiny_dir, tiny_tokenizer, tiny_bundle, tmp_path_factory, onnx_bundles, arch
):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ir = pipeline(engine_bundle(tiny_bundle, tmp_path_factory, arch), None)
    onnx = [pipeline(onnx_bundles[arch], None, backend=b) for b in BACKENDS]
    hf_dir = tiny_dir(arch, tokenizer=tiny_tokenizer)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(hf_dir)
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt").input_ids
        hf = hf_greedy(model, ids)
        want = ir.generate(prompt, max_new_tokens=20, policy="autoregressive")
        assert want.tokens == hf
        for pipe in onnx:
            got = pipe.generate(prompt, max_new_tokens=20, policy="autoregressive")
            assert got.tokens == want.tokens and got.text == want.text


@pytest.mark.parametrize("backend", BACKENDS)
def test_int4_onnx_bundle_runs_and_speculation_stays_lossless(tiny_bundle, backend):
    bundle = tiny_bundle("llama", drafts=1, weights="int4", format="onnx")
    manifest = json.loads((Path(bundle) / "edgespec.json").read_text())
    assert manifest["models"][0]["format"] == "onnx" and manifest["models"][0]["weights"]["precision"] == "int4"
    pipe = pipeline(Path(bundle), "draft", backend=backend)
    plain = pipe.generate(PROMPTS[0], max_new_tokens=24, policy="autoregressive", ignore_eos=True)
    spec = pipe.generate(PROMPTS[0], max_new_tokens=24, policy="draft", k=4, ignore_eos=True)
    assert len(plain.tokens) == 24 and spec.tokens == plain.tokens and plain.text


def test_bad_backend_input_is_a_sentence_not_a_crash(onnx_bundles, tiny_bundle, tmp_path_factory):
    ir_bundle = engine_bundle(tiny_bundle, tmp_path_factory, "llama")
    with pytest.raises(EdgespecError, match="onnxruntime backend runs ONNX bundles only.*--format onnx"):
        Pipeline.load(ir_bundle, backend="onnxruntime")
    with pytest.raises(EdgespecError, match="Unknown backend 'tensorrt'.*openvino-paged"):
        Pipeline.load(onnx_bundles["llama"], backend="tensorrt")
    with pytest.raises(EdgespecError, match="openvino-paged backend runs OpenVINO IR bundles.*is ONNX"):
        Pipeline.load(onnx_bundles["llama"], backend="openvino-paged")
    with pytest.raises(EdgespecError, match="precision 'bf16' cannot be set"):
        Pipeline.load(onnx_bundles["llama"], backend="onnxruntime", precision="bf16")


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "edgespec", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_cli_runs_onnx_bundles_on_onnxruntime_and_names_a_missing_library(onnx_bundles, tmp_path):
    bundle = onnx_bundles["llama"]
    r = _cli(
        "run",
        bundle,
        "def fib(n):",
        "--backend",
        "onnxruntime",
        "--draft",
        "draft",
        "--k",
        3,
        "--max-new-tokens",
        12,
        "--ignore-eos",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = pipeline(bundle, "draft", backend="onnxruntime").generate(
        "def fib(n):", max_new_tokens=12, k=3, ignore_eos=True
    )
    assert got["tokens"] == want.tokens and got["stats"]["drafted"] > 0
    # A missing ONNX Runtime library (a fresh process: the first library loaded serves a process).
    missing = tmp_path / "libonnxruntime.so"
    r = _cli("run", bundle, "x", "--backend", "onnxruntime", env={"EDGESPEC_ORT_LIBRARY": str(missing)})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "ONNX Runtime library could not be loaded" in r.stderr and str(missing) in r.stderr
    assert "pip install onnxruntime" in r.stderr


def test_python_api_names_a_library_that_is_not_onnxruntime(onnx_bundles):
    """In a fresh process: ort_library pointing at another shared library (libedgespec itself)."""
    code = (
        "import sys\n"
        "from edgespec import Pipeline, _native\n"
        "from edgespec.errors import BundleError\n"
        "try:\n"
        f"    Pipeline.load({str(onnx_bundles['llama'])!r}, backend='onnxruntime', ort_library=_native.lib()._name)\n"
        "except BundleError as e:\n"
        "    print(e); sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "is not an ONNX Runtime library" in r.stdout
    assert issubclass(BundleError, EdgespecError)
