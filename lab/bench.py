#!/usr/bin/env python
"""Side-by-side benchmark: edgespec vs OpenVINO GenAI (and optionally HF transformers), one run.

    .venv/bin/python lab/bench.py BUNDLE [--prompt-set short|long|repeat|all] [--k 2,4]
        [--max-new-tokens 64] [--repeats 3] [--threads N] [--configs 'es_*,genai_*']
        [--json OUT.json] [--md OUT.md] [--hf-target DIR --hf-draft DIR]

Every claim is a ratio measured side by side (docs/metrics.md): the same bundle and prompts, the
same max_new_tokens, threads and precision hints on both sides, each configuration warmed up
first, runs interleaved (repeat → prompt → configuration, the configuration order rotated each
repeat), and the median of the repeats per prompt. Each runtime runs in its own worker process
(lab/bench_runners.py), so peak_rss_mb is per runtime and one runtime's crash is a finding.

Configurations (``--configs`` takes comma-separated glob patterns over these names):

  es_ar              edgespec, plain autoregressive (the edgespec baseline)
  es_spec_k{K}       edgespec, draft model, fixed k        es_spec_adaptive   ... adaptive k
                     (with prompt lookup beside the drafter, the runtime's default)
  es_draft_k{K}      the same without prompt lookup (lookup=False)    es_draft_adaptive   ...
  es_ngram           edgespec, n-gram / prompt lookup (k = --ngram-k)
  genai_ar           OpenVINO GenAI LLMPipeline, default backend (paged attention on CPU)
  genai_ar_sdpa      OpenVINO GenAI LLMPipeline, ATTENTION_BACKEND=SDPA (stateful)
  genai_spec_k{K}    GenAI draft_model speculative decoding, num_assistant_tokens=K
  genai_spec_conf    GenAI draft_model with assistant_confidence_threshold=--conf-threshold (its
                     dynamic draft length; the peer of es_spec_adaptive)
  genai_tree_b{B}d{D}t{T}  GenAI's EAGLE-3 tree search (branching_factor B, tree_depth D,
                     num_assistant_tokens T; --genai-trees), heads only
  genai_ngram        GenAI prompt_lookup=True (num_assistant_tokens=--ngram-k, max_ngram_size)
  hf_ar, hf_spec_k{K}, hf_ngram   transformers on PyTorch CPU (only with --hf-target/--hf-draft)

Metrics per configuration (defined in docs/metrics.md): tokens_per_s, ttft_ms, tpot_ms, speedup
(vs the same runtime's plain decoding), acceptance_rate, mean_accepted, target_calls, drafted,
accepted, draft_ms, verify_ms, other_ms (means per generation), other_share (other_ms / wall
time), ideal_speedup = τ·T_ar / (T_verify(k+1) + k·T_draft) from per-call costs measured in the
same run straight on OpenVINO, efficiency = speedup / ideal_speedup, mbsu, peak_rss_mb, and
``agree`` (greedy outputs identical to the reference configuration, es_ar, on how many prompts).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))

import bench_prompts  # noqa: E402
import bench_runners  # noqa: E402

# the figures are the product's (edgespec profile computes them the same way); re-exported for the
# tests and experiments that read them from here
from edgespec.profiling.metrics import (  # noqa: E402,F401
    METRIC_KEYS,
    config_metrics,
    interp_points,
    interp_verify,
    loop_ideal_terms,
    median_costs,
    median_run,
    paired_decode_ratio,
    paired_speed_ratio,
    relative_metrics,
)


@dataclass
class Config:
    name: str
    runtime: str  # edgespec | genai | hf
    worker: str  # which worker process serves it (configs sharing loaded models share a worker)
    policy: str  # ar | draft | ngram | tree (GenAI's EAGLE tree search)
    k: int | None = None  # None with policy=draft: adaptive
    peer: str | None = None  # the configuration of the other runtime it is compared with
    draft: str | None = None  # the drafter it runs (None: the bundle's default / the first --draft)
    tree: tuple[int, int, int] | None = None  # policy=tree: (branching_factor, tree_depth, total tokens)
    lookup: bool | None = None  # edgespec draft: prompt lookup beside the drafter (None: the default, on)

    def gen_cfg(self, a) -> dict:
        return {
            "policy": self.policy,
            "k": self.k,
            "tree": self.tree,
            "max_new_tokens": a.max_new_tokens,
            "ngram_size": a.ngram_size,
            "ignore_eos": a.ignore_eos,
            "k_max": a.k_max,
            "draft_window": a.draft_window,
            "conf_threshold": a.conf_threshold,
            "lookup": self.lookup,
        }


def all_configs(
    ks: list[int],
    ngram_k: int,
    hf: bool,
    hf_draft: bool,
    drafts: list[str | None] | None = None,
    trees: list[tuple[int, int, int]] | None = None,
) -> list[Config]:
    """Every configuration; with several drafters (``--draft a,b``) the speculative ones of each
    drafter after the first carry its name (``es_spec_k4@b``, ``genai_spec_k4@b``), each drafter
    in worker processes of its own. ``trees``: GenAI tree searches (branching factor, depth, total
    tokens), ``genai_tree_b2d3t6``; they run for EAGLE-3 heads only (dropped for other drafters)."""
    drafts = drafts or [None]

    def spec(d: str | None, first: bool) -> tuple[list[Config], list[Config]]:
        at = "" if first else f"@{d}"
        es = []
        for prefix, lookup, conf_peer in (("es_spec", None, f"genai_spec_conf{at}"), ("es_draft", False, None)):
            es += [
                Config(
                    f"{prefix}_k{k}{at}",
                    "edgespec",
                    f"edgespec{at}",
                    "draft",
                    k,
                    f"genai_spec_k{k}{at}",
                    d,
                    lookup=lookup,
                )
                for k in ks
            ]
            es.append(
                Config(
                    f"{prefix}_adaptive{at}", "edgespec", f"edgespec{at}", "draft", None, conf_peer, d, lookup=lookup
                )
            )
        ga = [Config(f"genai_spec_k{k}{at}", "genai", f"genai_draft{at}", "draft", k, draft=d) for k in ks]
        ga.append(Config(f"genai_spec_conf{at}", "genai", f"genai_draft{at}", "draft", None, draft=d))
        ga += [
            Config(f"genai_tree_b{b}d{dd}t{t}{at}", "genai", f"genai_draft{at}", "tree", None, draft=d, tree=(b, dd, t))
            for b, dd, t in trees or []
        ]
        return es, ga

    pairs = [spec(d, i == 0) for i, d in enumerate(drafts)]
    c = [Config("es_ar", "edgespec", "edgespec", "ar", peer="genai_ar")]
    c += [x for es, _ in pairs for x in es]
    c += [
        Config("es_ngram", "edgespec", "edgespec", "ngram", ngram_k, peer="genai_ngram"),
        Config("genai_ar", "genai", "genai_ar", "ar"),
        Config("genai_ar_sdpa", "genai", "genai_ar_sdpa", "ar"),
    ]
    c += [x for _, ga in pairs for x in ga]
    c += [Config("genai_ngram", "genai", "genai_ngram", "ngram", ngram_k)]
    if hf:
        c += [Config("hf_ar", "hf", "hf", "ar"), Config("hf_ngram", "hf", "hf", "ngram", ngram_k)]
        if hf_draft:
            c += [Config(f"hf_spec_k{k}", "hf", "hf", "draft", k) for k in ks]
    return c


def parse_trees(spec: str) -> list[tuple[int, int, int]] | None:
    """``"2x3:6,3x2:6"`` -> [(2, 3, 6), (3, 2, 6)]; None when malformed."""
    out = []
    for part in (x.strip() for x in spec.split(",")):
        if not part:
            continue
        try:
            bd, t = part.split(":")
            b, d = bd.lower().split("x")
            tree = int(b), int(d), int(t)
        except ValueError:
            return None
        if tree[0] < 1 or tree[1] < 1 or tree[2] < tree[1]:
            return None
        out.append(tree)
    return out


def select(configs: list[Config], patterns: str | None) -> list[Config]:
    if not patterns:
        return configs
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [c for c in configs if any(fnmatch.fnmatch(c.name, p) for p in pats)]
    if not chosen:
        raise SystemExit(f"--configs {patterns!r} matches none of: {', '.join(c.name for c in configs)}")
    return chosen


# ----------------------------------------------------------------------------- report header


def machine_info() -> dict:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "logical_cpus": os.cpu_count(),
    }
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        names = [ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("model name")]
        info["cpu"] = names[0] if names else platform.processor()
        cores = {(ln.split(":", 1)[1].strip()) for ln in cpu.splitlines() if ln.startswith("core id")}
        info["physical_cores"] = len(cores) or None
        flags = next((ln for ln in cpu.splitlines() if ln.startswith("flags")), "")
        info["isa"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx_vnni") if f" {f}" in flags]
        mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
        info["memory_gb"] = round(int(mem.split()[1]) / 1024 / 1024, 1)
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    return info


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in (
        "edgespec",
        "openvino",
        "openvino-genai",
        "openvino-tokenizers",
        "onnxruntime",
        "torch",
        "transformers",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def weight_bytes(model_dir: Path, entry: dict) -> int:
    b = (entry.get("weights") or {}).get("bytes")
    if b:
        return int(b)
    return sum(p.stat().st_size for p in model_dir.glob("openvino_model*.bin")) or sum(
        p.stat().st_size for p in model_dir.glob("*.onnx*")
    )


def model_pair(bundle: Path, draft_names: list[str] | None) -> dict:
    mf = json.loads((bundle / "edgespec.json").read_text())
    out: dict[str, Any] = {}
    for m in mf["models"]:
        if m["role"] == "draft" and draft_names and m["name"] not in draft_names:
            continue
        role = m["role"] if m["role"] == "target" else f"draft:{m['name']}"
        w = m.get("weights", {})
        out[role] = {
            "name": m["name"],
            "architecture": m.get("architecture"),
            "precision": w.get("precision"),
            "group_size": w.get("group_size"),
            "weight_bytes": weight_bytes(bundle / m["path"], m),
            "num_layers": m.get("num_layers"),
            "vocab_size": m.get("vocab_size"),
            "relation": (m.get("relation") or {}).get("kind"),
            "source": m.get("source"),
        }
    return out


# ----------------------------------------------------------------------------- workers


class Worker:
    """A runner in its own process (see bench_runners.worker_main)."""

    def __init__(self, ctx, kind: str, bundle: Path, spec: dict):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=bench_runners.worker_main, args=(child, kind, str(bundle), spec), daemon=True)
        self.proc.start()
        child.close()
        self.error: str | None = None
        self.info: dict = {}

    def wait_ready(self, timeout: float) -> None:
        msg = self._recv(timeout)
        if msg[0] == "ready":
            self.info = msg[1]
        else:
            self.error = msg[1]
            self.detail = msg[2] if len(msg) > 2 else ""

    def _recv(self, timeout: float):
        if not self.conn.poll(timeout):
            return ("error", f"no answer in {timeout:.0f} s")
        try:
            return self.conn.recv()
        except EOFError:
            return ("error", f"worker died (exit code {self.proc.exitcode})")

    def call(self, prompt: str, cfg: dict, timeout: float) -> dict:
        if self.error:
            raise RuntimeError(self.error)
        try:
            self.conn.send(("gen", prompt, cfg))
        except (BrokenPipeError, OSError):
            self.error = "worker is gone"
            raise RuntimeError(self.error) from None
        msg = self._recv(timeout)
        if msg[0] != "ok":
            if "worker died" in msg[1] or "no answer" in msg[1]:
                self.error = msg[1]
            raise RuntimeError(msg[1])
        return msg[1]

    def stop(self) -> dict:
        out = {}
        if not self.error and self.proc.is_alive():
            try:
                self.conn.send(("stop",))
                msg = self._recv(30)
                if msg[0] == "bye":
                    out = msg[1]
            except (BrokenPipeError, OSError):
                pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
        return out


class Member:
    """One runner of a shared worker process (--one-process): the same calls as a Worker."""

    def __init__(self, worker: Worker, name: str):
        self.worker, self.name = worker, name

    @property
    def error(self) -> str | None:
        return self.worker.error

    def call(self, prompt: str, cfg: dict, timeout: float) -> dict:
        return self.worker.call(prompt, {**cfg, "member": self.name}, timeout)

    def stop(self) -> dict:
        return {}


def worker_spec(name: str, a, runtime_kw: dict) -> tuple[str, dict]:
    base = dict(runtime_kw)
    name, _, draft = name.partition("@")  # a worker of a drafter after the first: edgespec@NAME
    if draft:
        base["draft_name"] = draft
    if name == "edgespec":
        return "edgespec", base
    if name.startswith("genai_"):
        return "genai", {**base, "mode": name[len("genai_") :]}
    if name == "hf":
        return "hf", {**base, "hf_target": a.hf_target, "hf_draft": a.hf_draft}
    raise ValueError(name)


# ----------------------------------------------------------------------------- metrics


def finish_metrics(configs: list[Config], res: dict[str, dict], texts: dict[str, list], reference: str | None):
    """Cross-configuration figures: speedup vs the same runtime's AR, peer ratio, output agreement."""
    base = {"edgespec": "es_ar", "genai": "genai_ar", "hf": "hf_ar"}
    for c in configs:
        m = res[c.name]
        b = res.get(base[c.runtime])
        relative_metrics(m, b)
        # the same ideal from the loop's own per-call timers (fixed k only): what the loop loses
        # outside its model calls, independent of how well the microbenchmark matches the loop
        ar = res.get("es_ar", {})
        if (
            c.runtime == "edgespec"
            and c.policy != "ar"
            and c.k
            and m.get("T_call_inloop_ms")
            and ar.get("T_call_inloop_ms")
            and m.get("tau_decode")
            and m["decode_speedup"]
        ):
            t_draft = (m.get("T_draft_inloop_ms") or 0.0) if c.policy == "draft" else 0.0
            m["ideal_speedup_inloop"] = (
                m["tau_decode"] * ar["T_call_inloop_ms"] / (m["T_call_inloop_ms"] + c.k * t_draft)
            )
            m["efficiency_inloop"] = m["decode_speedup"] / m["ideal_speedup_inloop"]
        if c.peer and c.peer in res and res[c.peer].get("tokens_per_s") and m["tokens_per_s"]:
            m["peer"] = c.peer
            m["vs_peer"] = m["tokens_per_s"] / res[c.peer]["tokens_per_s"]
            if m["decode_tokens_per_s"] and res[c.peer].get("decode_tokens_per_s"):
                m["vs_peer_decode"] = m["decode_tokens_per_s"] / res[c.peer]["decode_tokens_per_s"]
            m["vs_peer_decode_paired"] = paired_decode_ratio(m, res[c.peer])
            m["vs_peer_decode_native_paired"] = paired_decode_ratio(m, res[c.peer], "ttft_native_ms")
        if reference and reference in texts and c.name in texts:
            pairs = [(x, y) for x, y in zip(texts[c.name], texts[reference]) if x is not None and y is not None]
            m["agree"] = f"{sum(x == y for x, y in pairs)}/{len(pairs)}"


def comparisons(res: dict[str, dict]) -> dict:
    def ratio(a, b, key="tokens_per_s"):
        x, y = res.get(a, {}).get(key), res.get(b, {}).get(key)
        return x / y if x and y else None

    pairs = [
        ("es_ar", "genai_ar"),
        ("es_ar", "genai_ar_sdpa"),
        ("es_ngram", "genai_ngram"),
    ]
    pairs += [(n, "genai_spec_conf" + n[len("es_spec_adaptive") :]) for n in res if n.startswith("es_spec_adaptive")]
    pairs += [(n, "genai_spec_k" + n[len("es_spec_k") :]) for n in res if n.startswith("es_spec_k")]
    out: dict[str, Any] = {}
    for x, y in pairs:
        out[f"{x}_vs_{y}"] = ratio(x, y)
        out[f"{x}_vs_{y}_decode"] = ratio(x, y, "decode_tokens_per_s")
        if x in res and y in res:
            out[f"{x}_vs_{y}_decode_paired"] = paired_decode_ratio(res[x], res[y])
            out[f"{x}_vs_{y}_decode_native_paired"] = paired_decode_ratio(res[x], res[y], "ttft_native_ms")

    # best against best, per drafter: edgespec's fastest speculative configuration over GenAI's
    # (chain or tree), in tokens/s; "paired": the same two configurations' median per-generation
    # ratio, each generation against GenAI's beside it (less of the host's drift between repeats)
    def fastest(prefixes: tuple[str, ...], drafter: str) -> str | None:
        names = [n for n, m in res.items() if n.startswith(prefixes) and n.partition("@")[2] == drafter]
        return max(names, key=lambda n: res[n].get("tokens_per_s") or 0, default=None)

    for at in sorted({n.partition("@")[2] for n in res}):
        ga = fastest(("genai_spec_", "genai_tree_"), at)
        # es_draft_*: edgespec without prompt lookup, the same loop as GenAI's
        for key, prefix in (("best", "es_spec_"), ("best_nolookup", "es_draft_")):
            es = fastest((prefix,), at)
            if ratio(es, ga):
                paired = paired_speed_ratio(res[es], res[ga])
                out[key + (f"@{at}" if at else "")] = f"{es} / {ga} = {ratio(es, ga):.3f}×" + (
                    f" (paired {paired:.3f}×)" if paired else ""
                )
    shares = [m["other_share"] for n, m in res.items() if n.startswith("es_") and m.get("other_share") is not None]
    out["es_max_other_share"] = max(shares) if shares else None
    out["es_lookup"] = {  # prompt lookup beside the drafter: looked-up tokens accepted / proposed per generation
        n: f"{m['lookup_accepted']:.1f} / {m['lookup_drafted']:.1f}" for n, m in res.items() if m.get("lookup_drafted")
    } or None
    effs = {
        n: m["efficiency"]
        for n, m in res.items()
        if n.startswith("es_") and m.get("efficiency") is not None and n != "es_ar"
    }
    out["es_efficiency"] = effs or None
    out["es_efficiency_inloop"] = {
        n: m["efficiency_inloop"] for n, m in res.items() if m.get("efficiency_inloop") is not None
    } or None
    out["efficiency_pattern"] = {
        n: m["efficiency_pattern"] for n, m in res.items() if m.get("efficiency_pattern") is not None
    } or None
    out["es_efficiency_loop"] = {
        n: m["efficiency_loop"] for n, m in res.items() if m.get("efficiency_loop") is not None
    } or None
    return {k: v for k, v in out.items() if v is not None}


# ----------------------------------------------------------------------------- output


def _fmt(v, key: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if key in ("acceptance_rate", "other_share"):
        return f"{100 * v:.1f}%"
    if key in (
        "speedup",
        "ideal_speedup",
        "efficiency",
        "efficiency_inloop",
        "efficiency_pattern",
        "efficiency_loop",
        "vs_peer",
        "mean_accepted",
        "mbsu",
        "decode_speedup",
        "vs_peer_decode",
        "decode_speedup_paired",
        "vs_peer_decode_paired",
    ):
        return f"{v:.2f}"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


TABLE_COLS = (
    "tokens_per_s",
    "speedup",
    "vs_peer",
    "decode_speedup",
    "vs_peer_decode",
    "decode_speedup_paired",
    "vs_peer_decode_paired",
    "ttft_ms",
    "tpot_ms",
    "acceptance_rate",
    "mean_accepted",
    "other_share",
    "ideal_speedup",
    "efficiency",
    "efficiency_pattern",
    "efficiency_loop",
    "efficiency_inloop",
    "mbsu",
    "peak_rss_mb",
    "agree",
)


def markdown(report: dict) -> str:
    h = report["header"]
    lines = ["# edgespec benchmark", ""]
    mach = h["machine"]
    lines.append(
        f"- machine: {mach.get('cpu')}, {mach.get('physical_cores')} cores / {mach.get('logical_cpus')} "
        f"threads, {mach.get('memory_gb')} GB; {mach.get('platform')}"
    )
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in h["versions"].items() if v))
    for role, m in h["models"].items():
        lines.append(
            f"- {role}: {m['name']} ({m.get('architecture')}, {m.get('precision')} g{m.get('group_size')}, "
            f"{(m.get('weight_bytes') or 0) / 1e6:.1f} MB weights, {m.get('num_layers')} layers)"
        )
    run = h["run"]
    lines.append(
        f"- run: max_new_tokens {run['max_new_tokens']}, repeats {run['repeats']} (median), threads "
        f"{run['threads']}, precision {run['precision'] or 'runtime default'}, KV cache "
        f"{run['kv_precision'] or 'runtime default'}, k {run['k']} "
        f"(adaptive k_max {run['k_max'] or 'default'}), "
        f"edgespec draft window {run.get('draft_window') if run.get('draft_window') is not None else 'default'}, "
        f"n-gram k {run['ngram_k']} / size {run['ngram_size']}, ignore_eos {run['ignore_eos']}, "
        f"edgespec fixed shapes {run.get('fixed_shapes', 'auto')}"
    )
    lines.append(f"- command: `{h['command']}`")
    for name, s in report["sets"].items():
        ps = s["prompt_set"]
        lines += [
            "",
            f"## prompt set `{name}`: {ps['n']} prompts, ~{ps['mean_tokens']:.0f} tokens, sha256 {ps['sha256'][:16]}",
            "",
        ]
        c = s.get("costs")
        if c:
            ver = ", ".join(f"T_verify({n}) {v:.1f}" for n, v in c["T_verify_ms"].items())
            if c.get("passes"):
                lines.append(
                    f"Per-call costs: the median of {c['passes']} passes of the probe (one before the "
                    f"generations, one after each repeat; T_ar by pass "
                    + ", ".join(f"{x:.2f}" for x in c["T_ar_ms_by_pass"])
                    + " ms)."
                )
            lines.append(
                f"Per-call costs at context {c['context']}: T_ar {c['T_ar_ms']:.1f} ms, {ver} ms, "
                f"T_draft {c['T_draft_ms'] if c['T_draft_ms'] is None else round(c['T_draft_ms'], 2)} ms"
                + (
                    f" (calls of these widths on fixed-width compiles, as edgespec runs them: target "
                    f"{c['fixed_widths']['target'] or 'none'}, drafter {c['fixed_widths']['draft'] or 'none'}"
                    + (
                        f"; as one-token subsequences: target {c['split_widths']['target'] or 'none'}, "
                        f"drafter {c['split_widths']['draft'] or 'none'}"
                        if c.get("split_widths")
                        else ""
                    )
                    + ")"
                    if c.get("fixed_widths")
                    else ""
                )
            )
            for k, p in (c.get("pattern") or {}).items():
                lines.append(
                    f"In a k={k} loop's order: T_verify({int(k) + 1}) {p['T_verify_ms']:.1f} ms, drafter calls "
                    + ", ".join(f"{x:.2f}" for x in p["T_draft_ms"])
                    + " ms"
                    + (f" (a two-token first call {p['T_draft_first2_ms']:.2f})" if "T_draft_first2_ms" in p else "")
                )
            for d, dc in (s.get("draft_costs") or {}).items():
                lines.append(
                    f"Drafter {d}: T_draft {dc['T_draft_ms'] if dc['T_draft_ms'] is None else round(dc['T_draft_ms'], 2)} ms"
                    + "".join(
                        f"; in a k={k} loop's order T_verify({int(k) + 1}) {p['T_verify_ms']:.1f} ms, drafter calls "
                        + ", ".join(f"{x:.2f}" for x in p["T_draft_ms"])
                        + " ms"
                        for k, p in (dc.get("pattern") or {}).items()
                    )
                )
            if c.get("T_draft_read_ms"):
                lines.append(
                    "The drafter reading a prompt of n tokens (last logits row only): "
                    + ", ".join(f"{n}: {v:.1f}" for n, v in c["T_draft_read_ms"].items())
                    + " ms"
                )
            lines.append("")
        lines.append("| config | " + " | ".join(TABLE_COLS) + " |")
        lines.append("|---|" + "---|" * len(TABLE_COLS))
        for cname, m in s["results"].items():
            if m.get("error"):
                lines.append(f"| {cname} | error: {m['error'][:120]} |" + " |" * (len(TABLE_COLS) - 1))
                continue
            lines.append(f"| {cname} | " + " | ".join(_fmt(m.get(k), k) for k in TABLE_COLS) + " |")
        if s.get("comparisons"):
            lines.append("")
            for k, v in s["comparisons"].items():
                if isinstance(v, str):
                    pass
                elif isinstance(v, dict):
                    v = ", ".join(f"{n} {x}" if isinstance(x, str) else f"{n} {x:.2f}" for n, x in v.items())
                elif k.endswith("share"):
                    v = f"{100 * v:.2f}%"
                else:
                    v = f"{v:.3f}×"
                lines.append(f"- {k}: {v}")
    if report.get("notes"):
        lines += ["", "Notes:"] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--prompt-set", default="short", help="short | long | repeat | all | a .jsonl path")
    ap.add_argument("--prompts", type=int, default=None, help="use only the first N prompts of each set")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup-tokens", type=int, default=8, help="tokens of each configuration's warm-up run")
    ap.add_argument(
        "--threads", type=int, default=None, help="inference threads on every side (default: physical cores)"
    )
    ap.add_argument(
        "--precision", default=None, help="INFERENCE_PRECISION_HINT on both sides, e.g. f32 (default: runtime default)"
    )
    ap.add_argument(
        "--kv-precision", default=None, help="KV-cache precision on both sides, e.g. f32, u8 (default: runtime default)"
    )
    ap.add_argument("--ov-config", default=None, help="JSON of extra OpenVINO properties (GenAI and cost probes only)")
    ap.add_argument("--k", default="2,4", help="fixed draft lengths, comma-separated")
    ap.add_argument("--k-max", type=int, default=None, help="upper bound of adaptive k (edgespec; default: its own)")
    ap.add_argument(
        "--draft-window",
        type=int,
        default=None,
        help="edgespec's drafter window in tokens (0 = the drafter's whole context; default: its own, 1024)",
    )
    ap.add_argument(
        "--fixed-shapes",
        choices=("auto", "on", "off"),
        default="auto",
        help="edgespec's fixed-width model copies (Pipeline.load fixed_shapes: auto = models up to "
        "64 MiB of weights); the cost probe times calls on the same compiles",
    )
    ap.add_argument(
        "--genai-trees",
        default="2x2:4,2x3:6,3x2:6",
        help="GenAI EAGLE-3 tree searches as BxD:T (branching factor x depth : total draft tokens), "
        "comma-separated; run for EAGLE-3 heads only ('' for none)",
    )
    ap.add_argument(
        "--conf-threshold",
        type=float,
        default=0.4,
        help="GenAI's assistant_confidence_threshold for genai_spec_conf (transformers' default 0.4)",
    )
    ap.add_argument("--ngram-k", type=int, default=4)
    ap.add_argument("--ngram-size", type=int, default=3)
    ap.add_argument(
        "--draft",
        default=None,
        help="drafter name in the bundle (default: the first same-vocab one); several, comma-separated, "
        "compare drafters in one run (e.g. an EAGLE-3 head and a draft model: --draft head,draft)",
    )
    ap.add_argument("--device", default="CPU")
    ap.add_argument("--configs", default=None, help="comma-separated glob patterns over configuration names")
    ap.add_argument(
        "--no-ignore-eos",
        dest="ignore_eos",
        action="store_false",
        help="stop at EOS (default: generate exactly max_new_tokens on every side)",
    )
    ap.add_argument(
        "--genai-prefix-caching",
        action="store_true",
        help="leave GenAI's prefix caching on (its CPU default; repeated prompts then time cache hits)",
    )
    ap.add_argument(
        "--one-process",
        action="store_true",
        help="every runtime in one worker process, generations alternated: paired ratios free "
        "of per-process drift (peak RSS is then the shared process's)",
    )
    ap.add_argument("--no-costs", dest="costs", action="store_false", help="skip the per-call cost microbenchmark")
    ap.add_argument("--hf-target", default=None, help="HF checkpoint of the target (adds hf_* configs)")
    ap.add_argument("--hf-draft", default=None, help="HF checkpoint of the drafter (adds hf_spec_k*)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one generation or model load may take")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--md", type=Path, default=None)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    con = Console(stderr=True)
    bundle = a.bundle.resolve()
    if not (bundle / "edgespec.json").is_file():
        con.print(f"[red]error:[/red] {bundle} is not an edgespec bundle (no edgespec.json)")
        return 2
    from edgespec._native import MAX_DRAFT, MIN_DRAFT_WINDOW

    try:
        ks = [int(x) for x in str(a.k).split(",") if x.strip()]
    except ValueError:
        ks = []
    if not ks or not all(1 <= k <= MAX_DRAFT for k in ks):
        con.print(f"[red]error:[/red] --k must be a comma list of draft lengths from 1 to {MAX_DRAFT} (got {a.k!r})")
        return 2
    if a.draft_window is not None and a.draft_window != 0 and a.draft_window < MIN_DRAFT_WINDOW:
        con.print(
            f"[red]error:[/red] --draft-window must be 0 (the drafter's whole context) or at least "
            f"{MIN_DRAFT_WINDOW} (got {a.draft_window})"
        )
        return 2
    trees = parse_trees(a.genai_trees)
    if trees is None:
        con.print(
            f"[red]error:[/red] --genai-trees must be comma-separated BxD:T with branching factor B >= 1, "
            f"depth D >= 1 and total tokens T >= D (e.g. 2x3:6; got {a.genai_trees!r})"
        )
        return 2
    mach = machine_info()
    threads = a.threads or mach.get("physical_cores") or os.cpu_count()
    draft_names = [d.strip() for d in a.draft.split(",") if d.strip()] if a.draft else []
    try:
        listed = [
            m["name"] for m in json.loads((bundle / "edgespec.json").read_text())["models"] if m["role"] == "draft"
        ]
    except (OSError, ValueError, KeyError, TypeError) as e:
        con.print(
            f"[red]error:[/red] {escape(str(bundle))} is not a readable bundle ({escape(str(e))}); pass an exported bundle"
        )
        return 2
    unknown = [d for d in draft_names if d not in listed]
    if unknown:
        con.print(
            f"[red]error:[/red] --draft names {', '.join(unknown)}, which the bundle does not have "
            f"(it has: {', '.join(listed) or 'no drafter'}); pass one of those"
        )
        return 2
    configs = select(
        all_configs(ks, a.ngram_k, bool(a.hf_target), bool(a.hf_draft), list(draft_names) or None, trees),
        a.configs,
    )
    set_names = list(bench_prompts.SETS) if a.prompt_set == "all" else [a.prompt_set]
    pair = model_pair(bundle, draft_names)
    drafts = [v for k, v in pair.items() if k.startswith("draft:")]
    same = [d for d in drafts if d["relation"] == "same_vocab"] or drafts
    default_draft = draft_names[0] if draft_names else (same[0]["name"] if same else None)
    # weight bytes per drafter (for mbsu): the target's and the drafter's each configuration runs
    sizes_of = {d["name"]: {"target": pair["target"]["weight_bytes"], "draft": d["weight_bytes"]} for d in drafts}
    sizes_of[None] = sizes_of.get(default_draft, {"target": pair["target"]["weight_bytes"]})
    # GenAI runs an EAGLE-3 head at a fixed draft length only (its assistant_confidence_threshold
    # is refused in that mode): no genai_spec_conf for a head; its tree search is for heads only
    heads = {d["name"] for d in drafts if d["relation"] == "eagle3"}
    dropped = [
        c.name
        for c in configs
        if (c.name.startswith("genai_spec_conf") and (c.draft or default_draft) in heads)
        or (c.policy == "tree" and (c.draft or default_draft) not in heads)
    ]
    configs = [c for c in configs if c.name not in dropped]
    for c in configs:
        c.peer = None if c.peer in dropped else c.peer
    extra = json.loads(a.ov_config) if a.ov_config else None
    runtime_kw = {
        "threads": threads,
        "precision": a.precision,
        "kv_precision": a.kv_precision,
        "ov_config": extra,
        "device": a.device,
        "draft_name": draft_names[0] if draft_names else None,
        "genai_prefix_caching": a.genai_prefix_caching,
        "fixed_shapes": {"auto": None, "on": True, "off": False}[a.fixed_shapes],
    }

    report: dict[str, Any] = {
        "header": {
            "machine": mach,
            "versions": versions(),
            "bundle": str(bundle),
            "models": pair,
            "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "run": {
                "max_new_tokens": a.max_new_tokens,
                "repeats": a.repeats,
                "threads": threads,
                "precision": a.precision,
                "kv_precision": a.kv_precision,
                "ov_config": extra,
                "k_max": a.k_max,
                "draft_window": a.draft_window,
                "one_process": a.one_process,
                "fixed_shapes": a.fixed_shapes,
                "genai_prefix_caching": a.genai_prefix_caching,
                "k": ks,
                "ngram_k": a.ngram_k,
                "ngram_size": a.ngram_size,
                "ignore_eos": a.ignore_eos,
                "device": a.device,
                "configs": [c.name for c in configs],
                "policies": {
                    c.name: {"policy": c.policy, "k": c.k if c.k is not None else "adaptive", "tree": c.tree}
                    for c in configs
                },
            },
        },
        "sets": {},
        "notes": [
            f"{', '.join(dropped)}: not run; GenAI's EAGLE-3 mode has no dynamic draft length "
            "(it refuses assistant_confidence_threshold)"
        ]
        if dropped
        else [],
    }
    ctx = mp.get_context("spawn")
    worker_names = list(dict.fromkeys(c.worker for c in configs))
    present = {c.name for c in configs}
    reference = next((r for r in ("es_ar", "genai_ar", "genai_ar_sdpa", "hf_ar") if r in present), None)

    prompt_sets = {}
    warm_prompt = bench_prompts.load_set("short")[0][0]["prompt"]
    for name in set_names:
        try:
            rows, sha = bench_prompts.load_set(name)
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
            con.print(
                f"[red]error:[/red] --prompt-set {escape(name)!s} is not a readable JSON-lines prompt set "
                f"({escape(type(e).__name__)}: {escape(str(e))}); pass short, long, repeat, all or a .jsonl file"
            )
            return 2
        bad = next(
            (i for i, r in enumerate(rows) if not isinstance(r, dict) or not isinstance(r.get("prompt"), str)), None
        )
        if bad is not None or not rows:
            con.print(
                f"[red]error:[/red] {escape(name)} "
                + (f'line {bad + 1} has no "prompt" string' if rows else "holds no prompts")
                + "; fix the prompt set"
            )
            return 2
        for i, r in enumerate(rows):  # a prompt without an id is named by its set and line
            r.setdefault("id", f"{Path(name).stem}:{i + 1}")
        rows = rows[: a.prompts] if a.prompts else rows
        prompt_sets[name] = (rows, sha)

    total = sum(len(configs) * (1 + a.repeats * len(rows)) for rows, _ in prompt_sets.values())
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=con,
        disable=a.quiet,
        transient=False,
    )
    t_begin = time.perf_counter()

    def stage(description: str) -> None:
        # A log file gets no live bar (rich draws one only on a terminal): a line per stage instead.
        progress.update(task, description=description)
        if not con.is_terminal and not a.quiet:
            done = int(progress.tasks[0].completed)
            print(f"[{time.perf_counter() - t_begin:6.0f} s] {done}/{total} {description}", file=sys.stderr, flush=True)

    with progress:
        task = progress.add_task("loading", total=total)
        # Per-call costs first, in a worker of their own that is gone before anything is timed.
        costs_by_set: dict[str, dict] = {}
        # Per-call costs: a pass per prompt set before anything is timed, then one more after each
        # repeat, from a worker of their own (idle while generations run); each figure is the median
        # over the passes, so the probe samples the host across the run as the generations do (one
        # pass in a burst of host noise read 1.55 ms for a decode step the loop ran in 1.17).
        # one probe worker per drafter (None: the first / default one), each timing its own drafter
        cost_passes: dict[tuple[str, str | None], list[dict]] = {}
        cost_cfgs: dict[str, dict] = {}
        cws: dict[str | None, Worker] = {}
        if a.costs:
            stage("per-call costs")
            for d in [None] + draft_names[1:]:
                cws[d] = Worker(ctx, "costs", bundle, dict(runtime_kw, **({"draft_name": d} if d else {})))
                cws[d].wait_ready(a.timeout)
            for name, (rows, _) in prompt_sets.items():
                mean_tokens = statistics.mean(r.get("tokens", len(r["prompt"]) / 3.2) for r in rows)
                longest = max(int(r.get("tokens", len(r["prompt"]) / 3.2)) for r in rows) + 2
                cost_cfgs[name] = {
                    "context": int(mean_tokens + a.max_new_tokens / 2),
                    "n_values": sorted({k + 1 for k in ks} | {2, a.ngram_k + 1, max(ks + [a.ngram_k]) + 2}),
                    "draft_k": ks,
                    "calls": 8,
                    "rounds": 6,
                    "draft_reads": [2**i for i in range(4, max(5, math.ceil(math.log2(longest))) + 1)],
                }

        def cost_pass(name: str) -> None:
            for d, cw in cws.items():
                if name not in cost_cfgs or cw.error:
                    continue
                try:
                    cost_passes.setdefault((name, d), []).append(cw.call("", cost_cfgs[name], a.timeout))
                except RuntimeError as e:
                    report["notes"].append(f"per-call costs{f' of drafter {d}' if d else ''} failed: {e}")
                    cost_passes.pop((name, d), None)
                    cw.error = cw.error or str(e)

        def dkey(d: str | None) -> str | None:
            """The probe worker of a configuration's drafter."""
            return None if d is None or (draft_names and d == draft_names[0]) else d

        for name in prompt_sets:
            cost_pass(name)

        stage("loading models")
        workers: dict[str, Worker | Member] = {}
        if a.one_process:
            shared = Worker(
                ctx, "shared", bundle, {"members": {wn: list(worker_spec(wn, a, runtime_kw)) for wn in worker_names}}
            )
            shared.wait_ready(a.timeout)
            if shared.error:
                report["notes"].append(f"the shared worker failed to load: {shared.error}")
            workers = {wn: Member(shared, wn) for wn in worker_names}
        for wn in worker_names if not a.one_process else []:
            kind, spec = worker_spec(wn, a, runtime_kw)
            workers[wn] = Worker(ctx, kind, bundle, spec)
            workers[wn].wait_ready(a.timeout)  # one at a time: loads do not compete for the CPU
            if workers[wn].error:
                report["notes"].append(f"worker {wn} failed to load: {workers[wn].error}")

        for name, (rows, sha) in prompt_sets.items():
            runs: dict[str, list[list[dict]]] = {c.name: [[] for _ in rows] for c in configs}
            errors: dict[str, str] = {}
            texts: dict[str, list] = {c.name: [None] * len(rows) for c in configs}

            def run_one(c: Config, i: int, timed: bool) -> None:
                w = workers[c.worker]
                if c.name in errors:
                    return
                if w.error:
                    errors[c.name] = w.error
                    return
                try:
                    out = w.call(rows[i]["prompt"], c.gen_cfg(a), a.timeout)
                except RuntimeError as e:
                    errors[c.name] = str(e)
                    return
                if timed:
                    runs[c.name][i].append(out)
                    if texts[c.name][i] is None:
                        texts[c.name][i] = out["text"]

            label = escape(f"[{name}]")  # a path is not rich markup
            stage(f"{label} warm-up")
            for c in configs:
                # a short generation compiles every call shape and allocates caches; the short
                # set's first prompt keeps warm-ups cheap for ~2k-token sets too
                warm = dict(c.gen_cfg(a), max_new_tokens=min(a.warmup_tokens, a.max_new_tokens))
                w = workers[c.worker]
                if not w.error and c.name not in errors:
                    try:
                        w.call(warm_prompt, warm, a.timeout)
                    except RuntimeError as e:
                        errors[c.name] = str(e)
                progress.advance(task)
            for r in range(a.repeats):
                stage(f"{label} repeat {r + 1}/{a.repeats}")
                for i in range(len(rows)):
                    shift = (r + i) % len(configs)  # rotate so no configuration always runs first
                    for c in configs[shift:] + configs[:shift]:
                        run_one(c, i, timed=True)
                        progress.advance(task)
                cost_pass(name)
            for d in cws:
                passes = cost_passes.get((name, d))
                if passes and name in cost_cfgs and not cws[d].error:
                    costs_by_set.setdefault(name, {})[d] = dict(
                        median_costs(passes),
                        context=cost_cfgs[name]["context"],
                        passes=len(passes),
                        T_ar_ms_by_pass=[c["T_ar_ms"] for c in passes],
                    )

            results: dict[str, dict] = {}
            for c in configs:
                m = config_metrics(
                    c, runs[c.name], costs_by_set.get(name, {}).get(dkey(c.draft)), sizes_of[dkey(c.draft)]
                )
                m["runtime"], m["policy"], m["k"] = (
                    c.runtime,
                    c.policy,
                    c.k if c.k is not None else ("adaptive" if c.policy == "draft" else None),
                )
                if c.tree:
                    m["tree"] = dict(zip(("branching_factor", "tree_depth", "num_assistant_tokens"), c.tree))
                rss = [o["peak_rss_mb"] for rr in runs[c.name] for o in rr]
                m["peak_rss_mb"] = max(rss) if rss else None
                if c.name in errors:
                    m["error"] = errors[c.name]
                m["per_prompt"] = [
                    {
                        "id": rows[i]["id"],
                        "runs": [{k: v for k, v in o.items() if k not in ("text", "tokens")} for o in runs[c.name][i]],
                        "text": texts[c.name][i],
                    }
                    for i in range(len(rows))
                ]
                results[c.name] = m
            finish_metrics(configs, results, texts, reference)
            report["sets"][name] = {
                "prompt_set": {
                    "name": name,
                    "file": str(bench_prompts.prompt_file(name)),
                    "sha256": sha,
                    "n": len(rows),
                    "ids": [r["id"] for r in rows],
                    "mean_tokens": statistics.mean(r.get("tokens", 0) for r in rows),
                },
                "costs": costs_by_set.get(name, {}).get(None),
                "draft_costs": {d: v for d, v in costs_by_set.get(name, {}).items() if d is not None} or None,
                "results": results,
                "comparisons": comparisons(results),
                "reference": reference,
            }
        stage("done")
        for w in workers.values():
            w.stop()
        for cw in cws.values():
            cw.stop()
        if a.one_process:
            shared.stop()

    report["notes"].append(
        "tokens_per_s = generated tokens / wall time of generate() (prefill included); "
        "ttft_ms = wall clock to the first streamed text chunk on every side (ttft_native_ms: the runtime's "
        "own figure); tpot_ms = (wall - ttft) / (tokens - 1); "
        "decode_tokens_per_s = 1000 / tpot_ms; speedup / decode_speedup vs the same runtime's "
        "plain decoding; vs_peer(_decode) = edgespec / GenAI at the same policy and k; *_paired = the "
        "median over (prompt, repeat) of per-generation decode-speed ratios, each generation "
        "against the one run beside it in the same repeat; *_decode_native_paired = the same with "
        "each generation's decode phase starting at its runtime's own first-token time "
        "(ttft_native_ms) instead of its first streamed chunk: GenAI's speculative pipelines stream "
        "their first chunk only after the drafter has read the prompt and a round has run, work "
        "that the first-chunk figure leaves out of GenAI's decode phase but not edgespec's; "
        "efficiency = decode_speedup / ideal_speedup (τ over the calls after the prefill); "
        "efficiency_pattern: the same against an ideal from per-call costs timed in a draft-model "
        "loop's order (k drafter calls after each verify call), where a model's first call after "
        "the other model's costs more than one after its own; efficiency_loop (edgespec, fixed k): "
        "against the plain-OpenVINO time of every call a perfect loop must make for the same "
        "generations: each round's verify and drafter calls timed in the loop's order, the "
        "drafter's first call two tokens wide after each round that accepted everything (from the "
        "accepted-length histogram), and the drafter's read of the prompt (draft_prefill_tokens, "
        "timed on a drafter compile that computes the last logits row only), which edgespec makes "
        "after streaming the first token, inside its decode phase, and which the ideal_speedup "
        "formula leaves out; efficiency_inloop: against an ideal from edgespec's own per-call "
        "timers."
    )
    report["notes"].append(
        "ideal_speedup uses per-call costs measured with plain OpenVINO on the IR's paged-attention "
        "form (what both runtimes run on the CPU by default; inputs set before each call's clock "
        "starts, outputs left in the request), each call width on the compile edgespec "
        "runs it on (its fixed-width copies, listed with the costs) and in edgespec's layout (short "
        "calls as one-token subsequences where it sends them so); GenAI runs every call on a "
        "dynamic-shape compile as one sequence, so its efficiency is against calls cheaper than the "
        "ones it makes; "
        "the prefill of the cost probe computes every logits row, so only its decode and verify "
        "calls are used."
    )
    md = markdown(report)
    print(md)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=1, default=_json_default))
    if a.md:
        a.md.parent.mkdir(parents=True, exist_ok=True)
        a.md.write_text(md)
    return 0


def _json_default(o):
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


if __name__ == "__main__":
    sys.exit(main())
