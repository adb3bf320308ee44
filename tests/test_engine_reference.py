"""The numpy reference loop (edgespec/reference.py): the specification the native engine follows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from edgespec import reference as ref

V = 6


def _markov(seed: int, sharp: float):
    """A bigram 'model' over V tokens: logits of the next token depend on the current one."""
    table = np.random.default_rng(seed).normal(size=(V, V)) * sharp

    def logits(ids):
        return np.stack([table[i] for i in ids])

    return logits


def test_sampling_probs_applies_temperature_top_k_and_top_p():
    logits = np.array([3.0, 2.0, 1.0, 0.0])
    p = ref.sampling_probs(logits, temperature=1.0)
    assert np.isclose(p.sum(), 1) and np.all(np.diff(p) < 0)
    assert np.count_nonzero(ref.sampling_probs(logits, 1.0, top_k=2)) == 2
    nucleus = ref.sampling_probs(logits, 1.0, top_p=0.7)
    assert np.count_nonzero(nucleus) == 2 and np.isclose(nucleus.sum(), 1)
    cold = ref.sampling_probs(logits, 0.01)
    assert cold[0] > 0.999


def test_residual_is_the_normalised_positive_part_and_none_when_equal():
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.5, 0.3])
    assert np.allclose(ref.residual(p, q), [1.0, 0.0, 0.0])
    assert ref.residual(p, p) is None


def test_greedy_speculative_equals_greedy_target_for_any_drafter_and_k():
    target, draft = _markov(0, 3.0), _markov(1, 3.0)
    plain, _ = ref.generate(target, [0, 1], 30)
    for k in (1, 2, 4, 8):
        spec, st = ref.generate(target, [0, 1], 30, draft_logits=draft, k=k)
        assert spec == plain
        assert st["target_calls"] < 31


def test_target_as_its_own_drafter_accepts_everything():
    target = _markov(0, 3.0)
    out, st = ref.generate(target, [0], 21, draft_logits=target, k=4)
    assert len(out) == 21 and st["drafted"] == st["accepted"] == 16
    assert st["target_calls"] == 1 + 4  # prefill + ceil(20 / 5)


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.7, 3, 0.9)])
def test_speculative_sampling_has_the_target_distribution(temperature, top_k, top_p):
    """Two-token continuations drawn speculatively match the target's exact joint distribution."""
    target, draft = _markov(2, 1.0), _markov(3, 1.0)
    prompt = [0]
    # Exact target distribution of (t1, t2) given the prompt.
    p1 = ref.sampling_probs(target(prompt)[-1], temperature, top_k, top_p)
    joint = np.array(
        [
            [p1[a] * ref.sampling_probs(target(prompt + [a])[-1], temperature, top_k, top_p)[b] for b in range(V)]
            for a in range(V)
        ]
    ).ravel()
    n = 3000
    counts = np.zeros(V * V)
    for seed in range(n):
        out, _ = ref.generate(
            target, prompt, 2, draft_logits=draft, k=2, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
        )
        counts[out[0] * V + out[1]] += 1
    support = joint > 0
    assert counts[~support].sum() == 0, "a token outside the target's support was emitted"
    chi2, pval = sps.chisquare(counts[support], joint[support] * n)
    assert pval > 1e-3, f"speculative samples differ from the target distribution (p={pval:.2g})"


def test_deterministic_proposer_with_one_hot_q_is_lossless():
    """An n-gram style proposer (q one-hot) keeps the target distribution too."""
    target = _markov(4, 1.0)
    p = ref.sampling_probs(target([0])[-1], 1.0)
    n = 4000
    # The first emitted token is the draft (2) when accepted, else the residual draw.
    counts = np.zeros(V)
    rng = np.random.default_rng(1)
    for _ in range(n):
        n_acc, tok = ref.accept(np.stack([p, p]), None, [2], rng, greedy=False)
        counts[2 if n_acc == 1 else tok] += 1
    _, pval = sps.chisquare(counts, p * n)
    assert pval > 1e-3
