"""User-facing errors.

Every mistake a user can make (a bad key, a missing file, a malformed line) raises one of
these with a one-line message that names the input and says what was expected. The CLI
prints the message on stderr and exits with ``exit_code``; ``--debug`` shows the traceback.
"""
from __future__ import annotations


class OstinatoError(Exception):
    """Base class: a runtime failure the user can act on (exit code 1)."""

    exit_code = 1


class ConfigError(OstinatoError, ValueError):
    """A usage or configuration mistake: unknown key, wrong type, bad recipe (exit code 2)."""

    exit_code = 2


class DataError(OstinatoError):
    """A dataset is missing, malformed or fails its checksum (exit code 1)."""


class TrainingError(OstinatoError):
    """Training stopped abnormally, e.g. on a non-finite loss (exit code 1)."""


class EnvironmentMissing(OstinatoError):
    """An optional simulator, its assets or its renderer is not installed here (exit code 1).

    Tests that need one skip on this error, with its message as the reason.
    """
