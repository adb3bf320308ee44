"""HF checkpoint -> stateful OpenVINO IR (KV cache inside), weights compressed with NNCF.

    convert_openvino(src, out_dir, work_dir, wcfg, calibration)  ->  {"files", "io", "weights"}

Two steps, like ``optimum-cli export openvino``: optimum-intel traces the model to an f32 IR with
the KV cache as internal state, then NNCF compresses the weights with exactly the settings in
``wcfg`` (so the manifest records what was done, never optimum's size-based defaults).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgespec.errors import ExportError

from .source import Source, _first_line, _quiet_transformers

MODEL_XML = "openvino_model.xml"
TOKENIZER_XML = "openvino_tokenizer.xml"
DETOKENIZER_XML = "openvino_detokenizer.xml"


@dataclass
class WeightConfig:
    """Resolved weight settings for one model (what goes into the manifest's ``weights``)."""

    precision: str  # int4 | int8 | fp16 | fp32
    group_size: int | None = None  # int4: >0 or -1 (channel-wise)
    ratio: float | None = None  # int4: share of projection weights in INT4, rest INT8
    sym: bool | None = None
    awq: bool | None = None
    scale_estimation: bool | None = None

    def manifest(self, nbytes: int) -> dict:
        d = asdict(self)
        d["bytes"] = nbytes
        return d


def fit_group_size(requested: int, channels: list[int], channelwise_below: int = 16) -> int:
    """The largest group size <= requested that divides every input-channel size.

    Tiny models (hidden 64) cannot use 128; rather than fail we halve until it divides, and fall
    back to channel-wise (-1) below ``channelwise_below`` where groups stop paying for their
    scales. With ``channelwise_below=0`` (ONNX MatMulNBits: no channel-wise) the floor is 16.
    """
    if requested == -1:
        return -1
    g = requested
    while g >= max(16, channelwise_below):
        if all(c % g == 0 for c in channels):
            return g
        g //= 2
    return -1 if channelwise_below else 16


def export_ir(src: Source, work_dir: Path, precision: str = "fp32") -> Path:
    """Trace ``src`` to a float stateful IR in ``work_dir`` (optimum-intel); returns the xml path.

    The trace keeps the checkpoint's dtype (an 8B bf16 checkpoint is not upcast to 32 GB of f32
    in RAM) unless fp32 weights were asked for.
    """
    from optimum.exporters.openvino import main_export
    from optimum.intel.openvino.configuration import OVConfig

    # the PyTorch frontend logs a harmless "Failed to build model wrapper." for some families
    logging.getLogger("openvino.frontend.pytorch.utils").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # Any OVConfig (even without quantization) disables optimum's automatic INT8 for models
            # above 1B parameters: NNCF below applies exactly the precision the user asked for.
            main_export(
                str(src.dir),
                output=str(work_dir),
                task="text-generation-with-past",
                stateful=True,
                ov_config=OVConfig(dtype="fp32" if precision == "fp32" else None),
                convert_tokenizer=False,
                local_files_only=True,
                library_name="transformers",
                model_loading_kwargs={"use_safetensors": True},
            )  # never unpickle weights
        except KeyboardInterrupt:
            raise
        except Exception as e:
            raise ExportError(
                f"optimum-intel could not convert {src.given} to OpenVINO ({_first_line(e, 300)}); the architecture "
                "may need a newer optimum-intel."
            ) from e
    xml = work_dir / MODEL_XML
    if not xml.is_file():
        raise ExportError(f"optimum-intel wrote no {MODEL_XML} for {src.given}; the architecture is not supported.")
    return xml


def _eagle3_class():
    """optimum-intel's EAGLE-3 head class, as its main_export loads it.

    main_export reaches the class through a remote-code ``auto_map`` into its model_patcher
    (whose import check wants diffusers and einops, which edgespec does not need), and its
    export_from_model tells the model's library from the class's module: the same class,
    registered under ``transformers_modules`` as the remote-code loader would, goes through the
    same export.
    """
    import sys
    import types

    from optimum.exporters.openvino.model_patcher import LlamaEagle3ForCausalLM

    name = "transformers_modules.edgespec_eagle3"
    mod = sys.modules.get(name)
    if mod is None:
        mod = types.ModuleType(name)
        mod.LlamaEagle3ForCausalLM = type("LlamaEagle3ForCausalLM", (LlamaEagle3ForCausalLM,), {"__module__": name})
        sys.modules[name] = mod
    return mod.LlamaEagle3ForCausalLM


def target_embedding(target: Source):
    """The target's input embedding ([vocab, hidden] torch tensor), read from its safetensors."""
    from safetensors import safe_open

    for f in sorted(target.dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                if key.endswith("embed_tokens.weight"):
                    return st.get_tensor(key)
    raise ExportError(
        f"The target {target.given} has no embed_tokens.weight in its safetensors, which an EAGLE-3 "
        "head without its own embedding reads; export a target with safetensors weights."
    )


def load_eagle3_torch(head, target: Source):
    """The head as optimum-intel's LlamaEagle3ForCausalLM; a head without an embedding gets the target's."""
    import torch
    import transformers as tf

    cfg = tf.AutoConfig.from_pretrained(head.dir)
    cfg.tie_word_embeddings = False
    # fp32 whatever the checkpoint stores (published heads are bf16/fp16): the trace feeds fp32
    # inputs, and the IR is compressed to the bundle's precision afterwards
    model = _eagle3_class().from_pretrained(head.dir, config=cfg, dtype=torch.float32)
    if not head.has_embedding:
        emb = model.model.embed_tokens.weight
        with torch.no_grad():
            emb.copy_(target_embedding(target).to(emb.dtype))
    model.eval()
    return model


def export_eagle3_ir(head, target: Source, work_dir: Path, precision: str = "fp32") -> Path:
    """Trace an EAGLE-3 head to a float stateful IR with optimum-intel's EAGLE-3 export."""
    from optimum.exporters.openvino.convert import export_from_model
    from optimum.intel.openvino.configuration import OVConfig

    logging.getLogger("openvino.frontend.pytorch.utils").setLevel(logging.CRITICAL)
    _quiet_transformers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = load_eagle3_torch(head, target)
            export_from_model(
                model,
                str(work_dir),
                task="text-generation-with-past",
                stateful=True,
                ov_config=OVConfig(dtype="fp32" if precision == "fp32" else None),
            )
        except KeyboardInterrupt:
            raise
        except ExportError:
            raise
        except Exception as e:
            raise ExportError(
                f"optimum-intel could not export the EAGLE-3 head {head.given} to OpenVINO ({_first_line(e, 300)}); "
                "the head may need a newer optimum-intel."
            ) from e
    xml = work_dir / MODEL_XML
    if not xml.is_file():
        raise ExportError(f"optimum-intel wrote no {MODEL_XML} for the EAGLE-3 head {head.given}.")
    return xml


def convert_eagle3(
    head, target: Source, out_dir: Path, work_dir: Path, wcfg: WeightConfig, layer_ids: list[int]
) -> dict:
    """Write the head's IR to ``out_dir`` (compressed per ``wcfg``), marked for GenAI's EAGLE-3 mode.

    optimum-intel marks it ``eagle3_mode``; ``hidden_layers_list`` (the target layers it reads)
    is added, so OpenVINO GenAI needs no property for it (it reads both from the draft's rt_info).
    """
    import openvino as ov

    xml = export_eagle3_ir(head, target, work_dir, wcfg.precision)
    model = ov.Core().read_model(xml)
    io = read_io(model)
    model.set_rt_info("True", ["eagle3_mode"])
    model.set_rt_info(" ".join(str(i) for i in layer_ids), ["hidden_layers_list"])
    model = compress(model, wcfg, None)
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, out_dir / MODEL_XML, compress_to_fp16=(wcfg.precision == "fp16"))
    del model
    gc.collect()
    shutil.rmtree(work_dir, ignore_errors=True)
    nbytes = (out_dir / "openvino_model.bin").stat().st_size
    return {"files": {"model": MODEL_XML}, "io": io, "bytes": nbytes}


def compress(model, wcfg: WeightConfig, calibration: list[dict] | None):
    """Apply ``wcfg`` to an ov.Model with NNCF (int4/int8); fp16/fp32 are handled on save."""
    if wcfg.precision in ("fp16", "fp32"):
        return model
    import nncf

    _quiet_nncf()
    if wcfg.precision == "int8":
        with _nncf_progress_off():
            return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    mode = nncf.CompressWeightsMode.INT4_SYM if wcfg.sym else nncf.CompressWeightsMode.INT4_ASYM
    kw: dict = dict(mode=mode, group_size=wcfg.group_size, ratio=wcfg.ratio)
    if calibration:
        kw["dataset"] = nncf.Dataset(calibration)
        kw["subset_size"] = len(calibration)
        kw["awq"] = bool(wcfg.awq)
        kw["scale_estimation"] = bool(wcfg.scale_estimation)
        if wcfg.ratio is not None and wcfg.ratio < 1:
            # with data, rank layers for the INT4/INT8 split by their activations' variance
            kw["sensitivity_metric"] = nncf.SensitivityMetric.MAX_ACTIVATION_VARIANCE
    try:
        with _nncf_progress_off():
            return nncf.compress_weights(model, **kw)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        raise ExportError(
            f"NNCF weight compression failed ({_first_line(e, 300)}); try other "
            "--group-size/--ratio settings or drop --awq/--scale-estimation."
        ) from e


def calibration_inputs(src: Source, prompts: list[str], max_tokens: int = 128, id_map=None) -> list[dict]:
    """Model inputs for data-aware compression: one full-prompt call per prompt (stateful IR)."""
    from .validate import prompt_ids

    out = []
    for ids in prompt_ids(src, prompts, max_tokens=max_tokens, id_map=id_map):
        arr = np.array([ids], dtype=np.int64)
        out.append(
            {
                "input_ids": arr,
                "attention_mask": np.ones_like(arr),
                "position_ids": np.arange(arr.shape[1], dtype=np.int64)[None],
                "beam_idx": np.zeros(1, np.int32),
            }
        )
    return out


def read_io(model) -> dict:
    """Input/output names of an IR and whether the KV cache is internal state."""
    inputs = [i.get_any_name() for i in model.inputs]
    outputs = [o.get_any_name() for o in model.outputs]
    stateful = len(model.get_sinks()) > 0 if hasattr(model, "get_sinks") else "beam_idx" in inputs
    return {
        "stateful": bool(stateful),
        "inputs": inputs,
        "outputs": outputs,
        "has_position_ids": "position_ids" in inputs,
        "has_beam_idx": "beam_idx" in inputs,
        "logits": "logits" if "logits" in outputs else outputs[0],
    }


def convert_openvino(
    src: Source, out_dir: Path, work_dir: Path, wcfg: WeightConfig, calibration: list[dict] | None = None
) -> dict:
    """Write ``out_dir/openvino_model.xml/.bin`` (compressed per ``wcfg``); return files/io/bytes."""
    import openvino as ov

    xml = export_ir(src, work_dir, wcfg.precision)
    core = ov.Core()
    model = core.read_model(xml)
    io = read_io(model)
    model = compress(model, wcfg, calibration)
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, out_dir / MODEL_XML, compress_to_fp16=(wcfg.precision == "fp16"))
    del model
    gc.collect()
    # optimum writes the HF config/tokenizer files beside the IR; keep them (GenAI reads them)
    for f in work_dir.iterdir():
        if (
            f.is_file()
            and f.suffix in (".json", ".txt", ".model", ".tiktoken", ".jinja")
            and not (out_dir / f.name).exists()
        ):
            shutil.copy2(f, out_dir / f.name)
    shutil.rmtree(work_dir, ignore_errors=True)
    nbytes = (out_dir / "openvino_model.bin").stat().st_size
    return {"files": {"model": MODEL_XML}, "io": io, "bytes": nbytes}


def convert_tokenizers(tokenizer, out_dir: Path) -> dict:
    """openvino-tokenizers IRs so the native runtime tokenizes/detokenizes without Python."""
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer

    logging.getLogger("openvino_tokenizers").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tok_ir, detok_ir = convert_tokenizer(tokenizer, with_detokenizer=True, skip_special_tokens=True)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        raise ExportError(
            f"openvino-tokenizers cannot convert this tokenizer ({str(e).strip()[:200]}); "
            "a tokenizer.json-based (fast) tokenizer is required."
        ) from e
    ov.save_model(tok_ir, out_dir / TOKENIZER_XML)
    ov.save_model(detok_ir, out_dir / DETOKENIZER_XML)
    return {"tokenizer": TOKENIZER_XML, "detokenizer": DETOKENIZER_XML}


@contextlib.contextmanager
def _nncf_progress_off():
    """NNCF draws its own rich bar on stdout with no switch; ours on stderr already shows the step."""
    try:
        from nncf.common.logging import track_progress as tp
    except ImportError:
        yield
        return
    orig = tp.track.__init__

    def init(self, *a, **kw):
        kw["disable"] = True
        orig(self, *a, **kw)

    tp.track.__init__ = init
    try:
        yield
    finally:
        tp.track.__init__ = orig


def _quiet_nncf() -> None:
    try:
        from nncf.common.logging.logger import set_log_level

        set_log_level(logging.ERROR)
    except Exception:
        logging.getLogger("nncf").setLevel(logging.ERROR)
