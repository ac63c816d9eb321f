"""Errors raised by rotators and dependents (stores raise :mod:`keyward.core.errors` ones).

Every message names the resource and the action in one sentence and never contains a raw
secret value: identifiers are shown redacted (:func:`keyward.core.redaction.redact`).
"""

from __future__ import annotations

from keyward.core.errors import BackendError, ExitCode, RotationError


class ProviderDenied(BackendError):
    """A provider (IAM, STS, Lambda, PostgreSQL) refused an action we are not permitted to do."""


class ProviderUnavailable(BackendError):
    """A provider cannot be reached (connection refused, timeout, throttled past retries)."""


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
