"""Errors raised by rotators and dependents (stores raise :mod:`keyward.core.errors` ones).

Every message names the resource and the action in one sentence and never contains a raw
secret value: identifiers are shown redacted (:func:`keyward.core.redaction.redact`).
"""

from __future__ import annotations

from keyward.core.errors import (
    BackendError,
    ExitCode,
    ProviderDenied,
    ProviderFault,
    ProviderNotFound,
    ProviderUnavailable,
    RotationError,
)
from keyward.providers.errors import ErrorFamily, worded
from keyward.rotation.ports import RotationInFlight

__all__ = [
    "DEPENDENT_ERRORS",
    "ROTATOR_ERRORS",
    "CredentialRejected",
    "DependentDrift",
    "DependentError",
    "DependentNotFound",
    "LeaseLost",
    "ManagedElsewhere",
    "NotRollbackable",
    "ProviderDenied",
    "ProviderNotFound",
    "ProviderUnavailable",
    "RollbackIncomplete",
    "RotationBusy",
    "RotationFailed",
    "RotatorConflict",
    "StillRetiring",
]


# ------------------------------------------------------------ the state machine's own
class RotationFailed(RotationError):
    """A rotation failed before finish and was rolled back; exit code of the cause."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: ExitCode) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class RollbackIncomplete(RotationFailed):
    """A rotation failed and its rollback could not finish yet (it stays rolling_back)."""


class StillRetiring(RotationError):
    """A new rotation was asked for while the previous one retires an old credential that is
    still in use: keyward will not revoke it early (exit 2)."""


class LeaseLost(RotationError):
    """Another worker took this rotation over (our lease expired); we stop at once."""

    exit_code = ExitCode.BACKEND


class RotationBusy(RotationInFlight):
    """Another live process is working on this secret's rotation."""


class ManagedElsewhere(RotationError):
    """Another rotation (Secrets Manager's own) already rotates the secret; keyward refuses
    unless told to take over."""


class NotRollbackable(RotationError):
    """The rotation is past finish (or already over): there is nothing to roll back."""


# ------------------------------------------------------------- plugins' errors


class RotatorConflict(RotationError):
    """The credential cannot be rotated as things stand (e.g. an IAM user with two keys)."""


class CredentialRejected(RotationError):
    """A credential did not work when tested (the new one in ``test``, or on login)."""

    exit_code = ExitCode.BACKEND


class DependentError(RotationError):
    """A dependent could not be updated, verified or restored."""

    exit_code = ExitCode.BACKEND


class DependentNotFound(DependentError):
    """The dependent resource (e.g. a Lambda function) no longer exists."""

    exit_code = ExitCode.USAGE


class DependentDrift(DependentError):
    """A dependent holds a value that is neither the current nor the new secret value."""

    exit_code = ExitCode.USAGE


def _dependent_gone(fault: ProviderFault) -> DependentNotFound:
    return DependentNotFound(
        f"{fault.resource} no longer exists ({fault.action})",
        hint="Remove it from the secret's dependents in the inventory, then resume",
    )


# How provider failures surface from rotators and dependents; "no credentials", "denied",
# "unreachable" and "throttled" are ProviderDenied / ProviderUnavailable (exit 3) for both.
ROTATOR_ERRORS = ErrorFamily(
    denied=ProviderDenied,
    unavailable=ProviderUnavailable,
    not_found=worded(ProviderNotFound),
    conflict=worded(RotatorConflict),
    failed=worded(BackendError),
)
DEPENDENT_ERRORS = ErrorFamily(
    denied=ProviderDenied,
    unavailable=ProviderUnavailable,
    not_found=_dependent_gone,
    conflict=worded(DependentError),
    failed=worded(DependentError),
)
