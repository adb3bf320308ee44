"""HF causal LM -> ONNX with explicit KV-cache inputs/outputs, weights fp32 / fp16 / int8 / int4.

    export_onnx(hf_dir, out_dir, weights="int4", group_size=128)  ->  out_dir/model.onnx

How, and why this way
---------------------
optimum-onnx cannot be installed beside transformers 5.x, so the graph is traced here:

1. The HF model is wrapped in :class:`_FlatCacheLM`, a ``torch.nn.Module`` whose inputs are flat
   tensors (``input_ids``, ``attention_mask``, ``position_ids``, one key and one value tensor per
   layer). It rebuilds the ``transformers.DynamicCache`` that 5.x models expect from the flat past
   (``DynamicCache([(k0, v0), (k1, v1), ...])`` — one ``DynamicLayer`` per layer, filled by
   ``update``) and returns the logits and the flat presents.
2. The wrapper builds the 4-D additive attention mask itself and hands it to the model, which
   then uses it as-is. transformers 5's ``masking_utils`` does not survive TorchScript tracing
   (sizes become tensors and hit a deprecated code path) and would bake trace-time decisions into
   the graph; our mask is a few graph ops that stay dynamic. It is *slot-based* like HF's: query
   ``i`` sits at slot ``past + i``, may attend to slots ``<= past + i`` whose ``attention_mask``
   is 1, and, for sliding-window models, only to the last ``window`` slots. A slot with
   ``attention_mask == 0`` (left padding, or draft tokens the runtime rejected and left in the
   cache) is ignored, which is what the runtime's mask-based KV rollback relies on.
3. ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter) with ``dynamic_axes``
   traces it once with a non-empty past; the graph then runs with any batch, sequence and past
   length, including past length 0 at prefill. It is fast (about a second for the tiny models)
   and worked unchanged for Llama, Qwen2 (tied embeddings), Phi-3 and GPT-2, so the dynamo
   exporter was not needed.
4. Weights: int4/int8 go through ONNX Runtime's ``MatMulNBitsQuantizer`` (``MatMulNBits``
   contrib op, ``block_size=group_size``, ``is_symmetric=sym``, ``bits=8`` for int8). Weight
   ``Gemm`` nodes (GPT-2's ``Conv1D``) are first rewritten as ``MatMul + Add`` so that they are
   quantized too. The embedding ``Gather`` stays float (OpenVINO reads the result). fp16 traces
   the model in half precision while the wrapper keeps every input and output float32, so the
   HF model's own fp32 islands (RMSNorm variance, softmax) survive — a blanket fp32->fp16 graph
   conversion would overflow there on real checkpoints.
5. Graphs whose weights pass ~1.8 GB are saved with all tensors in one ``model.onnx.data`` file
   beside ``model.onnx`` (protobuf's 2 GB limit).

The alternative weighed was onnxruntime-genai's model builder (``python -m
onnxruntime_genai.models.builder -i DIR -o OUT -p int4 -e cpu``). It does work offline on local
directories, but its graphs use ORT-only fused ops (``GroupQueryAttention``, ``RotaryEmbedding``,
``SkipSimplifiedLayerNormalization``) and take no ``position_ids``: positions come from the
attention mask, which assumes contiguous masks and so breaks the runtime's mask-based KV
rollback. It remains the right tool for an ORT GenAI baseline in benchmarks (it writes
``genai_config.json``), not for the bundle.

Model I/O (the ``"io"`` entry of the result, copied into the bundle manifest) uses the names of
optimum / ORT GenAI: ``input_ids`` [batch, seq] int64, ``attention_mask`` [batch, past+seq]
int64, ``position_ids`` [batch, seq] int64, ``past_key_values.{i}.key|value`` [batch, kv_heads,
past, head_dim] float32 -> ``logits`` [batch, seq, vocab] float32, ``present.{i}.key|value``
[batch, kv_heads, past+seq, head_dim] float32. ``present`` is always ``past`` with the new
positions appended (no sliding-window truncation: the mask does the windowing).

Known limit: Phi-3 LongRoPE checkpoints (``rope_type == "longrope"``) choose their RoPE factors
from the sequence length at run time in torch; the trace fixes the short factors, so beyond
``original_max_position_embeddings`` the ONNX model differs from torch. The result's ``notes``
says so when it applies.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from edgespec.errors import ExportError

# model_type values whose tiny random models are exported and checked against torch in the tests
# (mistral is Llama plus a sliding window, handled by the mask).
SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "phi3", "gpt2", "mistral")
WEIGHTS = ("fp32", "fp16", "int8", "int4")
OPSET = 17
MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
# Above this many bytes of weights the graph is saved with external data (protobuf limit: 2 GiB).
EXTERNAL_DATA_THRESHOLD = 1_800_000_000

_INPUTS = ("input_ids", "attention_mask", "position_ids")
_PAST = "past_key_values.{i}.{kv}"
_PRESENT = "present.{i}.{kv}"


def export_onnx(
    hf_dir: Path,
    out_dir: Path,
    *,
    weights: str = "int4",
    group_size: int | None = 128,
    sym: bool = False,
    accuracy_level: int | None = None,
    progress: bool = True,
    external_data: bool | None = None,
) -> dict:
    """Export a local HF causal LM to ONNX with explicit KV-cache inputs/outputs into ``out_dir``.

    Args:
        hf_dir: a local Hugging Face model directory (``config.json`` + weights).
        out_dir: where ``model.onnx`` (and ``model.onnx.data`` for large models) is written;
            created if missing. Nothing else is left there.
        weights: ``fp32`` (as traced), ``fp16`` (half-precision weights and compute, float32
            I/O), ``int8`` or ``int4`` (``MatMulNBits`` weight-only, float32 activations).
        group_size: int4/int8 block size along the input dimension: a power of two >= 16.
            ``None`` (channel-wise) is not available in ``MatMulNBits``' packed format.
        sym: symmetric quantization (no zero points).
        accuracy_level: ``MatMulNBits`` ``accuracy_level`` attribute (0-4: the minimum precision
            of the activations inside the kernel; 4 = int8, fastest on CPU); ``None`` leaves it
            unset (= 0, float32 activations).
        progress: print status lines and a quantization progress bar on stderr.
        external_data: force (True) or forbid (False) ``model.onnx.data``; ``None`` decides by size.

    Returns:
        ``{"files": {"model": "model.onnx"[, "model_data": "model.onnx.data"]}, "io": {...},
        "weights": {...}, "export": {...}, "notes": [...]}``: the file names relative to
        ``out_dir``, the model I/O contract (names, shapes, dtypes, cache geometry), the weight
        format, how and how fast it was produced, and caveats worth showing the user.

    Raises:
        ExportError: unsupported architecture or weight format, unreadable checkpoint, a trace or
            quantization failure, or no disk space; the message says what to do.
    """
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    _check_args(weights, group_size, accuracy_level)
    console = _console(progress)
    timings: dict[str, float] = {}

    config = _load_config(hf_dir)
    geometry = _cache_geometry(config)
    notes = _notes(config)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")

    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".onnx-export-", dir=out_dir))
    try:
        with _status(console, f"Loading {hf_dir.name} ({config.model_type}) for ONNX export"):
            t = time.perf_counter()
            model = _load_model(hf_dir, half=weights == "fp16")
            timings["load_s"] = time.perf_counter() - t

        with _status(console, f"Tracing {config.model_type} to ONNX (opset {OPSET}, KV cache as I/O)"):
            t = time.perf_counter()
            traced = work / MODEL_FILE
            _trace(model, geometry, traced)
            timings["trace_s"] = time.perf_counter() - t
        del model
        gc.collect()

        import onnx

        graph = onnx.load(str(traced), load_external_data=True)
        info: dict = {"precision": weights}
        if weights in ("int4", "int8"):
            t = time.perf_counter()
            graph, info = _quantize(
                graph,
                bits=4 if weights == "int4" else 8,
                group_size=group_size,
                sym=sym,
                accuracy_level=accuracy_level,
                console=console,
                progress=progress,
            )
            timings["quantize_s"] = time.perf_counter() - t

        t = time.perf_counter()
        files = _save(graph, out_dir, external_data)
        timings["save_s"] = time.perf_counter() - t
    except OSError as err:
        _remove_outputs(out_dir)
        if err.errno == errno.ENOSPC:
            raise ExportError(
                f"No space left on the device while writing the ONNX model into "
                f"{out_dir}; free some space or choose another output directory."
            ) from err
        raise ExportError(
            f"Writing the ONNX model into {out_dir} failed ({err}); check that the directory is writable."
        ) from err
    except BaseException:  # ExportError, Ctrl-C: no half-written model.onnx stays behind
        _remove_outputs(out_dir)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)

    console.print(
        f"[green]ONNX[/] {config.model_type} {weights}: " + ", ".join(f"{k[:-2]} {v:.1f}s" for k, v in timings.items())
    )
    return {
        "files": files,
        "io": _io_contract(config, geometry, weights),
        "weights": info,
        "export": _export_info(timings),
        "notes": notes,
    }


# --------------------------------------------------------------------------- checks and config


def _check_args(weights: str, group_size: int | None, accuracy_level: int | None) -> None:
    if weights not in WEIGHTS:
        raise ExportError(f"Unknown ONNX weight format {weights!r}; use one of {', '.join(WEIGHTS)}.")
    if weights in ("int4", "int8"):
        if group_size is None or group_size <= 0:
            raise ExportError(
                "ONNX MatMulNBits needs a group size (channel-wise quantization is not "
                "available in its packed format); pass --group-size 128 (or 32, 64, ...)."
            )
        if group_size < 16 or group_size & (group_size - 1):
            raise ExportError(
                f"ONNX MatMulNBits needs a group size that is a power of two >= 16, "
                f"got {group_size}; pass e.g. --group-size 128."
            )
    if accuracy_level is not None and accuracy_level not in (0, 1, 2, 3, 4):
        raise ExportError(f"accuracy_level must be 0-4 (MatMulNBits), got {accuracy_level}.")


def _load_config(hf_dir: Path):
    if not (hf_dir / "config.json").is_file():
        raise ExportError(f"{hf_dir} has no config.json; point at a local Hugging Face model directory.")
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(hf_dir, local_files_only=True)
    except Exception as err:  # a malformed or unknown config: say so in one sentence
        raise ExportError(
            f"Could not read the model config in {hf_dir} ({_short(err)}); "
            f"check that it is a Hugging Face causal LM checkpoint."
        ) from err
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ExportError(
            f"The ONNX exporter does not support the {config.model_type!r} architecture "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)}); use --format openvino."
        )
    return config


def _cache_geometry(config) -> dict:
    heads = config.num_attention_heads
    return {
        "num_layers": config.num_hidden_layers,
        "num_kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
        "vocab_size": config.vocab_size,
        "sliding_window": _sliding_window(config),
    }


def _sliding_window(config) -> dict | int | None:
    """None (full attention), an int (every layer), or {"window": w, "layers": [...]} (some)."""
    window = getattr(config, "sliding_window", None)
    if not window:
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types is None:
        return int(window)
    sliding = [i for i, kind in enumerate(layer_types) if kind == "sliding_attention"]
    if not sliding:
        return None
    if len(sliding) == len(layer_types):
        return int(window)
    return {"window": int(window), "layers": sliding}


def _notes(config) -> list[str]:
    notes = []
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if isinstance(rope, dict) and (rope.get("rope_type") or rope.get("type")) == "longrope":
        limit = getattr(config, "original_max_position_embeddings", None)
        notes.append(
            f"LongRoPE: the ONNX graph uses the short-context RoPE factors, so it matches "
            f"torch only up to {limit} positions."
        )
    return notes


def _load_model(hf_dir: Path, half: bool):
    import torch
    from transformers import AutoModelForCausalLM

    from .source import require_safetensors

    require_safetensors(hf_dir, "model")  # a pickle-only checkpoint is refused, never unpickled
    try:
        # eager attention: plain matmul/softmax ops that every ONNX runtime (and OpenVINO) reads.
        with _quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                hf_dir,
                dtype=torch.float16 if half else torch.float32,
                attn_implementation="eager",
                local_files_only=True,
                use_safetensors=True,
            )
    except Exception as err:
        raise ExportError(
            f"Could not load the model in {hf_dir} ({_short(err)}); check that it is a "
            f"complete Hugging Face causal LM checkpoint."
        ) from err
    return model.eval()


# --------------------------------------------------------------------------- running (validation)


def onnx_logits(model_path: Path, ids: list[list[int]], io: dict | None = None) -> list:
    """Logits [len, vocab] float32 for each id list, through ONNX Runtime on CPU.

    Each prompt runs the way a runtime drives the graph: its first half prefilled with an empty
    past, then token by token, each step fed the previous presents, so the KV-cache path is what
    gets validated. ``io`` is the ``"io"`` entry returned by :func:`export_onnx`; without it the
    cache geometry is read from the graph inputs.
    """
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    graph_inputs = sess.get_inputs()
    if io:
        num_layers, n_kv, head_dim = io["num_layers"], io["num_kv_heads"], io["head_dim"]
    else:
        num_layers = (len(graph_inputs) - len(_INPUTS)) // 2
        _, n_kv, _, head_dim = graph_inputs[len(_INPUTS)].shape
    past_names = io_names(num_layers)[0][len(_INPUTS) :]
    out = []
    for seq in ids:
        split = max(1, len(seq) // 2)
        chunks = [seq[:split]] + [[t] for t in seq[split:]]
        past = [np.zeros((1, n_kv, 0, head_dim), np.float32) for _ in past_names]
        rows, pos = [], 0
        for chunk in chunks:
            n = len(chunk)
            feed = {
                "input_ids": np.array([chunk], np.int64),
                "attention_mask": np.ones((1, pos + n), np.int64),
                "position_ids": np.arange(pos, pos + n, dtype=np.int64)[None],
            }
            feed.update(zip(past_names, past))
            logits, *past = sess.run(None, feed)
            rows.append(logits[0].astype(np.float32))
            pos += n
        out.append(np.concatenate(rows, axis=0))
    return out


# --------------------------------------------------------------------------- tracing


def _flat_cache_module(model, geometry: dict):
    """Build the traceable wrapper (a function so that torch is imported only when exporting)."""
    import torch
    from transformers import DynamicCache

    class _FlatCacheLM(torch.nn.Module):
        """HF causal LM with flat KV tensors as I/O; float32 I/O whatever the compute dtype."""

        def __init__(self, lm, num_layers: int, sliding_window):
            super().__init__()
            self.lm = lm
            self.num_layers = num_layers
            self.sliding_window = sliding_window
            self.dtype = next(lm.parameters()).dtype

        def _mask(self, attention_mask, seq_len, window: int | None):
            # [batch, 1, seq, total] additive mask, slot-based (see the module docstring).
            total = attention_mask.shape[1]
            kv_slot = torch.arange(total, device=attention_mask.device)
            q_slot = torch.arange(seq_len, device=attention_mask.device) + (total - seq_len)
            allowed = kv_slot[None, :] <= q_slot[:, None]  # [seq, total]
            if window is not None:
                allowed = allowed & (kv_slot[None, :] > q_slot[:, None] - window)
            allowed = allowed[None, None] & attention_mask[:, None, None, :].bool()
            # finfo.min / 2: a fully masked row (a padding query) stays finite in fp16 too, so no
            # NaN can reach the KV cache through it.
            masked = torch.finfo(self.dtype).min / 2
            zeros = torch.zeros(allowed.shape, dtype=self.dtype, device=attention_mask.device)
            return zeros.masked_fill(~allowed, masked)

        def forward(self, input_ids, attention_mask, position_ids, *past):
            seq_len = input_ids.shape[1]
            sw = self.sliding_window
            if isinstance(sw, dict):  # mixed layers (Qwen2 style): the model takes a mask per kind
                mask = {
                    "full_attention": self._mask(attention_mask, seq_len, None),
                    "sliding_attention": self._mask(attention_mask, seq_len, sw["window"]),
                }
            else:
                mask = self._mask(attention_mask, seq_len, sw)
            cache = DynamicCache(
                [(past[2 * i].to(self.dtype), past[2 * i + 1].to(self.dtype)) for i in range(self.num_layers)]
            )
            out = self.lm(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
                return_dict=True,
            )
            presents = []
            for layer in out.past_key_values.layers:
                presents += [layer.keys.float(), layer.values.float()]
            return (out.logits.float(), *presents)

    return _FlatCacheLM(model, geometry["num_layers"], geometry["sliding_window"]).eval()


def io_names(num_layers: int) -> tuple[list[str], list[str]]:
    """(input names, output names) of an exported graph, in graph order."""
    past = [_PAST.format(i=i, kv=kv) for i in range(num_layers) for kv in ("key", "value")]
    present = [_PRESENT.format(i=i, kv=kv) for i in range(num_layers) for kv in ("key", "value")]
    return [*_INPUTS, *past], ["logits", *present]


def _trace(model, geometry: dict, path: Path) -> None:
    import torch

    wrapper = _flat_cache_module(model, geometry)
    n_layers, n_kv, head_dim = (
        geometry["num_layers"],
        geometry["num_kv_heads"],
        geometry["head_dim"],
    )
    # Trace with a non-empty past and sizes unlike any model dimension; all four axes stay dynamic.
    batch, past_len, seq = 2, 3, 5
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, min(geometry["vocab_size"], 1000), (batch, seq), generator=gen)
    mask = torch.ones(batch, past_len + seq, dtype=torch.int64)
    pos = torch.arange(past_len, past_len + seq).unsqueeze(0).repeat(batch, 1)
    past = [torch.zeros(batch, n_kv, past_len, head_dim) for _ in range(2 * n_layers)]

    inputs, outputs = io_names(n_layers)
    axes = {
        "input_ids": {0: "batch", 1: "seq"},
        "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "seq"},
        "logits": {0: "batch", 1: "seq"},
    }
    axes.update({n: {0: "batch", 2: "past"} for n in inputs[3:]})
    axes.update({n: {0: "batch", 2: "total"} for n in outputs[1:]})
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_transformers():
            warnings.simplefilter("ignore")  # TracerWarnings about Python ints: expected, harmless
            torch.onnx.export(
                wrapper,
                (ids, mask, pos, *past),
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    except OSError:
        raise
    except Exception as err:
        raise ExportError(
            f"Tracing the model to ONNX failed ({_short(err)}); this architecture "
            f"variant is not exportable to ONNX here, use --format openvino."
        ) from err


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------- weights


def _gemm_weights_to_matmul(graph) -> int:
    """Rewrite ``Gemm(x, W, b)`` with a constant W as ``MatMul(x, W) + b`` (MatMulNBits input)."""
    import numpy as np
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in graph.initializer}
    nodes, rewritten = [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (
            node.op_type != "Gemm"
            or node.input[1] not in inits
            or attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            nodes.append(node)
            continue
        weight = node.input[1]
        if attrs.get("transB", 0):
            arr = numpy_helper.to_array(inits[weight]).T
            weight = weight + "_T"
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(arr), weight))
        if len(node.input) > 2 and node.input[2]:
            mm_out = node.output[0] + "_mm"
            nodes.append(helper.make_node("MatMul", [node.input[0], weight], [mm_out], name=node.name + "_MatMul"))
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=node.name + "_Add"))
        else:
            nodes.append(
                helper.make_node("MatMul", [node.input[0], weight], [node.output[0]], name=node.name + "_MatMul")
            )
        rewritten += 1
    if rewritten:
        graph.ClearField("node")
        graph.node.extend(nodes)
    return rewritten


def _quantize(
    graph,
    *,
    bits: int,
    group_size: int,
    sym: bool,
    accuracy_level: int | None,
    console,
    progress: bool,
):
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    _gemm_weights_to_matmul(graph.graph)
    inits = {t.name for t in graph.graph.initializer}
    targets = [n for n in graph.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    if not targets:
        raise ExportError(
            "The traced ONNX graph has no weight MatMul to quantize; export with "
            "--weights fp32 or fp16, or use --format openvino."
        )

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(
        graph,
        bits=bits,
        block_size=group_size,
        is_symmetric=sym,
        accuracy_level=accuracy_level,
        op_types_to_quantize=("MatMul",),
    )
    inner = quantizer.node_quantizer.quantize
    with _progress_bar(
        console,
        progress,
        f"Quantizing {len(targets)} MatMuls to int{bits} (group {group_size}, {'sym' if sym else 'asym'})",
        len(targets),
    ) as advance:
        names = {n.name for n in targets}

        def quantize_one(node, graph_stack):
            out = inner(node, graph_stack)
            if node.name in names:
                advance()
            return out

        quantizer.node_quantizer.quantize = quantize_one
        try:
            quantizer.process()
        except Exception as err:
            raise ExportError(
                f"ONNX Runtime's int{bits} quantizer failed ({_short(err)}); try "
                f"another --group-size or --weights fp16."
            ) from err
    model = quantizer.model.model
    n_q = sum(n.op_type == "MatMulNBits" for n in model.graph.node)
    info = {
        "precision": f"int{bits}",
        "group_size": group_size,
        "sym": sym,
        "accuracy_level": accuracy_level,
        "quantizer": "onnxruntime MatMulNBitsQuantizer",
        "op": "com.microsoft.MatMulNBits",
        "quantized_matmuls": n_q,
        "float_matmuls": len(targets) - n_q,
        "embeddings": "float32",
    }
    return model, info


# --------------------------------------------------------------------------- saving and reporting


def _save(model, out_dir: Path, external_data: bool | None) -> dict:
    import onnx

    weight_bytes = sum(len(t.raw_data) or _tensor_nbytes(t) for t in model.graph.initializer)
    external = weight_bytes > EXTERNAL_DATA_THRESHOLD if external_data is None else external_data
    _remove_outputs(out_dir)
    if external:
        onnx.save_model(
            model,
            str(out_dir / MODEL_FILE),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=DATA_FILE,
            size_threshold=1024,
        )
        return {"model": MODEL_FILE, "model_data": DATA_FILE}
    onnx.save_model(model, str(out_dir / MODEL_FILE))
    return {"model": MODEL_FILE}


def _tensor_nbytes(tensor) -> int:
    import numpy as np
    from onnx import helper

    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except Exception:
        itemsize = 4
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize


def _remove_outputs(out_dir: Path) -> None:
    for name in (MODEL_FILE, DATA_FILE):
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()


def _io_contract(config, geometry: dict, weights: str) -> dict:
    n = geometry["num_layers"]
    kv_shape = ["batch", geometry["num_kv_heads"], "past", geometry["head_dim"]]
    present_shape = ["batch", geometry["num_kv_heads"], "past+seq", geometry["head_dim"]]
    inputs = {
        "input_ids": {"shape": ["batch", "seq"], "dtype": "int64"},
        "attention_mask": {"shape": ["batch", "past+seq"], "dtype": "int64"},
        "position_ids": {"shape": ["batch", "seq"], "dtype": "int64"},
    }
    outputs = {"logits": {"shape": ["batch", "seq", geometry["vocab_size"]], "dtype": "float32"}}
    for i in range(n):
        for kv in ("key", "value"):
            inputs[_PAST.format(i=i, kv=kv)] = {"shape": kv_shape, "dtype": "float32"}
            outputs[_PRESENT.format(i=i, kv=kv)] = {"shape": present_shape, "dtype": "float32"}
    return {
        "inputs": inputs,
        "outputs": outputs,
        "past_key": _PAST.format(i="{i}", kv="key"),
        "past_value": _PAST.format(i="{i}", kv="value"),
        "present_key": _PRESENT.format(i="{i}", kv="key"),
        "present_value": _PRESENT.format(i="{i}", kv="value"),
        "num_layers": n,
        "num_kv_heads": geometry["num_kv_heads"],
        "head_dim": geometry["head_dim"],
        "kv_dtype": "float32",
        "compute_dtype": "float16" if weights == "fp16" else "float32",
        "sliding_window": geometry["sliding_window"],
        "stateful": False,
        # How a runtime drives it: prefill with past length 0; present = past + the new positions.
        "attention_mask_semantics": "1 = attend to this cache slot, 0 = ignore it (padding or "
        "rolled-back draft tokens left in the cache); causal by slot",
        "position_ids_semantics": "explicit RoPE/absolute positions of the new tokens",
    }


def _export_info(timings: dict) -> dict:
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {
        "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
        "opset": OPSET,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }


def _short(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- progress


def _console(progress: bool):
    from rich.console import Console

    # stderr: stdout stays clean for `edgespec export --json`.
    return Console(stderr=True, quiet=not progress)


@contextlib.contextmanager
def _status(console, text: str):
    if console.quiet:
        yield
        return
    with console.status(text):
        yield
    console.print(f"[green]✓[/] {text}")


@contextlib.contextmanager
def _progress_bar(console, enabled: bool, text: str, total: int):
    if not enabled:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(text, total=total)
        yield lambda: bar.advance(task)
