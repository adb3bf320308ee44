"""The EAGLE-3 head as a torch module, in the published checkpoint format.

It computes exactly what optimum-intel's ``LlamaEagle3ForCausalLM`` (optimum/exporters/openvino/
model_patcher.py, the class the OpenVINO export loads) computes, so an exported head drafts what
was trained. tests/test_eagle3_train.py checks the equality on the same weights. One call at position p:

    x_p  = fc(concat(f_a, f_b, f_c))        the target's hidden states after layers a, b, c (3·H_t wide)
           or g (H wide)                    the head's own pre-norm output of the previous draft step
    u    = concat(input_layernorm(embed(token)), hidden_norm(x_p))      (2·H wide: q/k/v read 2·H)
    y    = x_p + o_proj(attention(u))                                   (RoPE at position p, causal)
    g    = y + mlp(post_attention_layernorm(y))                         (fed back to the next step)
    logits = lm_head(norm(g))                                           (draft_vocab_size rows)

Draft id i stands for target id ``i + d2t[i]``; ``t2d[v]`` says whether target id v has a row.
The state-dict names are those of published heads: ``fc.weight``, ``midlayer.*``, ``norm.weight``,
``lm_head.weight``, ``embed_tokens.weight`` (the target's table, frozen), ``d2t``, ``t2d``.

This file imports torch at module level; the rest of the package imports it only inside functions.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.llama.modeling_llama import (
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)


class _Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        h = config.hidden_size
        self.n_heads, self.n_kv = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or h // self.n_heads
        self.scale = self.head_dim**-0.5
        self.q_proj = nn.Linear(2 * h, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(2 * h, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(2 * h, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, h, bias=False)

    def expand_kv(self, t):
        """[B, n_kv, S, d] -> [B, n_heads, S, d] (grouped-query attention)."""
        rep = self.n_heads // self.n_kv
        return t if rep == 1 else t.repeat_interleave(rep, dim=1)


class _MidLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        h, eps = config.hidden_size, config.rms_norm_eps
        self.self_attn = _Attention(config)
        self.mlp = LlamaMLP(config)
        self.hidden_norm = LlamaRMSNorm(h, eps=eps)
        self.input_layernorm = LlamaRMSNorm(h, eps=eps)
        self.post_attention_layernorm = LlamaRMSNorm(h, eps=eps)


class Eagle3Head(nn.Module):
    """One EAGLE-3 draft layer over the target's fused hidden states (see the module docstring)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        h = config.hidden_size
        h_t = getattr(config, "target_hidden_size", None) or h
        self.embed_tokens = nn.Embedding(config.vocab_size, h)
        self.embed_tokens.weight.requires_grad_(False)  # the target's table, shared at run time
        self.fc = nn.Linear(3 * h_t, h, bias=False)
        self.midlayer = _MidLayer(config)
        self.norm = LlamaRMSNorm(h, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(h, config.draft_vocab_size, bias=False)
        self.register_buffer("d2t", torch.zeros(config.draft_vocab_size, dtype=torch.long))
        self.register_buffer("t2d", torch.zeros(config.vocab_size, dtype=torch.bool))
        self.rotary_emb = LlamaRotaryEmbedding(config=config)  # non-persistent buffers only

    # -- the pieces of one call ---------------------------------------------------------------

    def _qkv(self, input_ids, x, position_ids):
        """q, k, v ([B, heads, T, d], RoPE applied) of the tokens ``input_ids`` with stream ``x``."""
        a = self.midlayer.self_attn
        b, t, _ = x.shape
        u = torch.cat(
            (self.midlayer.input_layernorm(self.embed_tokens(input_ids).to(x.dtype)), self.midlayer.hidden_norm(x)),
            dim=-1,
        )
        q = a.q_proj(u).view(b, t, a.n_heads, a.head_dim).transpose(1, 2)
        k = a.k_proj(u).view(b, t, a.n_kv, a.head_dim).transpose(1, 2)
        v = a.v_proj(u).view(b, t, a.n_kv, a.head_dim).transpose(1, 2)
        cos, sin = self.rotary_emb(x, position_ids)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        return q, k, v

    def _finish(self, x, attn):
        """The pre-norm output g of the layer from its stream ``x`` and attention output [B, heads, T, d]."""
        b, _, t, _ = attn.shape
        y = x + self.midlayer.self_attn.o_proj(attn.transpose(1, 2).reshape(b, t, -1))
        return y + self.midlayer.mlp(self.midlayer.post_attention_layernorm(y))

    def logits(self, g):
        return self.lm_head(self.norm(g))

    def stream(self, hidden_states):
        """The residual stream x: ``fc`` of the fused target features, or the head's own g as is."""
        return self.fc(hidden_states) if hidden_states.shape[-1] != self.config.hidden_size else hidden_states

    # -- inference: one call with a KV cache (what the exported IR computes) ----------------------

    def forward(self, input_ids, hidden_states, position_ids=None, past=None):
        """Logits, pre-norm output g and the new cache ``(k, v)`` of tokens at ``position_ids``.

        Each new token attends to every cached entry and causally to the new ones, as
        ``LlamaEagle3ForCausalLM`` with a DynamicCache does. ``position_ids`` default to the
        positions after the cache.
        """
        a = self.midlayer.self_attn
        x = self.stream(hidden_states)
        n_past = 0 if past is None else past[0].shape[2]
        t = input_ids.shape[1]
        if position_ids is None:
            position_ids = torch.arange(n_past, n_past + t, device=x.device)[None].expand(input_ids.shape[0], -1)
        q, k, v = self._qkv(input_ids, x, position_ids)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        mask = torch.ones(t, n_past + t, dtype=torch.bool, device=x.device).tril(n_past)
        attn = nn.functional.scaled_dot_product_attention(
            q, a.expand_kv(k), a.expand_kv(v), attn_mask=mask, scale=a.scale
        )
        g = self._finish(x, attn)
        return self.logits(g), g, (k, v)

    # -- training: the training-time test ---------------------------------------------------------

    def ttt_unroll(self, features, input_ids, steps: int):
        """Logits [B, T, K] of each of ``steps`` unrolled draft steps over windows (the training-time test).

        ``features`` [B, T, 3·H_t]: the target's fused hidden states at positions 0..T-1;
        ``input_ids`` [B, T]: the window's tokens. Step j at base position t reads token t+j+1 and,
        for j = 0, fc(features_t), else its own g of step j-1 at t; it sits at position t+j and
        predicts token t+j+2. Its query attends to the step-0 entries of positions <= t (the context
        a real draft sees) and to the entries of steps 1..j at the same t (the draft's own earlier
        steps): exactly what a chain of :meth:`forward` calls computes at run time. Rows whose
        token t+j+1 lies beyond the window read a padding token; the loss masks them.
        """
        a = self.midlayer.self_attn
        b, t, _ = features.shape
        dev = features.device
        pos = torch.arange(t, device=dev)[None].expand(b, -1)
        causal = torch.ones(t, t, dtype=torch.bool, device=dev).tril()
        x = self.stream(features)
        k0 = v0 = None
        own_k, own_v = [], []
        for j in range(steps):
            ids = torch.nn.functional.pad(input_ids[:, j + 1 :], (0, j + 1))
            q, k, v = self._qkv(ids, x, pos + j)
            if j == 0:
                k0, v0 = a.expand_kv(k), a.expand_kv(v)
                attn = nn.functional.scaled_dot_product_attention(q, k0, v0, attn_mask=causal, scale=a.scale)
            else:
                own_k.append(a.expand_kv(k))
                own_v.append(a.expand_kv(v))
                s0 = ((q @ k0.transpose(-1, -2)) * a.scale).masked_fill(~causal, float("-inf"))
                sd = torch.stack([(q * kk).sum(-1) for kk in own_k], dim=-1) * a.scale  # [B, h, T, j]
                p = torch.softmax(torch.cat((s0, sd), dim=-1).float(), dim=-1).to(q.dtype)
                attn = p[..., :t] @ v0 + (p[..., t:, None] * torch.stack(own_v, dim=-2)).sum(-2)
            x = self._finish(x, attn)
            yield self.logits(x)

    def ttt_loss(self, features, input_ids, target_logits, target_ok, steps: int, decay: float = 0.8):
        """Training-time-test loss over windows (see :meth:`ttt_unroll`) and per-step top-1 agreement.

        ``target_logits`` [B, T, K]: the target's logits at each position restricted to the draft
        vocabulary (row t predicts token t+1); ``target_ok`` [B, T]: the target's choice at t lies
        in the draft vocabulary. Step j at base t learns the target's distribution at t+j+1:
        KL(target || head) over the draft vocabulary, averaged over valid rows and weighted
        ``decay**j`` (0 when the head reproduces the target there).
        """
        t = features.shape[1]
        dev = features.device
        total, wsum, agree = 0.0, 0.0, []
        for j, lg in enumerate(self.ttt_unroll(features, input_ids, steps)):
            tl = torch.nn.functional.pad(target_logits[:, j + 1 :], (0, 0, 0, j + 1)).float()
            ok = torch.nn.functional.pad(target_ok[:, j + 1 :], (0, j + 1))
            ok = ok & (torch.arange(t, device=dev) < t - 1 - j)[None]
            n = ok.sum().clamp(min=1)
            lg = lg.float()
            lp = torch.log_softmax(tl, -1)
            kl = (lp.exp() * (lp - torch.log_softmax(lg, -1))).sum(-1)
            total = total + decay**j * (kl * ok).sum() / n
            wsum += decay**j
            agree.append(((lg.argmax(-1) == tl.argmax(-1)) & ok).sum().item() / max(1, int(ok.sum())))
        return total / wsum, agree
