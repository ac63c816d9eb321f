"""Provider failures become keyward errors here, for AWS and Vault alike.

:mod:`keyward.providers.aws` and :mod:`keyward.providers.vault` classify a client library's
exception into a :class:`~keyward.core.errors.ProviderFault` (a :class:`Failure` plus one
sentence naming the action and the resource, never a value). An :class:`ErrorFamily` then
picks the error class: every consumer gets the same class hierarchy and exit code for the
failures that must behave the same everywhere, and chooses its own only for the rest.

=====================  =====================================  ====
failure                error (any family)                     exit
=====================  =====================================  ====
no credentials         ``family.denied`` (a ProviderDenied)   3
credentials rejected   ``family.denied``                      3
denied                 ``family.denied``                      3
unreachable            ``family.unavailable`` (a              3
                       ProviderUnavailable)
throttled              ``family.unavailable``                 3
misconfigured (no such ``ConfigError``                        2
namespace, mount,
region, endpoint)
not found, conflict,   the family's own (``StoreNotFound``    the
other                  2, ``RotatorConflict`` 2, ...)         class's
=====================  =====================================  ====

A fault's hint says what to do about the provider ("check the network, then retry"), never
about a rotation: a provider fails before any rotation exists too (``rotate`` describing the
secret, ``scan``, ``discover``), and where a rotation does exist the engine says itself whether
to resume it or roll it back, naming its id.

This module imports no client library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from keyward.core.errors import (
    BackendError,
    ConfigError,
    Failure,
    KeywardError,
    ProviderDenied,
    ProviderFault,
    ProviderNotFound,
    ProviderUnavailable,
    StoreAuthError,
    StoreConflict,
    StoreError,
    StoreNotFound,
    StoreUnavailable,
)

# The fault's own sentence and hint, as an error of some class.
ErrorFactory = Callable[[ProviderFault], KeywardError]


def worded(cls: type[KeywardError]) -> ErrorFactory:
    """A factory raising ``cls`` with the fault's own message and hint."""

    def make(fault: ProviderFault) -> KeywardError:
        return cls(fault.message, hint=fault.hint)

    return make


@dataclass(frozen=True, slots=True)
class ErrorFamily:
    """Which keyward error each kind of provider failure becomes, for one kind of consumer.

    ``denied`` and ``unavailable`` are classes of the shared hierarchy (so "no credentials",
    "denied", "unreachable" and "throttled" exit 3 for every consumer, with the fault's own
    sentence); the other three are factories, for consumers that word them in their domain
    ("Lambda function f no longer exists")."""

    denied: type[ProviderDenied]
    unavailable: type[ProviderUnavailable]
    not_found: ErrorFactory
    conflict: ErrorFactory
    failed: ErrorFactory

    def error(self, fault: ProviderFault) -> KeywardError:
        """The keyward error for ``fault`` (it carries the fault in ``.fault``)."""
        err: KeywardError
        match fault.failure:
            case Failure.NO_CREDENTIALS | Failure.REJECTED | Failure.DENIED:
                err = self.denied(fault.message, hint=fault.hint)
            case Failure.UNAVAILABLE | Failure.THROTTLED:
                err = self.unavailable(fault.message, hint=fault.hint)
            case Failure.MISCONFIGURED:
                err = ConfigError(fault.message, hint=fault.hint)
            case Failure.NOT_FOUND:
                err = self.not_found(fault)
            case Failure.CONFLICT:
                err = self.conflict(fault)
            case Failure.FAILED:
                err = self.failed(fault)
            case _ as unreachable:
                assert_never(unreachable)
        err.fault = fault
        return err


# Secret stores (and discovery, which reads stores): StoreAuthError, StoreUnavailable, ...
STORE_ERRORS = ErrorFamily(
    denied=StoreAuthError,
    unavailable=StoreUnavailable,
    not_found=worded(StoreNotFound),
    conflict=worded(StoreConflict),
    failed=worded(StoreError),
)

# Everything else that calls a provider (scan sources, rotators, dependents, verifiers).
PROVIDER_ERRORS = ErrorFamily(
    denied=ProviderDenied,
    unavailable=ProviderUnavailable,
    not_found=worded(ProviderNotFound),
    conflict=worded(BackendError),
    failed=worded(BackendError),
)


def skip_reason(fault: ProviderFault) -> str:
    """A few words for a warning that skips something (a region, an account, a function's
    code): ``access denied (AccessDenied)``, ``cannot reach http://host:443``."""
    if fault.failure in (Failure.DENIED, Failure.REJECTED, Failure.NO_CREDENTIALS):
        return f"access denied ({fault.code})"
    if fault.failure is Failure.UNAVAILABLE and fault.endpoint is not None:
        return f"cannot reach {fault.endpoint}"
    if fault.failure is Failure.UNAVAILABLE:
        return f"unavailable ({fault.code})"
    if fault.failure is Failure.THROTTLED:
        return f"throttled ({fault.code})"
    return f"the API failed ({fault.code})"
