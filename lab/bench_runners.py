"""The runtimes lab/bench.py compares, each behind the same small interface, in its own process.

A *runner* loads one runtime's pipeline once and then generates on request::

    runner = RUNNERS[kind](bundle, spec)          # loads models (timed by the caller)
    out = runner.generate(prompt, cfg)            # -> dict, see GenOut below

``cfg`` is one benchmark configuration's generation settings: ``max_new_tokens``, ``policy``
(``ar`` | ``draft`` | ``ngram``), ``k`` (draft length; ``None`` = adaptive), ``ngram_size``,
``ignore_eos``. Runners that share loaded models serve several configurations (one edgespec
Pipeline serves autoregressive, speculative and n-gram; one GenAI draft pipeline serves every k).

Each runner lives in a worker process (:func:`worker_main`): peak RSS is then per runtime, a crash
in one runtime is a finding rather than the end of the run, and idle workers block on a pipe, so
they do not disturb the one that is being timed.
"""

from __future__ import annotations

import os
import resource
import time
import traceback
from pathlib import Path
from typing import Any

# the probe and its helpers are the product's (edgespec profile measures the same way); re-exported
# for the experiments that import them from here
from edgespec.profiling.metrics import STAT_KEYS, timed_generate  # noqa: F401
from edgespec.profiling.probe import LOGITS_ROWS, CostProbe, bundle_dirs, ov_properties, paged_inputs, with_logits_slice  # noqa: F401

# GenOut keys (every runner fills the first five; the rest are None where the runtime has no such
# figure): text, tokens (list[int] or None), n_new, wall_ms, ttft_ms, target_calls, drafted,
# accepted, draft_ms, verify_ms, other_ms. ttft_ms is measured the same way on every side: wall
# clock from the call to the first streamed text chunk; ttft_native_ms is the runtime's own figure.


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class GenAIRunner:
    """OpenVINO GenAI ``LLMPipeline`` on the bundle's IR files: plain, draft_model, prompt lookup.

    ``mode`` is ``ar`` (default attention backend: paged attention / continuous batching on CPU),
    ``ar_sdpa`` (the stateful pipeline, ``ATTENTION_BACKEND="SDPA"``), ``draft`` (``draft_model``
    speculative decoding; GenAI runs it on its continuous-batching backend on CPU) or ``ngram``
    (``prompt_lookup=True``).
    """

    def __init__(self, bundle: Path, spec: dict):
        import openvino_genai as ov_genai

        self.g = ov_genai
        tdir, ddir = bundle_dirs(bundle, spec.get("draft_name"))
        props = ov_properties(spec)
        device = spec.get("device", "CPU")
        mode = spec["mode"]
        # GenAI's paged-attention backend defaults to its latency-oriented scheduler config, which
        # turns prefix caching on: a benchmark repeating a prompt would then time cache hits, not
        # prefill. Same config with the cache off (unless --genai-prefix-caching).
        sched = ov_genai.SchedulerConfig()
        sched.max_num_batched_tokens = 2**31 - 1
        sched.enable_prefix_caching = bool(spec.get("genai_prefix_caching"))
        pa = {"scheduler_config": sched}
        if mode == "ar":
            self.pipe = ov_genai.LLMPipeline(str(tdir), device, **pa, **props)
        elif mode == "ar_sdpa":
            self.pipe = ov_genai.LLMPipeline(str(tdir), device, ATTENTION_BACKEND="SDPA", **props)
        elif mode == "draft":
            if ddir is None:
                raise RuntimeError("the bundle has no same-vocabulary drafter for GenAI draft_model")
            draft = ov_genai.draft_model(str(ddir), spec.get("draft_device", device), **props)
            self.pipe = ov_genai.LLMPipeline(str(tdir), device, draft_model=draft, **pa, **props)
        elif mode == "ngram":
            self.pipe = ov_genai.LLMPipeline(str(tdir), device, prompt_lookup=True, **pa, **props)
        else:
            raise ValueError(f"unknown GenAI mode {mode!r}")
        self.mode = mode

    def generate(self, prompt: str, cfg: dict) -> dict:
        c = self.g.GenerationConfig()
        c.max_new_tokens = int(cfg["max_new_tokens"])
        c.ignore_eos = bool(cfg.get("ignore_eos", False))
        c.do_sample = False
        if hasattr(c, "apply_chat_template"):
            c.apply_chat_template = False  # raw completion on both sides
        if self.mode == "draft" and cfg.get("tree"):
            # GenAI's EAGLE-3 tree search: a tree of this branching and depth, pruned to T tokens
            c.branching_factor, c.tree_depth, c.num_assistant_tokens = (int(x) for x in cfg["tree"])
        elif self.mode == "draft" and cfg.get("k") is None:
            c.assistant_confidence_threshold = float(cfg.get("conf_threshold", 0.4))
        elif self.mode == "draft":
            c.num_assistant_tokens = int(cfg["k"])
        elif self.mode == "ngram":
            c.num_assistant_tokens = int(cfg["k"])
            c.max_ngram_size = int(cfg.get("ngram_size", 3))
        first: list[float] = []

        def streamer(_text: str):
            if not first:
                first.append(time.perf_counter())
            return self.g.StreamingStatus.RUNNING

        t0 = time.perf_counter()
        res = self.pipe.generate([prompt], c, streamer)
        wall = (time.perf_counter() - t0) * 1e3
        pm = res.perf_metrics
        out = {
            "text": res.texts[0],
            "tokens": None,
            "n_new": int(pm.get_num_generated_tokens()),
            "wall_ms": wall,
            "ttft_ms": (first[0] - t0) * 1e3 if first else None,
            "ttft_native_ms": float(pm.get_ttft().mean),
        }
        out.update(dict.fromkeys(STAT_KEYS))
        # one entry per target call (its batch size = tokens it emitted); prompt lookup has no
        # extended metrics, so this is where its mean_accepted comes from
        out["target_calls"] = len(pm.raw_metrics.m_durations)
        if self.mode == "ngram":
            out["accepted"] = out["n_new"] - out["target_calls"]
        ext = res.extended_perf_metrics
        if ext is not None and self.mode == "draft":
            main = ext.main_model_metrics
            out["target_calls"] = len(main.raw_metrics.m_durations)
            out["drafted"] = int(ext.get_num_draft_tokens())
            out["accepted"] = int(ext.get_num_accepted_tokens())
            out["verify_ms"] = float(main.get_inference_duration().mean)
            if self.mode == "draft":
                out["draft_ms"] = float(ext.draft_model_metrics.get_inference_duration().mean)
        return out


class EdgespecRunner:
    """edgespec ``Pipeline`` (the native loop): one loaded pipeline serves every policy and k."""

    def __init__(self, bundle: Path, spec: dict):
        import edgespec

        if spec.get("ov_config"):
            raise RuntimeError(
                "edgespec.Pipeline takes no raw OpenVINO properties; drop --ov-config or limit --configs to genai_*"
            )
        self.pipe = edgespec.Pipeline.load(
            str(bundle),
            device=spec.get("device", "CPU"),
            draft=spec.get("draft_name") or "auto",
            draft_device=spec.get("draft_device"),
            precision=spec.get("precision"),
            kv_precision=spec.get("kv_precision"),
            threads=int(spec.get("threads") or 0),
            backend=spec.get("backend") or "openvino",
            fixed_shapes=spec.get("fixed_shapes"),
            profile=False,
        )

    def generate(self, prompt: str, cfg: dict) -> dict:
        return timed_generate(self.pipe, prompt, cfg)


class HFRunner:
    """Hugging Face transformers on PyTorch CPU: greedy, and assisted generation (assistant_model)."""

    def __init__(self, bundle: Path, spec: dict):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if spec.get("threads"):
            torch.set_num_threads(int(spec["threads"]))
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(spec["hf_target"])
        self.model = AutoModelForCausalLM.from_pretrained(spec["hf_target"], torch_dtype=torch.float32).eval()
        self.draft = None
        if spec.get("hf_draft"):
            self.draft = AutoModelForCausalLM.from_pretrained(spec["hf_draft"], torch_dtype=torch.float32).eval()

    def generate(self, prompt: str, cfg: dict) -> dict:
        torch = self.torch
        ids = self.tok(prompt, return_tensors="pt")
        kw: dict[str, Any] = {"max_new_tokens": int(cfg["max_new_tokens"]), "do_sample": False}
        if cfg.get("ignore_eos"):
            kw["min_new_tokens"] = int(cfg["max_new_tokens"])
        if cfg["policy"] == "draft":
            kw.update(
                assistant_model=self.draft, num_assistant_tokens=int(cfg["k"]), num_assistant_tokens_schedule="constant"
            )
        elif cfg["policy"] == "ngram":
            kw.update(prompt_lookup_num_tokens=int(cfg["k"]), max_matching_ngram_size=int(cfg.get("ngram_size", 3)))
        with torch.inference_mode():
            t0 = time.perf_counter()
            first = self.model.generate(**ids, max_new_tokens=1, do_sample=False)
            ttft = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            out_ids = self.model.generate(**ids, **kw)
            wall = (time.perf_counter() - t0) * 1e3
        del first
        new = out_ids[0, ids["input_ids"].shape[1] :].tolist()
        out = {
            "text": self.tok.decode(new, skip_special_tokens=True),
            "tokens": new,
            "n_new": len(new),
            "wall_ms": wall,
            "ttft_ms": ttft,
        }
        out.update(dict.fromkeys(STAT_KEYS))
        return out


class CostRunner(CostProbe):
    """The product's per-call cost probe (edgespec.profiling.probe.CostProbe) behind the runner
    interface: generate() runs one pass of it (the prompt is unused)."""

    def generate(self, prompt: str, cfg: dict) -> dict:
        return self.measure(cfg)


class SharedRunner:
    """Several runners in one process (``lab/bench.py --one-process``): ``spec["members"]`` maps a
    member name to ``[kind, spec]``; ``cfg["member"]`` picks the one that generates. Generations of
    different runtimes then alternate on one allocator, one set of threads and one page cache, so
    the host's drift between processes is not read as a runtime difference (peak RSS is then the
    process's, not a runtime's)."""

    def __init__(self, bundle: Path, spec: dict):
        self.members = {name: RUNNERS[kind](bundle, sub) for name, (kind, sub) in spec["members"].items()}

    def generate(self, prompt: str, cfg: dict) -> dict:
        cfg = dict(cfg)
        return self.members[cfg.pop("member")].generate(prompt, cfg)


RUNNERS = {
    "genai": GenAIRunner,
    "edgespec": EdgespecRunner,
    "hf": HFRunner,
    "costs": CostRunner,
    "shared": SharedRunner,
}


def _f(v):
    return None if v is None else float(v)


def worker_main(conn, kind: str, bundle: str, spec: dict) -> None:
    """Worker process: build the runner, then serve ("gen", prompt, cfg) until ("stop",)."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        t0 = time.perf_counter()
        runner = RUNNERS[kind](Path(bundle), spec)
        conn.send(("ready", {"load_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as a finding
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
        return
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "stop":
            conn.send(("bye", {"peak_rss_mb": peak_rss_mb()}))
            return
        try:
            out = runner.generate(msg[1], msg[2])
            out["peak_rss_mb"] = peak_rss_mb()
            conn.send(("ok", out))
        except BaseException as e:  # noqa: BLE001
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
