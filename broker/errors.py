"""The broker's error tree.

Every error the core and storage layers raise on purpose is a ``BrokerError``.
Driver errors (sqlite3, aiosqlite) stop at the storage layer and come out as
``StorageUnavailable``. The one table that turns these into gRPC status codes
lives in ``broker/servicers/errors.py``. Each class's docstring is its default
message.
"""

from __future__ import annotations


class BrokerError(Exception):
    """The broker could not do what was asked."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidArgument(BrokerError):
    """A field of the request is malformed or out of range."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class NotFound(BrokerError):
    """No such object."""


class AlreadyExists(BrokerError):
    """The object exists already and this is not an idempotent retry."""


class FailedPrecondition(BrokerError):
    """The object is not in a state that allows this."""


class ResourceExhausted(BrokerError):
    """A limit was reached."""


class PermissionDenied(BrokerError):
    """The caller may not act on this object."""


class Unauthenticated(BrokerError):
    """Missing or invalid credentials."""


class StorageUnavailable(BrokerError):
    """The storage backend failed; nothing was changed. Retry later."""


class StorageLocked(BrokerError):
    """The database is in use by another broker process."""


class MigrationError(BrokerError):
    """A schema migration failed; the database was left as it was."""
