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

from .errors import NativeError

ABI_VERSION = 1

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
    abi = handle.es_abi_version()
    if abi != ABI_VERSION:
        raise NativeError(
            f"libedgespec has ABI version {abi} but this Python package expects {ABI_VERSION}; "
            "reinstall edgespec so both come from the same build."
        )
    return handle


def last_error() -> str:
    return (lib().es_last_error() or b"").decode("utf-8", "replace")


def check(status: int, what: str = "") -> None:
    """Raise NativeError with the library's last message if status is not ES_OK."""
    if status != 0:
        msg = last_error() or f"native call failed with status {status}"
        raise NativeError(f"{what}: {msg}" if what else msg, status)


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
