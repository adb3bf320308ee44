"""One profile: this device's per-call costs, then every configuration on the user's prompts.

:func:`profile` measures, for each backend: the cost probe (the target's call cost against the
number of input tokens at the prompts' context, each drafter's calls in a loop's order and its
prompt read; a pass before the generations and one after each repeat, median per figure), then
plain decoding, each drafter at each k and adaptive k, and n-gram, interleaved (one warm-up per
configuration, then repeat by repeat, prompt by prompt, the configuration order rotated). Ctrl-C
stops the measuring and returns what was measured (``partial``).
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .metrics import config_metrics, median_costs, relative_metrics, timed_generate

CURVE_WIDTHS = tuple(range(1, 9))  # the target's call widths the verify-cost curve covers


@dataclass
class RunConfig:
    """One measured configuration (the metrics' ``cfg``: policy, k, runtime)."""

    name: str
    backend: str
    policy: str  # ar | draft | ngram
    k: int | None = None  # None with draft: adaptive
    draft: str | None = None  # the drafter (policy draft); the pipeline it runs on
    relation: str | None = None
    runtime: str = "edgespec"

    def gen_cfg(self, max_new_tokens: int) -> dict:
        return {"policy": self.policy, "k": self.k, "max_new_tokens": max_new_tokens, "ignore_eos": True}


def plan(
    backends: list[str], drafts: list[tuple[str, str]], ks: list[int], adaptive: bool, ngram_k: int
) -> list[RunConfig]:
    """The configurations of a profile: per backend, plain decoding, each drafter (name, relation)
    at each k (and adaptive), and n-gram."""
    out = []
    for b in backends:
        out.append(RunConfig(f"{b}/plain", b, "ar"))
        for name, rel in drafts:
            out += [RunConfig(f"{b}/{name}/k{k}", b, "draft", k, name, rel) for k in ks]
            if adaptive:
                out.append(RunConfig(f"{b}/{name}/adaptive", b, "draft", None, name, rel))
        out.append(RunConfig(f"{b}/ngram/k{ngram_k}", b, "ngram", ngram_k))
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if platform.system() != "Darwin" else 2**20)


def _spread(runs_by_repeat: list[list[dict]]) -> tuple[list[float], float | None]:
    """tokens/s of each repeat (all prompts), and their spread: (max - min) / median."""
    tps = []
    for rr in runs_by_repeat:
        wall = sum(r["wall_ms"] for r in rr)
        if rr and wall > 0:
            tps.append(sum(r["n_new"] for r in rr) / wall * 1e3)
    if len(tps) < 2:
        return tps, None
    return tps, (max(tps) - min(tps)) / statistics.median(tps)


PROBE_EFFORT = {"full": {"calls": 8, "rounds": 6}, "quick": {"calls": 3, "rounds": 2}}


def profile(
    bundle: Path,
    prompts: list[str],
    configs: list[RunConfig],
    *,
    max_new_tokens: int,
    repeats: int,
    load_kw: dict,
    probe_backends: set[str],
    progress: Callable[[str, int], None] | None = None,
    prompt_tokens: Callable[[str], int] | None = None,
    probe_effort: str = "full",
) -> dict:
    """Measure; returns {"costs", "configs", "partial", "notes", "process_peak_rss_mb"}.

    load_kw: Pipeline.load's device options (device, precision, kv_precision, threads,
    fixed_shapes). probe_backends: the backends whose calls the probe times. probe_effort: "full"
    (8 calls a figure in each of 6 rounds, per pass) or "quick" (3 in 2: for large models on slow
    machines). progress(description, advance) is called as work completes."""
    from ..pipeline import Pipeline
    from .probe import CostProbe, OrtCostProbe

    tick = progress or (lambda _d, _n: None)
    notes: list[str] = []
    pipes: dict[tuple[str, str | None], Any] = {}
    probes: dict[tuple[str, str | None], CostProbe | OrtCostProbe] = {}
    passes: dict[tuple[str, str | None], list[dict]] = {}
    runs: dict[str, list[list[list[dict]]]] = {c.name: [[] for _ in range(repeats)] for c in configs}
    errors: dict[str, str] = {}
    partial = False
    drafts_by_backend: dict[str, list[str | None]] = {}
    for c in configs:
        drafts_by_backend.setdefault(c.backend, [])
        if c.draft and c.draft not in drafts_by_backend[c.backend]:
            drafts_by_backend[c.backend].append(c.draft)

    def pipe_key(c: RunConfig) -> tuple[str, str | None]:
        ds = drafts_by_backend[c.backend]
        return (c.backend, c.draft if c.draft else (ds[0] if ds else None))

    # the probe's context: the prompts' mean length plus half the generation, as the loop sees it
    lengths = [prompt_tokens(p) if prompt_tokens else len(p) / 3.2 for p in prompts]
    context = int(statistics.mean(lengths) + max_new_tokens / 2)
    ks = sorted({c.k for c in configs if c.policy == "draft" and c.k})
    longest = int(max(lengths)) + 2
    reads = [2**i for i in range(4, max(5, (longest - 1).bit_length()) + 1)]
    probe_cfg = {
        "context": context,
        "n_values": list(CURVE_WIDTHS),
        "draft_k": ks,
        "draft_reads": reads,
        **PROBE_EFFORT[probe_effort],
    }

    def probe_pass() -> None:
        for key, pr in probes.items():
            tick(f"per-call costs ({key[0]}{', ' + key[1] if key[1] else ''})", 0)
            cfg = (
                probe_cfg
                if key == next(k for k in probes if k[0] == key[0])
                else dict(probe_cfg, n_values=sorted({1} | {k + 1 for k in ks}))
            )  # the curve once per backend
            try:
                passes.setdefault(key, []).append(pr.measure(cfg))
            except Exception as e:  # noqa: BLE001 - a probe failure is reported, the runs go on
                notes.append(f"per-call costs of {key[0]} / {key[1] or 'target'} failed: {type(e).__name__}: {e}")
            tick("", 1)

    try:
        for c in configs:
            key = pipe_key(c)
            if key in pipes:
                continue
            tick(f"loading {key[0]}{' + ' + key[1] if key[1] else ''}", 0)
            try:
                pipes[key] = Pipeline.load(bundle, draft=key[1] or "none", backend=key[0], profile=False, **load_kw)
            except Exception as e:  # noqa: BLE001 - a backend that does not load is a finding
                pipes[key] = None
                notes.append(f"{key[0]} with drafter {key[1] or 'none'} did not load: {e}")
            if pipes[key] is not None and key[0] in probe_backends:
                spec = {
                    "device": load_kw.get("device", "CPU"),
                    "draft_name": key[1],
                    "backend": key[0],
                    "threads": load_kw.get("threads"),
                    "precision": load_kw.get("precision"),
                    "kv_precision": load_kw.get("kv_precision"),
                    "fixed_shapes": load_kw.get("fixed_shapes"),
                    "engine_info": pipes[key].info,
                }
                first = next((pr for k, pr in probes.items() if k[0] == key[0]), None)
                try:
                    probes[key] = (OrtCostProbe if key[0] == "onnxruntime" else CostProbe)(
                        bundle, spec, target_of=first
                    )
                except Exception as e:  # noqa: BLE001
                    notes.append(f"the cost probe could not compile {key[0]} / {key[1] or 'target'}: {e}")
        probe_pass()
        for c in configs:  # warm-up: compiles every call shape, fills allocator pools
            tick(f"warm-up {c.name}", 0)
            p = pipes.get(pipe_key(c))
            if p is None:
                errors[c.name] = "its pipeline did not load"
            else:
                try:
                    timed_generate(p, prompts[0], c.gen_cfg(min(8, max_new_tokens)))
                except Exception as e:  # noqa: BLE001
                    errors[c.name] = f"{type(e).__name__}: {e}"
            tick("", 1)
        for r in range(repeats):
            for i, prompt in enumerate(prompts):
                shift = (r + i) % len(configs)  # rotate so no configuration always runs first
                for c in configs[shift:] + configs[:shift]:
                    tick(f"repeat {r + 1}/{repeats}, prompt {i + 1}/{len(prompts)}: {c.name}", 0)
                    if c.name not in errors:
                        try:
                            out = timed_generate(pipes[pipe_key(c)], prompt, c.gen_cfg(max_new_tokens))
                            out["prompt_index"] = i
                            runs[c.name][r].append(out)
                        except KeyboardInterrupt:
                            raise
                        except Exception as e:  # noqa: BLE001
                            errors[c.name] = f"{type(e).__name__}: {e}"
                    tick("", 1)
            probe_pass()
    except KeyboardInterrupt:
        partial = True
        notes.append("interrupted: the figures cover what was measured before Ctrl-C")
    finally:
        for p in pipes.values():
            if p is not None:
                p.close()

    costs: dict[tuple[str, str | None], dict] = {}
    for key, ps in passes.items():
        if ps:
            costs[key] = dict(
                median_costs(ps), context=context, passes=len(ps), T_ar_ms_by_pass=[x["T_ar_ms"] for x in ps]
            )
    return {
        "costs": costs,
        "runs": runs,
        "errors": errors,
        "partial": partial,
        "notes": notes,
        "context": context,
        "pipe_key": pipe_key,
        "process_peak_rss_mb": peak_rss_mb(),
    }


def summarize(configs: list[RunConfig], measured: dict, n_prompts: int, sizes: dict[str | None, int]) -> dict:
    """Per configuration: every metric the bench reports (each prompt the median of its repeats),
    against its backend's plain decoding, with the spread over repeats and the accepted-length
    histogram. sizes: weight bytes by drafter name (None: the target)."""
    out: dict[str, dict] = {}
    for c in configs:
        by_repeat = measured["runs"][c.name]
        per_prompt = [[o for rr in by_repeat for o in rr if o["prompt_index"] == i] for i in range(n_prompts)]
        costs = measured["costs"].get(measured["pipe_key"](c))
        m = config_metrics(c, per_prompt, costs, {"target": sizes.get(None), "draft": sizes.get(c.draft)})
        tps, spread = _spread([rr for rr in by_repeat if rr])
        hist: list[int] = []
        for o in (o for rr in by_repeat for o in rr):
            h = o.get("accepted_hist") or []
            hist += [0] * (len(h) - len(hist))
            for j, v in enumerate(h):
                hist[j] += int(v)
        m.update(
            backend=c.backend,
            policy=c.policy,
            k=c.k,
            draft=c.draft,
            relation=c.relation,
            tokens_per_s_by_repeat=tps,
            spread=spread,
            accepted_hist=hist,
            generations=sum(len(rr) for rr in by_repeat),
            prompts_measured=sum(1 for pp in per_prompt if pp),
            peak_rss_mb=measured["process_peak_rss_mb"],
        )
        if c.name in measured["errors"]:
            m["error"] = measured["errors"][c.name]
        out[c.name] = m
    for c in configs:
        relative_metrics(out[c.name], out.get(f"{c.backend}/plain"))
    return out


def cost_curves(measured: dict) -> dict:
    """Per backend: the target's T(n) for n = 1..8 and T(n)/T(1) (in decode steps), and each
    drafter's figures, from the probe passes."""
    out: dict[str, dict] = {}
    for (backend, draft), c in measured["costs"].items():
        b = out.setdefault(backend, {"context": c["context"], "drafters": {}})
        if "target" not in b and len(c["T_verify_ms"]) >= len(CURVE_WIDTHS):
            t1 = c["T_ar_ms"]
            b["target"] = {
                "T_ar_ms": t1,
                "T_ms": c["T_verify_ms"],
                "steps": {n: v / t1 for n, v in c["T_verify_ms"].items()} if t1 else None,
                "passes": c["passes"],
                "T_ar_ms_by_pass": c["T_ar_ms_by_pass"],
                "fixed_widths": c.get("fixed_widths"),
                "split_widths": c.get("split_widths"),
            }
        if draft is not None and c.get("T_draft_ms") is not None:
            b["drafters"][draft] = {
                "T_draft_ms": c["T_draft_ms"],
                "pattern": c.get("pattern"),
                "T_draft_read_ms": c.get("T_draft_read_ms"),
                "steps": c["T_draft_ms"] / c["T_ar_ms"] if c["T_ar_ms"] else None,
            }
    return out


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
