"""The error hierarchy: every mistake a user can make maps to one of these.

The CLI turns a :class:`MixragError` into one line on stderr and the exit code
in ``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MixragError(Exception):
    """Base class for errors caused by input, configuration or environment."""

    exit_code = 2


class NotAnIndexError(MixragError):
    """A folder that should hold a mixrag index does not."""


class IndexMismatchError(MixragError):
    """An index was opened with an encoder or configuration it was not built with."""


class IndexLockedError(MixragError):
    """Another process is writing to the index."""


class LoadError(MixragError):
    """A file could not be turned into documents (binary, empty, mis-encoded, malformed)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UnsupportedFileError(LoadError):
    """A file whose extension no loader handles."""


class ModelLoadError(MixragError):
    """A model could not be found or loaded (missing package, bad folder, checksum)."""


class MissingDependencyError(MixragError):
    """An optional dependency is not installed; the message names the extra to install."""
