"""Shared fixtures: tiny random models (session-scoped, built once per test run)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Exact token comparisons need f32 everywhere (see README: OpenVINO defaults to bf16 / u8 KV).
os.environ.setdefault("EDGESPEC_TEST", "1")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """Factory: tiny_dir(arch, **kw) -> path of a tiny HF model, cached per (arch, kw)."""
    from tiny import build_tiny

    cache: dict = {}

    def make(arch: str = "llama", **kw) -> Path:
        key = (arch, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = build_tiny(arch, tmp_path_factory.mktemp(f"tiny-{arch}"), **kw)
        return cache[key]

    return make
