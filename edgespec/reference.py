"""A plain-numpy reference of the decode loop: the specification of runtimes/src/engine/engine.cpp
and the oracle of the tests. No KV cache, no speed: every step recomputes logits from the ids.

    tokens, stats = generate(target_logits, prompt_ids, max_new_tokens=32,
                             draft_logits=draft_logits, k=4, temperature=0.8, seed=0)

``target_logits(ids) -> [len(ids), V]`` returns the logits row of every position (row i
predicts the token after ids[i]); ``draft_logits`` likewise for a drafter in the same
vocabulary. Greedy (temperature 0) accepts the longest prefix of the proposals that matches
the target's argmax; sampling is standard speculative sampling (accept d with probability
min(1, p(d)/q(d)), else draw from norm(max(0, p - q)); a bonus token from p after a fully
accepted block), so the output distribution equals the target's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Logits = Callable[[Sequence[int]], np.ndarray]


def sampling_probs(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """softmax(logits / T), restricted to the top_k tokens, then to the smallest top_p nucleus."""
    z = np.asarray(logits, dtype=np.float64)
    keep = np.ones(z.shape, dtype=bool)
    if 0 < top_k < z.size:
        keep[:] = False
        keep[np.argsort(-z, kind="stable")[:top_k]] = True
    z = np.where(keep, z / max(temperature, 1e-6), -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        n = int(np.searchsorted(cum, top_p) + 1)
        mask = np.zeros(p.shape, dtype=bool)
        mask[order[:n]] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
    return p


def residual(p: np.ndarray, q: np.ndarray) -> np.ndarray | None:
    """norm(max(0, p - q)); None when it has no mass (p == q)."""
    r = np.maximum(p - q, 0.0)
    s = r.sum()
    return r / s if s > 0 else None


def accept(
    p_rows: np.ndarray, q_rows: np.ndarray | None, drafts: Sequence[int], rng: np.random.Generator, greedy: bool
) -> tuple[int, int]:
    """Step 3 of the loop: (number of drafts accepted, the token emitted after them).

    p_rows: [m+1, V] target distributions (or logits when greedy); q_rows: [m, V] draft
    distributions (None = one-hot at the drafts, a deterministic proposer).
    """
    m = len(drafts)
    for i, d in enumerate(drafts):
        if greedy:
            t = int(np.argmax(p_rows[i]))
            if t != d:
                return i, t
            continue
        q = np.zeros_like(p_rows[i]) if q_rows is None else q_rows[i]
        if q_rows is None:
            q[d] = 1.0
        if q[d] > 0 and rng.random() < min(1.0, p_rows[i][d] / q[d]):
            continue
        r = residual(p_rows[i], q)
        dist = r if r is not None else p_rows[i]
        return i, int(rng.choice(dist.size, p=dist))
    last = p_rows[m]
    return m, int(np.argmax(last)) if greedy else int(rng.choice(last.size, p=last))


def generate(
    target_logits: Logits,
    prompt: Sequence[int],
    max_new_tokens: int,
    *,
    draft_logits: Logits | None = None,
    k: int = 4,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    eos: Sequence[int] = (),
) -> tuple[list[int], dict]:
    """Run the loop; returns (generated ids, stats with target_calls/drafted/accepted)."""
    rng = np.random.default_rng(seed)
    greedy = temperature <= 0
    dist = (lambda row: row) if greedy else (lambda row: sampling_probs(row, temperature, top_k, top_p))
    ctx = list(prompt)
    out: list[int] = []
    stats = {"target_calls": 0, "drafted": 0, "accepted": 0}

    def emit(ids: Sequence[int]) -> bool:
        for t in ids:
            if t in eos:
                return True
            out.append(t)
            ctx.append(t)
            if len(out) >= max_new_tokens:
                return True
        return False

    # prefill: the first token from the target alone
    stats["target_calls"] += 1
    row = dist(target_logits(ctx)[-1])
    if emit([int(np.argmax(row)) if greedy else int(rng.choice(row.size, p=row))]):
        return out, stats
    while True:
        m = min(k, max_new_tokens - len(out) - 1) if draft_logits is not None else 0
        # 1. propose
        drafts: list[int] = []
        q_rows = []
        for _ in range(m):
            q = dist(draft_logits(ctx + drafts)[-1])
            d = int(np.argmax(q)) if greedy else int(rng.choice(q.size, p=q))
            drafts.append(d)
            q_rows.append(q)
        # 2. verify: target rows at [last committed token, drafts...]
        stats["target_calls"] += 1
        rows = target_logits(ctx + drafts)[len(ctx) - 1 :]
        p_rows = np.stack([dist(r) for r in rows])
        # 3. accept
        n_acc, bonus = accept(p_rows, np.stack(q_rows) if q_rows else None, drafts, rng, greedy)
        stats["drafted"] += m
        stats["accepted"] += n_acc
        # 4. rollback: nothing to do without a cache.  5. emit
        if emit(drafts[:n_acc] + [bonus]):
            return out, stats
