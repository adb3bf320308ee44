"""The bundle: the one place where export and runtime meet.

A bundle is a directory::

    bundle/
      edgespec.json            # this module's manifest (schema below)
      target/                  # one sub-directory per model, named by the manifest
        openvino_model.xml/.bin | model.onnx (+ .onnx.data)
        openvino_tokenizer.xml/.bin, openvino_detokenizer.xml/.bin
        tokenizer.json, tokenizer_config.json, config.json, ...  (HF files, for reference)
      draft/ ...
        trim_id_map.i32        # only for `trimmed` drafters: little-endian int32, entry i is the
                               # target token id of trimmed-draft id i
        eagle3_id_map.i64      # only for `eagle3` heads: little-endian int64, entry i is the target
                               # token id of draft id i (i + d2t[i] of the checkpoint)
        token_bytes.bin        # optional (files.token_bytes): the byte string of every token id, for
                               # cross-vocabulary drafting; written for the target and every
                               # `cross_vocab` drafter (format: write_token_bytes below)

Settings live in the manifest, never in file names. The runtime (Python and C++) reads only
the bundle. Writers use :func:`atomic_directory` so a failure leaves nothing half-written.

Safety: every path in the manifest stays inside the bundle (no absolute paths, no ``..``, no
symbolic links leading out), and ``integrity`` records the size and BLAKE2b digests of every file
of every model (see :func:`integrity_table`); the runtime checks them before OpenVINO reads a file
(runtimes/src/integrity.cpp). Manifests written before ``integrity`` existed still load, unchecked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BundleError

MANIFEST = "edgespec.json"
SCHEMA_VERSION = 1

ROLES = ("target", "draft")
FORMATS = ("openvino", "onnx")
PRECISIONS = ("int4", "int8", "fp16", "fp32")
RELATIONS = ("same_vocab", "trimmed", "cross_vocab", "eagle3")
TOKEN_BYTES = "token_bytes.bin"

# integrity: BLAKE2b-256 of each 64 MiB piece of a file (pieces hash in parallel at load). The
# runtime's integrity.hpp reads the same (kIntegrityAlgorithm, kIntegrityChunkBytes).
INTEGRITY_ALGORITHM = "blake2b-256-chunked"
INTEGRITY_CHUNK_BYTES = 64 << 20

# token_bytes.bin kinds: what a token id stands for in text.
TOKEN_TEXT = 0  # ordinary text: its bytes are the text it spells
TOKEN_SPECIAL = 1  # control token (BOS, EOS, <unk>, chat markers, ids beyond the tokenizer): no bytes
TOKEN_BYTE = 2  # a byte-fallback token (<0xNN>): one raw byte, used only where no text token fits

_WEIGHTS = {
    "type": "object",
    "required": ["precision"],
    "properties": {
        "precision": {"enum": list(PRECISIONS)},
        "group_size": {"type": ["integer", "null"]},  # -1 = channel-wise; null = not grouped
        "ratio": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "sym": {"type": ["boolean", "null"]},
        "awq": {"type": ["boolean", "null"]},
        "scale_estimation": {"type": ["boolean", "null"]},
        "bytes": {"type": ["integer", "null"], "minimum": 0},  # size of weight files on disk
        # ONNX MatMulNBits compute precision (4 = int8 activations); null = unset (float32)
        "accuracy_level": {"type": ["integer", "null"], "minimum": 0, "maximum": 4},
    },
}

_MODEL = {
    "type": "object",
    "required": [
        "name",
        "role",
        "path",
        "format",
        "files",
        "weights",
        "vocab_size",
        "tokenizer",
        "special_tokens",
        "context_length",
    ],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
        "role": {"enum": list(ROLES)},
        "path": {"type": "string"},  # sub-directory, relative to the bundle
        "format": {"enum": list(FORMATS)},
        "files": {
            "type": "object",
            "required": ["model", "tokenizer", "detokenizer"],
            "properties": {
                "model": {"type": "string"},
                "tokenizer": {"type": "string"},
                "detokenizer": {"type": "string"},
                "token_bytes": {"type": "string"},  # optional: TOKEN_BYTES (cross-vocabulary drafting)
            },
        },
        "source": {"type": "string"},
        "architecture": {"type": "string"},
        "model_type": {"type": "string"},
        "weights": _WEIGHTS,
        "vocab_size": {"type": "integer", "minimum": 1},  # rows of the LM head (logit width)
        "num_layers": {"type": "integer", "minimum": 1},
        "num_kv_heads": {"type": "integer", "minimum": 1},
        "head_dim": {"type": "integer", "minimum": 1},
        "tokenizer": {
            "type": "object",
            "required": ["vocab_hash", "size"],
            "properties": {
                "vocab_hash": {"type": "string"},  # sha256 of the canonical token->id table
                "size": {"type": "integer", "minimum": 1},
                "kind": {"type": "string"},  # byte_level_bpe, metaspace, ...
            },
        },
        "special_tokens": {
            "type": "object",
            "required": ["eos"],
            "properties": {
                "bos": {"type": ["integer", "null"]},
                "eos": {"type": "array", "items": {"type": "integer"}},
                "pad": {"type": ["integer", "null"]},
            },
        },
        "context_length": {"type": "integer", "minimum": 1},
        "io": {"type": "object"},  # input/output names, stateful or explicit KV
        "validation": {
            "type": "object",
            "properties": {
                "prompts": {"type": "integer"},
                "tokens": {"type": "integer"},
                "top1_agreement": {"type": "number", "minimum": 0, "maximum": 1},
                "max_abs_logit_diff": {"type": "number", "minimum": 0},
                "reference": {"type": "string"},
                "threshold": {"type": "number"},
            },
        },
        "relation": {
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {"enum": list(RELATIONS)},
                "id_map": {"type": "string"},  # trimmed (int32) / eagle3 (int64): file with draft id -> target id
                "kept": {"type": "integer"},
                # eagle3: the target decoder layers whose outputs the head reads (low, middle, high)
                "target_layers": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "minItems": 3,
                    "maxItems": 3,
                },
                "draft_vocab_size": {"type": "integer", "minimum": 1},  # eagle3: rows of the head's LM head
                "embedding": {"enum": ["own", "target"]},  # eagle3: whose token embedding the head has
            },
        },
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "edgespec bundle manifest",
    "type": "object",
    "required": ["schema_version", "producer", "models"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "producer": {
            "type": "object",
            "required": ["name", "version"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
        },
        "models": {"type": "array", "minItems": 1, "items": _MODEL},
        "integrity": {  # optional: manifests written before it existed load unchecked
            "type": "object",
            "required": ["algorithm", "chunk_bytes", "files"],
            "properties": {
                "algorithm": {"const": INTEGRITY_ALGORITHM},
                "chunk_bytes": {"const": INTEGRITY_CHUNK_BYTES},
                "files": {  # path relative to the bundle -> size and one digest per chunk
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["size", "blake2b"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 0},
                            "blake2b": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class ModelEntry:
    """One model of a bundle, as the runtime needs it."""

    bundle: Path
    raw: dict

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def role(self) -> str:
        return self.raw["role"]

    @property
    def dir(self) -> Path:
        return self.bundle / self.raw["path"]

    def file(self, key: str) -> Path:
        return self.dir / self.raw["files"][key]

    @property
    def relation(self) -> str | None:
        rel = self.raw.get("relation")
        return rel["kind"] if rel else None


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict

    @property
    def models(self) -> list[ModelEntry]:
        return [ModelEntry(self.path, m) for m in self.manifest["models"]]

    @property
    def target(self) -> ModelEntry:
        return next(m for m in self.models if m.role == "target")

    @property
    def drafts(self) -> list[ModelEntry]:
        return [m for m in self.models if m.role == "draft"]

    def draft(self, name: str | None = None) -> ModelEntry | None:
        """The named drafter, or the first one when name is None; None if the bundle has none."""
        drafts = self.drafts
        if name is None:
            return drafts[0] if drafts else None
        for d in drafts:
            if d.name == name:
                return d
        known = ", ".join(d.name for d in drafts) or "none"
        raise BundleError(f"The bundle has no drafter named {name!r} (it has: {known}); pass one of those.")


def validate_manifest(manifest: Any) -> None:
    """Raise BundleError with one sentence if the manifest does not follow the schema."""
    import jsonschema

    if isinstance(manifest, dict) and manifest.get("schema_version") not in (None, SCHEMA_VERSION):
        raise BundleError(
            f"The bundle has schema version {manifest.get('schema_version')!r} but this edgespec "
            f"reads version {SCHEMA_VERSION}; re-export it with this edgespec or upgrade edgespec."
        )
    try:
        jsonschema.validate(manifest, SCHEMA)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise BundleError(f"The bundle manifest is invalid at {where}: {e.message}; re-export the bundle.") from None
    models = manifest["models"]
    roles = [m["role"] for m in models]
    if roles.count("target") != 1:
        raise BundleError("The bundle manifest must name exactly one target model; re-export the bundle.")
    names = [m["name"] for m in models]
    if len(set(names)) != len(names):
        raise BundleError("The bundle manifest names two models the same; re-export the bundle.")
    for m in models:
        if m["role"] == "draft" and "relation" not in m:
            raise BundleError(
                f"Drafter {m['name']!r} has no relation to the target in the manifest; re-export the bundle."
            )
        rel = m.get("relation") or {}
        if rel.get("kind") == "eagle3" and not all(k in rel for k in ("target_layers", "draft_vocab_size", "id_map")):
            raise BundleError(
                f"EAGLE-3 head {m['name']!r} lacks target_layers, draft_vocab_size or id_map in its "
                "relation; re-export the bundle."
            )


def _absolute(p: str) -> bool:
    return os.path.isabs(p) or p.startswith(("/", "\\")) or (len(p) > 1 and p[1] == ":")


def confined(bundle_dir: str | os.PathLike, *parts: str, named_by: str = "The bundle manifest") -> Path:
    """The path of a manifest path inside the bundle; BundleError (one sentence) for an absolute
    path, a ``..`` component, or a symbolic link resolving outside the bundle (the runtime refuses
    the same, so a bundle from elsewhere cannot make it read other files of this machine). Several
    parts (a model directory, a file in it) are joined with '/' after each is checked. named_by:
    what names the path, for the message."""
    rel = "/".join(p for p in parts if p)
    root = Path(bundle_dir).resolve()
    why = None
    if any(_absolute(part) for part in parts):
        rel, why = next(part for part in parts if _absolute(part)), "is an absolute path"
    elif ".." in rel.replace("\\", "/").split("/"):
        why = "climbs out of the bundle with '..'"
    else:
        full = (root / rel).resolve()
        if full != root and root not in full.parents:
            why = f"is a symbolic link to {full}, outside the bundle"
    if why:
        raise BundleError(
            f"{named_by} names {rel}, which {why}; a bundle must hold its own files: copy them in or re-export the bundle."
        )
    return root / rel


# Where an ONNX file's tensors can sit, by protobuf field number (onnx.proto): the message kind of
# each field that leads to a TensorProto. A tensor's external_data (field 13) holds key/value
# entries; the one keyed "location" is the file ONNX Runtime and OpenVINO read, relative to the
# model's directory. runtimes/src/core/onnx_refs.cpp walks the same table.
_ONNX_FIELDS = {
    "model": {7: "graph", 25: "function", 20: "training"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "function": {7: "node", 11: "attribute"},
    "training": {1: "graph", 2: "graph"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
    "entry": {},
}


def onnx_external_data(path: str | os.PathLike) -> list[str]:
    """The external-data locations an ONNX file names (every tensor's ``location``, as written),
    read by walking its protobuf fields without the onnx package; BundleError for a file that is
    not valid protobuf."""
    import mmap

    locations: list[str] = []

    def bad(why: str) -> BundleError:
        return BundleError(f"The ONNX model {path} is not a valid ONNX file ({why}); re-export the bundle.")

    def varint(buf, at: int, end: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            if at >= end or shift > 63:
                raise bad("a number runs past its message")
            b = buf[at]
            at += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value, at

    def walk(buf, at: int, end: int, kind: str, depth: int) -> None:
        if depth > 100:
            raise bad("messages nest more than 100 deep")
        fields = _ONNX_FIELDS[kind]
        entry: dict[int, bytes] = {}
        while at < end:
            key, at = varint(buf, at, end)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, at = varint(buf, at, end)
            elif wire in (1, 5):
                at += 8 if wire == 1 else 4
            elif wire == 2:
                n, at = varint(buf, at, end)
                if n > end - at:
                    raise bad("a field runs past its message")
                if field in fields:
                    walk(buf, at, at + n, fields[field], depth + 1)
                elif kind == "entry" and field in (1, 2):
                    entry[field] = bytes(buf[at : at + n])
                at += n
            else:
                raise bad(f"wire type {wire}")
            if at > end:
                raise bad("a field runs past its message")
        if kind == "entry" and entry.get(1) == b"location":
            locations.append(entry.get(2, b"").decode("utf-8", "replace"))

    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise bad("the file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            walk(buf, 0, len(buf), "model", 0)
    return locations


def integrity_table(directory: str | os.PathLike, manifest: dict) -> dict:
    """The manifest's ``integrity`` entry for the files of every model directory the manifest names:
    {"algorithm", "chunk_bytes", "files": {relative path: {"size", "blake2b": [hex per chunk]}}}."""
    root = Path(directory)
    files: dict = {}
    for m in manifest["models"]:
        mdir = root / m["path"]
        for f in sorted(mdir.rglob("*")) if mdir.is_dir() else []:
            if not f.is_file() or f.is_symlink():
                continue
            rel = f.relative_to(root).as_posix()
            if rel in files:
                continue
            digests = []
            with f.open("rb") as fh:
                while chunk := fh.read(INTEGRITY_CHUNK_BYTES):
                    digests.append(hashlib.blake2b(chunk, digest_size=32).hexdigest())
            files[rel] = {"size": f.stat().st_size, "blake2b": digests}
    return {"algorithm": INTEGRITY_ALGORITHM, "chunk_bytes": INTEGRITY_CHUNK_BYTES, "files": files}


def load(path: str | os.PathLike) -> Bundle:
    """Read and validate a bundle directory; every failure is a BundleError with a sentence."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"No bundle at {p}: the path does not exist; pass the directory `edgespec export` wrote.")
    if not p.is_dir():
        raise BundleError(f"{p} is a file, not a bundle directory; pass the directory `edgespec export` wrote.")
    mf = p / MANIFEST
    if not mf.is_file():
        raise BundleError(f"{p} is not an edgespec bundle (no {MANIFEST}); create one with `edgespec export`.")
    confined(p, MANIFEST)
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{mf} is not readable JSON ({e}); re-export the bundle.") from None
    validate_manifest(manifest)
    bundle = Bundle(p, manifest)
    for rel in (manifest.get("integrity") or {}).get("files", {}):
        confined(p, rel)
    for m in bundle.models:
        confined(p, m.raw["path"])
        for key in ("model", "tokenizer", "detokenizer", "token_bytes"):
            if key == "token_bytes" and key not in m.raw["files"]:
                continue  # optional: bundles without it still serve same-vocabulary drafting
            f = confined(p, m.raw["path"], m.raw["files"][key])
            if not f.is_file():
                raise BundleError(f"The bundle is incomplete: {f} is missing; re-export the bundle.")
            if key == "model" and m.raw["format"] == "onnx":
                # ONNX Runtime and OpenVINO read these beside the model: they must stay inside too.
                model_dir = f.parent.relative_to(p.resolve()).as_posix()
                named_by = f"The external data of the ONNX model {f.relative_to(p.resolve()).as_posix()}"
                for location in onnx_external_data(f):
                    data = confined(p, model_dir, location, named_by=named_by)
                    if not data.is_file():
                        raise BundleError(f"The bundle is incomplete: {data} is missing; re-export the bundle.")
        id_map = (m.raw.get("relation") or {}).get("id_map")
        if id_map:
            confined(p, m.raw["path"], id_map)
    return bundle


def write_manifest(directory: Path, manifest: dict) -> Path:
    """Write ``edgespec.json`` into directory, with the integrity table of the files there now
    (write it last, once every model file is in place)."""
    manifest["integrity"] = integrity_table(directory, manifest)
    validate_manifest(manifest)
    out = Path(directory) / MANIFEST
    out.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return out


_TB_MAGIC = b"ESTB"
_TB_VERSION = 1


def write_token_bytes(path: str | os.PathLike, kinds: list[int], pieces: list[bytes]) -> None:
    """Write a token byte table (``token_bytes.bin``), read by the runtime's TokenTable.

    Layout, little-endian: ``b"ESTB"``, u32 version (1), u32 n (token ids 0..n-1), u32 blob size;
    u32 offsets[n + 1] (token i is blob[offsets[i]:offsets[i + 1]]); u8 kinds[n] (TOKEN_TEXT,
    TOKEN_SPECIAL, TOKEN_BYTE); the blob (all byte strings, concatenated).
    """
    import numpy as np

    if len(kinds) != len(pieces):
        raise ValueError("kinds and pieces must have one entry per token id")
    blob = b"".join(pieces)
    offsets = np.zeros(len(pieces) + 1, dtype="<u4")
    offsets[1:] = np.cumsum([len(p) for p in pieces], dtype=np.int64)
    head = np.array([_TB_VERSION, len(pieces), len(blob)], dtype="<u4").tobytes()
    Path(path).write_bytes(_TB_MAGIC + head + offsets.tobytes() + np.asarray(kinds, dtype="u1").tobytes() + blob)


def read_token_bytes(path: str | os.PathLike) -> tuple[list[int], list[bytes]]:
    """(kinds, pieces) of a ``token_bytes.bin``; BundleError when the file is not one."""
    import numpy as np

    data = Path(path).read_bytes()
    if len(data) < 16 or data[:4] != _TB_MAGIC:
        raise BundleError(f"{path} is not a token byte table; re-export the bundle.")
    version, n, size = np.frombuffer(data[4:16], dtype="<u4").tolist()
    if version != _TB_VERSION or len(data) != 16 + 4 * (n + 1) + n + size:
        raise BundleError(f"{path} is a token byte table of another version or truncated; re-export the bundle.")
    offsets = np.frombuffer(data[16 : 16 + 4 * (n + 1)], dtype="<u4").tolist()
    kinds = list(data[16 + 4 * (n + 1) : 16 + 4 * (n + 1) + n])
    blob = data[16 + 4 * (n + 1) + n :]
    return kinds, [blob[offsets[i] : offsets[i + 1]] for i in range(n)]


def vocab_hash(token_to_id: dict[str, int]) -> str:
    """A tokenizer's vocabulary identity: sha256 over the (token, id) table sorted by id."""
    h = hashlib.sha256()
    for tok, idx in sorted(token_to_id.items(), key=lambda kv: kv[1]):
        h.update(f"{idx}\t{tok}\n".encode("utf-8", "surrogatepass"))
    return "sha256:" + h.hexdigest()


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; on success rename it to ``final``.

    On any exception (Ctrl-C included) the temporary directory is removed and ``final`` is left
    as it was. An existing non-empty ``final`` is an error unless ``force`` is set, in which case
    it is replaced only after the new one is complete.
    """
    final = Path(final).resolve()
    if final.exists() and not final.is_dir():
        raise BundleError(f"{final} exists and is a file; choose another output directory.")
    if final.is_dir() and any(final.iterdir()) and not force:
        raise BundleError(
            f"{final} already exists and is not empty; pass --force to replace it or choose another directory."
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
