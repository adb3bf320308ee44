"""The per-call cost probe: what one call of each model costs on this device, straight from OpenVINO.

The same calls a speculative loop makes, timed one by one on the bundle's IR (T_ar: a decode step;
T_verify(n): a target call over n tokens; T_draft: a drafter step; the same calls in a draft-model
loop's order; the drafter's read of a prompt). ``edgespec profile`` and the lab's benchmark
(lab/bench_runners.py) both measure with this class, so users and the bench measure the same way.
numpy and openvino only. For ONNX bundles on ONNX Runtime, :class:`OrtCostProbe` times the same
T_ar / T_verify(n) / T_draft through the `onnxruntime` package (present wherever that backend is).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def ov_properties(spec: dict) -> dict:
    """The OpenVINO properties GenAI gets: the threads and precision hints edgespec gets too."""
    props: dict[str, Any] = {}
    if spec.get("threads"):
        props["INFERENCE_NUM_THREADS"] = int(spec["threads"])
    if spec.get("precision"):
        props["INFERENCE_PRECISION_HINT"] = spec["precision"]
        if spec["precision"] == "f32" and str(spec.get("device") or "CPU").startswith("CPU"):
            props["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = 0  # as edgespec compiles f32: exact (docs/install.md)
    if spec.get("kv_precision"):
        props["KV_CACHE_PRECISION"] = spec["kv_precision"]
    extra = spec.get("ov_config")
    props.update(extra or {})
    return props


def paged_inputs(ids, past: int, block: int, split: bool) -> dict:
    """Inputs of one paged-attention call (OpenVINO's SDPAToPagedAttention form) that feeds ``ids``
    after ``past`` positions of one sequence whose blocks are 0, 1, 2, ...: as one subsequence, or
    (``split``) as len(ids) one-token subsequences over the same blocks, as edgespec sends short
    calls on the CPU (runtimes/src/model_paged.cpp)."""
    import numpy as np

    m = len(ids)
    per = 1 if split else m  # new tokens per subsequence
    starts = [past + j * per for j in range(m // per)]  # positions before each subsequence
    nbs = [(s + per + block - 1) // block for s in starts]
    return {
        "input_ids": np.asarray(ids, dtype=np.int64),
        "position_ids": np.arange(past, past + m, dtype=np.int64),
        "past_lens": np.array(starts, np.int32),
        "subsequence_begins": np.arange(0, m + 1, per, dtype=np.int32),
        "block_indices_begins": np.concatenate([[0], np.cumsum(nbs)]).astype(np.int32),
        "block_indices": np.concatenate([np.arange(x, dtype=np.int32) for x in nbs]),
        "max_context_len": np.array(past + m, np.int32),
    }


def eagle3_head(core, d: Path):
    """(the EAGLE-3 head in d as edgespec runs it, the width of the feature rows it reads), or None
    where d holds no head (no ``hidden_states`` input). The runtime moves the head's ``fc`` into the
    target's call (runtimes/src/backends/openvino/eagle3_graph.cpp), so the head reads hidden-size
    rows and runs on the stateful backend; the probe times it in the same form. The target's call
    is timed without that fc (one hidden×3·hidden MatMul over the call's rows: about 1 % of a 1B
    target's weights)."""
    m = core.read_model(str(d / "openvino_model.xml"))
    if "hidden_states" not in {i.get_any_name() for i in m.inputs}:
        return None
    for node in m.get_ordered_ops():
        src = node.input_value(0).get_node() if node.get_type_name() == "MatMul" else None
        if src is not None and src.get_type_name() == "Parameter" and "hidden_states" in src.output(0).get_names():
            width = node.get_output_partial_shape(0)[-1].get_length()
            node.output(0).replace(node.input_value(0))  # moves the fc output's names onto the input
            src.output(0).get_tensor().set_names({"hidden_states"})
            m.validate_nodes_and_infer_types()
            return m, width
    return None


LOGITS_ROWS = "es_logits_rows"  # the input edgespec adds to a graph: how many last rows of logits to compute


def with_logits_slice(model, axis: int = 0):
    """``model`` (axis 0: the paged-attention form, whose LM head reads [tokens, 1, hidden]; axis 1:
    the stateful form, [1, tokens, hidden]) with the slice edgespec
    inserts before its LM head (runtimes/src/model_stateful.cpp, insert_logits_slice): an i64 [1]
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
            sl = ops.slice(
                hidden, ops.negative(rows), np.array([np.iinfo(np.int64).max]), np.array([1]), np.array([axis])
            )
            node.input(0).replace_source_output(sl.output(0))
            model.add_parameters([rows])
            model.validate_nodes_and_infer_types()
            break
        srcs = [
            node.input_value(i).get_node()
            for i in range(node.get_input_size())
            if node.input_value(i).get_node().get_type_name() != "Constant"
        ]
        node = srcs[0] if len(srcs) == 1 else None
    return model


def bundle_dirs(bundle: Path, draft_name: str | None) -> tuple[Path, Path | None]:
    """The target's directory and the named drafter's (default: the first same-vocabulary one, else
    the first), or None where the bundle has no drafter."""
    mf = json.loads((bundle / "edgespec.json").read_text())
    target = next(m for m in mf["models"] if m["role"] == "target")
    drafts = [m for m in mf["models"] if m["role"] == "draft"]
    if draft_name:
        drafts = [d for d in drafts if d["name"] == draft_name]
    same = [d for d in drafts if d.get("relation", {}).get("kind") == "same_vocab"]
    draft = (same or drafts or [None])[0]
    return bundle / target["path"], (bundle / draft["path"] if draft else None)


class CostProbe:
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

    def __init__(self, bundle: Path, spec: dict, target_of: CostProbe | None = None):
        """spec: device, draft_name, backend, threads, precision, kv_precision, ov_config,
        fixed_shapes, and optionally engine_info (the ``info`` of a Pipeline loaded with the same
        options, which saves loading one to learn its call widths). target_of: a probe of the same
        bundle and options whose target compiles this one shares (one per drafter, one target)."""
        import openvino as ov

        self.core = ov.Core()
        self.props = ov_properties(spec)
        self.tdir, self.ddir = bundle_dirs(bundle, spec.get("draft_name"))
        self.device = spec.get("device", "CPU")
        self.widths, self.split = widths, split = self._engine_widths(bundle, spec)
        # per model: ({None: dynamic compile, w: fixed-width compile}, widths sent as subsequences)
        self.models = {
            "target": target_of.models["target"]
            if target_of is not None
            else (self._compile(self.tdir, widths["target"]), set(split["target"]))
        }
        self.draft_paged, self._read_compile = False, None  # the drafter's prompt-read compile, made on first use
        self.head_width = 0  # an EAGLE-3 head's feature width (0: a drafter model)
        head = eagle3_head(self.core, self.ddir) if self.ddir is not None else None
        if head is not None:
            self.models["draft"] = ({None: self.core.compile_model(head[0], self.device, self.props)}, set())
            self.head_width = head[1]
        elif self.ddir is not None:
            self.models["draft"] = (self._compile(self.ddir, widths["draft"]), set(split["draft"]))
            self.draft_paged = "past_lens" in {i.get_any_name() for i in self.models["draft"][0][None].inputs}

    @staticmethod
    def _engine_widths(bundle: Path, spec: dict) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """The call widths edgespec serves from fixed-width copies of each model, and those it sends
        to the attention as one-token subsequences (its pipeline info), so the probe times each
        call as the runtime makes it."""
        from ..pipeline import Pipeline

        if spec.get("backend") not in (None, "openvino", "openvino-paged"):
            return {"target": [], "draft": []}, {"target": [], "draft": []}
        info = spec.get("engine_info")
        if info is None:
            p = Pipeline.load(
                str(bundle),
                device=spec.get("device", "CPU"),
                draft=spec.get("draft_name") or "auto",
                threads=int(spec.get("threads") or 0),
                fixed_shapes=spec.get("fixed_shapes"),
                profile=False,
            )
            info = p.info
            p.close()
        return (
            {
                "target": list(info["target"].get("fixed_widths") or []),
                "draft": list((info.get("draft") or {}).get("fixed_widths") or []),
            },
            {
                "target": list(info["target"].get("split_widths") or []),
                "draft": list((info.get("draft") or {}).get("split_widths") or []),
            },
        )

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

    def measure(self, cfg: dict) -> dict:
        """One pass of the probe. cfg: context, n_values, calls, rounds, draft_k (the
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
                block = next(
                    i.get_partial_shape()[2].get_length() for i in caches if i.get_any_name().startswith("value_cache.")
                )
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
                    if "hidden_states" in names:  # an EAGLE-3 head's feature rows (their values cost nothing)
                        inp["hidden_states"] = np.zeros((1, m, self.head_width), dtype=np.float32)
                    if LOGITS_ROWS in names:
                        inp[LOGITS_ROWS] = np.array([1], np.int64)
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

        def pattern_costs(
            ks: list[int],
        ) -> tuple[dict[int, list[float]], dict[int, list[list[float]]], dict[int, list[float]]]:
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
                for k in ks if r % 2 == 0 else ks[::-1]:
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
                if self.head_width:  # an EAGLE-3 head reads the prompt's feature rows
                    m = with_logits_slice(eagle3_head(self.core, self.ddir)[0], axis=1)
                else:
                    m = with_logits_slice(self._paged_model(self.ddir)[0])
                self._read_compile = self.core.compile_model(m, self.device, self.props)
            read = ({None: self._read_compile}, set())
            out = {}
            feed = None if self.head_width else feeder(read, max(lengths) + 1)
            for n in lengths:
                if feed is None:  # a stateful head: a fresh sequence for each read
                    out[n] = float(np.median([feeder(read, n + 1)(n) for _ in range(4)][1:]))
                    continue
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
        out = {
            "T_ar_ms": med["T_ar_ms"],
            "T_verify_ms": {str(n): med[str(n)] for n in cfg["n_values"]},
            "T_draft_ms": med.get("T_draft_ms"),
            "calls_per_figure": calls * rounds,
            "fixed_widths": self.widths,
            "split_widths": self.split,
        }
        ks = sorted({int(k) for k in cfg.get("draft_k") or [] if int(k) > 0})
        if "draft" in self.models and ks:
            ver, drf, two = pattern_costs(ks)
            out["pattern"] = {
                str(k): {
                    "T_verify_ms": float(np.median(ver[k])),
                    "T_draft_ms": [float(np.median(x)) for x in drf[k]],
                    "T_draft_first2_ms": float(np.median(two[k])),
                }
                for k in ks
            }
        reads = sorted({int(n) for n in cfg.get("draft_reads") or [] if int(n) > 0})
        if "draft" in self.models and reads and (self.draft_paged or self.head_width):
            out["T_draft_read_ms"] = {str(n): v for n, v in read_costs(reads).items()}
        return out


class OrtCallTimer:
    """One ONNX graph with explicit past/present KV on ONNX Runtime's CPU provider, timed as edgespec's
    onnxruntime backend runs it (runtimes/src/ort_model.cpp): past KV as inputs, present KV and
    logits into pre-allocated buffers (I/O binding), so each call writes the whole present (past +
    new), as that backend does. Needs the `onnxruntime` Python package (the backend's library
    comes from it)."""

    def __init__(self, model: Path, threads: int = 0):
        import numpy as np
        import onnxruntime as ort

        self.np, self.ort = np, ort
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        ins = {i.name: i for i in self.sess.get_inputs()}
        self.past = [n for n in ins if n.startswith("past_key_values.")]
        shp = ins[self.past[0]].shape
        self.kv_heads, self.head_dim = int(shp[1]), int(shp[3])
        self.inputs = set(ins)
        self.cache: dict[int, list] = {}

    def _feeds(self, ids, past_len: int) -> dict:
        np = self.np
        m = len(ids)
        f = {"input_ids": np.asarray(ids, np.int64)[None], "attention_mask": np.ones((1, past_len + m), np.int64)}
        if "position_ids" in self.inputs:
            f["position_ids"] = np.arange(past_len, past_len + m, dtype=np.int64)[None]
        return f

    def prefill(self, ctx: int) -> None:
        """The KV of ``ctx`` random tokens, kept as the past of every timed call at that context."""
        np = self.np
        if ctx in self.cache:
            return
        f = self._feeds(np.random.default_rng(0).integers(3, 256, size=ctx), 0)
        for n in self.past:
            f[n] = np.zeros((1, self.kv_heads, 0, self.head_dim), np.float32)
        outs = self.sess.run(None, f)
        names = [o.name for o in self.sess.get_outputs()]
        present = {names[i]: outs[i] for i in range(len(names)) if names[i].startswith("present.")}
        self.cache[ctx] = [
            self.ort.OrtValue.ortvalue_from_numpy(present["present." + n[len("past_key_values.") :]]) for n in self.past
        ]

    def call(self, ctx: int, m: int, binding_cache: dict) -> float:
        """ms of one call over m new tokens after ctx past positions (bound buffers, as the runtime)."""
        np, ort = self.np, self.ort
        key = (ctx, m)
        if key not in binding_cache:
            b = self.sess.io_binding()
            for name, v in self._feeds(np.random.default_rng(m).integers(3, 256, size=m), ctx).items():
                b.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(v))
            for n, v in zip(self.past, self.cache[ctx]):
                b.bind_ortvalue_input(n, v)
            keep = []
            for o in self.sess.get_outputs():
                if o.name.startswith("present."):
                    arr = np.empty((1, self.kv_heads, ctx + m, self.head_dim), np.float32)
                else:
                    arr = np.empty((1, m, int(o.shape[2])), np.float32)
                val = ort.OrtValue.ortvalue_from_numpy(arr)
                keep.append((arr, val))
                b.bind_ortvalue_output(o.name, val)
            binding_cache[key] = (b, keep)
        b = binding_cache[key][0]
        t0 = time.perf_counter()
        self.sess.run_with_iobinding(b)
        return (time.perf_counter() - t0) * 1e3


class OrtCostProbe:
    """The cost probe's figures for an ONNX bundle on ONNX Runtime: T_ar, T_verify(n) and T_draft
    (same keys as CostProbe.measure; no loop-order or prompt-read figures), each call after a
    prefill of ``context`` tokens, back to back after an untimed call of its width, T_ar in a block
    of its own, the other widths interleaved by round."""

    def __init__(self, bundle: Path, spec: dict, target_of: OrtCostProbe | None = None):
        mf = json.loads((bundle / "edgespec.json").read_text())
        models = {m["name"]: m for m in mf["models"]}
        target = next(m for m in mf["models"] if m["role"] == "target")
        threads = int(spec.get("threads") or 0)
        self.target = (
            target_of.target
            if target_of is not None
            else OrtCallTimer(bundle / target["path"] / target["files"]["model"], threads)
        )
        d = models.get(spec.get("draft_name") or "")
        self.draft = OrtCallTimer(bundle / d["path"] / d["files"]["model"], threads) if d else None

    @staticmethod
    def _costs(timer: OrtCallTimer, ctx: int, ns: list[int], calls: int, rounds: int) -> dict[int, list[float]]:
        timer.prefill(ctx)
        bindings: dict = {}
        for n in ns:
            timer.call(ctx, n, bindings)
        out: dict[int, list[float]] = {n: [] for n in ns}
        for _ in range(rounds):
            for n in ns:
                timer.call(ctx, n, bindings)
                out[n].extend(timer.call(ctx, n, bindings) for _ in range(calls))
        return out

    def measure(self, cfg: dict) -> dict:
        import numpy as np

        ctx, calls, rounds = int(cfg["context"]), int(cfg.get("calls", 4)), int(cfg.get("rounds", 2))
        ns = sorted({int(n) for n in cfg["n_values"]} - {1})
        t = {
            **self._costs(self.target, ctx, [1], calls, rounds),
            **(self._costs(self.target, ctx, ns, calls, rounds) if ns else {}),
        }
        med = {n: float(np.median(v)) for n, v in t.items()}
        out = {
            "T_ar_ms": med[1],
            "T_verify_ms": {str(n): med[int(n)] for n in cfg["n_values"]},
            "T_draft_ms": None,
            "calls_per_figure": calls * rounds,
        }
        if self.draft is not None:
            out["T_draft_ms"] = float(np.median(self._costs(self.draft, ctx, [1], calls, rounds)[1]))
        return out
