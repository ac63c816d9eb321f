"""One error hierarchy for all of keyward.

Every error carries what went wrong and what to do about it. The CLI has one error boundary
that prints :meth:`KeywardError.diagnostics` and exits with :attr:`KeywardError.exit_code`.
Messages never contain a raw secret value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class ExitCode(IntEnum):
    """Documented process exit codes."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    BACKEND = 3


class Failure(StrEnum):
    """Why a call to a provider (AWS, Vault) failed, whatever the provider calls it.

    :mod:`keyward.providers` classifies every provider exception into one of these; the first
    five always exit 3 (:class:`ProviderDenied` or :class:`ProviderUnavailable`), the same
    for every consumer."""

    NO_CREDENTIALS = "no-credentials"  # nothing to sign or authenticate with
    REJECTED = "rejected"  # credentials presented and refused: unknown, expired, revoked, wrong
    DENIED = "denied"  # authenticated, but not permitted to do this here
    UNAVAILABLE = "unavailable"  # cannot be reached, timed out, or not serving (5xx, sealed)
    THROTTLED = "throttled"  # still rate limited after the client's retries
    NOT_FOUND = "not-found"
    # the call names something the provider does not have at all (a namespace, a mount, an
    # auth method, a region, an endpoint): the settings are wrong, a ConfigError (exit 2)
    MISCONFIGURED = "misconfigured"
    CONFLICT = "conflict"  # a precondition or check-and-set lost, a limit reached
    FAILED = "failed"  # anything else the provider refused


@dataclass(frozen=True, slots=True)
class ProviderFault:
    """A failed provider call in keyward's words: never a secret value.

    ``code`` is the provider's own error code (``AccessDeniedException``) or the client
    library's exception class name; ``detail`` the provider's message, scrubbed."""

    provider: str  # "AWS", "Vault"
    failure: Failure
    action: str  # "secretsmanager:PutSecretValue", "update metadata"
    resource: str  # "secret 'app/db'", "secret/metadata/app/db"
    code: str
    message: str  # one sentence naming the action and the resource
    hint: str | None = None
    detail: str = ""
    endpoint: str | None = None  # where it was sent, when the failure is about reaching it

    @property
    def suffix(self) -> str:
        """`` (code: detail)`` or `` (code)``, for messages."""
        return f" ({self.code}: {self.detail})" if self.detail else f" ({self.code})"


class KeywardError(Exception):
    """Root of every error keyward raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE
    fault: ProviderFault | None = None  # set when a provider failure caused this error

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


class KeyNotCreated(ConfigError):
    """The fingerprint key file does not exist and cannot be created (read-only data dir)."""


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


class ProviderDenied(BackendError):
    """A provider refused the request: no credentials, credentials rejected, or not permitted."""


class ProviderUnavailable(BackendError):
    """A provider cannot be reached, timed out, is not serving, or kept throttling."""


class ProviderNotFound(BackendError):
    """A provider says the resource a rotator or source needs does not exist."""


class StoreError(BackendError):
    """A secret store failed."""


class StoreAuthError(StoreError, ProviderDenied):
    """The store refused our credentials or the action is not permitted."""


class StoreNotFound(StoreError):
    """The secret or version does not exist in the store."""

    exit_code = ExitCode.USAGE


class StoreConflict(StoreError):
    """A concurrent change won (check-and-set mismatch, version already exists)."""


class StoreUnavailable(StoreError, ProviderUnavailable):
    """The store cannot be reached."""


class RotationError(KeywardError):
    """A rotation cannot proceed."""
