"""Errors of the inventory layer (importable without SQLAlchemy)."""

from __future__ import annotations

from keyward.core.errors import BackendError, ExitCode, InventoryError
from keyward.rotation.ports import RotationInFlight

__all__ = [
    "AlreadyExists",
    "DatabaseCorrupt",
    "DatabaseTooNew",
    "DatabaseUnavailable",
    "MigrationLocked",
    "NotFound",
    "RotationInFlight",
]


class DatabaseUnavailable(BackendError):
    """The inventory database cannot be reached (exit 3)."""


class DatabaseRefused(BackendError):
    """The database server answered and refused: a login, a privilege (exit 3)."""


class ForeignDatabase(InventoryError):
    """The database (or schema) already holds another application's tables (exit 2)."""


class DatabaseCorrupt(BackendError):
    """The SQLite file is not a database or is damaged; nothing is written to it (exit 3)."""


class DatabaseTooNew(BackendError):
    """The database was migrated by a newer keyward than this one (exit 3)."""


class MigrationLocked(BackendError):
    """Another process holds the migration lock for too long (exit 3)."""


class NotFound(InventoryError):
    """A secret, dependent or finding named on the command line does not exist (exit 2)."""

    exit_code = ExitCode.USAGE


class AlreadyExists(InventoryError):
    """A secret or dependent with that identity is already in the inventory (exit 2)."""
