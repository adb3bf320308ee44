"""edgespec: fast, lossless speculative decoding for LLMs on PCs.

The light side (this package and the native runtime) never imports torch or transformers;
``edgespec.export`` is the heavy, optional side (``pip install edgespec[export]``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import BundleError, EdgespecError, ExportError, NativeError  # noqa: E402

__all__ = ["__version__", "EdgespecError", "BundleError", "ExportError", "NativeError", "Pipeline"]


def __getattr__(name: str):
    # Pipeline pulls in the native library; load it only when asked for.
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'edgespec' has no attribute {name!r}")
