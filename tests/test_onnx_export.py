"""ONNX export (export/onnx_export.py): tiny random models with a KV cache, checked against torch.

Oracles: fp32 logits equal torch's (prefill with an empty past, then decode steps fed the presents);
int4/int8 logits equal torch's with the same round-to-nearest block quantization applied to its
weights, which proves the MatMulNBits graph is the intended one (agreement with the float model is
only recorded: random tiny models have near-ties that 4-bit noise flips); OpenVINO reads the same
files and gives ORT's logits, because the native runtime runs ONNX bundles through OpenVINO.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from edgespec.export.onnx_export import export_onnx, io_names, onnx_logits  # noqa: E402

from edgespec.errors import ExportError  # noqa: E402

pytestmark = pytest.mark.slow
ARCHS = ("llama", "qwen2", "phi3", "gpt2")
PROMPT = [5, 77, 301, 12, 9, 250, 44, 3, 180]  # 9 ids < 512: prefill 6, decode 1, verify 2


@pytest.fixture(scope="session")
def onnx_model(tiny_dir, tmp_path_factory):
    """Factory: onnx_model(arch, weights, **kw) -> (out_dir, export result), cached per session."""
    cache: dict = {}

    def make(arch: str, weights: str = "fp32", **kw):
        key = (arch, weights, tuple(sorted(kw.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"onnx-{arch}-{weights}")
            cache[key] = (
                out,
                export_onnx(tiny_dir(arch), out, weights=weights, progress=False, **kw),
            )
        return cache[key]

    return make


@pytest.fixture(scope="session")
def torch_model(tiny_dir):
    cache: dict = {}

    def load(arch: str):
        if arch not in cache:
            from transformers import AutoModelForCausalLM

            cache[arch] = AutoModelForCausalLM.from_pretrained(tiny_dir(arch)).eval()
        return cache[arch]

    return load


def torch_logits(model, ids) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


class Stepper:
    """Drives an exported graph the way a runtime does: explicit past, mask and positions."""

    def __init__(self, run, result: dict):
        self.run, self.io = run, result["io"]
        self.inputs, self.outputs = io_names(self.io["num_layers"])
        n_kv, hd = self.io["num_kv_heads"], self.io["head_dim"]
        self.past = [np.zeros((1, n_kv, 0, hd), np.float32) for _ in self.inputs[3:]]
        self.mask: list[int] = []

    def step(self, ids, positions=None, keep=None):
        """Feed ids; keep[j] = 0 masks out cache slot j from now on. Returns logits [seq, vocab]."""
        start = len(self.mask)
        self.mask += [1] * len(ids)
        if keep is not None:
            self.mask = [m * k for m, k in zip(self.mask, keep + [1] * len(self.mask))]
        positions = positions if positions is not None else list(range(start, start + len(ids)))
        feed = {
            "input_ids": np.array([ids], np.int64),
            "attention_mask": np.array([self.mask], np.int64),
            "position_ids": np.array([positions], np.int64),
        }
        feed.update(zip(self.inputs[3:], self.past))
        out = self.run(feed)
        self.past = out[1:]
        return out[0][0]


def ort_runner(out_dir):
    sess = ort.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    return lambda feed: sess.run(None, feed)


def ov_runner(out_dir, outputs):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(out_dir / "model.onnx")), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    request = compiled.create_infer_request()

    def run(feed):
        res = request.infer(feed)
        return [res[compiled.output(name)] for name in outputs]

    return run


def prefill_decode_verify(stepper) -> np.ndarray:
    """Logits for PROMPT via prefill(6) + decode(1) + verify(2) on one growing cache."""
    return np.concatenate([stepper.step(PROMPT[:6]), stepper.step(PROMPT[6:7]), stepper.step(PROMPT[7:])])


@pytest.mark.parametrize("arch", ARCHS)
def test_fp32_prefill_and_decode_through_the_kv_cache_match_torch(arch, onnx_model, torch_model):
    out, result = onnx_model(arch)
    stepper = Stepper(ort_runner(out), result)
    got = prefill_decode_verify(stepper)
    want = torch_logits(torch_model(arch), PROMPT)
    assert got.shape == want.shape == (len(PROMPT), result["io"]["outputs"]["logits"]["shape"][2])
    assert np.abs(got - want).max() < 1e-4
    io = result["io"]
    assert all(p.shape == (1, io["num_kv_heads"], len(PROMPT), io["head_dim"]) for p in stepper.past)


def test_onnx_logits_runs_prompts_through_the_cache_like_torch(onnx_model, torch_model):
    out, result = onnx_model("qwen2")
    prompts = [PROMPT, PROMPT[:2]]
    for got, ids in zip(onnx_logits(out / "model.onnx", prompts, result["io"]), prompts):
        assert np.abs(got - torch_logits(torch_model("qwen2"), ids)).max() < 1e-4
    assert onnx_logits(out / "model.onnx", [PROMPT])[0].shape == (
        len(PROMPT),
        512,
    )  # io read from graph


def test_io_contract_names_the_graph_inputs_and_outputs(onnx_model):
    out, result = onnx_model("llama")
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    io = result["io"]
    dtypes = {"tensor(int64)": "int64", "tensor(float)": "float32"}
    assert [i.name for i in sess.get_inputs()] == list(io["inputs"])
    assert [o.name for o in sess.get_outputs()] == list(io["outputs"])
    assert all(dtypes[i.type] == io["inputs"][i.name]["dtype"] for i in sess.get_inputs())
    assert io["past_key"].format(i=1) == "past_key_values.1.key"
    assert result["files"] == {"model": "model.onnx"}
    json.dumps(result)  # goes into the manifest as is


def test_masked_cache_slots_are_ignored_like_a_rolled_back_cache(onnx_model, torch_model):
    """A rejected draft token left in the cache with mask 0 does not change later logits."""
    out, result = onnx_model("llama")
    stepper = Stepper(ort_runner(out), result)
    stepper.step(PROMPT[:6])
    stepper.step([400, 401])  # slots 6, 7: rejected proposals, kept in the cache
    got = stepper.step(PROMPT[6:8], positions=[6, 7], keep=[1] * 6 + [0, 0])
    want = torch_logits(torch_model("llama"), PROMPT[:8])[6:8]
    assert np.abs(got - want).max() < 1e-4


def test_left_padded_batch_matches_the_unpadded_rows(onnx_model, torch_model):
    out, result = onnx_model("llama")
    inputs, _ = io_names(result["io"]["num_layers"])
    n_kv, hd = result["io"]["num_kv_heads"], result["io"]["head_dim"]
    short, full = PROMPT[:6], PROMPT[:9]
    feed = {
        "input_ids": np.array([[0, 0, 0] + short, full], np.int64),
        "attention_mask": np.array([[0, 0, 0] + [1] * 6, [1] * 9], np.int64),
        "position_ids": np.array([[0, 0, 0, *range(6)], list(range(9))], np.int64),
    }
    feed.update({n: np.zeros((2, n_kv, 0, hd), np.float32) for n in inputs[3:]})
    logits = ort_runner(out)(feed)[0]
    model = torch_model("llama")
    assert np.abs(logits[0, 3:] - torch_logits(model, short)).max() < 1e-4
    assert np.abs(logits[1] - torch_logits(model, full)).max() < 1e-4
    assert np.isfinite(logits).all()


# ------------------------------------------------------------------------------ quantized weights


def fake_quantize(model, bits: int, group: int):
    """Torch copy of `model` with ORT's asymmetric round-to-nearest block quantization applied to
    every weight MatMul (blocks of `group` along the input dimension, zero-padded)."""
    import copy

    from transformers.pytorch_utils import Conv1D

    model = copy.deepcopy(model)
    if model.lm_head.weight is model.get_input_embeddings().weight:
        # tied: the graph quantizes the lm_head MatMul but keeps the embedding Gather float
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    qmax = 2**bits - 1
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, (torch.nn.Linear, Conv1D)):
                continue
            w = module.weight if isinstance(module, torch.nn.Linear) else module.weight.T  # [out, in]
            out_f, in_f = w.shape
            blocks = torch.nn.functional.pad(w, (0, -in_f % group)).view(out_f, -1, group)
            lo = blocks.amin(-1, keepdim=True).clamp(max=0)
            hi = blocks.amax(-1, keepdim=True).clamp(min=0)
            scale = torch.where(hi > lo, (hi - lo) / qmax, torch.ones_like(hi))
            zero = torch.round(-lo / scale).clamp(0, qmax)
            deq = (torch.round(blocks / scale + zero).clamp(0, qmax) - zero) * scale
            deq = deq.view(out_f, -1)[:, :in_f]
            module.weight.copy_(deq if isinstance(module, torch.nn.Linear) else deq.T)
    return model


def count_weight_matmuls(model) -> int:
    from transformers.pytorch_utils import Conv1D

    return sum(isinstance(m, (torch.nn.Linear, Conv1D)) for m in model.modules())


@pytest.mark.parametrize("arch,weights", [(a, "int4") for a in ARCHS] + [("llama", "int8")])
def test_quantized_export_is_matmulnbits_and_equals_the_fake_quantized_torch_model(
    arch, weights, onnx_model, torch_model, record_property
):
    import onnx

    bits = int(weights[3:])
    out, result = onnx_model(arch, weights)
    graph = onnx.load(str(out / "model.onnx"))
    nbits = [n for n in graph.graph.node if n.op_type == "MatMulNBits"]
    model = torch_model(arch)
    assert len(nbits) == result["weights"]["quantized_matmuls"] == count_weight_matmuls(model)
    assert {a.i for n in nbits for a in n.attribute if a.name == "bits"} == {bits}

    got = prefill_decode_verify(Stepper(ort_runner(out), result))
    want = torch_logits(fake_quantize(model, bits, 128), PROMPT)
    assert got.shape == want.shape and np.isfinite(got).all()
    # int8: ORT's kernel occasionally lands one step off this rounding (errors ~1e-3, against ~0.3
    # for the float model); int4 matches to float noise.
    assert np.abs(got - want).max() < (1e-3 if bits == 4 else 1e-2)

    ref = torch_logits(model, PROMPT)
    agreement = float((got.argmax(-1) == ref.argmax(-1)).mean())
    record_property(f"{arch}_{weights}_top1_agreement", agreement)
    record_property(f"{arch}_{weights}_max_logit_diff", float(np.abs(got - ref).max()))


def test_fp16_export_keeps_float32_io_and_stays_close_to_torch(onnx_model, torch_model):
    out, result = onnx_model("llama", "fp16")
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert {i.type for i in sess.get_inputs()[3:]} == {o.type for o in sess.get_outputs()} == {"tensor(float)"}
    got = prefill_decode_verify(Stepper(ort_runner(out), result))
    assert np.abs(got - torch_logits(torch_model("llama"), PROMPT)).max() < 0.05


# --------------------------------------------------------------------- OpenVINO, files, errors


@pytest.mark.parametrize("arch,weights", [(a, "fp32") for a in ARCHS] + [("llama", "int4")])
def test_openvino_reads_the_onnx_model_and_gives_the_ort_logits(arch, weights, onnx_model):
    pytest.importorskip("openvino")
    out, result = onnx_model(arch, weights)
    _, outputs = io_names(result["io"]["num_layers"])
    via_ov = prefill_decode_verify(Stepper(ov_runner(out, outputs), result))
    via_ort = prefill_decode_verify(Stepper(ort_runner(out), result))
    assert np.abs(via_ov - via_ort).max() < 1e-4


def test_external_data_is_one_file_beside_the_graph(onnx_model):
    out, result = onnx_model("qwen2", "fp32", external_data=True)
    assert result["files"] == {"model": "model.onnx", "model_data": "model.onnx.data"}
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert (out / "model.onnx").stat().st_size < 100_000  # the weights live in the .data file
    assert np.isfinite(Stepper(ort_runner(out), result).step(PROMPT[:4])).all()


def test_bad_input_raises_export_error_and_writes_nothing(tmp_path, tiny_dir):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    cases = [
        (dict(hf_dir=tmp_path / "missing"), "config.json"),
        (dict(hf_dir=tmp_path / "bert"), "'bert' architecture"),
        (dict(hf_dir=tiny_dir("llama"), group_size=100), "power of two"),
        (dict(hf_dir=tiny_dir("llama"), group_size=None), "group size"),
        (dict(hf_dir=tiny_dir("llama"), weights="int3"), "int3"),
    ]
    for kw, words in cases:
        out = tmp_path / "out"
        with pytest.raises(ExportError, match=words):
            export_onnx(out_dir=out, progress=False, **kw)
        assert not out.exists() or not any(out.iterdir())
