"""Loads the native runtime (libedgespec) through its C ABI with ctypes.

The library is found, in order, at ``$EDGESPEC_LIBRARY``, inside this package (the wheel puts it
there), or in the repository's ``build/`` tree (a plain ``cmake -S runtimes -B build``).
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import lru_cache
from pathlib import Path

from .errors import BundleError, NativeError

ABI_VERSION = 6
MIN_DRAFT_WINDOW = 128  # ES_MIN_DRAFT_WINDOW: the smallest draft_window other than 0

_LIB_NAMES = {"linux": "libedgespec.so", "darwin": "libedgespec.dylib", "win32": "edgespec.dll"}


def _candidates() -> list[Path]:
    name = _LIB_NAMES.get(sys.platform, "libedgespec.so")
    found: list[Path] = []
    env = os.environ.get("EDGESPEC_LIBRARY")
    if env:
        found.append(Path(env))
    here = Path(__file__).resolve().parent
    found.append(here / name)
    # Editable installs keep Python sources in the repo; the wheel's compiled part lives in
    # site-packages/edgespec, which the redirect import hook does not make our __file__.
    try:
        import importlib.util

        spec = importlib.util.find_spec("edgespec")
        for loc in spec.submodule_search_locations or []:
            found.append(Path(loc) / name)
    except Exception:  # pragma: no cover - best effort
        pass
    import site

    for sp in site.getsitepackages() + [site.getusersitepackages()]:
        found.append(Path(sp) / "edgespec" / name)
    repo = here.parent
    found += sorted(repo.glob(f"build/**/{name}"))
    return found


@lru_cache(maxsize=1)
def lib() -> ctypes.CDLL:
    """The loaded native library with its basic signatures declared."""
    # Importing openvino first puts libopenvino in the process, whatever the RPATH says.
    import openvino  # noqa: F401

    tried = []
    for path in _candidates():
        if path.is_file():
            handle = ctypes.CDLL(str(path))
            break
        tried.append(str(path))
    else:
        raise NativeError(
            "The edgespec native library (libedgespec) was not found; reinstall with "
            "`pip install .` (or build it with `cmake -S runtimes -B build`) or set EDGESPEC_LIBRARY."
        )
    handle.es_abi_version.restype = ctypes.c_int
    handle.es_version.restype = ctypes.c_char_p
    handle.es_openvino_version.restype = ctypes.c_char_p
    handle.es_last_error.restype = ctypes.c_char_p
    handle.es_available_devices.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)]
    handle.es_available_devices.restype = ctypes.c_int
    _declare_pipeline_api(handle)
    abi = handle.es_abi_version()
    if abi != ABI_VERSION:
        raise NativeError(
            f"libedgespec has ABI version {abi} but this Python package expects {ABI_VERSION}; "
            "reinstall edgespec so both come from the same build."
        )
    return handle


# --- pipelines and generation (mirrors runtimes/include/edgespec.h; keep in sync) -------------

MAX_DRAFT = 32  # ES_MAX_DRAFT

# es_status -> short name (error messages and tests)
STATUS_NAMES = {
    0: "ES_OK",
    1: "ES_ERR_INVALID_ARGUMENT",
    2: "ES_ERR_IO",
    3: "ES_ERR_BUNDLE",
    4: "ES_ERR_DEVICE",
    5: "ES_ERR_CONTEXT",
    6: "ES_ERR_BUFFER_TOO_SMALL",
    7: "ES_ERR_CANCELLED",
    8: "ES_ERR_BUSY",
    99: "ES_ERR_INTERNAL",
}
POLICIES = {"auto": 0, "autoregressive": 1, "draft": 2, "ngram": 3}
FINISH_REASONS = ("eos", "stop_string", "max_tokens", "context", "callback")


class PipelineParams(ctypes.Structure):
    _fields_ = [
        ("device", ctypes.c_char_p),
        ("draft_device", ctypes.c_char_p),
        ("draft", ctypes.c_char_p),
        ("precision", ctypes.c_char_p),
        ("kv_precision", ctypes.c_char_p),
        ("num_threads", ctypes.c_int32),
        ("tokenizers_extension", ctypes.c_char_p),
        ("backend", ctypes.c_char_p),
        ("ort_library", ctypes.c_char_p),
        ("fixed_shapes", ctypes.c_int32),
        ("verify", ctypes.c_int32),
        ("translation_cache_dir", ctypes.c_char_p),
        ("adapt_log_dir", ctypes.c_char_p),
    ]


class GenerationConfig(ctypes.Structure):
    _fields_ = [
        ("max_new_tokens", ctypes.c_int32),
        ("policy", ctypes.c_int),
        ("k", ctypes.c_int32),
        ("k_max", ctypes.c_int32),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("ignore_eos", ctypes.c_int32),
        ("draft_stop_prob", ctypes.c_float),
        ("stop", ctypes.POINTER(ctypes.c_char_p)),
        ("n_stop", ctypes.c_size_t),
        ("draft_window", ctypes.c_int32),
        ("lookup", ctypes.c_int32),
    ]


class Stats(ctypes.Structure):
    _fields_ = [
        ("ttft_ms", ctypes.c_double),
        ("tpot_ms", ctypes.c_double),
        ("tokens_per_s", ctypes.c_double),
        ("total_ms", ctypes.c_double),
        ("draft_ms", ctypes.c_double),
        ("verify_ms", ctypes.c_double),
        ("other_ms", ctypes.c_double),
        ("prefill_ms", ctypes.c_double),
        ("tokenize_ms", ctypes.c_double),
        ("callback_ms", ctypes.c_double),
        ("prompt_tokens", ctypes.c_int64),
        ("generated_tokens", ctypes.c_int64),
        ("target_calls", ctypes.c_int64),
        ("drafted", ctypes.c_int64),
        ("accepted", ctypes.c_int64),
        ("acceptance_rate", ctypes.c_double),
        ("mean_accepted", ctypes.c_double),
        ("kv_compactions", ctypes.c_int64),
        ("final_k", ctypes.c_int32),
        ("finish_reason", ctypes.c_int),
        ("accepted_hist", ctypes.c_int64 * (MAX_DRAFT + 1)),
        ("draft_prefill_ms", ctypes.c_double),
        ("draft_prefill_tokens", ctypes.c_int64),
        ("translation_hits", ctypes.c_int64),
        ("translation_misses", ctypes.c_int64),
        ("translation_disk_hits", ctypes.c_int64),
        ("translation_ms", ctypes.c_double),
        ("draft_window_slides", ctypes.c_int64),
        ("lookup_drafted", ctypes.c_int64),
        ("lookup_accepted", ctypes.c_int64),
    ]


STREAM_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


def _declare_pipeline_api(h: ctypes.CDLL) -> None:
    P, c_int, c_size_t = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    h.es_pipeline_default_params.restype = PipelineParams
    h.es_pipeline_default_params.argtypes = []
    h.es_pipeline_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(PipelineParams), ctypes.POINTER(P)]
    h.es_pipeline_load.restype = c_int
    h.es_pipeline_free.argtypes = [P]
    h.es_pipeline_free.restype = c_int
    h.es_cancel.argtypes = [P]
    h.es_cancel.restype = c_int
    h.es_pipeline_context_length.argtypes = [P]
    h.es_pipeline_context_length.restype = ctypes.c_int64
    h.es_pipeline_draft_name.argtypes = [P]
    h.es_pipeline_draft_name.restype = ctypes.c_char_p
    h.es_pipeline_info.argtypes = [P]
    h.es_pipeline_info.restype = ctypes.c_char_p
    h.es_generation_default_config.restype = GenerationConfig
    h.es_generation_default_config.argtypes = []
    h.es_generate.argtypes = [
        P,
        ctypes.c_char_p,
        ctypes.POINTER(GenerationConfig),
        STREAM_CALLBACK,
        P,
        ctypes.POINTER(P),
    ]
    h.es_generate.restype = c_int
    h.es_result_text.argtypes = [P]
    h.es_result_text.restype = ctypes.c_void_p  # read with es_result_text_len: the text may hold NULs
    h.es_result_text_len.argtypes = [P]
    h.es_result_text_len.restype = c_size_t
    h.es_result_tokens.argtypes = [P, ctypes.POINTER(c_size_t)]
    h.es_result_tokens.restype = ctypes.POINTER(ctypes.c_int64)
    h.es_result_stats.argtypes = [P, ctypes.POINTER(Stats)]
    h.es_result_stats.restype = c_int
    h.es_result_free.argtypes = [P]
    h.es_result_free.restype = None
    h.es_tokenize.argtypes = [P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(c_size_t)]
    h.es_tokenize.restype = c_int
    h.es_detokenize.argtypes = [P, ctypes.POINTER(ctypes.c_int64), c_size_t, ctypes.c_char_p, ctypes.POINTER(c_size_t)]
    h.es_detokenize.restype = c_int


def last_error() -> str:
    return (lib().es_last_error() or b"").decode("utf-8", "replace")


class InvalidArgumentError(NativeError, ValueError):
    """A NULL argument or an invalid setting (ES_ERR_INVALID_ARGUMENT)."""


class NativeBundleError(NativeError, BundleError):
    """The bundle is missing, unreadable, corrupt or of another schema (ES_ERR_IO / ES_ERR_BUNDLE)."""


class DeviceError(NativeError):
    """The device is unknown or cannot compile the model (ES_ERR_DEVICE)."""


class ContextError(NativeError):
    """The prompt does not fit the target's context length (ES_ERR_CONTEXT)."""


class CancelledError(NativeError):
    """The generation was cancelled (ES_ERR_CANCELLED)."""


class BusyError(NativeError):
    """The pipeline is running another call (ES_ERR_BUSY): one call at a time per pipeline."""


_STATUS_ERRORS = {
    1: InvalidArgumentError,
    2: NativeBundleError,
    3: NativeBundleError,
    4: DeviceError,
    5: ContextError,
    7: CancelledError,
    8: BusyError,
}


def check(status: int, what: str = "", message: str | None = None) -> None:
    """Raise the NativeError subclass of status, with the library's last message (or message, when
    the call ran on another thread: es_last_error is per thread), unless ES_OK."""
    if status != 0:
        msg = (
            last_error() if message is None else message
        ) or f"native call failed with status {STATUS_NAMES.get(status, status)}"
        raise _STATUS_ERRORS.get(status, NativeError)(f"{what}: {msg}" if what else msg, status)


def read_string(fn, *args) -> str:
    """Two-call size query for functions of the form f(*args, char *buf, size_t *size)."""
    size = ctypes.c_size_t(0)
    check(fn(*args, None, ctypes.byref(size)))
    buf = ctypes.create_string_buffer(size.value)
    check(fn(*args, buf, ctypes.byref(size)))
    return buf.value.decode("utf-8", "replace")


def versions() -> dict:
    """Versions and devices as the native library sees them."""
    h = lib()
    return {
        "edgespec_native": h.es_version().decode(),
        "abi_version": h.es_abi_version(),
        "openvino": h.es_openvino_version().decode(),
        "devices": [d for d in read_string(h.es_available_devices).split(",") if d],
    }
