"""``export_bundle``: HF target (+ drafters) -> an edgespec bundle, atomically, validated.

    from edgespec.export.api import export_bundle
    manifest = export_bundle("./llama", "bundle", drafts=["./draft"], weights="int4")

Per model (target first, then each drafter): inspect the checkpoint, convert (OpenVINO stateful
IR + NNCF, or ONNX), convert the tokenizer with openvino-tokenizers, validate against torch fp32,
and describe it in ``edgespec.json``. Everything is built in a temporary directory that becomes
``out`` only when all of it succeeded (a failure or Ctrl-C leaves nothing; what a kill -9 leaves,
the next export to the same output removes, see export.leftovers). A disk that fills up is
reported as such, with the space the export needs (estimated before any work, see _disk_needed).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edgespec import __version__, registry
from edgespec.bundle import (
    FORMATS,
    MANIFEST,
    PRECISIONS,
    SCHEMA_VERSION,
    atomic_directory,
    validate_manifest,
    vocab_hash,
    write_manifest,
)
from edgespec.errors import EdgespecError, ExportError

from .leftovers import OWNER_FILE, disk_error, disk_sentence, free_bytes, remove_stale_partials, write_owner
from .source import Eagle3Head, Source, check_eagle3, eagle3_head, inspect_source
from .validate import THRESHOLDS

TRIM_MAP = "trim_id_map.i32"
EAGLE3_MAP = "eagle3_id_map.i64"  # EAGLE-3 heads: little-endian int64, entry i = target id of draft id i
_NAME_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
# Files copied from the HF checkpoint into each model directory (GenAI and the runtime read them).
_HF_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
)


def draft_precision(weights: str, draft_weights: str | None = None) -> str:
    """The drafters' weight precision: ``draft_weights`` when given, else INT8 under an INT4 target
    (published FastDraft drafters ship INT8: a drafter is a few percent of a target call, so INT4
    saves little time and costs agreement; the 4M demo drafter agrees with its fp32 self on
    0.73-0.78 of tokens at INT4, 0.98-1.00 at INT8), else the target's precision."""
    if draft_weights is not None:
        return draft_weights
    return "int8" if weights == "int4" else weights


def check_options(
    *,
    format: str = "openvino",
    weights: str = "int4",
    group_size: int | None = None,
    ratio: float | None = None,
    sym: bool | None = None,
    awq: bool = False,
    scale_estimation: bool = False,
    dataset=None,
    preset: str | None = None,
    min_agreement: float | None = None,
    draft_weights: str | None = None,
    accuracy_level: int | None = None,
) -> None:
    """One sentence for each conflicting or out-of-range option (shared by the CLI and the API)."""
    if format not in FORMATS:
        raise ExportError(f"Unknown format {format!r}; choose one of: {', '.join(FORMATS)}.")
    if weights not in PRECISIONS:
        raise ExportError(f"Unknown weight precision {weights!r}; choose one of: {', '.join(PRECISIONS)}.")
    if draft_weights is not None and draft_weights not in PRECISIONS:
        raise ExportError(
            f"Unknown drafter weight precision {draft_weights!r}; choose one of: {', '.join(PRECISIONS)}."
        )
    if accuracy_level is not None:
        if format != "onnx":
            raise ExportError(
                "--accuracy-level sets ONNX Runtime's MatMulNBits compute precision; use it with --format onnx."
            )
        if accuracy_level not in (0, 1, 2, 3, 4):
            raise ExportError(
                f"--accuracy-level {accuracy_level} is outside 0-4 (4 = int8 compute, the fastest on CPUs)."
            )
        if weights not in ("int4", "int8") and draft_precision(weights, draft_weights) not in ("int4", "int8"):
            raise ExportError(
                "--accuracy-level applies to INT4/INT8 weights (MatMulNBits); use --weights int4 or int8, or drop it."
            )
    if group_size is not None and (group_size == 0 or group_size < -1):
        raise ExportError(
            f"--group-size {group_size} is invalid; use a positive group size such as 128, or -1 for channel-wise."
        )
    if ratio is not None and not (0 < ratio <= 1):
        raise ExportError(f"--ratio {ratio} is outside (0, 1]; it is the share of weights kept in INT4.")
    if awq and not dataset:
        raise ExportError("--awq needs calibration text; pass --dataset PROMPTS (a text file, one prompt per line).")
    if scale_estimation and not dataset:
        raise ExportError(
            "--scale-estimation needs calibration text; pass --dataset PROMPTS (a text file, one prompt per line)."
        )
    int4_only = [
        n
        for n, v in (
            ("--group-size", group_size),
            ("--ratio", ratio),
            ("--sym", sym),
            ("--awq", awq or None),
            ("--scale-estimation", scale_estimation or None),
        )
        if v not in (None, False)
    ]
    # the INT4 knobs apply to every INT4 model of the export (the target's or the drafters')
    if int4_only and weights != "int4" and draft_weights != "int4":
        verb = "applies" if len(int4_only) == 1 else "apply"
        raise ExportError(
            f"{', '.join(int4_only)} {verb} only to INT4 weights; drop "
            f"{'it' if len(int4_only) == 1 else 'them'} or use --weights int4."
        )
    if preset is not None:
        try:
            registry.preset(preset)
        except EdgespecError as e:
            raise ExportError(str(e)) from None
        if weights != "int4":
            raise ExportError(f"--preset {preset} selects INT4 settings; use it with --weights int4.")
    if format == "onnx" and (awq or scale_estimation):
        raise ExportError("--awq and --scale-estimation are NNCF options for OpenVINO; drop them for --format onnx.")
    if format == "onnx" and group_size == -1:
        raise ExportError(
            "ONNX MatMulNBits has no channel-wise INT4 (--group-size -1); use a group size "
            "such as 128, or --format openvino."
        )
    if format == "onnx" and preset is not None:
        raise ExportError(
            f"--preset {preset} is for OpenVINO's {preset.upper()} plugin; use it with --format openvino."
        )
    if format == "onnx" and ratio is not None and ratio < 1:
        raise ExportError("--ratio applies to OpenVINO (NNCF) exports; ONNX INT4 quantizes every MatMul.")
    if min_agreement is not None and not (0 <= min_agreement <= 1):
        raise ExportError(f"--min-agreement {min_agreement} is outside [0, 1].")
    if dataset is not None and not isinstance(dataset, (list, tuple)):
        p = Path(dataset)
        if not p.is_file():
            raise ExportError(f"The dataset {dataset} is not a file; pass a text file with one prompt per line.")


def read_prompts(dataset) -> list[str] | None:
    if dataset is None:
        return None
    if isinstance(dataset, (list, tuple)):
        lines = [str(x) for x in dataset]
    else:
        try:
            text = Path(dataset).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ExportError(f"The dataset {dataset} cannot be read as UTF-8 text ({e}).") from None
        lines = [ln.replace("\\n", "\n") for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise ExportError(f"The dataset {dataset} holds no prompts; put one prompt per line.")
    return lines


class _Reporter:
    """Status lines and a progress bar on stderr; silent when progress is off."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.progress = None
        self.task = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.console = Console(stderr=True)
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.task = self.progress.add_task("export", total=total)

    @contextmanager
    def running(self) -> Iterator[None]:
        if self.progress is None:
            yield
            return
        with self.progress:
            yield

    def step(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=text)

    def done(self, text: str | None = None) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)
            if text:
                self.console.print(text, soft_wrap=True)

    def say(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, soft_wrap=True)


def _weight_config(
    src: Source, weights: str, group_size, ratio, sym, awq, scale_estimation, preset, format: str = "openvino"
):
    from .openvino_convert import WeightConfig, fit_group_size

    if format == "onnx":
        # MatMulNBits: blocks of a power of two >= 16, no channel-wise, no INT4/INT8 mix
        if weights not in ("int4", "int8"):
            return WeightConfig(precision=weights)
        d = registry.family_defaults(src.model_type)
        gs = fit_group_size(group_size or d["group_size"], src.matmul_input_channels, channelwise_below=0)
        return WeightConfig(
            precision=weights,
            group_size=gs,
            ratio=1.0,
            sym=bool(sym if sym is not None else (d["sym"] if weights == "int4" else False)),
        )
    if weights != "int4":
        return WeightConfig(precision=weights, sym=False if weights == "int8" else None)
    d = registry.family_defaults(src.model_type)
    if preset:
        d.update(registry.preset(preset))
    gs = group_size if group_size is not None else d["group_size"]
    above = d.get("channel_wise_above_params")
    if group_size is None and above is not None and src.parameter_count() > above:
        gs = -1  # e.g. npu: channel-wise INT4 for models above 1B parameters
    fitted = fit_group_size(gs, src.matmul_input_channels)
    return WeightConfig(
        precision="int4",
        group_size=fitted,
        ratio=float(ratio if ratio is not None else d["ratio"]),
        sym=bool(sym if sym is not None else d["sym"]),
        awq=bool(awq),
        scale_estimation=bool(scale_estimation),
    )


def _tokenizer_kind(tok) -> str:
    try:
        spec = json.loads(tok.backend_tokenizer.to_str())
    except Exception:
        return "slow"
    model = (spec.get("model") or {}).get("type", "unknown").lower()
    blob = json.dumps({k: spec.get(k) for k in ("pre_tokenizer", "normalizer", "decoder")})
    if "ByteLevel" in blob:
        return f"byte_level_{model}"
    if "Metaspace" in blob or "\u2581" in blob:
        return f"metaspace_{model}"
    return model


def _special_tokens(src: Source) -> dict:
    tok, cfg, gen = src.tokenizer, src.text_config, src.generation_config

    def ids(v) -> list[int]:
        if v is None:
            return []
        return [int(x) for x in (v if isinstance(v, (list, tuple)) else [v])]

    eos: list[int] = []
    for v in (gen.get("eos_token_id"), getattr(tok, "eos_token_id", None), getattr(cfg, "eos_token_id", None)):
        for i in ids(v):
            if i not in eos:
                eos.append(i)
    bos = (
        tok.bos_token_id
        if tok.bos_token_id is not None
        else (ids(gen.get("bos_token_id")) or ids(getattr(cfg, "bos_token_id", None)) or [None])[0]
    )
    pad = tok.pad_token_id if tok.pad_token_id is not None else (ids(gen.get("pad_token_id")) or [None])[0]
    return {"bos": None if bos is None else int(bos), "eos": eos, "pad": None if pad is None else int(pad)}


def _relation(draft: Source, draft_hash: str, target: Source, target_hash: str) -> dict:
    """same_vocab / trimmed / cross_vocab, from the tokenizers (never from names)."""
    map_file = draft.dir / TRIM_MAP
    if map_file.is_file():
        m = np.fromfile(map_file, dtype="<i4")
        if draft_hash != target_hash:
            raise ExportError(
                f"The drafter {draft.given} has {TRIM_MAP} but its tokenizer differs from the "
                "target's; a trimmed drafter must keep the target's tokenizer."
            )
        if len(m) != draft.logit_width:
            raise ExportError(
                f"The drafter {draft.given}'s {TRIM_MAP} has {len(m)} entries but its LM head has "
                f"{draft.logit_width} rows; re-run the trim."
            )
        if len(m) and (m.min() < 0 or m.max() >= target.logit_width):
            raise ExportError(
                f"The drafter {draft.given}'s {TRIM_MAP} names token ids outside the target's "
                f"vocabulary (0..{target.logit_width - 1}); re-run the trim against this target."
            )
        # a trimmed drafter reads trimmed ids too: target ids outside the kept set become this id
        unk = target.tokenizer.unk_token_id
        hit = np.nonzero(m == unk)[0] if unk is not None else []
        return {
            "kind": "trimmed",
            "id_map": TRIM_MAP,
            "kept": int(len(m)),
            "input_fallback": int(hit[0]) if len(hit) else 0,
        }
    if draft_hash == target_hash:
        return {"kind": "same_vocab"}
    return {"kind": "cross_vocab"}


def _head_source(head: Eagle3Head, target: Source) -> Source:
    """An EAGLE-3 head described like a drafter: its config, the target's tokenizer (it has none)."""
    import transformers as tf

    from .source import _first_line

    try:
        config = tf.AutoConfig.from_pretrained(head.dir)
    except Exception as e:
        raise ExportError(
            f"The EAGLE-3 head config {head.dir / 'config.json'} cannot be read by transformers ({_first_line(e)})."
        ) from None
    return Source(
        given=head.given,
        dir=head.dir,
        config=config,
        tokenizer=target.tokenizer,
        generation_config=target.generation_config,
    )


def _eagle3_relation(head: Eagle3Head, target: Source) -> dict:
    """eagle3: the target layers the head reads, its draft vocabulary and the draft -> target id map."""
    layers = check_eagle3(head, target)
    return {
        "kind": "eagle3",
        "target_layers": layers,
        "draft_vocab_size": head.draft_vocab_size,
        "id_map": EAGLE3_MAP,
        "embedding": "own" if head.has_embedding else "target",
    }


def _validate_eagle3(head: Eagle3Head, target: Source, xml: Path, layers: list[int], prompts) -> dict:
    """The exported head against torch on the target's own features (the torch target's layers)."""
    from . import validate as v
    from .openvino_convert import load_eagle3_torch

    ids = v.prompt_ids(target, prompts[:4] if prompts else None)
    feats = v.torch_features(target, ids, layers)
    model = load_eagle3_torch(head, target)
    ref = v.eagle3_torch_logits(model, ids, feats)
    del model
    got = v.openvino_logits(xml, [s[1:] for s in ids], hidden=[f[:-1] for f in feats])
    return v.compare(ref, got)


def _token_bytes(name: str, src: Source, mdir: Path, rel: dict | None, cross: bool) -> str | None:
    """token_bytes.bin for the target and every cross_vocab drafter (cross-vocabulary drafting
    compares bytes). Required where a cross_vocab drafter needs it; otherwise written when the
    tokenizer allows (so the target's is there for drafters added to the bundle later)."""
    from .token_bytes import write_table

    needed = (rel is not None and rel["kind"] == "cross_vocab") or (rel is None and cross)
    if rel is not None and not needed:
        return None  # same_vocab / trimmed drafters read target ids
    try:
        return write_table(src.tokenizer, src.logit_width, mdir)
    except ExportError as e:
        if not needed:
            return None
        who = "the target" if rel is None else f"the drafter {name}"
        raise ExportError(f"Cannot draft across vocabularies with {who}: {e}") from None


# Bytes per parameter of the written weights, by precision (INT4 counts its scales and the INT8
# embeddings NNCF keeps; a ratio below 1 moves layers to INT8, hence the margin).
_BYTES_PER_PARAM = {"int4": 0.75, "int8": 1.05, "fp16": 2.05, "fp32": 4.05}


def _disk_needed(sources: list[Source], weights: str, format: str) -> int:
    """About how many bytes the export writes at its peak, from the checkpoints and ``weights``.

    Each model's written weights and tokenizer files stay until the end; the float model traced
    before compression (the checkpoint's dtype for OpenVINO, f32 or f16 for ONNX) exists for one
    model at a time.
    """
    kept, traced = 0, 0
    for s in sources:
        params = s.parameter_count()
        tok = sum(p.stat().st_size for p in s.dir.iterdir() if p.is_file() and p.name in _HF_FILES)
        kept += int(params * _BYTES_PER_PARAM[weights]) + 4 * tok + 2**20
        if format == "onnx":
            floats = params * (2 if weights == "fp16" else 4)
        else:
            floats = params * 4 if weights == "fp32" else max(s.checkpoint_bytes(), params * 2)
        traced = max(traced, floats)
    return int(1.1 * (kept + traced))


def _check_disk(out: Path, sources: list[Source], weights: str, format: str, progress: bool) -> int:
    """Remove what killed exports to ``out`` left, then refuse early when the disk is too small.

    Returns the estimate of the bytes needed (for the message should the disk fill up anyway).
    """
    removed = remove_stale_partials(out)
    if removed and progress:
        print(
            f"removed {len(removed)} partial director{'y' if len(removed) == 1 else 'ies'} left by an "
            f"interrupted export ({', '.join(p.name for p in removed)})",
            file=sys.stderr,
            flush=True,
        )
    need = _disk_needed(sources, weights, format)
    free = free_bytes(out)
    if free < need:
        raise ExportError(disk_sentence("full", out.absolute().parent, "the export", need, during=False))
    return need


@contextmanager
def _building(out: Path, force: bool, need: int) -> Iterator[Path]:
    """``atomic_directory`` with an owner record inside (see export.leftovers) and a disk that
    fills up told as such, whatever the library that hit it said."""
    kind = None
    try:
        with atomic_directory(out, force=force) as tmp:
            try:
                write_owner(tmp)
                yield tmp
                (tmp / OWNER_FILE).unlink()  # not part of the bundle
            except Exception as e:
                kind = disk_error(e, tmp)  # while the partial directory still takes its space
                raise
    except Exception as e:
        kind = kind or (disk_error(e, out) if isinstance(e, OSError) else None)
        if kind is None:
            raise
        raise ExportError(disk_sentence(kind, out.absolute().parent, "the export", need)) from None


def default_draft_names(drafts: Sequence) -> list[str]:
    """Drafter names from their directories (a hub id's last part): characters a name cannot hold
    become '-', a name that would be empty or 'target' becomes 'draft', and a repeated name gets
    '-2', '-3', ... so ``--draft a/draft --draft b/draft`` gives draft, draft-2."""
    names: list[str] = []
    for d in drafts:
        base = Path(str(d).rstrip("/\\")).name
        name = "".join(c if c in _NAME_OK else "-" for c in base).strip("-.") or "draft"
        if name == "target":
            name = "draft"
        unique, i = name, 2
        while unique in names:
            unique, i = f"{name}-{i}", i + 1
        names.append(unique)
    return names


def _names(drafts: Sequence, draft_names: Sequence[str] | None) -> list[str]:
    n_drafts = len(drafts)
    if draft_names:
        names = list(draft_names)
        if len(names) != n_drafts:
            raise ExportError(f"{len(names)} drafter names given for {n_drafts} drafters; give one per --draft.")
    else:
        names = default_draft_names(drafts)
    for n in names:
        if not n or not set(n) <= _NAME_OK or n == "target":
            raise ExportError(
                f"Drafter name {n!r} is not allowed; use letters, digits, '_', '.', '-' (and not 'target')."
            )
    if len(set(names)) != len(names):
        raise ExportError("Two drafters have the same name; give each a different name.")
    return ["target"] + names


def export_bundle(
    target,
    out,
    drafts: Sequence = (),
    *,
    format: str = "openvino",
    weights: str = "int4",
    group_size: int | None = None,
    ratio: float | None = None,
    sym: bool | None = None,
    awq: bool = False,
    scale_estimation: bool = False,
    dataset=None,
    preset: str | None = None,
    draft_names: Sequence[str] | None = None,
    force: bool = False,
    validate: bool = True,
    min_agreement: float | None = None,
    progress: bool = True,
    draft_weights: str | None = None,
    accuracy_level: int | None = None,
) -> dict:
    """Export ``target`` and ``drafts`` (local HF causal-LM directories or cached hub ids) to a bundle.

    Args:
        target, drafts: model directories (hub ids work where the HF cache or hub has them).
        out: the bundle directory to create; an existing non-empty one needs ``force``.
        format: "openvino" (stateful IR, NNCF weights) or "onnx" (KV-cache ONNX, MatMulNBits INT4).
        weights: "int4" | "int8" | "fp16" | "fp32"; the INT4 knobs (group_size, -1 = channel-wise;
            ratio; sym; awq; scale_estimation) default to the family's preset in models/families.json.
        draft_weights: the drafters' precision (default: see draft_precision: INT8 under an INT4
            target, else the target's); recorded per model and as ``export.draft_weights``.
        draft_names: one per drafter (default: their directory names, see default_draft_names).
        accuracy_level: ONNX only: MatMulNBits' ``accuracy_level`` (0-4; 4 = int8 compute on CPU) for
            the INT4/INT8 models; recorded in their ``weights``.
        dataset: a text file (or list) of prompts for data-aware compression and for validation.
        preset: "npu" (symmetric INT4, ratio 1, channel-wise above 1B parameters; models/families.json).
        validate: compare the exported model with torch fp32; below ``min_agreement`` (default per
            precision, see export.validate.THRESHOLDS) the export fails and nothing is written.
        progress: rich progress and figures on stderr.

    Returns the manifest (also written to ``out/edgespec.json``). Raises ExportError (one sentence).
    """
    check_options(
        format=format,
        weights=weights,
        group_size=group_size,
        ratio=ratio,
        sym=sym,
        awq=awq,
        scale_estimation=scale_estimation,
        dataset=dataset,
        preset=preset,
        min_agreement=min_agreement,
        draft_weights=draft_weights,
        accuracy_level=accuracy_level,
    )
    dweights = draft_precision(weights, draft_weights)
    prompts = read_prompts(dataset)
    out = Path(out)
    # the same refusal atomic_directory makes, but before minutes of work rather than after
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        what = "is a file" if not out.is_dir() else "already exists and is not empty"
        raise ExportError(f"The output {out} {what}; pass --force to replace it or choose another directory.")
    names = _names(drafts, draft_names)
    t0 = time.perf_counter()
    tsrc = inspect_source(target, "target")
    heads = [eagle3_head(d) for d in drafts]
    sources = [tsrc] + [_head_source(h, tsrc) if h else inspect_source(d, "drafter") for d, h in zip(drafts, heads)]
    heads = [None] + heads
    if format == "onnx" and any(heads):
        raise ExportError(
            "EAGLE-3 heads export to OpenVINO IR only (the form OpenVINO GenAI runs too); use --format openvino."
        )
    t_params = tsrc.parameter_count()
    for d in sources[1:]:
        if d.parameter_count() > t_params:
            raise ExportError(
                f"The drafter {d.given} ({d.parameter_count() / 1e6:.1f}M parameters) is larger than "
                f"the target {tsrc.given} ({t_params / 1e6:.1f}M); a drafter must be smaller."
            )
    hashes = [vocab_hash(s.tokenizer.get_vocab()) for s in sources]
    relations = [None] + [
        _eagle3_relation(e, tsrc) if e else _relation(d, h, tsrc, hashes[0])
        for d, h, e in zip(sources[1:], hashes[1:], heads[1:])
    ]
    cross = any(r and r["kind"] == "cross_vocab" for r in relations)
    need = _check_disk(out, sources, weights, format, progress)
    if format == "onnx":
        _onnx_module()  # fail before any work when the ONNX exporter is unavailable

    steps_per_model = 3 + (1 if validate else 0)
    rep = _Reporter(progress, total=steps_per_model * len(sources))
    models = []
    timings = {}
    with _building(out, force, need) as tmp, rep.running():
        for name, src, h, rel, head in zip(names, sources, hashes, relations, heads):
            t_model = time.perf_counter()
            mdir = tmp / name
            mdir.mkdir()
            precision = weights if rel is None else dweights
            wcfg = _weight_config(src, precision, group_size, ratio, sym, awq, scale_estimation, preset, format)
            rep.step(f"{name}: converting {src.dir.name} ({src.model_type}) to {format}")
            if head is not None:
                from .openvino_convert import convert_eagle3

                rep.step(f"{name}: exporting the EAGLE-3 head with optimum-intel, then {wcfg.precision} weights")
                conv = convert_eagle3(head, tsrc, mdir, tmp / f".work-{name}", wcfg, rel["target_layers"])
            elif format == "openvino":
                conv = _convert_openvino(
                    src, mdir, tmp / f".work-{name}", wcfg, prompts, rep, name, _input_map(src, rel)
                )
            else:
                conv = _convert_onnx(src, mdir, wcfg, rep, name, accuracy_level)
            rep.done()
            rep.step(f"{name}: converting the tokenizer")
            _copy_hf_files(src, mdir)
            from .openvino_convert import convert_tokenizers

            files = dict(conv["files"])
            files.update(convert_tokenizers(src.tokenizer, mdir))
            if rel and rel["kind"] == "trimmed":
                shutil.copy2(src.dir / TRIM_MAP, mdir / TRIM_MAP)
            if head is not None:
                from .source import d2t_targets

                d2t_targets(head, tsrc.logit_width).astype("<i8").tofile(mdir / EAGLE3_MAP)
            tb = _token_bytes(name, src, mdir, rel, cross)
            if tb:
                files["token_bytes"] = tb
            rep.done()
            wman = wcfg.manifest(conv["bytes"])
            if format == "onnx" and precision in ("int4", "int8"):
                wman["accuracy_level"] = accuracy_level  # null: unset, MatMulNBits computes in float32
            entry = _entry(name, src, format, files, wman, h, conv["io"], rel)
            if head is not None:
                # the runtime drives the head through the target's context, position for position
                entry["vocab_size"] = rel["draft_vocab_size"]
                entry["context_length"] = tsrc.context_length
            if validate:
                threshold = min_agreement if min_agreement is not None else THRESHOLDS[precision]
                rep.step(f"{name}: validating against torch fp32")
                if head is not None:
                    fig = _validate_eagle3(head, tsrc, mdir / files["model"], rel["target_layers"], prompts)
                else:
                    fig = _validate(src, mdir, files["model"], format, conv["io"], prompts, rel)
                fig["threshold"] = threshold
                entry["validation"] = fig
                kind = f" [{rel['kind']}]" if rel else ""
                line = (
                    f"{name}{kind}: top-1 agreement {fig['top1_agreement']:.3f} over {fig['tokens']} tokens, "
                    f"max |logit diff| {fig['max_abs_logit_diff']:.4f} ({precision}, vs torch fp32)"
                )
                rep.done(line)
                if fig["top1_agreement"] < threshold:
                    raise ExportError(
                        f"The exported {name} agrees with torch on only {fig['top1_agreement']:.1%} "
                        f"of next tokens (at least {threshold:.0%} expected for {precision}); the export "
                        "is broken or too lossy; try a higher precision or pass --min-agreement."
                    )
            rep.done()
            models.append(entry)
            timings[name] = round(time.perf_counter() - t_model, 2)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "producer": {"name": "edgespec", "version": __version__},
            "export": {
                "format": format,
                "weights": weights,
                "draft_weights": dweights if len(sources) > 1 else None,
                "accuracy_level": accuracy_level,
                "preset": preset,
                "seconds": round(time.perf_counter() - t0, 2),
                "seconds_per_model": timings,
            },
            "models": models,
        }
        validate_manifest(manifest)
        write_manifest(tmp, manifest)
    rep.say(f"wrote {out} ({len(models)} model{'s' if len(models) != 1 else ''}, {time.perf_counter() - t0:.1f} s)")
    return manifest


def _convert_openvino(src, mdir, work, wcfg, prompts, rep, name, id_map=None) -> dict:
    from .openvino_convert import calibration_inputs, convert_openvino

    calib = None
    if wcfg.precision == "int4" and (wcfg.awq or wcfg.scale_estimation or (prompts and (wcfg.ratio or 1) < 1)):
        calib = calibration_inputs(src, prompts, id_map=id_map)
    rep.step(f"{name}: exporting {src.model_type} to OpenVINO IR, then {wcfg.precision} weights")
    return convert_openvino(src, mdir, work, wcfg, calib)


def _onnx_module():
    try:
        from . import onnx_export
    except ImportError as e:
        if "onnx_export" in str(e):
            raise ExportError("ONNX export is not available in this build; use --format openvino.") from None
        raise ExportError(
            f"ONNX export needs a module that is not installed ({e.name}); pip install 'edgespec[export]'."
        ) from None
    return onnx_export


def _convert_onnx(src, mdir, wcfg, rep, name, accuracy_level=None) -> dict:
    mod = _onnx_module()
    rep.step(f"{name}: exporting {src.model_type} to ONNX with KV cache, {wcfg.precision} weights")
    res = mod.export_onnx(
        src.dir,
        mdir,
        weights=wcfg.precision,
        group_size=wcfg.group_size or 128,
        sym=bool(wcfg.sym),
        progress=False,
        accuracy_level=accuracy_level if wcfg.precision in ("int4", "int8") else None,
    )
    files = dict(res["files"])
    nbytes = sum((mdir / f).stat().st_size for f in files.values() if (mdir / f).is_file())
    return {"files": files, "io": res.get("io", {}), "bytes": int(nbytes)}


def _copy_hf_files(src: Source, mdir: Path) -> None:
    for f in _HF_FILES:
        p = src.dir / f
        if p.is_file() and not (mdir / f).exists():
            shutil.copy2(p, mdir / f)


def _entry(name, src: Source, format, files, weights, h, io, rel) -> dict:
    e = {
        "name": name,
        "role": "target" if name == "target" else "draft",
        "path": name,
        "format": format,
        "files": files,
        "source": str(src.given),
        "architecture": src.architecture,
        "model_type": src.model_type,
        "weights": weights,
        "vocab_size": src.logit_width,
        "num_layers": src.num_layers,
        "num_kv_heads": src.num_kv_heads,
        "head_dim": src.head_dim,
        "tokenizer": {"vocab_hash": h, "size": len(src.tokenizer), "kind": _tokenizer_kind(src.tokenizer)},
        "special_tokens": _special_tokens(src),
        "context_length": src.context_length,
        "io": io,
    }
    if rel is not None:
        e["relation"] = rel
    return e


def _input_map(src: Source, rel: dict | None):
    """For a trimmed drafter: tokenizer id -> model id (the inverse of its id map, with fallback)."""
    if not rel or rel["kind"] != "trimmed":
        return None
    m = np.fromfile(src.dir / TRIM_MAP, dtype="<i4")
    inv = np.full(max(len(src.tokenizer), int(m.max()) + 1), rel["input_fallback"], dtype=np.int64)
    inv[m] = np.arange(len(m))
    return inv


def _validate(src: Source, mdir: Path, model_file: str, format: str, io: dict, prompts, rel) -> dict:
    from . import validate as v

    ids = v.prompt_ids(src, prompts[:4] if prompts else None, id_map=_input_map(src, rel))
    ref = v.torch_logits(src, ids)
    if format == "openvino":
        got = v.openvino_logits(mdir / model_file, ids)
    else:
        mod = _onnx_module()
        if not hasattr(mod, "onnx_logits"):
            raise ExportError(
                "The ONNX exporter in this build cannot run its model for validation; "
                "pass validate=False or use --format openvino."
            )
        got = mod.onnx_logits(mdir / model_file, ids, io)
    return v.compare(ref, got)


def summary(manifest: dict, out) -> dict:
    """The machine-readable summary `edgespec export --json` prints."""
    return {
        "bundle": str(Path(out).resolve()),
        "manifest": str(Path(out).resolve() / MANIFEST),
        "format": manifest["export"]["format"],
        "seconds": manifest["export"]["seconds"],
        "models": [
            {k: m.get(k) for k in ("name", "role", "architecture", "vocab_size", "relation", "validation")}
            | {
                "precision": m["weights"]["precision"],
                "group_size": m["weights"].get("group_size"),
                "bytes": m["weights"].get("bytes"),
            }
            for m in manifest["models"]
        ],
    }


__all__ = ["export_bundle", "check_options", "summary", "EdgespecError"]
