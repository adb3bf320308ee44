"""The figures of a benchmark or profile run, from its generations and the cost probe's per-call costs.

One implementation for ``edgespec profile`` and the lab's benchmark (lab/bench.py): speedup,
acceptance, mean accepted length, the ideal speedup from measured per-call costs (by formula, in
a loop's order, and of every call a loop must make: ``ideal_speedup_loop``), efficiency against
each, the time split and the memory-bound speedup. A configuration is anything with ``policy``
(``ar`` | ``draft`` | ``ngram``), ``k`` (None with draft: adaptive) and ``runtime``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

METRIC_KEYS = (
    "tokens_per_s",
    "ttft_ms",
    "tpot_ms",
    "speedup",
    "acceptance_rate",
    "mean_accepted",
    "target_calls",
    "drafted",
    "accepted",
    "draft_ms",
    "verify_ms",
    "other_ms",
    "other_share",
    "ideal_speedup",
    "efficiency",
    "mbsu",
    "peak_rss_mb",
    "n_new",
    "agree",
    "peer",
    "vs_peer",
    "decode_tokens_per_s",
    "decode_speedup",
    "vs_peer_decode",
    "decode_speedup_paired",
    "vs_peer_decode_paired",
    "ideal_speedup_loop",
    "efficiency_loop",
)


# GenOut keys besides text, tokens, n_new, wall_ms, ttft_ms (None where a runtime has no such figure)
STAT_KEYS = ("target_calls", "drafted", "accepted", "draft_ms", "verify_ms", "other_ms")
_POLICY = {"ar": "autoregressive", "draft": "draft", "ngram": "ngram"}


def timed_generate(pipe, prompt: str, cfg: dict) -> dict:
    """One generation of an edgespec Pipeline, timed as the benchmark times every runtime: wall clock
    around generate(), ttft_ms to the first streamed chunk, the native stats beside. cfg: policy
    (ar | draft | ngram), k (None: adaptive), max_new_tokens, ignore_eos, k_max, draft_window, lookup
    (prompt lookup beside the drafter; absent: the runtime's default, on)."""
    policy = cfg["policy"]
    kw: dict[str, Any] = {
        "max_new_tokens": int(cfg["max_new_tokens"]),
        "policy": _POLICY[policy],
        "ignore_eos": bool(cfg.get("ignore_eos")),
    }
    if policy != "ar":
        kw["k"] = "auto" if cfg.get("k") is None else int(cfg["k"])
    if cfg.get("k_max"):
        kw["k_max"] = int(cfg["k_max"])
    if cfg.get("draft_window") is not None:
        kw["draft_window"] = int(cfg["draft_window"])
    if cfg.get("lookup") is not None:
        kw["lookup"] = bool(cfg["lookup"])
    first = None

    def streamer(_chunk: str) -> None:  # on the generating thread, as GenAI's streamer
        nonlocal first
        if first is None:
            first = time.perf_counter()

    t0 = time.perf_counter()
    res = pipe.generate(prompt, streamer=streamer, **kw)
    wall = (time.perf_counter() - t0) * 1e3
    st = res.stats
    out = {
        "text": res.text,
        "tokens": [int(t) for t in res.tokens],
        "n_new": int(st.generated_tokens),
        "wall_ms": wall,
        "ttft_ms": (first - t0) * 1e3 if first is not None else None,
        "ttft_native_ms": float(st.ttft_ms),
        "total_ms": float(st.total_ms),
    }
    for key in STAT_KEYS:
        out[key] = float(getattr(st, key))
    out["native_stats"] = {k: v for k, v in st.to_dict().items() if k != "accepted_hist"}
    out["accepted_hist"] = list(st.accepted_hist)
    return out


def median_run(runs: list[dict]) -> dict:
    runs = sorted(runs, key=lambda r: r["wall_ms"])
    return runs[(len(runs) - 1) // 2]


def _sum(rows: list[dict], key: str):
    vals = [r.get(key) for r in rows]
    return None if any(v is None for v in vals) or not vals else float(sum(vals))


def loop_ideal_terms(runs: list[dict], k: int, pat: dict, reads: dict) -> dict[str, float]:
    """The ideal time of a fixed-k draft-model loop over these generations (edgespec runs with
    native_stats and accepted_hist), from the probe's loop-order costs ``pat`` and its drafter
    prompt reads ``reads``, in three terms: rounds_ms, every round's verify and one-token drafter
    calls; catchup_ms, what the rounds' first drafter calls change (none in the first round, whose
    token the prompt read gives; two tokens wide after a round that accepted everything, in the
    share of rounds that did); read_ms, the drafter's read of the prompt (draft_prefill_tokens)."""
    out = {"rounds_ms": 0.0, "catchup_ms": 0.0, "read_ms": 0.0}
    d1, d2 = pat["T_draft_ms"][0], pat["T_draft_first2_ms"]
    for r in runs:
        ns, hist = r["native_stats"], r.get("accepted_hist") or []
        rounds = ns["target_calls"] - 1
        full = hist[k] if len(hist) > k else 0  # the histogram drops trailing zeros
        first = (d1 * (rounds - full) + d2 * full) / max(1, rounds)
        out["rounds_ms"] += rounds * (pat["T_verify_ms"] + sum(pat["T_draft_ms"]))
        out["catchup_ms"] += max(0, rounds - 1) * first - rounds * d1
        if ns["draft_prefill_tokens"]:
            out["read_ms"] += interp_points(reads, ns["draft_prefill_tokens"])
    return out


def median_costs(passes: list[dict]):
    """The cost probe's passes merged figure by figure: the median of each number (element by
    element in lists), anything else (the widths) as the first pass has it."""
    first = passes[0]
    if isinstance(first, dict):
        return {k: median_costs([p[k] for p in passes if isinstance(p, dict) and k in p]) for k in first}
    if isinstance(first, list) and first and all(isinstance(x, float) for x in first):
        return [float(statistics.median(p[i] for p in passes)) for i in range(len(first))]
    if isinstance(first, float):
        return float(statistics.median(passes))
    return first


def interp_verify(costs: dict, n: float) -> float | None:
    """T_verify(n) for a possibly fractional n (adaptive k), linear between measured points."""
    return interp_points(costs["T_verify_ms"], n)


def interp_points(points: dict, n: float) -> float | None:
    """points {"n": ms, ...} at n, linear between measured points and beyond the last two."""
    pts = sorted((int(k), v) for k, v in points.items())
    if not pts:
        return None
    if n <= pts[0][0]:
        return pts[0][1]
    for (n0, v0), (n1, v1) in zip(pts, pts[1:]):
        if n0 <= n <= n1:
            return v0 + (v1 - v0) * (n - n0) / (n1 - n0)
    (n0, v0), (n1, v1) = pts[-2:] if len(pts) > 1 else (pts[-1], pts[-1])
    return v1 + (v1 - v0) / max(1, n1 - n0) * (n - n1)


def config_metrics(cfg, per_prompt: list[list[dict]], costs: dict | None, sizes: dict) -> dict:
    """Aggregate one configuration over the prompts (each prompt: the median of its repeats).

    per_prompt: per prompt, the generations (:func:`timed_generate` dicts) of its repeats; costs:
    the cost probe's figures merged over its passes (:func:`median_costs`), or None; sizes: weight
    bytes of "target" and "draft" (for mbsu)."""
    med = [median_run(runs) for runs in per_prompt if runs]
    m: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
    if not med:
        return m
    n_gen = len(med)
    n_new = sum(r["n_new"] for r in med)
    wall = sum(r["wall_ms"] for r in med)
    m["n_new"] = n_new
    m["tokens_per_s"] = n_new / wall * 1e3 if wall > 0 else None
    ttfts = [r["ttft_ms"] for r in med if r.get("ttft_ms") is not None]
    native = [r["ttft_native_ms"] for r in med if r.get("ttft_native_ms") is not None]
    m["ttft_native_ms"] = statistics.median(native) if native else None
    m["ttft_ms"] = statistics.median(ttfts) if ttfts else None
    if ttfts and len(ttfts) == n_gen and n_new > n_gen:
        m["tpot_ms"] = (wall - sum(ttfts)) / (n_new - n_gen)
        m["decode_tokens_per_s"] = 1e3 / m["tpot_ms"]  # after the first token: no prefill in it
    for key in ("target_calls", "drafted", "accepted", "draft_ms", "verify_ms", "other_ms"):
        s = _sum(med, key)
        m[key] = None if s is None else s / n_gen
    if cfg.policy == "ar":
        m["mean_accepted"], m["ideal_speedup"] = 1.0, 1.0
        if m["target_calls"] is None:
            m["target_calls"] = n_new / n_gen
    else:
        if m["drafted"]:
            m["acceptance_rate"] = m["accepted"] / m["drafted"] if m["accepted"] is not None else None
        if m["target_calls"]:
            m["mean_accepted"] = (n_new / n_gen) / m["target_calls"]
    other = _sum(med, "other_ms")
    native_total = _sum(med, "total_ms")  # the runtime's own generation time (edgespec stats)
    if native_total is not None:
        m["wrapper_ms"] = (wall - native_total) / n_gen  # Python API + streaming around the native call
    if other is not None and (native_total or wall) > 0:
        m["other_share"] = other / (native_total or wall)
    # k actually used: fixed k, or drafted per verify call (adaptive); verify calls exclude prefill
    k_eff = cfg.k
    if cfg.policy != "ar" and m["drafted"] is not None and m["target_calls"]:
        k_eff = m["drafted"] / max(1.0, m["target_calls"] - 1.0) if cfg.k is None else cfg.k
    # in-loop per-call costs from the runtime's own timers (edgespec stats): target time per
    # decode/verify call after the prefill, drafter time per drafted token
    if all(r.get("native_stats") for r in med):
        ns = [r["native_stats"] for r in med]
        calls = sum(x["target_calls"] - 1 for x in ns)
        if calls > 0:
            m["T_call_inloop_ms"] = sum(x["verify_ms"] - x["prefill_ms"] for x in ns) / calls
        drafted = sum(x["drafted"] for x in ns)
        m["T_draft_inloop_ms"] = sum(x["draft_ms"] for x in ns) / drafted if drafted else None
    # the ideal models the decode phase, so it takes τ over the calls after the prefill
    tau = m["mean_accepted"]
    if cfg.policy != "ar" and m["target_calls"] and m["target_calls"] > 1:
        tau = (n_new / n_gen - 1) / (m["target_calls"] - 1)
    m["tau_decode"] = tau
    # rounds that prompt lookup proposed (beside the drafter) are not a drafter loop's: no ideal for them
    looked = any((r.get("native_stats") or {}).get("lookup_drafted") for r in med)
    if looked:
        for key in ("lookup_drafted", "lookup_accepted"):  # means per generation, of drafted / accepted
            m[key] = sum(r["native_stats"].get(key, 0) for r in med) / n_gen
        m["lookup_share"] = m["lookup_drafted"] / max(1.0, m["drafted"])
    if cfg.policy in ("draft", "ngram") and costs and tau and k_eff and not looked:  # (no model for a tree search)
        t_draft = costs.get("T_draft_ms") or 0.0 if cfg.policy == "draft" else 0.0
        t_ver = interp_verify(costs, k_eff + 1)
        if t_ver:
            m["ideal_speedup"] = tau * costs["T_ar_ms"] / (t_ver + k_eff * t_draft)
        # the same ideal from calls timed in a draft-model loop's order (fixed k): the drafter's
        # calls right after the target's, the target's right after the drafter's
        pat = (costs.get("pattern") or {}).get(str(cfg.k)) if cfg.policy == "draft" and cfg.k else None
        if pat:
            m["ideal_speedup_pattern"] = tau * costs["T_ar_ms"] / (pat["T_verify_ms"] + sum(pat["T_draft_ms"]))
        # the whole of what a perfect draft-model loop must run, call by call, generation by
        # generation: its rounds' calls in the loop's order (the drafter's first call of a round
        # two tokens wide after a round that accepted everything), plus the drafter's read of the
        # prompt, which edgespec makes after streaming the first token (so inside its decode
        # phase); against plain decoding's calls for the same tokens
        reads = costs.get("T_draft_read_ms")
        if pat and reads and cfg.runtime == "edgespec" and all(r.get("native_stats") for r in med):
            terms = loop_ideal_terms(med, cfg.k, pat, reads)
            spec_ms = terms["rounds_ms"] + terms["catchup_ms"] + terms["read_ms"]
            if spec_ms > 0:
                m["ideal_speedup_loop"] = sum((r["n_new"] - 1) for r in med) * costs["T_ar_ms"] / spec_ms
    if tau and k_eff is not None:
        s_t, s_d = sizes.get("target"), sizes.get("draft")
        if cfg.policy == "draft" and s_t and s_d:
            m["mbsu"] = tau / (1 + k_eff * s_d / s_t)
        elif cfg.policy in ("ngram", "ar"):
            m["mbsu"] = tau
    elif cfg.policy == "ar":
        m["mbsu"] = 1.0
    return m


def _run_tpot(o: dict, first: str = "ttft_ms") -> float | None:
    if o.get(first) is None or o["n_new"] < 2:
        return None
    return (o["wall_ms"] - o[first]) / (o["n_new"] - 1)


def paired_decode_ratio(m: dict, other: dict, first: str = "ttft_ms") -> float | None:
    """Median over (prompt, repeat) of other's tpot / m's tpot: m's decode speed relative to other's,
    each generation compared with the one that ran beside it in the same repeat (the host drifts
    between repeats far more than within one).

    first: where a generation's decode phase starts. "ttft_ms" (the wall clock at the first streamed
    chunk) is what a user sees after the first text, but it moves work out of the decode phase of a
    runtime that streams late: GenAI's speculative pipelines hand their first chunk to the streamer
    only after the drafter has read the prompt and a round or more has run (20-35 ms after its first
    token on ~200-token prompts, 65-95 ms on ~1.8k), while edgespec streams the first token at once
    and its drafter reads the prompt afterwards. "ttft_native_ms" (each runtime's own time of its
    first token) starts both decode phases at the same point of the work."""
    return _paired_ratio(m, other, lambda r: _run_tpot(r, first))


def paired_speed_ratio(m: dict, other: dict) -> float | None:
    """Median over (prompt, repeat) of m's whole-generation speed (tokens / wall time, prefill
    included) relative to other's, each generation against the one run beside it in the same repeat:
    the tokens_per_s ratio with the host's drift between repeats paired out."""
    return _paired_ratio(m, other, lambda r: r["wall_ms"] / r["n_new"] if r.get("n_new") and r.get("wall_ms") else None)


def _paired_ratio(m: dict, other: dict, ms_per_token) -> float | None:
    """Median over (prompt, repeat) of other's ms_per_token(run) / m's, runs paired as they ran."""
    ratios = []
    for pa, pb in zip(m.get("per_prompt") or [], other.get("per_prompt") or []):
        for ra, rb in zip(pa["runs"], pb["runs"]):
            ta, tb = ms_per_token(ra), ms_per_token(rb)
            if ta and tb:
                ratios.append(tb / ta)
    return statistics.median(ratios) if ratios else None


def relative_metrics(m: dict, b: dict | None) -> None:
    """Fill m's figures against its baseline b (the same runtime's plain decoding): speedup,
    decode_speedup, the paired decode ratio, and efficiency against each ideal."""
    if m["tokens_per_s"] and b and b.get("tokens_per_s"):
        m["speedup"] = m["tokens_per_s"] / b["tokens_per_s"]
    if m["decode_tokens_per_s"] and b and b.get("decode_tokens_per_s"):
        m["decode_speedup"] = m["decode_tokens_per_s"] / b["decode_tokens_per_s"]
    if b and b is not m:
        m["decode_speedup_paired"] = paired_decode_ratio(m, b)
    # efficiency compares like with like: the decode-phase speedup with the decode-phase ideal
    # (with ~2k-token prompts the shared prefill would otherwise dilute every speedup toward 1)
    if m["decode_speedup"] is not None and m["ideal_speedup"]:
        m["efficiency"] = m["decode_speedup"] / m["ideal_speedup"]
    if m["decode_speedup"] is not None and m.get("ideal_speedup_pattern"):
        m["efficiency_pattern"] = m["decode_speedup"] / m["ideal_speedup_pattern"]
    if m["decode_speedup"] is not None and m.get("ideal_speedup_loop"):
        m["efficiency_loop"] = m["decode_speedup"] / m["ideal_speedup_loop"]
