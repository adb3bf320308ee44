"""The model registry: per-family export presets and known target<->drafter pairs (models/*.json).

Plain JSON, no torch: the CLI reads it to resolve ``edgespec export --pair NAME``.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

from .errors import EdgespecError


def models_dir() -> Path:
    """The directory holding families.json and pairs.json (``models/`` in the repo or the wheel)."""
    try:
        import edgespec.models as m  # the wheel maps models/ to edgespec.models

        return Path(m.__file__).resolve().parent
    except ImportError:
        return Path(__file__).resolve().parent.parent / "models"


@cache
def _load(name: str) -> dict:
    p = models_dir() / name
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise EdgespecError(f"The model registry file {p} is unreadable ({e}); reinstall edgespec.") from None


def families() -> dict[str, dict]:
    """model_type -> export defaults (group_size, ratio, sym, notes)."""
    return _load("families.json")["families"]


def family_defaults(model_type: str) -> dict:
    """Export defaults for a family; the generic defaults for families not listed."""
    data = _load("families.json")
    out = dict(data["defaults"])
    out.update({k: v for k, v in data["families"].get(model_type, {}).items() if k != "notes"})
    return out


def preset(name: str) -> dict:
    presets = _load("families.json")["presets"]
    if name not in presets:
        raise EdgespecError(f"Unknown preset {name!r}; choose one of: {', '.join(sorted(presets))}.")
    return {k: v for k, v in presets[name].items() if k != "notes"}


def pairs() -> dict[str, dict]:
    return _load("pairs.json")["pairs"]


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _find_local(ref: str, search: list[Path]) -> Path | None:
    """A checkpoint for ``ref``: a path (absolute, or under a search dir), or a hub id in the HF cache."""
    p = Path(ref).expanduser()
    if p.is_absolute():
        return p if p.is_dir() else None
    for base in search:
        for cand in (base / ref, base / ref.split("/")[-1]):
            if cand.is_dir() and (cand / "config.json").is_file():
                return cand
    if ref.count("/") == 1 and not ref.startswith("models/"):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(ref, local_files_only=True))
        except Exception:
            return None
    return None


def resolve_pair(name: str, models_dir: str | os.PathLike | None = None) -> tuple[Path, list[Path], list[str] | None]:
    """(target dir, draft dirs, draft names) of a registered pair, found locally.

    The names are the record's ``draft_names``, else the last part of each drafter's reference
    (a hub id's model name: a drafter found in the HF cache sits in a snapshot directory named
    by a commit hash, which would otherwise name it).

    Looks in ``models_dir`` (default: the current directory and the repository), hub ids also in
    the HF cache; a missing
    checkpoint is an EdgespecError naming it (optional drafters, as in the demo pair, are skipped).
    """
    known = pairs()
    if name not in known:
        raise EdgespecError(f"Unknown pair {name!r}; known pairs: {', '.join(sorted(known))}.")
    rec = known[name]
    search = [Path(models_dir)] if models_dir else [Path.cwd(), _repo_root()]
    target = _find_local(rec["target"], search)
    if target is None:
        raise EdgespecError(
            f"Pair {name!r} needs the target {rec['target']}, which is not on this machine; download "
            "it (e.g. `huggingface-cli download`) into --models-dir or the HF cache."
        )
    drafts, names = [], []
    given_names = rec.get("draft_names") or [None] * len(rec["drafts"])
    for ref, dname in zip(rec["drafts"], given_names):
        d = _find_local(ref, search)
        if d is None:
            if rec.get("optional_drafts"):
                continue
            raise EdgespecError(
                f"Pair {name!r} needs the drafter {ref}, which is not on this machine; download it "
                "into --models-dir or the HF cache."
            )
        drafts.append(d)
        names.append(dname or Path(ref).name)
    if not drafts:
        raise EdgespecError(
            f"Pair {name!r} has no drafter on this machine yet; build or download one of: {', '.join(rec['drafts'])}."
        )
    return target, drafts, names
