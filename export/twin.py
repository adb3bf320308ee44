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

An EAGLE-3 head of the small model widens the same way (``widen_eagle3``): its stream, embedding
and norms as above, q/k/v reading the two halves [embedding, stream] each at its new offset,
``fc`` reading the twin's three hidden states (each zero beyond H0) and writing zero rows into the
new channels, and the target layers it reads renumbered to where the twin put them (the hidden
state after original layer i is the twin's after layer ``layer_positions(l0, l1)[i]``).
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


def widen_llama(
    model,
    hidden: int,
    layers: int,
    intermediate: int,
    kv_heads: int | None = None,
    seed: int = 0,
    context: int | None = None,
):
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
        raise ExportError(
            f"the twin must be at least as large as the source (hidden {h0}, layers {l0}, intermediate {i0})."
        )
    nh1, nkv1, g1 = _check_widths(h0, nh0, nkv0, d, hidden, kv_heads)

    c1 = LlamaConfig(
        **{
            **c0.to_dict(),
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "intermediate_size": intermediate,
            "num_attention_heads": nh1,
            "num_key_value_heads": nkv1,
            "head_dim": d,
            "rms_norm_eps": c0.rms_norm_eps * h0 / hidden,
            "max_position_embeddings": context or c0.max_position_embeddings,
        }
    )
    c1.architectures = ["LlamaForCausalLM"]
    c1.torch_dtype = "float32"
    src = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
    fill = _Fill(seed, h0, hidden)
    rand_like, norm = fill.rand_like, fill.norm

    heads = head_positions(nh0, nkv0, g1)
    q_rows = torch.cat([torch.arange(p * d, (p + 1) * d) for p in heads])  # new rows of original q heads
    kv_rows = torch.arange(nkv0 * d)  # original kv head j stays kv head j

    def layer(prefix0: str | None, prefix_ref: str) -> dict[str, torch.Tensor]:
        """Tensors of one new layer: a widened original (prefix0) or a pass-through (None)."""
        ref = {n: src[f"{prefix_ref}.{n}"] for n in _LAYER_TENSORS}
        out = {}
        for n, rows in (
            ("self_attn.q_proj.weight", nh1 * d),
            ("self_attn.k_proj.weight", nkv1 * d),
            ("self_attn.v_proj.weight", nkv1 * d),
            ("mlp.gate_proj.weight", intermediate),
            ("mlp.up_proj.weight", intermediate),
        ):
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


class _Fill:
    """Random values for the weights that cannot matter, and norm weights rescaled for the zero channels."""

    def __init__(self, seed: int, h0: int, hidden: int):
        import torch

        self.gen = torch.Generator().manual_seed(seed)
        self.h0, self.hidden, self.scale = h0, hidden, math.sqrt(h0 / hidden)

    def rand_like(self, shape, ref):
        import torch

        std = float(ref.std()) if ref.numel() > 1 else 0.02
        return torch.randn(shape, generator=self.gen) * (std if std > 0 else 0.02)

    def norm(self, w0):
        import torch

        w = torch.full((self.hidden,), float(w0.mean()) * self.scale)
        w[: self.h0] = w0 * self.scale
        return w


def _check_widths(h0: int, nh0: int, nkv0: int, d: int, hidden: int, kv_heads: int | None) -> tuple[int, int, int]:
    """(query heads, kv heads, query heads per kv head) of the widened attention, or a clear error."""
    if hidden % d:
        raise ExportError(f"--hidden {hidden} must be a multiple of head_dim {d} (rotary must stay the same).")
    nh1 = hidden // d
    g0 = nh0 // nkv0
    nkv1 = kv_heads or nh1 // g0
    if nh1 % nkv1 or nh1 // nkv1 < g0 or nkv1 < nkv0:
        raise ExportError(
            f"{nkv1} kv heads do not fit: need {nh1} query heads divisible by it, groups of at "
            f"least {g0} query heads and at least the source's {nkv0} kv heads."
        )
    return nh1, nkv1, nh1 // nkv1


def widen_eagle3(
    head,
    hidden: int,
    intermediate: int,
    source_layers: int,
    layers: int,
    kv_heads: int | None = None,
    seed: int = 0,
    context: int | None = None,
):
    """An EAGLE-3 head for the twin of its target that drafts exactly what ``head`` drafts.

    Args:
        head: an ``Eagle3Head`` (edgespec.export.draft.eagle3_head) of the small target.
        hidden, intermediate, kv_heads, context: the twin's (as given to :func:`widen_llama`);
            the head's width becomes the twin's, so one call costs what a head of the twin costs.
        source_layers, layers: the small target's and the twin's layer counts (the target layers
            the head reads are renumbered with :func:`layer_positions`).
        seed: for the random fill of the weights that cannot matter.
    """
    import torch
    from edgespec.export.draft.eagle3 import aux_layers_of, head_config
    from edgespec.export.draft.eagle3_head import Eagle3Head

    c0 = head.config
    h0, i0 = c0.hidden_size, c0.intermediate_size
    nh0, nkv0 = c0.num_attention_heads, c0.num_key_value_heads
    d = getattr(c0, "head_dim", None) or h0 // nh0
    if getattr(c0, "target_hidden_size", h0) != h0:
        raise ExportError("the twin builder widens EAGLE-3 heads as wide as their target only.")
    if hidden < h0 or intermediate < i0 or layers < source_layers:
        raise ExportError(
            f"the twin must be at least as large as the source (hidden {h0}, intermediate {i0}, "
            f"layers {source_layers})."
        )
    nh1, nkv1, g1 = _check_widths(h0, nh0, nkv0, d, hidden, kv_heads)
    pos = layer_positions(source_layers, layers)
    aux = [pos[i] for i in aux_layers_of(c0)]
    c1 = head_config(c0, c0.draft_vocab_size, aux, intermediate)
    for key, val in (
        ("hidden_size", hidden),
        ("num_attention_heads", nh1),
        ("num_key_value_heads", nkv1),
        ("head_dim", d),
        ("rms_norm_eps", c0.rms_norm_eps * h0 / hidden),
        ("target_hidden_size", hidden),
        ("max_position_embeddings", context or c0.max_position_embeddings),
    ):
        setattr(c1, key, val)
    src = {k: v.detach().to(torch.float32) for k, v in head.state_dict().items()}
    fill = _Fill(seed, h0, hidden)
    q_rows = torch.cat([torch.arange(p * d, (p + 1) * d) for p in head_positions(nh0, nkv0, g1)])
    kv_rows = torch.arange(nkv0 * d)
    in_cols = torch.cat((torch.arange(h0), hidden + torch.arange(h0)))  # [embedding, stream] halves
    st: dict[str, torch.Tensor] = {}
    for n, rows, idx in (("q_proj", nh1 * d, q_rows), ("k_proj", nkv1 * d, kv_rows), ("v_proj", nkv1 * d, kv_rows)):
        w0 = src[f"midlayer.self_attn.{n}.weight"]
        w = fill.rand_like((rows, 2 * hidden), w0)
        w[idx[:, None], in_cols[None, :]] = w0
        st[f"midlayer.self_attn.{n}.weight"] = w
    o = torch.zeros(hidden, nh1 * d)
    o[:h0, q_rows] = src["midlayer.self_attn.o_proj.weight"]
    st["midlayer.self_attn.o_proj.weight"] = o
    for n in ("gate_proj", "up_proj"):
        w0 = src[f"midlayer.mlp.{n}.weight"]
        w = fill.rand_like((intermediate, hidden), w0)
        w[:i0, :h0] = w0
        st[f"midlayer.mlp.{n}.weight"] = w
    down = torch.zeros(hidden, intermediate)
    down[:h0, :i0] = src["midlayer.mlp.down_proj.weight"]
    st["midlayer.mlp.down_proj.weight"] = down
    for n in ("midlayer.hidden_norm", "midlayer.input_layernorm", "midlayer.post_attention_layernorm", "norm"):
        st[f"{n}.weight"] = fill.norm(src[f"{n}.weight"])
    fc0 = src["fc.weight"]
    fc = fill.rand_like((hidden, 3 * hidden), fc0)
    fc[h0:] = 0  # the stream's new channels stay exactly zero
    for j in range(3):
        fc[:h0, j * hidden : j * hidden + h0] = fc0[:, j * h0 : (j + 1) * h0]
    st["fc.weight"] = fc
    lm0 = src["lm_head.weight"]
    lm = fill.rand_like((lm0.shape[0], hidden), lm0)
    lm[:, :h0] = lm0
    st["lm_head.weight"] = lm
    emb = torch.zeros(src["embed_tokens.weight"].shape[0], hidden)
    emb[:, :h0] = src["embed_tokens.weight"]
    st["embed_tokens.weight"] = emb
    st["d2t"], st["t2d"] = head.d2t.clone(), head.t2d.clone()
    wide = Eagle3Head(c1)
    wide.load_state_dict(st)
    return wide.eval()


_LAYER_TENSORS = (
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
)


def parameter_count(config) -> int:
    """Parameters of a Llama config without building it."""
    h, i, n_layers, v = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    d = getattr(config, "head_dim", None) or h // config.num_attention_heads
    attn = h * config.num_attention_heads * d * 2 + h * config.num_key_value_heads * d * 2
    per_layer = attn + 3 * h * i + 2 * h
    return n_layers * per_layer + v * h * (1 if config.tie_word_embeddings else 2) + h
