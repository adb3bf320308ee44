"""`export_bundle(format="onnx")`: bundle-level checks (the graph itself is tested in test_onnx_export.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edgespec import bundle

pytestmark = pytest.mark.slow


def ort_full_logits(path, ids):
    from edgespec.export.onnx_export import onnx_logits

    return onnx_logits(path, [ids])[0]


def test_onnx_bundle_with_a_drafter_is_valid_and_validated(tiny_bundle):
    import onnxruntime as ort

    b = bundle.load(tiny_bundle("llama", drafts=1, weights="int4", format="onnx"))
    for m in b.models:
        raw = m.raw
        # drafters default to INT8 under an INT4 target
        assert raw["format"] == "onnx" and raw["weights"]["precision"] == ("int4" if m.role == "target" else "int8")
        assert raw["weights"]["group_size"] in (16, 32, 64)
        assert raw["io"]["num_layers"] == raw["num_layers"]
        assert raw["validation"]["top1_agreement"] >= raw["validation"]["threshold"]
        sess = ort.InferenceSession(str(m.file("model")), providers=["CPUExecutionProvider"])
        assert "past_key_values.0.key" in {i.name for i in sess.get_inputs()}
        assert (m.dir / "openvino_tokenizer.xml").is_file() and (m.dir / "tokenizer.json").is_file()
    assert b.draft().relation == "same_vocab"


@pytest.mark.parametrize("arch", ["qwen2", "phi3"])
def test_onnx_fp16_logits_match_torch(tiny_bundle, tiny_dir, tiny_tokenizer, arch):
    import torch
    import transformers as tf

    b = bundle.load(tiny_bundle(arch, drafts=0, weights="fp16", format="onnx"))
    src = tiny_dir(arch, tokenizer=tiny_tokenizer)
    ids = tf.AutoTokenizer.from_pretrained(src)("def f(x):\n    return x * 2  # café")["input_ids"]
    with torch.no_grad():
        ref = tf.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)(torch.tensor([ids])).logits[0].numpy()
    got = ort_full_logits(b.target.file("model"), ids)
    assert np.abs(ref - got).max() < 0.1
    assert (ref.argmax(-1) == got.argmax(-1)).mean() >= 0.95
