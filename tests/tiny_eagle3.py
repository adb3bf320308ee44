"""Tiny random EAGLE-3 heads in the published checkpoint format, fitting a tiny Llama target.

    build_tiny_eagle3(target_dir, out_dir, layer_ids=(0, 2, 3))  ->  out_dir with config.json,
                                                                    model.safetensors

The format is what optimum-intel 2.2's EAGLE-3 export loads (docs/eagle3.md has the contract):
config `architectures` ["LlamaForCausalLMEagle3"], `model_type` llama, one hidden layer,
`vocab_size` = the target's, `draft_vocab_size`, `eagle_config.eagle_aux_hidden_state_layer_ids`;
weights without a `model.` prefix: `fc.weight` [H, 3H], `midlayer.*` (q/k/v over 2H),
`norm.weight`, `lm_head.weight` [draft_vocab, H], `d2t` int64 [draft_vocab]
(target id = draft id + d2t[draft id]), `t2d` bool [vocab]; no `embed_tokens.weight` (the
head reads the target's embedding), as in the published heads.

Options break one rule at a time, for the refusal tests (``hidden``, ``layer_ids``,
``with_d2t=False``, ``draft_vocab`` larger than the target's).
"""

from __future__ import annotations

import json
from pathlib import Path


def draft_vocabulary(target_vocab: int, draft_vocab: int, seed: int = 0) -> list[int]:
    """The target ids a reduced head keeps: the specials and low ids, then a random sample (sorted)."""
    import torch

    if draft_vocab >= target_vocab:
        return list(range(target_vocab))
    keep = list(range(min(draft_vocab // 2, target_vocab)))
    g = torch.Generator().manual_seed(seed)
    rest = torch.randperm(target_vocab - len(keep), generator=g)[: draft_vocab - len(keep)] + len(keep)
    return sorted(keep + rest.tolist())


def build_tiny_eagle3(target_dir, out, *, layer_ids=(0, 2, 3), draft_vocab: int | None = 256, seed: int = 7,
                      hidden: int | None = None, heads: int = 4, kv_heads: int = 2, with_d2t: bool = True,
                      with_embed: bool = False, layer_key: str = "eagle_config",
                      architecture: str = "LlamaForCausalLMEagle3", std: float = 0.2) -> Path:
    """Write a random EAGLE-3 head for the HF Llama checkpoint at ``target_dir`` to ``out``.

    draft_vocab=None keeps the whole target vocabulary (d2t all zeros). layer_key "eagle_config"
    writes the published SpecForge form, None leaves the ids out (the default then applies).
    """
    import torch
    from safetensors.torch import save_file

    tcfg = json.loads((Path(target_dir) / "config.json").read_text())
    vocab = int(tcfg["vocab_size"])
    h = int(hidden or tcfg["hidden_size"])
    dv = vocab if draft_vocab is None else int(draft_vocab)
    head_dim = h // heads
    inter = 2 * h
    g = torch.Generator().manual_seed(seed)

    def w(*shape):
        return (torch.randn(*shape, generator=g) * std).to(torch.float32)

    kept = draft_vocabulary(vocab, dv, seed) if dv <= vocab else list(range(dv))
    tensors = {
        "fc.weight": w(h, 3 * int(tcfg["hidden_size"])),
        "midlayer.hidden_norm.weight": torch.ones(h),
        "midlayer.input_layernorm.weight": torch.ones(h),
        "midlayer.post_attention_layernorm.weight": torch.ones(h),
        "midlayer.self_attn.q_proj.weight": w(heads * head_dim, 2 * h),
        "midlayer.self_attn.k_proj.weight": w(kv_heads * head_dim, 2 * h),
        "midlayer.self_attn.v_proj.weight": w(kv_heads * head_dim, 2 * h),
        "midlayer.self_attn.o_proj.weight": w(h, heads * head_dim),
        "midlayer.mlp.gate_proj.weight": w(inter, h),
        "midlayer.mlp.up_proj.weight": w(inter, h),
        "midlayer.mlp.down_proj.weight": w(h, inter),
        "norm.weight": torch.ones(h),
        "lm_head.weight": w(dv, h),
    }
    if with_d2t:
        ids = torch.tensor(kept, dtype=torch.int64)
        tensors["d2t"] = ids - torch.arange(len(kept), dtype=torch.int64)
        t2d = torch.zeros(vocab, dtype=torch.bool)
        t2d[ids[ids < vocab]] = True
        tensors["t2d"] = t2d
    if with_embed:
        tensors["embed_tokens.weight"] = w(vocab, h)
    cfg = {
        "architectures": [architecture],
        "model_type": "llama",
        "hidden_size": h,
        "intermediate_size": inter,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "num_hidden_layers": 1,
        "hidden_act": "silu",
        "rms_norm_eps": float(tcfg.get("rms_norm_eps", 1e-6)),
        "rope_theta": float(tcfg.get("rope_theta", (tcfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))),
        "max_position_embeddings": int(tcfg.get("max_position_embeddings", 512)),
        "vocab_size": vocab,
        "draft_vocab_size": dv,
        "bos_token_id": tcfg.get("bos_token_id"),
        "eos_token_id": tcfg.get("eos_token_id"),
        "pad_token_id": tcfg.get("pad_token_id"),
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }
    if layer_key == "eagle_config":
        cfg["eagle_config"] = {"eagle_aux_hidden_state_layer_ids": list(layer_ids), "use_aux_hidden_state": True}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"))
    return out
