"""Where a checkpoint comes from and what it is: resolve a path or hub id, check it is a causal LM.

    src = inspect_source("./llama")     ->  Source(dir, config, tokenizer, architecture, ...)

Every user-fixable problem is an ExportError with one sentence naming the problem and the fix.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgespec.errors import ExportError

# A hub id: "name" or "owner/name", no path-looking prefix.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
# The files an export needs from a hub repo (no other weights formats, no docs/images).
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "tokenizer*"]


@dataclass
class Source:
    """A local HF causal-LM checkpoint, inspected (config and tokenizer loaded, no weights)."""

    given: str  # what the user passed
    dir: Path
    config: Any  # transformers PretrainedConfig
    tokenizer: Any  # transformers PreTrainedTokenizer(Fast)
    generation_config: dict = field(default_factory=dict)

    @property
    def model_type(self) -> str:
        return self.config.model_type

    @property
    def architecture(self) -> str:
        archs = getattr(self.config, "architectures", None) or []
        return archs[0] if archs else f"{type(self.config).__name__.replace('Config', '')}ForCausalLM"

    @property
    def text_config(self):
        return self.config.get_text_config() if hasattr(self.config, "get_text_config") else self.config

    @property
    def logit_width(self) -> int:
        return int(self.text_config.vocab_size)

    @property
    def num_layers(self) -> int:
        c = self.text_config
        return int(getattr(c, "num_hidden_layers", None) or c.n_layer)

    @property
    def hidden_size(self) -> int:
        c = self.text_config
        return int(getattr(c, "hidden_size", None) or c.n_embd)

    @property
    def num_heads(self) -> int:
        c = self.text_config
        return int(getattr(c, "num_attention_heads", None) or c.n_head)

    @property
    def num_kv_heads(self) -> int:
        c = self.text_config
        return int(getattr(c, "num_key_value_heads", None) or self.num_heads)

    @property
    def head_dim(self) -> int:
        hd = getattr(self.text_config, "head_dim", None)
        return int(hd) if hd else self.hidden_size // self.num_heads

    @property
    def context_length(self) -> int:
        c = self.text_config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            v = getattr(c, key, None)
            if isinstance(v, int) and v > 0:
                return v
        return 2048  # unknown: a conservative default the runtime can still enforce

    @property
    def matmul_input_channels(self) -> list[int]:
        """Input-channel sizes of the projection weights (what an INT4 group size must divide)."""
        c = self.text_config
        dims = [self.hidden_size, self.num_heads * self.head_dim]
        inter = getattr(c, "intermediate_size", None) or getattr(c, "n_inner", None) or 4 * self.hidden_size
        dims.append(int(inter))
        return dims

    def checkpoint_bytes(self) -> int:
        return sum(
            p.stat().st_size
            for p in self.dir.iterdir()
            if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".pth")
        )

    def parameter_count(self) -> int:
        """Parameters from safetensors headers (no weights read); a config estimate otherwise."""
        total = 0
        for f in sorted(self.dir.glob("*.safetensors")):
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
            for k, v in header.items():
                if k != "__metadata__":
                    count = 1
                    for d in v["shape"]:
                        count *= d
                    total += count
        if total:
            return total
        h, layers, v = self.hidden_size, self.num_layers, self.logit_width
        return 12 * layers * h * h + 2 * v * h


def resolve_dir(given: str | os.PathLike, role: str) -> Path:
    """A local directory for ``given``: the path itself, or a hub id from the cache or the hub."""
    p = Path(given).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ExportError(
                f"The {role} {given} is a file, not a model directory; pass the directory "
                "that holds config.json and the weights."
            )
        if not os.access(p, os.R_OK | os.X_OK):
            raise ExportError(f"The {role} directory {given} is not readable; fix its permissions.")
        return p.resolve()
    text = str(given)
    if not _HUB_ID.match(text):
        raise ExportError(f"The {role} path {given} does not exist; pass a local Hugging Face model directory.")
    return _from_hub(text, role)


def _from_hub(repo_id: str, role: str) -> Path:
    """Use the local HF cache first; try the hub only when that misses; explain a missing network."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        raise ExportError(f"The {role} {repo_id} is not a local directory; pass a local model path.") from None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=_HUB_PATTERNS))
    except Exception:
        pass  # not cached: try the hub itself
    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS))
    except RepositoryNotFoundError:
        raise ExportError(
            f"The {role} {repo_id} is neither a local directory nor a model on the Hugging Face "
            "hub; check the spelling or pass a local path."
        ) from None
    except LocalEntryNotFoundError:
        raise ExportError(
            f"The {role} {repo_id} is not a local directory and no model hub is reachable; download "
            f"it first (e.g. `huggingface-cli download {repo_id} --local-dir ./{repo_id.split('/')[-1]}`) "
            "and pass the local path."
        ) from None
    except Exception as e:  # gated repos, HTTP errors, ...
        raise ExportError(
            f"The {role} {repo_id} is not a local directory and downloading it failed "
            f"({type(e).__name__}); download it yourself and pass the local path."
        ) from None


def _quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def inspect_source(given: str | os.PathLike, role: str = "target") -> Source:
    """Resolve ``given`` and check it is a causal LM with a tokenizer; loads no weights."""
    d = resolve_dir(given, role)
    if not (d / "config.json").is_file():
        raise ExportError(
            f"The {role} directory {given} has no config.json, so it is not a Hugging Face model "
            "directory; pass the folder that `save_pretrained` or `huggingface-cli download` wrote."
        )
    _quiet_transformers()
    import transformers as tf

    try:
        config = tf.AutoConfig.from_pretrained(d)
    except Exception as e:
        raise ExportError(
            f"The {role} config {d / 'config.json'} cannot be read by transformers "
            f"({_first_line(e)}); the checkpoint may need a newer transformers."
        ) from None
    archs = getattr(config, "architectures", None) or []
    causal_named = [a for a in archs if a.endswith("ForCausalLM") or a.endswith("LMHeadModel")]
    mapped = type(config) in tf.AutoModelForCausalLM._model_mapping
    if (archs and not causal_named) or not mapped:
        what = ", ".join(archs) or config.model_type
        raise ExportError(
            f"The {role} {given} is a {what} model, not a causal language model; edgespec exports "
            "decoder-only LMs (*ForCausalLM)."
        )
    _check_supported(config.model_type, role, given)
    require_safetensors(d, role, given)
    try:
        tok = tf.AutoTokenizer.from_pretrained(d)
    except Exception as e:
        raise ExportError(
            f"The {role} directory {given} has no usable tokenizer ({_first_line(e)}); copy the "
            "tokenizer files (tokenizer.json, tokenizer_config.json) next to config.json."
        ) from None
    gen = {}
    if (d / "generation_config.json").is_file():
        try:
            gen = json.loads((d / "generation_config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            gen = {}
    return Source(given=str(given), dir=d, config=config, tokenizer=tok, generation_config=gen)


# Weights stored as Python pickles (torch.save): loading one runs whatever code it names.
_PICKLE_WEIGHTS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def require_safetensors(d: Path, role: str, given=None) -> None:
    """Refuse a checkpoint whose weights are not in safetensors files, before anything loads it.

    Only safetensors checkpoints are ever loaded (transformers gets ``use_safetensors=True``):
    a pickle-only checkpoint (``pytorch_model.bin``) is refused with the conversion to run where
    the file is trusted, never unpickled.
    """
    d = Path(d)
    if any(d.glob("*.safetensors")):
        return
    pickles = sorted({p.name for pat in _PICKLE_WEIGHTS for p in d.glob(pat) if p.is_file()})
    if pickles:
        shown = ", ".join(pickles[:3]) + (", ..." if len(pickles) > 3 else "")
        raise ExportError(
            f"The {role} directory {given or d} holds only pickle weights ({shown}); edgespec loads "
            "only safetensors checkpoints, because loading a pickle can run code; convert it where "
            'you trust the file (python -c "import transformers as t; t.AutoModelForCausalLM.'
            f"from_pretrained('{d}').save_pretrained('{d}-safetensors')\") and pass the new directory."
        )
    raise ExportError(
        f"The {role} directory {given or d} has no weights (*.safetensors); download the full checkpoint."
    )


def _check_supported(model_type: str, role: str, given) -> None:
    """The family must be in models/families.json or exportable by optimum-intel."""
    from edgespec import registry

    if model_type in registry.families():
        return
    try:
        import optimum.exporters.openvino  # noqa: F401  (registers the OpenVINO export configs)
        from optimum.exporters.tasks import TasksManager

        tasks = TasksManager.get_supported_tasks_for_model_type(
            model_type, exporter="openvino", library_name="transformers"
        )
        if "text-generation-with-past" in tasks:
            return
    except Exception:
        pass
    raise ExportError(
        f"The {role} {given} has architecture {model_type!r}, which neither edgespec nor optimum-intel "
        "can export; use a supported family (see models/families.json)."
    )


def _first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of ``e``'s message (its type's name when it has none), at most ``limit`` characters."""
    s = str(e).strip().splitlines()
    return (s[0] if s else type(e).__name__)[:limit]


# EAGLE-3 heads: the architectures optimum-intel's EAGLE-3 export loads (docs/eagle3.md).
EAGLE3_ARCHITECTURES = ("LlamaForCausalLMEagle3", "Eagle3LlamaForCausalLM")
# The head's tensors (checkpoint names, without a "model." prefix) that the export needs.
_EAGLE3_REQUIRED = (
    "fc.weight",
    "midlayer.self_attn.q_proj.weight",
    "midlayer.self_attn.k_proj.weight",
    "midlayer.self_attn.v_proj.weight",
    "midlayer.self_attn.o_proj.weight",
    "midlayer.mlp.down_proj.weight",
    "midlayer.hidden_norm.weight",
    "midlayer.input_layernorm.weight",
    "norm.weight",
    "lm_head.weight",
)


@dataclass
class Eagle3Head:
    """An EAGLE-3 head checkpoint (config.json and safetensors headers read, no weights)."""

    given: str
    dir: Path
    config: dict  # config.json as written
    shapes: dict  # tensor name (without "model.") -> shape
    dtypes: dict  # tensor name -> safetensors dtype ("I64", "BOOL", "F16", ...)

    @property
    def architecture(self) -> str:
        return self.config["architectures"][0]

    @property
    def hidden_size(self) -> int:
        return int(self.config.get("hidden_size", 0))

    @property
    def vocab_size(self) -> int:
        return int(self.config.get("vocab_size", 0))

    @property
    def draft_vocab_size(self) -> int:
        return int(self.config.get("draft_vocab_size") or self.vocab_size)

    @property
    def has_embedding(self) -> bool:
        return "embed_tokens.weight" in self.shapes

    def layer_ids(self) -> list[int] | None:
        """The target layers the head reads, as its config gives them (None: not given)."""
        for holder in (self.config.get("eagle_config") or {}, self.config):
            ids = holder.get("eagle_aux_hidden_state_layer_ids")
            if ids is not None:
                return ids
        return None

    def weights_file(self) -> Path:
        return self.dir / "model.safetensors"


def default_eagle3_layers(num_layers: int) -> list[int]:
    """OpenVINO GenAI's (and the EAGLE reference's) choice when a head names no layers."""
    return [2, num_layers // 2, num_layers - 3]


def safetensors_header(path: Path) -> dict:
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(n))


def eagle3_head(given: str | os.PathLike) -> Eagle3Head | None:
    """The EAGLE-3 head at ``given``, or None when ``given`` is not one (an ordinary drafter)."""
    d = resolve_dir(given, "drafter")
    cfg_file = d / "config.json"
    if not cfg_file.is_file():
        return None
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    archs = cfg.get("architectures") or []
    if not archs or archs[0] not in EAGLE3_ARCHITECTURES:
        return None
    files = sorted(d.glob("*.safetensors"))
    if not files:
        raise ExportError(f"The EAGLE-3 head {given} has no weights (*.safetensors); download the full checkpoint.")
    shapes, dtypes = {}, {}
    for f in files:
        for k, v in safetensors_header(f).items():
            if k != "__metadata__":
                name = k[len("model.") :] if k.startswith("model.") else k
                shapes[name] = list(v["shape"])
                dtypes[name] = v["dtype"]
    return Eagle3Head(given=str(given), dir=d, config=cfg, shapes=shapes, dtypes=dtypes)


def check_eagle3(head: Eagle3Head, target: Source) -> list[int]:
    """The target layers ``head`` reads, after checking it fits ``target``; one sentence otherwise."""
    who = f"The EAGLE-3 head {head.given}"
    if target.model_type not in ("llama", "qwen2", "qwen3", "mistral"):
        raise ExportError(
            f"{who} drafts for Llama-style targets, but the target is a {target.model_type} model; "
            "use a Llama, Qwen2/3 or Mistral target."
        )
    if int(head.config.get("num_hidden_layers", 1)) != 1:
        raise ExportError(
            f"{who} has {head.config.get('num_hidden_layers')} decoder layers; the EAGLE-3 format "
            "(and optimum-intel's export of it) has exactly one (midlayer)."
        )
    missing = [k for k in _EAGLE3_REQUIRED if k not in head.shapes]
    if missing:
        raise ExportError(
            f"{who} lacks {', '.join(missing)} in its weights; it is not in the published EAGLE-3 "
            "format (fc, midlayer.*, norm, lm_head, d2t, t2d)."
        )
    if "d2t" not in head.shapes:
        raise ExportError(
            f"{who} has no d2t map (draft id -> target id) in its weights; save the head with its d2t and t2d buffers."
        )
    th = target.hidden_size
    if head.hidden_size != th or head.shapes["fc.weight"] != [th, 3 * th]:
        raise ExportError(
            f"{who} has hidden size {head.hidden_size} (fc {head.shapes['fc.weight']}) but the target "
            f"{target.given} has {th} (fc must be [{th}, {3 * th}]); use a head trained for this target."
        )
    tv, dv = target.logit_width, head.draft_vocab_size
    if head.vocab_size != tv:
        raise ExportError(
            f"{who} was made for a vocabulary of {head.vocab_size} tokens but the target has {tv}; "
            "use a head trained for this target."
        )
    if dv > tv:
        raise ExportError(
            f"{who} drafts over {dv} tokens, more than the target's {tv}; its draft vocabulary must be "
            "part of the target's."
        )
    if head.shapes["lm_head.weight"] != [dv, head.hidden_size] or head.shapes["d2t"] != [dv]:
        raise ExportError(
            f"{who} has lm_head {head.shapes['lm_head.weight']} and d2t {head.shapes['d2t']} but "
            f"draft_vocab_size {dv}; they must agree ([{dv}, {head.hidden_size}] and [{dv}])."
        )
    if head.has_embedding and head.shapes["embed_tokens.weight"] != [tv, head.hidden_size]:
        raise ExportError(
            f"{who} has an embedding of shape {head.shapes['embed_tokens.weight']}, not the target's "
            f"[{tv}, {head.hidden_size}]; drop it to use the target's embedding."
        )
    n = target.num_layers
    ids = head.layer_ids()
    if ids is None:
        ids = default_eagle3_layers(n)
        if len(set(ids)) != 3 or min(ids) < 0:
            raise ExportError(
                f"{who} names no target layers and the target's {n} layers are too few for the default "
                "(2, n/2, n-3); set eagle_config.eagle_aux_hidden_state_layer_ids in its config.json."
            )
    if (
        not isinstance(ids, list)
        or len(ids) != 3
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        or len(set(ids)) != 3
    ):
        raise ExportError(
            f"{who} reads target layers {ids!r}; EAGLE-3 fuses exactly three distinct layers "
            "(eagle_config.eagle_aux_hidden_state_layer_ids)."
        )
    if min(ids) < 0 or max(ids) >= n:
        raise ExportError(
            f"{who} reads target layers {ids} but the target {target.given} has {n} layers "
            f"(0..{n - 1}); use a head trained for this target."
        )
    d2t_targets(head, tv)
    return [int(i) for i in ids]


def d2t_targets(head: Eagle3Head, target_vocab: int):
    """The target id of every draft id (draft id + d2t[draft id]), checked to be distinct target ids."""
    import numpy as np
    from safetensors import safe_open

    for f in sorted(head.dir.glob("*.safetensors")):
        with safe_open(str(f), framework="numpy") as st:
            for key in ("d2t", "model.d2t"):
                if key in st.keys():
                    d2t = np.asarray(st.get_tensor(key)).astype(np.int64)
                    ids = np.arange(len(d2t), dtype=np.int64) + d2t
                    if len(ids) and (ids.min() < 0 or ids.max() >= target_vocab or len(np.unique(ids)) != len(ids)):
                        raise ExportError(
                            f"The EAGLE-3 head {head.given}'s d2t maps draft ids outside the target's "
                            f"vocabulary (0..{target_vocab - 1}) or twice to one id; use a head trained "
                            "for this target."
                        )
                    return ids
    raise ExportError(
        f"The EAGLE-3 head {head.given} has no d2t map (draft id -> target id) in its weights; save "
        "the head with its d2t and t2d buffers."
    )
