"""User-facing errors.

Every failure a user can cause (a wrong path, a bad flag, a corrupt bundle) is raised as an
:class:`EdgespecError` whose message is one sentence naming the problem and the fix. The CLI
prints it without a traceback and exits non-zero; the Python API lets it propagate.
"""

from __future__ import annotations

import math


class EdgespecError(Exception):
    """A problem the user can fix; ``str(err)`` says what and how."""

    exit_code = 2


class BundleError(EdgespecError):
    """The bundle directory or its ``edgespec.json`` is missing, malformed or of another schema."""


class ExportError(EdgespecError):
    """Exporting a checkpoint failed in a way the user can act on."""


class NativeError(EdgespecError):
    """A call into the native runtime failed; carries the C status code."""

    def __init__(self, message: str, status: int = 99):
        super().__init__(message)
        self.status = status


def check_ranges(*checks: tuple) -> None:
    """One sentence (an EdgespecError) for the first option outside its range.

    ``checks`` are (flag, value, low, high): ``value`` None (option not given) passes; ``low``/``high``
    None are open ends; a float flag must also be a finite number.
    """
    for flag, value, low, high in checks:
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise EdgespecError(f"{flag} must be a finite number (got {value}).")
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                want = f"at least {low}"
            elif low is None:
                want = f"at most {high}"
            else:
                want = f"between {low} and {high}"
            raise EdgespecError(f"{flag} must be {want} (got {value}).")
