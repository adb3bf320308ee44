"""Partial files of runs that were killed (kill -9, power loss), and disk-full detection.

Export and training write to temporary names beside their output and rename when done, so a
killed run leaves no half-written output, but it does leave its temporary files. Each run
records who owns them (:func:`owner_record`: pid, process start time, host); a later run for the
same output removes those whose owner is gone (:func:`owner_gone`), and says so in one line.
A record from another host is never judged (the file system may be shared).

:func:`disk_error` tells an ENOSPC / EDQUOT / EFBIG failure apart from others, however the
library that hit it wrapped it (OpenVINO, NNCF, torch and onnx re-raise it as RuntimeError or
in their own words), by the errno in the exception chain, the words of the C library, or the
free space left once the failure happened (or a file that reached the process's file-size limit).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

OWNER_FILE = ".edgespec-owner.json"
# A partial directory with no owner record comes from a version that wrote none (or a kill in the
# microseconds between creating the directory and writing the record): stale once this old.
UNOWNED_STALE_S = 600
# After a failed write, less free space than this on the output's file system means it filled up.
FULL_BELOW_BYTES = 16 * 2**20

_DISK_WORDS = ("no space left on device", "disk quota exceeded", "not enough space on the disk", "enospc")


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is told apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing one
    return stat.rsplit(")", 1)[1].split()[19]


def owner_record() -> dict:
    """Who owns the temporary files this process writes: pid, start time, host."""
    return {"pid": os.getpid(), "start": _start_time(os.getpid()), "host": socket.gethostname()}


def write_owner(directory: Path) -> None:
    """Record this process as the owner of ``directory`` (a temporary directory it is filling)."""
    (Path(directory) / OWNER_FILE).write_text(json.dumps(owner_record()), encoding="utf-8")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (never signals or ends it)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        k32 = ctypes.windll.kernel32
        handle = k32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.GetLastError() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        ok = k32.GetExitCodeProcess(handle, ctypes.byref(code))
        k32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_gone(record: dict) -> bool:
    """True when the recorded owner process has ended (a record from another host: False)."""
    if record.get("host") != socket.gethostname():
        return False
    pid = int(record.get("pid", 0))
    if pid == os.getpid():
        return False
    if not pid_alive(pid):
        return True
    start = record.get("start")
    return start is not None and _start_time(pid) not in (None, start)  # the pid was reused


def _read_owner(directory: Path) -> dict | None:
    try:
        return json.loads((directory / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_stale_dir(d: Path) -> bool:
    rec = _read_owner(d)
    if rec is not None:
        return owner_gone(rec)
    try:
        return time.time() - d.stat().st_mtime > UNOWNED_STALE_S
    except OSError:
        return False


def remove_stale_partials(final: Path) -> list[Path]:
    """Remove the partial directories that killed runs left beside ``final``; returns them.

    ``.NAME.partial-*`` (an export being built) goes when its owner record names a process that
    has ended. ``.NAME.old-PID`` (the previous bundle while ``--force`` swaps in the new one)
    goes when PID has ended and ``final`` exists; if the kill came between the two renames,
    ``final`` is missing and the old bundle is put back instead of deleted.
    """
    final = Path(final).resolve()  # as atomic_directory names its partial directory
    parent = final.parent
    if not parent.is_dir():
        return []
    removed = []
    for d in sorted(parent.glob(f".{final.name}.partial-*")):
        if d.is_dir() and not d.is_symlink() and _is_stale_dir(d):
            shutil.rmtree(d, ignore_errors=True)
            if not d.exists():
                removed.append(d)
    for d in sorted(parent.glob(f".{final.name}.old-*")):
        pid = d.name.rsplit("-", 1)[-1]
        if not (d.is_dir() and pid.isdigit()) or pid_alive(int(pid)):
            continue
        if final.exists():
            shutil.rmtree(d, ignore_errors=True)
            if not d.exists():
                removed.append(d)
        else:
            d.rename(final)
    return removed


def remove_stale_files(directory: Path, pattern: str, pid_of) -> list[Path]:
    """Remove temporary files/dirs matching ``pattern`` in ``directory`` whose writer has ended.

    ``pid_of(path) -> int | None`` reads the writer's pid from the name (None: not ours, kept).
    """
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for p in sorted(directory.glob(pattern)):
        pid = pid_of(p)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        if not p.exists():
            removed.append(p)
    return removed


def free_bytes(path: Path) -> int:
    """Free bytes on the file system of ``path`` (its nearest existing ancestor)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def disk_error(exc: BaseException, where: Path) -> str | None:
    """ "full" (ENOSPC/EDQUOT), "file-size" (EFBIG) or None: what ``exc`` says about the disk.

    Looks through ``exc``'s causes and contexts (libraries wrap OSError in their own errors)
    and their messages; failing that, a file system of ``where`` that is now nearly full
    counts as the cause (OpenVINO and torch report a failed write without its errno).
    """
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return "full"
        if isinstance(e, OSError) and e.errno == errno.EFBIG:
            return "file-size"
        text = str(e).lower()
        if "file too large" in text:
            return "file-size"
        if any(w in text for w in _DISK_WORDS):
            return "full"
        e = e.__cause__ or e.__context__
    try:
        if free_bytes(where) < FULL_BELOW_BYTES:
            return "full"
    except OSError:
        pass
    return "file-size" if _hit_size_limit(Path(where)) else None


def _hit_size_limit(where: Path) -> bool:
    """Whether ``where`` or a file under it has reached this process's RLIMIT_FSIZE (writes past it fail)."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return False
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return False
    if where.is_file():
        return where.stat().st_size >= limit
    for root, _, files in os.walk(where):
        for f in files:
            try:
                if os.stat(os.path.join(root, f)).st_size >= limit:
                    return True
            except OSError:
                continue
    return False


def disk_sentence(kind: str, where: Path, what: str, need: int | None = None, during: bool = True) -> str:
    """The one sentence for a disk ``kind`` (see :func:`disk_error`) in ``where`` while ``what`` ran."""
    where = Path(where).absolute()
    if kind == "file-size":
        return (
            f"A file written by {what} in {where} grew past this process's file-size limit (ulimit -f); raise the "
            "limit or run without it."
        )
    free = size_text(free_bytes(where))
    if need is None:
        state = f"the disk filled up during {what} ({free} free now)"
    elif during:
        state = f"the disk filled up during {what}, which needs about {size_text(need)} ({free} free now)"
    else:
        state = f"{what} needs about {size_text(need)}, {free} free"
    return f"Not enough disk space in {where}: {state}; free some space or use -o on another disk."


@contextlib.contextmanager
def removed_on_error(tmp: Path):
    """A temporary file or directory that a failed write (a full disk, Ctrl-C) leaves is removed.

    A write that failed for lack of space is re-raised as OSError(ENOSPC or EFBIG), judged
    before the removal frees the space (numpy and others say "N requested and M written").
    """
    try:
        yield
    except BaseException as e:
        kind = disk_error(e, tmp) if isinstance(e, Exception) and tmp.exists() else None
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if kind == "full":
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp)) from e
        if kind == "file-size":
            raise OSError(errno.EFBIG, "File too large", str(tmp)) from e
        raise


def size_text(n: float) -> str:
    """Bytes as "2.4 GiB", "37 MiB" or "12 KiB" (a small size never reads "0.0 GiB")."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.0f} MiB"
    return f"{n / 2**10:.0f} KiB"
