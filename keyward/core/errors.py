"""One error hierarchy for all of keyward.

Every error carries what went wrong and what to do about it. The CLI has one error boundary
that prints :meth:`KeywardError.diagnostics` and exits with :attr:`KeywardError.exit_code`.
Messages never contain a raw secret value.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    BACKEND = 3


class KeywardError(Exception):
    """Root of every error keyward raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """One plain sentence: what went wrong and, when known, what to do."""
        if self.hint:
            return f"{self.message.rstrip('.')}. {self.hint.rstrip('.')}."
        return self.message


class ConfigError(KeywardError):
    """The configuration file or a command-line option is invalid."""


class SourceError(KeywardError):
    """A scan source cannot be read (missing path, unreadable repository, ...)."""


class RuleError(KeywardError):
    """A rule file is unreadable or a rule in it is invalid."""


class BaselineError(KeywardError):
    """A baseline file is unreadable or malformed."""


class BackendError(KeywardError):
    """A backend (cloud API, Vault, database) is unavailable or refused the request."""

    exit_code = ExitCode.BACKEND


class InventoryError(KeywardError):
    """The inventory database cannot do what was asked."""


class StoreError(BackendError):
    """A secret store failed."""


class StoreAuthError(StoreError):
    """The store refused our credentials or the action is not permitted."""


class StoreNotFound(StoreError):
    """The secret or version does not exist in the store."""

    exit_code = ExitCode.USAGE


class StoreConflict(StoreError):
    """A concurrent change won (check-and-set mismatch, version already exists)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached."""


class RotationError(KeywardError):
    """A rotation cannot proceed."""
