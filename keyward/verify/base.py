"""The verifier protocol and what a verifier factory receives."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from keyward.scan.model import Finding, Verification

DEFAULT_TIMEOUT = 10.0  # seconds per request
DEFAULT_RATE = 5.0  # requests per second per provider


@runtime_checkable
class Verifier(Protocol):
    """Decides whether one kind of credential is live.

    ``accepts`` must be cheap and offline (rule id and the value's shape). ``verify`` may call
    the provider; it returns :attr:`Verification.UNKNOWN` rather than raise when the provider
    cannot give a clear answer (network error, rate limit, unexpected status), and never puts
    the credential in a log line or an exception message.
    """

    name: str

    def accepts(self, finding: Finding) -> bool: ...

    def verify(self, finding: Finding) -> Verification: ...


@dataclass(frozen=True, slots=True)
class VerifyContext:
    """Handed to each verifier factory (the entry point's target)."""

    settings: Mapping[str, Any] = field(default_factory=dict)  # the [verify] config table
    timeout: float = DEFAULT_TIMEOUT
    rate: float = DEFAULT_RATE  # per provider, requests per second

    def setting(self, key: str, default: str) -> str:
        value = self.settings.get(key)
        return str(value) if value else default


# An entry point names a factory: a class or function taking a VerifyContext.
VerifierFactory = Callable[[VerifyContext], Verifier]
