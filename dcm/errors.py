"""The dcm exception tree.

Every error dcm raises on purpose derives from :class:`DCMError` and also from the
builtin exception a caller would expect, so ``except ValueError`` keeps working.
User errors (bad files, bad arguments) are reported as one line by the CLI and as
JSON problem details by the API; nothing here knows about HTTP.
"""

from __future__ import annotations


class DCMError(Exception):
    """Root of every error dcm raises deliberately."""


class IngestError(DCMError, ValueError):
    """A file or upload could not be read at all (as opposed to single bad rows)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class InputTooLarge(IngestError):
    """An input larger than the installation accepts (after gunzip, or its inflation ratio)."""


class SchemaError(DCMError, ValueError):
    """A frame does not match the column contract in :mod:`dcm.schema`."""


class ParameterError(DCMError, ValueError):
    """An analysis or command parameter is out of range or inconsistent."""


class NotFound(DCMError, LookupError):
    """A requested event, dataset, collection or feature does not exist."""


class Conflict(DCMError, ValueError):
    """The request conflicts with stored state (duplicate name, stale version)."""


class PermissionDenied(DCMError, PermissionError):
    """The caller's key does not grant access to the requested data or action."""


class AuthenticationRequired(PermissionDenied):
    """No valid API key was given for an action that needs one."""


class StoreError(DCMError, RuntimeError):
    """The database could not complete an operation (connection, migration)."""


class StoreBusy(StoreError):
    """Another writer held the store longer than dcm waits for it; trying again later works."""
