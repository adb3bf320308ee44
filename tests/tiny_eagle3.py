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


def build_tiny_eagle3(
    target_dir,
    out,
    *,
    layer_ids=(0, 2, 3),
    draft_vocab: int | None = 256,
    seed: int = 7,
    hidden: int | None = None,
    heads: int = 4,
    kv_heads: int = 2,
    with_d2t: bool = True,
    with_embed: bool = False,
    layer_key: str = "eagle_config",
    architecture: str = "LlamaForCausalLMEagle3",
    std: float = 0.2,
    dtype: str = "float32",
) -> Path:
    """Write a random EAGLE-3 head for the HF Llama checkpoint at ``target_dir`` to ``out``.

    draft_vocab=None keeps the whole target vocabulary (d2t all zeros). layer_key "eagle_config"
    writes the published SpecForge form, None leaves the ids out (the default then applies).
    dtype "bfloat16" / "float16" stores the weights as published heads do (the maps stay integers).
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
        "torch_dtype": dtype,
    }
    if layer_key == "eagle_config":
        cfg["eagle_config"] = {"eagle_aux_hidden_state_layer_ids": list(layer_ids), "use_aux_hidden_state": True}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    cast = getattr(torch, dtype)
    tensors = {k: v.to(cast) if v.is_floating_point() else v for k, v in tensors.items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"))
    return out


def build_oracle_pair(out, tokenizer, layer_ids=(0, 2, 3), scale: float = 12.0) -> tuple[Path, Path]:
    """A tiny Llama target whose next token depends on the current token only, and an EAGLE-3
    head (full vocabulary, d2t zeros) that computes exactly that: its drafts are the target's
    argmax, so every drafted token is accepted.

    Target: every layer's o_proj and down_proj are zero, so each layer's output is the token's
    embedding e (rows of equal RMS r, zero in the upper half, a constant first coordinate) and the
    logits are lm_head(norm(e)). Head at position i reads (target features at i, token i + 1):
    fc = [I / r, 0, 0] makes its residual input e_i / r (RMS 1, unchanged by hidden_norm); q and
    k read only the constant coordinate of input_layernorm(e), so after RoPE the attention of a
    position peaks on itself (scale sets how sharply); v = input_layernorm(e) - hidden_norm(h) on
    the lower half, so residual + attention = e_{i+1} / r, whatever h was (the target's features
    or, in a chain, the head's own hidden state); the MLP adds nothing; norm and lm_head are the
    target's. The head's logits are then the target's logits for token i + 1, up to RMSNorm's eps.
    """
    import torch
    import transformers as tf
    from safetensors.torch import load_file, save_file
    from tiny import build_tiny

    out = Path(out)
    tdir = build_tiny("llama", out / "target", tokenizer=tokenizer, layers=4)
    model = tf.AutoModelForCausalLM.from_pretrained(tdir, dtype=torch.float32)
    cfg = model.config
    h, v = cfg.hidden_size, cfg.vocab_size
    half = h // 2
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = torch.zeros(v, h)
        rest = torch.randn(v, half - 1, generator=g)
        emb[:, 1:half] = rest / rest.norm(dim=-1, keepdim=True) * (h - 1) ** 0.5
        emb[:, 0] = 1.0  # so every row has RMS 1 and the same first coordinate
        model.model.embed_tokens.weight.copy_(emb)
    model.save_pretrained(tdir)
    r = 1.0  # the rows' RMS

    hd = build_tiny_eagle3(tdir, out / "head", layer_ids=layer_ids, draft_vocab=None)
    t = load_file(str(hd / "model.safetensors"))
    heads, kv_heads = 4, 2
    head_dim = h // heads
    fc = torch.zeros(h, 3 * h)
    fc[:, :h] = torch.eye(h) / r
    q = torch.zeros(heads * head_dim, 2 * h)
    q[:, 0] = scale  # reads input_layernorm(e)[0], the same for every token
    k = torch.zeros(kv_heads * head_dim, 2 * h)
    k[:, 0] = scale
    vw = torch.zeros(kv_heads * head_dim, 2 * h)
    vw[:half, :half] = torch.eye(half)  # + input_layernorm(e), lower half
    vw[:half, h : h + half] = -torch.eye(half)  # - hidden_norm(h), lower half
    o = torch.zeros(h, heads * head_dim)
    # q heads 0, 1 read kv head 0 (dims 0..15 of v), heads 2, 3 read kv head 1 (dims 16..31)
    o[:head_dim, :head_dim] = torch.eye(head_dim)
    o[head_dim : 2 * head_dim, 2 * head_dim : 3 * head_dim] = torch.eye(head_dim)
    sd = model.state_dict()
    t.update(
        {
            "fc.weight": fc,
            "midlayer.self_attn.q_proj.weight": q,
            "midlayer.self_attn.k_proj.weight": k,
            "midlayer.self_attn.v_proj.weight": vw,
            "midlayer.self_attn.o_proj.weight": o,
            "midlayer.mlp.down_proj.weight": torch.zeros_like(t["midlayer.mlp.down_proj.weight"]),
            "norm.weight": sd["model.norm.weight"].clone(),
            "lm_head.weight": sd["lm_head.weight"].clone(),
        }
    )
    save_file({key: val.contiguous() for key, val in t.items()}, str(hd / "model.safetensors"))
    return tdir, hd
