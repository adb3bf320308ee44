"""`export_bundle` to OpenVINO: tiny models of four families, checked against torch by the test itself."""

from __future__ import annotations

import numpy as np
import pytest

from edgespec import bundle

pytestmark = pytest.mark.slow

PROMPT = "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1)"


def torch_logits(model_dir, ids):
    import torch
    import transformers as tf

    m = tf.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].numpy()


def ov_logits(xml, ids, split=None):
    """Full-sequence logits from a stateful IR, prefilled in two chunks to go through the KV cache."""
    import openvino as ov

    cm = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"})
    req = cm.create_infer_request()
    split = split or len(ids) // 2
    rows, pos = [], 0
    for chunk in (ids[:split], ids[split:]):
        n = len(chunk)
        res = req.infer(
            {
                "input_ids": np.array([chunk]),
                "attention_mask": np.ones((1, pos + n), np.int64),
                "position_ids": np.arange(pos, pos + n)[None],
                "beam_idx": np.zeros(1, np.int32),
            }
        )
        rows.append(res[cm.output(0)][0])
        pos += n
    return np.concatenate(rows)


def prompt_ids(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)(PROMPT)["input_ids"]


def test_fixture_bundle_is_a_valid_int4_bundle_with_a_same_vocab_drafter(tiny_bundle):
    b = bundle.load(tiny_bundle("llama", drafts=1, weights="int4"))
    assert [m.role for m in b.models] == ["target", "draft"]
    t, d = b.target.raw, b.draft().raw
    assert t["weights"]["precision"] == "int4" and t["weights"]["group_size"] in (32, 64)
    assert d["name"] == "draft" and d["weights"]["precision"] == "int8"  # its directory's name; INT8 by default
    assert b.manifest["export"]["weights"] == "int4" and b.manifest["export"]["draft_weights"] == "int8"
    assert d["relation"] == {"kind": "same_vocab"}
    assert t["tokenizer"]["vocab_hash"] == d["tokenizer"]["vocab_hash"]
    assert t["io"]["stateful"] is True and t["io"]["has_position_ids"] is True
    assert t["special_tokens"] == {"bos": 1, "eos": [2], "pad": 0}
    assert t["context_length"] == 512 and t["num_layers"] == 2 and d["num_layers"] == 1
    for m in (t, d):
        v = m["validation"]
        assert v["reference"] == "torch-fp32" and v["tokens"] > 50
        assert v["top1_agreement"] >= v["threshold"]
    for m in b.models:
        for key in ("model", "tokenizer", "detokenizer"):
            assert m.file(key).is_file()
        assert (m.dir / "tokenizer.json").is_file() and (m.dir / "config.json").is_file()


def test_openvino_genai_loads_the_target_and_generates(tiny_bundle):
    genai = pytest.importorskip("openvino_genai")
    path = tiny_bundle("llama", drafts=1, weights="int4")
    pipe = genai.LLMPipeline(str(path / "target"), "CPU")
    cfg = genai.GenerationConfig()
    cfg.max_new_tokens = 8
    cfg.ignore_eos = True
    out = pipe.generate("def f(x):", cfg)
    assert isinstance(out, str) and len(out) > 0


def test_openvino_tokenizer_ir_round_trips_text(tiny_bundle):
    import openvino as ov
    import openvino_tokenizers  # noqa: F401  (registers the tokenizer ops)

    b = bundle.load(tiny_bundle("llama", drafts=1, weights="int4"))
    core = ov.Core()
    tok = core.compile_model(str(b.target.file("tokenizer")), "CPU")
    detok = core.compile_model(str(b.target.file("detokenizer")), "CPU")
    text = "s = 'Grüße, 世界' # café"
    ids = tok([text])["input_ids"]
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(b.target.dir)
    assert ids[0].tolist() == hf(text)["input_ids"]
    assert detok(ids)["string_output"][0] == text


@pytest.mark.parametrize("arch", ["qwen2", "phi3", "gpt2"])
def test_each_family_exports_to_int4_and_runs(tiny_bundle, tiny_dir, tiny_tokenizer, arch):
    b = bundle.load(tiny_bundle(arch, drafts=0, weights="int4"))
    t = b.target.raw
    assert t["model_type"] == arch and t["weights"]["precision"] == "int4"
    assert t["validation"]["top1_agreement"] >= 0.25  # recorded; far above chance (1/512)
    ids = prompt_ids(tiny_dir(arch, tokenizer=tiny_tokenizer))
    got = ov_logits(b.target.file("model"), ids)
    assert got.shape == (len(ids), t["vocab_size"]) and np.isfinite(got).all()


@pytest.mark.parametrize(
    "arch,weights,max_diff,min_agree",
    [
        ("llama", "fp16", 0.1, 0.95),
        ("qwen2", "int8", 1.5, 0.8),
    ],
)
def test_fp16_and_int8_logits_match_torch(tiny_bundle, tiny_dir, tiny_tokenizer, arch, weights, max_diff, min_agree):
    b = bundle.load(tiny_bundle(arch, drafts=0, weights=weights))
    src = tiny_dir(arch, tokenizer=tiny_tokenizer)
    ids = prompt_ids(src)
    ref = torch_logits(src, ids)
    got = ov_logits(b.target.file("model"), ids)
    assert np.abs(ref - got).max() < max_diff
    assert (ref.argmax(-1) == got.argmax(-1)).mean() >= min_agree
    assert b.target.raw["weights"]["bytes"] < (src / "model.safetensors").stat().st_size


def test_fp32_export_is_exact_through_the_kv_cache(tiny_bundle, tiny_dir, tiny_tokenizer):
    b = bundle.load(tiny_bundle("llama", drafts=1, weights="fp32"))  # shared with the engine tests
    assert b.target.raw["validation"]["top1_agreement"] == 1.0
    assert b.target.raw["validation"]["max_abs_logit_diff"] < 1e-3
