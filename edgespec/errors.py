"""User-facing errors.

Every failure a user can cause (a wrong path, a bad flag, a corrupt bundle) is raised as an
:class:`EdgespecError` whose message is one sentence naming the problem and the fix. The CLI
prints it without a traceback and exits non-zero; the Python API lets it propagate.
"""

from __future__ import annotations


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
