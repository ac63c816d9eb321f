"""Verification: is a found credential live, revoked, or unknown?

Nothing here runs unless the user asks (``keyward scan --verify``): verifying sends the
credential to its provider. Verifiers are plugins found through the ``keyward.verifiers``
entry point group (the built-ins register the same way, in pyproject.toml), loaded only when
verification runs and checked against the :class:`~keyward.verify.base.Verifier` protocol.
"""

from keyward.verify.base import Verifier, VerifyContext

__all__ = ["Verifier", "VerifyContext"]
