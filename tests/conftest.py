"""Shared fixtures: tiny random models (session-scoped, built once per test run)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tools"))  # developer modules (demo tokenizers)

# Exact token comparisons need f32 everywhere (see docs/install.md: OpenVINO defaults to bf16 / u8 KV).
os.environ.setdefault("EDGESPEC_TEST", "1")
# The user's cache (demo bundles, translation caches) stays out of the tests, and theirs out of it.
os.environ["EDGESPEC_CACHE"] = tempfile.mkdtemp(prefix="edgespec-test-cache-")


def pytest_unconfigure(config):
    """The test cache goes with the run (the demo tests put exported bundles in it)."""
    import shutil

    shutil.rmtree(os.environ["EDGESPEC_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """Factory: tiny_dir(arch, name=None, **kw) -> path of a tiny HF model, cached per (arch, name, kw).

    name: the model directory's own name (export names drafters after their directories)."""
    from tiny import build_tiny

    cache: dict = {}

    def make(arch: str = "llama", name: str | None = None, **kw) -> Path:
        key = (arch, name, tuple(sorted(kw.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"tiny-{arch}")
            cache[key] = build_tiny(arch, out / name if name else out, **kw)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """One trained byte-level BPE tokenizer shared by every same-vocabulary tiny model."""
    from tiny import train_tokenizer

    return train_tokenizer()


@pytest.fixture(scope="session")
def tiny_bundle(tiny_dir, tiny_tokenizer, tmp_path_factory):
    """Factory: tiny_bundle(arch="llama", drafts=1, weights="int4", ...) -> Path of an exported bundle.

    The target is tiny_dir(arch) (hidden 64, 2 layers); drafter i has the same architecture and the
    SAME tokenizer (relation same_vocab), another seed, hidden 32 and 1 layer, and lives in a directory
    named draft, draft2, ... (so the bundle names it so; INT8 under an INT4 target). Cached per arguments
    for the whole session, so tests asking for the same bundle share one export.
    """
    from edgespec.export.api import export_bundle

    cache: dict = {}

    def make(
        arch: str = "llama",
        drafts: int = 1,
        weights: str = "int4",
        format: str = "openvino",
        validate: bool = True,
        min_agreement: float | None = None,
    ) -> Path:
        key = (arch, drafts, weights, format, validate, min_agreement)
        if key not in cache:
            target = tiny_dir(arch, tokenizer=tiny_tokenizer)
            draft_dirs = [
                tiny_dir(
                    arch,
                    name="draft" if i == 0 else f"draft{i + 1}",
                    tokenizer=tiny_tokenizer,
                    seed=100 + i,
                    hidden=32,
                    layers=1,
                )
                for i in range(drafts)
            ]
            out = tmp_path_factory.mktemp(f"bundle-{arch}-{weights}-{format}") / "bundle"
            export_bundle(
                target,
                out,
                draft_dirs,
                format=format,
                weights=weights,
                validate=validate,
                min_agreement=min_agreement,
                progress=False,
            )
            cache[key] = out
        return cache[key]

    return make
