"""Vault / OpenBao through hvac: client construction, login and re-login, error translation.

hvac (and requests, which it uses) are imported inside the functions that need them.

* :class:`VaultClients` builds one authenticated ``hvac.Client`` from
  :class:`~keyward.providers.settings.VaultSettings`: a token (``VAULT_TOKEN``), or an AppRole
  login when a role id is set. No address is a :class:`~keyward.core.errors.ConfigError`
  (exit 2); no credentials at all is a "no credentials" failure (exit 3, as for AWS).
* :class:`VaultCaller` is the boundary every Vault call goes through: an hvac or requests
  exception leaves it as the keyward error of its :class:`~keyward.providers.errors.
  ErrorFamily`. When Vault answers 403 it asks ``auth/token/lookup-self`` whether the token
  itself was rejected (expired or revoked); with AppRole it then logs in again once and
  retries the call.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from keyward.core.errors import ConfigError, Failure, KeywardError, ProviderFault
from keyward.providers.errors import STORE_ERRORS, ErrorFamily
from keyward.providers.settings import VaultSettings

log = logging.getLogger(__name__)
R = TypeVar("R")

NO_CREDENTIALS_HINT = "Set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole"
_CAPABILITY = {"read": "read", "list": "list", "write": "create/update"}


def _first_error(exc: BaseException) -> str:
    """hvac's first error string (Vault's own words), else the exception's first line."""
    from keyward.core.logging import scrub

    errors = getattr(exc, "errors", None)
    text = str(errors[0]) if errors else (str(exc).splitlines()[0] if str(exc) else "")
    return scrub(text.strip())[:200]


def _fault(
    failure: Failure,
    action: str,
    path: str,
    code: str,
    message: str,
    hint: str | None,
    *,
    detail: str = "",
    endpoint: str | None = None,
) -> ProviderFault:
    return ProviderFault("Vault", failure, action, path, code, message, hint, detail, endpoint)


def vault_fault(
    exc: BaseException,
    action: str,
    path: str,
    *,
    addr: str | None = None,
    token_valid: bool | None = None,
    namespace: str | None = None,
) -> ProviderFault | None:
    """Classify an hvac / requests exception raised by ``action`` on ``path``; ``None`` when
    ``exc`` is neither. ``token_valid=False`` says the token itself was rejected."""
    if "hvac.exceptions" not in sys.modules and "requests" not in sys.modules:
        return None
    import hvac.exceptions as hx
    import requests

    name = type(exc).__name__
    where = addr or "the configured address"
    if isinstance(exc, hx.Forbidden | hx.Unauthorized):
        if token_valid is False:
            return _fault(
                Failure.REJECTED,
                action,
                path,
                name,
                f"Vault rejected the token during {action} on {path}: it has expired or been "
                "revoked",
                "Renew or re-issue the token (VAULT_TOKEN) or use AppRole, then retry",
            )
        capability = _CAPABILITY.get(action.split()[0], "update")
        return _fault(
            Failure.DENIED,
            action,
            path,
            name,
            f"Vault denied {action} on {path}",
            f"Grant the {capability} capability on {path} in the token's policy",
            detail=_first_error(exc),
        )
    if isinstance(exc, hx.InvalidPath):
        # A 404 naming a missing namespace or route is a wrong setting, never "no secret here"
        # (that 404 has an empty error list, also for an empty KV folder).
        routed = _route_fault(_first_error(exc), name, action, path, where, namespace)
        if routed is not None:
            return routed
        return _fault(
            Failure.NOT_FOUND, action, path, name, f"{path} does not exist in Vault ({action})",
            None,
        )  # fmt: skip
    if isinstance(exc, hx.RateLimitExceeded):
        return _fault(
            Failure.THROTTLED,
            action,
            path,
            name,
            f"Vault kept throttling {action} on {path} ({name})",
            "Retry later, or raise the rate limit quota for keyward",
        )
    if isinstance(exc, hx.InvalidRequest | hx.PreconditionFailed):
        text = str(exc).lower()
        if "check-and-set" in text or "cas" in text.split():
            return _fault(
                Failure.CONFLICT,
                action,
                path,
                name,
                f"{path} changed while keyward wrote it (check-and-set mismatch during {action})",
                "Another writer won; look at the secret's versions before trying again",
            )
    elif isinstance(
        exc, hx.VaultDown | hx.InternalServerError | hx.BadGateway | hx.VaultNotInitialized
    ):
        return _fault(
            Failure.UNAVAILABLE,
            action,
            path,
            name,
            f"Vault at {where} is unavailable for {action} on {path} ({name})",
            "Check that the server is running and unsealed, then retry",
            endpoint=addr,
        )
    if isinstance(exc, requests.exceptions.RequestException):
        return _fault(
            Failure.UNAVAILABLE,
            action,
            path,
            name,
            f"Cannot reach Vault at {where} for {action} on {path} ({name})",
            "Check VAULT_ADDR and that the server is running, then retry",
            endpoint=addr,
        )
    if isinstance(exc, hx.VaultError):
        first = _first_error(exc) or name
        return _fault(
            Failure.FAILED, action, path, name, f"Vault {action} on {path} failed: {first}", None,
            detail=first,
        )  # fmt: skip
    return None


_ROUTE = re.compile(r'no handler for route "([^"]*)"')


def _route_fault(
    reason: str, code: str, action: str, path: str, where: str, namespace: str | None
) -> ProviderFault | None:
    """A 404 naming a missing namespace or mount: the settings are wrong (exit 2)."""
    if "namespace not found" in reason.lower():
        return _fault(
            Failure.MISCONFIGURED, action, path, code,
            f"Vault at {where} has no namespace {namespace or '(unnamed)'} ({action} on {path})",
            "Check VAULT_NAMESPACE (or namespace in [rotation.vault])",
        )  # fmt: skip
    route = _ROUTE.search(reason)
    if route is None:
        return None
    parts = route.group(1).strip("/").split("/")
    if parts[0] == "auth" and len(parts) > 1:
        mount = "/".join(parts[:2])
        if action == "log in with AppRole":
            return _fault(
                Failure.MISCONFIGURED, action, path, code,
                f"Vault at {where} has no AppRole auth method mounted at {mount}",
                f"Enable it ({'bao' if 'bao' in where else 'vault'} auth enable "
                f"-path={parts[1]} approle), or set approle_mount in [rotation.vault] to where "
                "it is mounted",
            )  # fmt: skip
        what = f"no auth method mounted at {mount}"
    else:
        mount = parts[0]
        what = f"no secrets engine mounted at {mount}/"
    return _fault(
        Failure.MISCONFIGURED, action, path, code,
        f"Vault at {where} has {what} ({action} on {path})",
        "Check the mount (keyward discover vault --mount, or mount in the secret's rotation "
        "settings) against `vault secrets list`",
    )  # fmt: skip


def translate_vault_error(
    exc: BaseException,
    action: str,
    path: str,
    family: ErrorFamily = STORE_ERRORS,
    *,
    addr: str | None = None,
    token_valid: bool | None = None,
) -> KeywardError | None:
    """The keyward error for a failed Vault call, or ``None`` when ``exc`` is not one."""
    fault = vault_fault(exc, action, path, addr=addr, token_valid=token_valid)
    return family.error(fault) if fault is not None else None


class VaultCaller:
    """Runs calls on one hvac client and raises keyward errors (see the module docstring).

    ``relogin`` logs the client in again (AppRole); ``None`` for a fixed token, which
    cannot be renewed."""

    def __init__(
        self,
        client: Any,
        *,
        relogin: Callable[[], None] | None = None,
        family: ErrorFamily = STORE_ERRORS,
    ) -> None:
        self.client = client
        self._relogin = relogin
        self._family = family

    @property
    def addr(self) -> str | None:
        url = getattr(self.client, "url", None)
        return url if isinstance(url, str) else None

    @property
    def namespace(self) -> str | None:
        ns = getattr(getattr(self.client, "adapter", None), "namespace", None)
        return ns if isinstance(ns, str) and ns else None

    def _token_valid(self) -> bool | None:
        """False when Vault says the token itself is invalid; None when it cannot tell."""
        try:
            self.client.auth.token.lookup_self()
        except Exception as exc:
            fault = vault_fault(exc, "look up the token", "auth/token/lookup-self")
            if fault is None:
                raise
            return False if fault.failure is Failure.DENIED else None
        return True

    def __call__(self, action: str, path: str, fn: Callable[..., R], /, *args: Any, **kw: Any) -> R:
        for attempt in (1, 2):
            try:
                return fn(*args, **kw)
            except Exception as exc:
                fault = vault_fault(exc, action, path, addr=self.addr, namespace=self.namespace)
                if fault is None:
                    raise
                if fault.failure is Failure.DENIED:
                    valid = self._token_valid()
                    if valid is False and self._relogin is not None and attempt == 1:
                        log.info("Vault token expired during %s; logging in again", action)
                        self._relogin()
                        continue
                    if valid is False:
                        fault = vault_fault(exc, action, path, addr=self.addr, token_valid=False)
                        assert fault is not None
                raise self._family.error(fault) from None
        raise AssertionError("unreachable")


class VaultClients:
    """Builds and caches one authenticated hvac client for one CLI run or daemon tick."""

    def __init__(self, settings: VaultSettings | None = None) -> None:
        self.settings = settings or VaultSettings()
        self._client: Any = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"VaultClients({self.settings!r})"

    def client(self) -> Any:
        """The authenticated ``hvac.Client`` (token, or AppRole login when a role id is set)."""
        with self._lock:
            if self._client is not None:
                return self._client
            s = self.settings
            if not s.addr:
                raise ConfigError(
                    "No Vault address is configured",
                    hint="Set VAULT_ADDR or addr in [rotation.vault] (keyward discover vault "
                    "also takes --addr)",
                )
            if s.role_id and not s.secret_id:
                raise ConfigError(
                    "AppRole role_id is set but VAULT_SECRET_ID is not",
                    hint="Export VAULT_SECRET_ID, or use VAULT_TOKEN instead",
                )
            if not s.role_id and not s.token:
                fault = _fault(
                    Failure.NO_CREDENTIALS,
                    "authenticate",
                    s.addr,
                    "NoCredentials",
                    "No Vault credentials are configured",
                    NO_CREDENTIALS_HINT,
                )
                raise STORE_ERRORS.error(fault)
            import hvac

            client = hvac.Client(
                url=s.addr, token=s.token, namespace=s.namespace, timeout=s.timeout, verify=s.verify
            )
            if s.role_id:
                self._login(client)
            self._client = client
            return client

    def _login(self, client: Any) -> None:
        s = self.settings
        action, path = "log in with AppRole", f"auth/{s.approle_mount}/login"
        try:
            client.auth.approle.login(
                role_id=s.role_id, secret_id=s.secret_id, mount_point=s.approle_mount
            )
        except Exception as exc:
            fault = vault_fault(exc, action, path, addr=s.addr, namespace=s.namespace)
            if fault is None:
                raise
            if fault.failure in (Failure.DENIED, Failure.FAILED):  # 403, or 400 for a bad id
                fault = _fault(
                    Failure.REJECTED,
                    action,
                    path,
                    fault.code,
                    f"Vault at {s.addr} refused the AppRole login on auth/{s.approle_mount} "
                    f"({_first_error(exc) or fault.code})",
                    "Check VAULT_ROLE_ID and VAULT_SECRET_ID",
                )
            raise STORE_ERRORS.error(fault) from None

    @property
    def can_relogin(self) -> bool:
        return bool(self.settings.role_id)

    def relogin(self) -> None:
        """Log the cached client in again with AppRole (a fresh token after expiry)."""
        if not self.can_relogin:
            raise ConfigError("A fixed Vault token cannot log in again; only AppRole can")
        with self._lock:
            if self._client is None:
                self.client()
            else:
                self._login(self._client)

    def reauth(self) -> Callable[[], None] | None:
        """:meth:`relogin` with AppRole; ``None`` for a fixed token."""
        return self.relogin if self.can_relogin else None

    def caller(self, family: ErrorFamily = STORE_ERRORS) -> VaultCaller:
        """The authenticated client behind the error boundary, re-login included."""
        return VaultCaller(self.client(), relogin=self.reauth(), family=family)
