"""Post-export validation: the exported model against the torch fp32 model, on a few prompts.

    ids = prompt_ids(src, prompts)
    ref = torch_logits(src, ids)                    # list of [T, V] float32 arrays
    got = openvino_logits(model_dir / xml, ids)     # same shapes, through the KV cache
    figures = compare(ref, got)                     # top1_agreement, max_abs_logit_diff, tokens

The exported model is run through its KV cache (first half of a prompt in one call, then one token
per call), so a broken cache shows up as disagreement, not only a broken prefill.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .source import Source

PROMPTS = (
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "The quick brown fox jumps over the lazy dog. Then the dog",
    "import os\nimport sys\n\nfor name in sorted(os.listdir(sys.argv[1])):\n",
    "Grüße aus München: café, naïve, 日本語 — and an emoji 🙂.",
)

# Minimum top-1 agreement with torch fp32 per precision: a floor that catches a *broken* export
# (wrong cache wiring, wrong weights: agreement near chance, 1/vocab), not a quality target.
# Measured on the tiny random models of tests/ (peaked but random logits, many low margins):
# fp32 1.0, fp16 0.99-1.0, int8 0.90-0.97, int4 (group 32/64) 0.39-0.57. Real checkpoints sit far
# higher (int4 ~0.9); pass min_agreement (--min-agreement) to demand more.
THRESHOLDS = {"fp32": 0.99, "fp16": 0.95, "int8": 0.80, "int4": 0.25}


def prompt_ids(src: Source, prompts: list[str] | None = None, max_tokens: int = 48, id_map=None) -> list[list[int]]:
    """Model input ids of the validation prompts.

    ``id_map`` (array: tokenizer id -> model id) serves trimmed drafters; otherwise ids beyond the
    embedding table are dropped.
    """
    out = []
    for p in prompts or PROMPTS:
        ids = src.tokenizer(p, add_special_tokens=True)["input_ids"]
        if id_map is not None:
            ids = [int(id_map[i]) for i in ids if 0 <= i < len(id_map)]
        ids = [i for i in ids if 0 <= i < src.logit_width]
        if len(ids) >= 2:
            out.append(ids[:max_tokens])
    return out or [[0, 0]]


def torch_logits(src: Source, ids: list[list[int]]) -> list[np.ndarray]:
    import torch
    import transformers as tf

    model = tf.AutoModelForCausalLM.from_pretrained(src.dir, dtype=torch.float32, use_safetensors=True)
    model.eval()
    out = []
    with torch.no_grad():
        for seq in ids:
            logits = model(torch.tensor([seq], dtype=torch.long)).logits[0]
            out.append(logits.float().numpy())
    del model
    return out


def torch_features(src: Source, ids: list[list[int]], layers: list[int]) -> list[np.ndarray]:
    """What an EAGLE-3 head reads: the outputs of the target's decoder ``layers``, concatenated
    ([T, 3H] per prompt; the residual stream after decoder layer i, taken by hooks)."""
    import torch
    import transformers as tf

    from .draft.eagle3 import layer_outputs

    model = tf.AutoModelForCausalLM.from_pretrained(src.dir, dtype=torch.float32, use_safetensors=True)
    model.eval()
    out = []
    # hooks on the layers: transformers hands the last layer's output back after the final norm,
    # while the runtime (and OpenVINO GenAI) tap the residual stream
    with torch.no_grad(), layer_outputs(model, layers) as cap:
        for seq in ids:
            model(torch.tensor([seq], dtype=torch.long))
            out.append(cap.features()[0].numpy())
    del model
    return out


def eagle3_torch_logits(model, ids: list[list[int]], feats: list[np.ndarray]) -> list[np.ndarray]:
    """An EAGLE-3 head's logits (draft vocabulary) over each prompt: position i reads the target's
    features at i and token i + 1 (so T - 1 rows)."""
    import torch

    out = []
    with torch.no_grad():
        for seq, f in zip(ids, feats):
            res = model(
                input_ids=torch.tensor([seq[1:]], dtype=torch.long),
                hidden_states=torch.from_numpy(f[None, :-1]).to(model.dtype),
            )
            out.append(res.logits[0].float().numpy())
    return out


def openvino_logits(xml: Path, ids: list[list[int]], hidden: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Logits for every position, first half of each prompt prefilled, then token by token.

    ``hidden`` ([T, features] per prompt) feeds an EAGLE-3 head's hidden_states input alongside."""
    import openvino as ov

    core = ov.Core()
    cm = core.compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"})
    names = {i.get_any_name() for i in cm.inputs}
    req = cm.create_infer_request()
    out = []
    for j, seq in enumerate(ids):
        req.reset_state()
        split = max(1, len(seq) // 2)
        chunks = [seq[:split]] + [[t] for t in seq[split:]]
        rows, pos = [], 0
        for chunk in chunks:
            n = len(chunk)
            feed = {
                "input_ids": np.array([chunk], dtype=np.int64),
                "attention_mask": np.ones((1, pos + n), dtype=np.int64),
            }
            if "position_ids" in names:
                feed["position_ids"] = np.arange(pos, pos + n, dtype=np.int64)[None]
            if "beam_idx" in names:
                feed["beam_idx"] = np.zeros(1, dtype=np.int32)
            if hidden is not None:
                feed["hidden_states"] = np.ascontiguousarray(hidden[j][None, pos : pos + n], dtype=np.float32)
            res = req.infer(feed)
            rows.append(np.asarray(res[cm.output(0)])[0, -n:].astype(np.float32))
            pos += n
        out.append(np.concatenate(rows, axis=0))
    return out


def compare(ref: list[np.ndarray], got: list[np.ndarray]) -> dict:
    """Top-1 agreement over all positions and the largest absolute logit difference."""
    agree = total = 0
    max_diff = 0.0
    for r, g in zip(ref, got):
        n = min(len(r), len(g))
        w = min(r.shape[-1], g.shape[-1])
        r, g = r[:n, :w], g[:n, :w]
        agree += int((r.argmax(-1) == g.argmax(-1)).sum())
        total += n
        max_diff = max(max_diff, float(np.abs(r - g).max()))
    return {
        "prompts": len(ref),
        "tokens": total,
        "top1_agreement": agree / max(total, 1),
        "max_abs_logit_diff": max_diff,
        "reference": "torch-fp32",
    }
