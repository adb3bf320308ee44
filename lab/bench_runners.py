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

import json
import os
import resource
import time
import traceback
from pathlib import Path
from typing import Any

# GenOut keys (every runner fills the first five; the rest are None where the runtime has no such
# figure): text, tokens (list[int] or None), n_new, wall_ms, ttft_ms, target_calls, drafted,
# accepted, draft_ms, verify_ms, other_ms. ttft_ms is measured the same way on every side: wall
# clock from the call to the first streamed text chunk; ttft_native_ms is the runtime's own figure.
STAT_KEYS = ("target_calls", "drafted", "accepted", "draft_ms", "verify_ms", "other_ms")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def ov_properties(spec: dict) -> dict:
    """The OpenVINO properties GenAI gets: the threads and precision hints edgespec gets too."""
    props: dict[str, Any] = {}
    if spec.get("threads"):
        props["INFERENCE_NUM_THREADS"] = int(spec["threads"])
    if spec.get("precision"):
        props["INFERENCE_PRECISION_HINT"] = spec["precision"]
    if spec.get("kv_precision"):
        props["KV_CACHE_PRECISION"] = spec["kv_precision"]
    extra = spec.get("ov_config")
    props.update(extra or {})
    return props


def paged_inputs(ids, past: int, block: int, split: bool) -> dict:
    """Inputs of one paged-attention call (OpenVINO's SDPAToPagedAttention form) that feeds ``ids``
    after ``past`` positions of one sequence whose blocks are 0, 1, 2, ...: as one subsequence, or
    (``split``) as len(ids) one-token subsequences over the same blocks, as edgespec sends short
    calls on the CPU (runtimes/src/backends/openvino/paged.cpp)."""
    import numpy as np

    m = len(ids)
    per = 1 if split else m  # new tokens per subsequence
    starts = [past + j * per for j in range(m // per)]  # positions before each subsequence
    nbs = [(s + per + block - 1) // block for s in starts]
    return {"input_ids": np.asarray(ids, dtype=np.int64), "position_ids": np.arange(past, past + m, dtype=np.int64),
            "past_lens": np.array(starts, np.int32), "subsequence_begins": np.arange(0, m + 1, per, dtype=np.int32),
            "block_indices_begins": np.concatenate([[0], np.cumsum(nbs)]).astype(np.int32),
            "block_indices": np.concatenate([np.arange(x, dtype=np.int32) for x in nbs]),
            "max_context_len": np.array(past + m, np.int32)}


LOGITS_ROWS = "es_logits_rows"  # the input edgespec adds to a graph: how many last rows of logits to compute


def with_logits_slice(model):
    """``model`` (paged-attention form: the head reads [tokens, 1, hidden]) with the slice edgespec
    inserts before its LM head (runtimes/src/backends/openvino/stateful.cpp, insert_logits_slice): an i64 [1]
    input ``es_logits_rows`` = how many of the last rows the head computes. Unchanged where the head
    is not a MatMul a few single-input steps above the ``logits`` output."""
    import numpy as np
    import openvino as ov
    import openvino.opset8 as ops

    out = next((o for o in model.outputs if "logits" in o.get_names()), None)
    node = out.get_node().input_value(0).get_node() if out is not None else None
    for _ in range(8):
        if node is None:
            break
        if node.get_type_name() == "MatMul":
            hidden = node.input_value(0)
            rows = ops.parameter([1], ov.Type.i64, name=LOGITS_ROWS)
            rows.output(0).get_tensor().set_names({LOGITS_ROWS})
            sl = ops.slice(hidden, ops.negative(rows), np.array([np.iinfo(np.int64).max]), np.array([1]),
                           np.array([0]))
            node.input(0).replace_source_output(sl.output(0))
            model.add_parameters([rows])
            model.validate_nodes_and_infer_types()
            break
        srcs = [node.input_value(i).get_node() for i in range(node.get_input_size())
                if node.input_value(i).get_node().get_type_name() != "Constant"]
        node = srcs[0] if len(srcs) == 1 else None
    return model


def _bundle_dirs(bundle: Path, draft_name: str | None) -> tuple[Path, Path | None]:
    mf = json.loads((bundle / "edgespec.json").read_text())
    target = next(m for m in mf["models"] if m["role"] == "target")
    drafts = [m for m in mf["models"] if m["role"] == "draft"]
    if draft_name:
        drafts = [d for d in drafts if d["name"] == draft_name]
    same = [d for d in drafts if d.get("relation", {}).get("kind") == "same_vocab"]
    draft = (same or drafts or [None])[0]
    return bundle / target["path"], (bundle / draft["path"] if draft else None)


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
        tdir, ddir = _bundle_dirs(bundle, spec.get("draft_name"))
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
        if self.mode == "draft" and cfg.get("k") is None:
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
        out = {"text": res.texts[0], "tokens": None, "n_new": int(pm.get_num_generated_tokens()),
               "wall_ms": wall, "ttft_ms": (first[0] - t0) * 1e3 if first else None,
               "ttft_native_ms": float(pm.get_ttft().mean)}
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

    POLICY = {"ar": "autoregressive", "draft": "draft", "ngram": "ngram"}

    def __init__(self, bundle: Path, spec: dict):
        import edgespec

        if spec.get("ov_config"):
            raise RuntimeError("edgespec.Pipeline takes no raw OpenVINO properties; drop --ov-config or "
                               "limit --configs to genai_*")
        self.pipe = edgespec.Pipeline.load(
            str(bundle), device=spec.get("device", "CPU"), draft=spec.get("draft_name") or "auto",
            draft_device=spec.get("draft_device"), precision=spec.get("precision"),
            kv_precision=spec.get("kv_precision"), threads=int(spec.get("threads") or 0),
            backend=spec.get("backend") or "openvino", fixed_shapes=spec.get("fixed_shapes"))

    def generate(self, prompt: str, cfg: dict) -> dict:
        policy = cfg["policy"]
        kw: dict[str, Any] = {"max_new_tokens": int(cfg["max_new_tokens"]), "policy": self.POLICY[policy],
                              "ignore_eos": bool(cfg.get("ignore_eos"))}
        if policy != "ar":
            kw["k"] = "auto" if cfg.get("k") is None else int(cfg["k"])
        if cfg.get("k_max"):
            kw["k_max"] = int(cfg["k_max"])
        if cfg.get("draft_window") is not None:
            kw["draft_window"] = int(cfg["draft_window"])
        first = None

        def streamer(_chunk: str) -> None:  # on the generating thread, as GenAI's streamer
            nonlocal first
            if first is None:
                first = time.perf_counter()

        t0 = time.perf_counter()
        res = self.pipe.generate(prompt, streamer=streamer, **kw)
        wall = (time.perf_counter() - t0) * 1e3
        st = res.stats
        out = {"text": res.text, "tokens": [int(t) for t in res.tokens], "n_new": int(st.generated_tokens),
               "wall_ms": wall, "ttft_ms": (first - t0) * 1e3 if first is not None else None,
               "ttft_native_ms": float(st.ttft_ms), "total_ms": float(st.total_ms)}
        for key in STAT_KEYS:
            out[key] = float(getattr(st, key))
        out["native_stats"] = {k: v for k, v in st.to_dict().items() if k != "accepted_hist"}
        out["accepted_hist"] = list(st.accepted_hist)
        return out


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
            kw.update(assistant_model=self.draft, num_assistant_tokens=int(cfg["k"]),
                      num_assistant_tokens_schedule="constant")
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
        new = out_ids[0, ids["input_ids"].shape[1]:].tolist()
        out = {"text": self.tok.decode(new, skip_special_tokens=True), "tokens": new, "n_new": len(new),
               "wall_ms": wall, "ttft_ms": ttft}
        out.update(dict.fromkeys(STAT_KEYS))
        return out


class CostRunner:
    """Per-call costs straight from OpenVINO on the bundle's IR: T_ar (one target decode step),
    T_verify(n) (one target call over n tokens) and T_draft (one drafter decode step), each after a
    prefill of ``context`` tokens, median of a few calls. These feed ideal_speedup. With a drafter
    and fixed k values it also times both models in a draft-model loop's order (one verify call,
    then k drafter calls, round after round), which feeds ideal_speedup_pattern. The IR runs in
    its paged-attention form (OpenVINO's own conversion; what edgespec and GenAI both run on the
    CPU by default), or as the stateful graph where it does not convert. Each call's inputs are set
    on the request before its clock starts and its outputs stay in the request, so the time is the
    call's, not Python's (infer(dict) converts inputs and copies outputs: 0.3-0.5 ms more per call
    on the demo pair, lab/experiments/probe_call_overhead.py)."""

    def __init__(self, bundle: Path, spec: dict):
        import openvino as ov

        self.core = ov.Core()
        self.props = ov_properties(spec)
        self.tdir, self.ddir = _bundle_dirs(bundle, spec.get("draft_name"))
        self.device = spec.get("device", "CPU")
        self.widths, self.split = widths, split = self._engine_widths(bundle, spec)
        # per model: ({None: dynamic compile, w: fixed-width compile}, widths sent as subsequences)
        self.models = {"target": (self._compile(self.tdir, widths["target"]), set(split["target"]))}
        self.draft_paged, self._read_compile = False, None  # the drafter's prompt-read compile, made on first use
        if self.ddir is not None:
            self.models["draft"] = (self._compile(self.ddir, widths["draft"]), set(split["draft"]))
            self.draft_paged = "past_lens" in {i.get_any_name() for i in self.models["draft"][0][None].inputs}

    @staticmethod
    def _engine_widths(bundle: Path, spec: dict) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """The call widths edgespec serves from fixed-width copies of each model, and those it sends
        to the attention as one-token subsequences (its pipeline info), so the probe times each
        call as the runtime makes it."""
        import edgespec

        if spec.get("backend") not in (None, "openvino", "openvino-paged"):
            return {"target": [], "draft": []}, {"target": [], "draft": []}
        p = edgespec.Pipeline.load(str(bundle), device=spec.get("device", "CPU"), draft=spec.get("draft_name") or "auto",
                                   threads=int(spec.get("threads") or 0), fixed_shapes=spec.get("fixed_shapes"))
        info = p.info
        p.close()
        return ({"target": list(info["target"].get("fixed_widths") or []),
                 "draft": list((info.get("draft") or {}).get("fixed_widths") or [])},
                {"target": list(info["target"].get("split_widths") or []),
                 "draft": list((info.get("draft") or {}).get("split_widths") or [])})

    def _paged_model(self, d: Path):
        """(the model read from d in its paged-attention form, True), or (as it is, False) where it
        does not convert."""
        from openvino._offline_transformations import paged_attention_transformation

        m = self.core.read_model(str(d / "openvino_model.xml"))
        try:
            paged_attention_transformation(m, False, False)
            return m, True
        except Exception:  # noqa: BLE001 - a graph that does not convert is timed as it is
            return self.core.read_model(str(d / "openvino_model.xml")), False

    def _compile(self, d: Path, widths: list[int]) -> dict:
        """{None: the dynamic-shape compile, w: the compile with input width w fixed, ...}"""
        import openvino as ov

        m, paged = self._paged_model(d)
        out = {None: self.core.compile_model(m, self.device, self.props)}
        for w in widths if paged else []:
            c = m.clone()
            c.reshape({"input_ids": ov.PartialShape([w]), "position_ids": ov.PartialShape([w])})
            out[w] = self.core.compile_model(c, self.device, self.props)
        return out

    def generate(self, prompt: str, cfg: dict) -> dict:
        """(name kept for the worker protocol) cfg: context, n_values, calls, rounds, draft_k (the
        fixed k values of the drafter configurations, for the loop-pattern costs) and draft_reads
        (prompt lengths at which to time the drafter reading a prompt)."""
        import numpy as np

        ctx, calls, rounds = int(cfg["context"]), int(cfg.get("calls", 4)), int(cfg.get("rounds", 2))
        rng = np.random.default_rng(0)

        def feeder(model: tuple[dict, set], budget: int):
            """One sequence on fresh infer requests (one per compile, all on the same cache tensors),
            its caches sized for ``budget`` tokens; returns feed(m, at): the ms of one call over m
            new tokens after everything fed before, or (paged, ``at`` given) after the first
            ``at`` positions only, overwriting what followed them, as a rollback does: so every
            timed call runs at the context it is meant for, not at one that grows call by call. On
            the compile of width m if there is one (as edgespec picks), else the dynamic one."""
            import openvino as ov

            compiles, split = model
            compiled = compiles[None]
            reqs = {w: c.create_infer_request() for w, c in compiles.items()}
            names = {i.get_any_name() for i in compiled.inputs}
            paged = "past_lens" in names
            past, block = 0, 32
            if paged:  # one sequence: blocks 0, 1, 2, ... of caches sized for everything fed below
                caches = [i for i in compiled.inputs if "cache." in i.get_any_name()]
                block = next(i.get_partial_shape()[2].get_length() for i in caches
                             if i.get_any_name().startswith("value_cache."))
                blocks = budget // block + 2
                for i in caches:
                    dims = [i.get_partial_shape()[j].get_length() for j in range(1, 4)]
                    t = ov.Tensor(i.get_element_type(), [blocks] + dims)
                    for r in reqs.values():
                        r.set_tensor(i.get_any_name(), t)
            else:
                reqs[None].reset_state()

            def feed(m: int, at: int | None = None) -> float:
                nonlocal past
                if paged and at is not None:
                    past = at
                ids = rng.integers(3, 256, size=(m,), dtype=np.int64)
                if paged:  # in the layout edgespec sends this width in
                    inp = paged_inputs(ids, past, block, m in split)
                    if LOGITS_ROWS in names:  # the last row only, as edgespec asks of a prompt read
                        inp[LOGITS_ROWS] = np.array([1], np.int64)
                else:
                    inp = {"input_ids": ids[None], "attention_mask": np.ones((1, past + m), dtype=np.int64)}
                    if "position_ids" in names:
                        inp["position_ids"] = np.arange(past, past + m, dtype=np.int64)[None]
                    if "beam_idx" in names:
                        inp["beam_idx"] = np.zeros((1,), dtype=np.int32)
                req = reqs.get(m, reqs[None])
                for name, value in inp.items():  # before the clock, as a native runtime writes its inputs
                    req.set_tensor(name, ov.Tensor(value))
                t0 = time.perf_counter()
                req.infer()  # no per-call input conversion or output copy (infer(dict) adds 0.3-0.5 ms)
                past += m
                return (time.perf_counter() - t0) * 1e3

            return feed

        def model_costs(model: tuple[dict, set], ns: list[int]) -> dict[int, list[float]]:
            """One prefill of ``ctx`` tokens, then rounds of calls of each size in ``ns``, each
            after those ``ctx`` positions, interleaved by round so a burst of machine noise hits
            every size alike. Within a round the calls of one size run back to back after an
            untimed one: a call whose input shape differs from the previous call's pays for
            re-shaping the graph (milliseconds on a small model), which a decode loop at a fixed k
            does not."""
            feed = feeder(model, ctx + 2 * max(ns))
            feed(ctx)
            for n in ns:  # first call of each shape pays for it: not timed
                feed(n, ctx)
            out: dict[int, list[float]] = {n: [] for n in ns}
            for _ in range(rounds):
                for n in ns:
                    feed(n, ctx)
                    out[n].extend(feed(n, ctx) for _ in range(calls))
            return out

        def pattern_costs(ks: list[int]) -> tuple[dict[int, list[float]], dict[int, list[list[float]]],
                                                     dict[int, list[float]]]:
            """The same calls in a speculative loop's order at each fixed k, at the context ``ctx``:
            one target call over k + 1 tokens, then the drafter's k calls, round after round. Each
            model's calls then follow the other model's, as in every draft-model loop (edgespec's
            and GenAI's), and on this kind of host a model's first call after the other's costs
            more than one right after its own (lab/experiments/first_draft_call.py). The
            drafter's first call of a round reads one token (after a rejection) or two (after a
            round that accepted everything: its last draft and the bonus token), in alternate
            rounds; the later ones one each. Rounds of one k run back to back after an untimed
            one (no shape change timed), k values interleaved. Returns per k the verify calls, the
            drafter's calls by position (the first with one token), and its two-token first calls."""
            tfeed = feeder(self.models["target"], ctx + max(ks) + 2)
            dfeed = feeder(self.models["draft"], ctx + max(ks) + 2)
            tfeed(ctx)
            dfeed(ctx)
            ver: dict[int, list[float]] = {k: [] for k in ks}
            drf: dict[int, list[list[float]]] = {k: [[] for _ in range(k)] for k in ks}
            two: dict[int, list[float]] = {k: [] for k in ks}
            for r in range(rounds):
                for k in (ks if r % 2 == 0 else ks[::-1]):
                    for j in range(2 * calls + 1):
                        v = tfeed(k + 1, ctx)
                        w = 1 + j % 2
                        d = [dfeed(w, ctx - w + 1)] + [dfeed(1) for _ in range(k - 1)]
                        if j:  # the first round of a k re-shapes the target's call: not timed
                            ver[k].append(v)
                            (drf[k][0] if w == 1 else two[k]).append(d[0])
                            for i, x in enumerate(d[1:], 1):
                                drf[k][i].append(x)
            return ver, drf, two

        def read_costs(lengths: list[int]) -> dict[int, float]:
            """The drafter reading a prompt of each length into an empty cache, one call asking for
            the last row of logits only, as edgespec's drafter reads the prompt at its first round
            (a compile of its own, with edgespec's logits slice). Median of three after one."""
            if self._read_compile is None:  # once per probe, not once per pass
                self._read_compile = self.core.compile_model(with_logits_slice(self._paged_model(self.ddir)[0]),
                                                             self.device, self.props)
            feed = feeder(({None: self._read_compile}, set()), max(lengths) + 1)
            out = {}
            for n in lengths:
                feed(n, 0)
                out[n] = float(np.median([feed(n, 0) for _ in range(3)]))
            return out

        # T_ar in a block of its own, as plain decoding runs it (a decode step after a decode step):
        # interleaved with the wider calls it read ~10 % above edgespec's own plain decoding
        # (lab/experiments/probe_vs_loop_decode.py); the verify widths interleaved by round
        # (cfg "ar_interleaved": the old way, for that experiment)
        ns = sorted({int(n) for n in cfg["n_values"]} - {1})
        if cfg.get("ar_interleaved"):
            t = model_costs(self.models["target"], [1] + ns)
        else:
            t = {**model_costs(self.models["target"], [1]), **(model_costs(self.models["target"], ns) if ns else {})}
        samples: dict[str, list[float]] = {"T_ar_ms": t[1], **{str(n): v for n, v in t.items()}}
        if "draft" in self.models:
            samples["T_draft_ms"] = model_costs(self.models["draft"], [1])[1]
        med = {k: float(np.median(v)) for k, v in samples.items()}
        out = {"T_ar_ms": med["T_ar_ms"], "T_verify_ms": {str(n): med[str(n)] for n in cfg["n_values"]},
               "T_draft_ms": med.get("T_draft_ms"), "calls_per_figure": calls * rounds, "fixed_widths": self.widths,
               "split_widths": self.split}
        ks = sorted({int(k) for k in cfg.get("draft_k") or [] if int(k) > 0})
        if "draft" in self.models and ks:
            ver, drf, two = pattern_costs(ks)
            out["pattern"] = {str(k): {"T_verify_ms": float(np.median(ver[k])),
                                       "T_draft_ms": [float(np.median(x)) for x in drf[k]],
                                       "T_draft_first2_ms": float(np.median(two[k]))} for k in ks}
        reads = sorted({int(n) for n in cfg.get("draft_reads") or [] if int(n) > 0})
        if "draft" in self.models and reads and self.draft_paged:
            out["T_draft_read_ms"] = {str(n): v for n, v in read_costs(reads).items()}
        return out


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


RUNNERS = {"genai": GenAIRunner, "edgespec": EdgespecRunner, "hf": HFRunner, "costs": CostRunner,
           "shared": SharedRunner}


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
