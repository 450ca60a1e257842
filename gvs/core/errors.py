"""One base class for every error a user can cause or fix; commands print its message and exit 2.

Anything else that escapes is a bug and keeps its traceback (``gvs --debug`` shows the traceback of these too).
"""

from __future__ import annotations


class GVSError(Exception):
    """An error with a message that names the file or option at fault and says how to fix it."""

    exit_code = 2


class InputError(GVSError, ValueError):
    """Bad user input: a label file, a dataset folder, a command-line value."""


class LabelFileError(InputError):
    """A label file or CSV that cannot be read; the message names the file, the line and the fix."""


class CacheError(GVSError):
    """The feature cache lacks what was asked for or belongs to another source; the message says what to run."""


class CorruptFileError(CacheError):
    """A file that exists but cannot be read as what it should be (truncated, garbage, wrong shape)."""


class FolderBusyError(GVSError):
    """Another run holds the lock of a folder it writes (a cache, a predictions folder)."""


class CacheBusyError(CacheError, FolderBusyError):
    """Another run holds the lock of this cache."""


class ModelFileError(GVSError):
    """A model file is missing or corrupt and could not be fetched; the message says what to put where."""


class RunError(GVSError):
    """A RUNS/ folder lacks a model or a fusion, or holds one that does not match the cache."""


class StaleModelError(RunError):
    """A saved model was trained on features made with other parameters than the cache now holds."""


class PartitionError(RunError, ValueError):
    """The partition cannot be made or no longer matches the cache; the message says how to fix it."""


class DiskError(GVSError):
    """A folder cannot be written (disk full, read-only, no permission); the message names it and its free space."""


class Interrupted(GVSError):
    """The user pressed Ctrl-C; the message says what finished and how to resume."""

    exit_code = 130
