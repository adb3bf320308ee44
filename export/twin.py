"""The `twin` rung: a cost-realistic target that computes exactly what a small Llama computes.

    from edgespec.export.twin import widen_llama
    twin = widen_llama(small, hidden=2048, layers=20, intermediate=5632)   # ~1B parameters

Function-preserving widening (docs/performance.md, "A cost-realistic target"). The small model's computation
is embedded in the wide one and everything added contributes exactly zero:

* residual stream: the original H0 channels come first, the H1 - H0 new channels stay exactly 0
  through every layer (embedding columns are 0; every matrix writing into the residual, o_proj
  and down_proj, has zero rows there);
* RMSNorm: with zero padding, mean(x²) over H1 channels is (H0/H1)·mean(x²) over H0, so
  rms_1 = sqrt(H0/H1 · ms + eps_1). With eps_1 = eps_0 · H0/H1 this is exactly
  sqrt(H0/H1) · rms_0, and norm weights scaled by sqrt(H0/H1) give back the original output;
* attention: head_dim (and so the rotary embedding) is unchanged; original query heads keep
  attending with their own key/value heads (a group of g0 query heads per kv head is placed in a
  wider group of g1 >= g0), new heads have zero o_proj columns;
* MLP: new intermediate units have zero down_proj columns;
* new layers: o_proj and down_proj all zero, so the layer is a residual pass-through;
* lm_head: its columns for the new channels see only zeros.

Every weight whose value cannot matter (q/k/v/gate/up of new heads, units and layers, the input
columns that only ever meet the zero channels, lm_head's new columns) is filled with random
values of the original tensor's spread, so weight compression and compute cost what a real model
of this shape costs. Only Llama-architecture models without biases are supported.
"""

from __future__ import annotations

import copy
import math

from edgespec.errors import ExportError


def layer_positions(l0: int, l1: int) -> list[int]:
    """New indices of the original layers, spread evenly over l1 layers (strictly increasing)."""
    return [i * l1 // l0 for i in range(l0)]


def head_positions(n_heads0: int, n_kv0: int, g1: int) -> list[int]:
    """New index of each original query head: original group j (g0 heads sharing kv head j) goes to
    the first g0 slots of new group j, so it still reads kv head j."""
    g0 = n_heads0 // n_kv0
    return [(h // g0) * g1 + h % g0 for h in range(n_heads0)]


def widen_llama(model, hidden: int, layers: int, intermediate: int, kv_heads: int | None = None,
                seed: int = 0, context: int | None = None):
    """A wider, deeper LlamaForCausalLM whose logits equal ``model``'s (see the module docstring).

    Args:
        model: a transformers LlamaForCausalLM (any float dtype; the result is float32).
        hidden, layers, intermediate: the new sizes (each >= the original; hidden a multiple of
            head_dim).
        kv_heads: new number of key/value heads; default keeps the original query-per-kv group size.
        seed: for the random fill of the weights that cannot matter.
        context: a new max_position_embeddings (default: the source's). Rotary embeddings are
            computed from positions, so the twin still equals the source run at that length; beyond
            the length the source was trained on, its predictions are just not trained ones.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    c0 = model.config
    if getattr(c0, "model_type", None) != "llama":
        raise ExportError(f"the twin builder widens Llama models only; this one is {c0.model_type!r}.")
    if getattr(c0, "attention_bias", False) or getattr(c0, "mlp_bias", False):
        raise ExportError("the twin builder needs a Llama without attention/MLP biases.")
    h0, l0, i0 = c0.hidden_size, c0.num_hidden_layers, c0.intermediate_size
    nh0, nkv0 = c0.num_attention_heads, c0.num_key_value_heads
    d = getattr(c0, "head_dim", None) or h0 // nh0
    if nh0 * d != h0:
        raise ExportError("the twin builder needs hidden_size == num_attention_heads * head_dim.")
    if hidden < h0 or layers < l0 or intermediate < i0:
        raise ExportError(f"the twin must be at least as large as the source (hidden {h0}, layers {l0}, "
                          f"intermediate {i0}).")
    if hidden % d:
        raise ExportError(f"--hidden {hidden} must be a multiple of head_dim {d} (rotary must stay the same).")
    nh1 = hidden // d
    g0 = nh0 // nkv0
    nkv1 = kv_heads or nh1 // g0
    if nh1 % nkv1 or nh1 // nkv1 < g0 or nkv1 < nkv0:
        raise ExportError(f"{nkv1} kv heads do not fit: need {nh1} query heads divisible by it, groups of at "
                          f"least {g0} query heads and at least the source's {nkv0} kv heads.")
    g1 = nh1 // nkv1

    c1 = LlamaConfig(**{**c0.to_dict(), "hidden_size": hidden, "num_hidden_layers": layers,
                        "intermediate_size": intermediate, "num_attention_heads": nh1,
                        "num_key_value_heads": nkv1, "head_dim": d,
                        "rms_norm_eps": c0.rms_norm_eps * h0 / hidden,
                        "max_position_embeddings": context or c0.max_position_embeddings})
    c1.architectures = ["LlamaForCausalLM"]
    c1.torch_dtype = "float32"
    gen = torch.Generator().manual_seed(seed)
    src = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
    norm_scale = math.sqrt(h0 / hidden)

    def rand_like(shape, ref) -> torch.Tensor:
        std = float(ref.std()) if ref.numel() > 1 else 0.02
        return torch.randn(shape, generator=gen) * (std if std > 0 else 0.02)

    def norm(w0) -> torch.Tensor:
        w = torch.full((hidden,), float(w0.mean()) * norm_scale)
        w[:h0] = w0 * norm_scale
        return w

    heads = head_positions(nh0, nkv0, g1)
    q_rows = torch.cat([torch.arange(p * d, (p + 1) * d) for p in heads])  # new rows of original q heads
    kv_rows = torch.arange(nkv0 * d)  # original kv head j stays kv head j

    def layer(prefix0: str | None, prefix_ref: str) -> dict[str, torch.Tensor]:
        """Tensors of one new layer: a widened original (prefix0) or a pass-through (None)."""
        ref = {n: src[f"{prefix_ref}.{n}"] for n in _LAYER_TENSORS}
        out = {}
        for n, rows in (("self_attn.q_proj.weight", nh1 * d), ("self_attn.k_proj.weight", nkv1 * d),
                        ("self_attn.v_proj.weight", nkv1 * d), ("mlp.gate_proj.weight", intermediate),
                        ("mlp.up_proj.weight", intermediate)):
            out[n] = rand_like((rows, hidden), ref[n])
        out["self_attn.o_proj.weight"] = torch.zeros(hidden, nh1 * d)
        out["mlp.down_proj.weight"] = torch.zeros(hidden, intermediate)
        if prefix0 is None:
            out["input_layernorm.weight"] = norm(ref["input_layernorm.weight"])
            out["post_attention_layernorm.weight"] = norm(ref["post_attention_layernorm.weight"])
            return out
        w = {n: src[f"{prefix0}.{n}"] for n in _LAYER_TENSORS}
        out["self_attn.q_proj.weight"][q_rows, :h0] = w["self_attn.q_proj.weight"]
        out["self_attn.k_proj.weight"][kv_rows, :h0] = w["self_attn.k_proj.weight"]
        out["self_attn.v_proj.weight"][kv_rows, :h0] = w["self_attn.v_proj.weight"]
        out["self_attn.o_proj.weight"][:h0, q_rows] = w["self_attn.o_proj.weight"]
        out["mlp.gate_proj.weight"][:i0, :h0] = w["mlp.gate_proj.weight"]
        out["mlp.up_proj.weight"][:i0, :h0] = w["mlp.up_proj.weight"]
        out["mlp.down_proj.weight"][:h0, :i0] = w["mlp.down_proj.weight"]
        out["input_layernorm.weight"] = norm(w["input_layernorm.weight"])
        out["post_attention_layernorm.weight"] = norm(w["post_attention_layernorm.weight"])
        return out

    state: dict[str, torch.Tensor] = {}
    emb0 = src["model.embed_tokens.weight"]
    emb = torch.zeros(emb0.shape[0], hidden)
    emb[:, :h0] = emb0
    state["model.embed_tokens.weight"] = emb
    state["model.norm.weight"] = norm(src["model.norm.weight"])
    if not c0.tie_word_embeddings:
        head0 = src["lm_head.weight"]
        head = rand_like((head0.shape[0], hidden), head0)
        head[:, :h0] = head0
        state["lm_head.weight"] = head
    pos = layer_positions(l0, layers)
    orig_at = {p: i for i, p in enumerate(pos)}
    for j in range(layers):
        i = orig_at.get(j)
        ref = f"model.layers.{i if i is not None else j % l0}"
        for n, t in layer(f"model.layers.{i}" if i is not None else None, ref).items():
            state[f"model.layers.{j}.{n}"] = t

    with torch.device("meta"):
        twin = LlamaForCausalLM(c1)
    missing = set(twin.state_dict()) - set(state) - {"lm_head.weight"}
    if missing:
        raise ExportError(f"twin builder: no value for {sorted(missing)[:3]}")
    twin.load_state_dict(state, strict=False, assign=True)
    if c0.tie_word_embeddings:
        twin.tie_weights()
    # non-persistent buffers (the rotary inv_freq) are not in the state dict: rebuild them off meta
    twin.model.rotary_emb = type(model.model.rotary_emb)(config=c1)
    left = [n for n, t in list(twin.named_parameters()) + list(twin.named_buffers()) if t.is_meta]
    if left:
        raise ExportError(f"twin builder: {left[:3]} left without a value")
    twin.generation_config = copy.deepcopy(model.generation_config)
    return twin.eval()


_LAYER_TENSORS = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                  "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                  "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight")


def parameter_count(config) -> int:
    """Parameters of a Llama config without building it."""
    h, i, l, v = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    d = getattr(config, "head_dim", None) or h // config.num_attention_heads
    attn = h * config.num_attention_heads * d * 2 + h * config.num_key_value_heads * d * 2
    per_layer = attn + 3 * h * i + 2 * h
    return l * per_layer + v * h * (1 if config.tie_word_embeddings else 2) + h
