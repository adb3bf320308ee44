"""Helpers shared by the engine tests (tests/test_engine_*.py): bundles and cached pipelines."""

from __future__ import annotations

import json
import os
from pathlib import Path

ARCHS = ("llama", "qwen2", "phi3")
PROMPTS = ("def fib(n):", "import os\nclass Walker:\n    def __init__(self, root):", "s = 'Grüße, 世界'  # café")

_bundles: dict = {}
_pipes: dict = {}


def with_self_drafter(base: Path, out: Path) -> Path:
    """A bundle beside ``base`` whose manifest adds the target itself as drafter "self" (symlinked
    model directories, no re-export): the drafter then agrees with the target on every token."""
    if (out / "edgespec.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((base / "edgespec.json").read_text())
    for m in manifest["models"]:
        link = out / m["path"]
        if not link.exists():
            os.symlink(base / m["path"], link, target_is_directory=True)
    target = next(m for m in manifest["models"] if m["role"] == "target")
    me = dict(target, name="self", role="draft", relation={"kind": "same_vocab"})
    manifest["models"].append(me)
    (out / "edgespec.json").write_text(json.dumps(manifest, indent=1))
    return out


def engine_bundle(tiny_bundle, tmp_path_factory, arch: str = "llama") -> Path:
    """The fp32 tiny bundle of ``arch`` (target + random drafter "draft") plus drafter "self"."""
    if arch not in _bundles:
        base = Path(tiny_bundle(arch, drafts=1, weights="fp32"))
        _bundles[arch] = with_self_drafter(base, tmp_path_factory.mktemp(f"engine-{arch}") / "bundle")
    return _bundles[arch]


def pipeline(bundle: Path, draft: str | None = "draft", **kw):
    """A cached f32 pipeline (exact comparisons need f32 inference and KV cache)."""
    from edgespec import Pipeline

    key = (str(bundle), draft, tuple(sorted(kw.items())))
    if key not in _pipes:
        _pipes[key] = Pipeline.load(bundle, draft=draft, precision="f32", kv_precision="f32", **kw)
    return _pipes[key]


def engine_ready() -> bool:
    """The native library loads and the exporter imports (what engine tests on exported bundles need)."""
    try:
        from edgespec import _native
        from edgespec.export import api  # noqa: F401

        _native.lib().es_pipeline_load  # noqa: B018
        return True
    except Exception:
        return False
