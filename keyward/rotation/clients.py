"""Provider clients (boto3, hvac, psycopg) built from config and environment, on demand.

A :class:`Clients` is created by the CLI or the daemon and passed to every store, rotator and
dependent (through :class:`keyward.rotation.registry.PluginContext`). It imports boto3, hvac
and psycopg only when a client is first asked for, caches clients for its own lifetime, and
holds no global state.

Configuration (``keyward.toml``)::

    [rotation.aws]
    region = "eu-west-1"            # else AWS_REGION / AWS_DEFAULT_REGION
    endpoint_url = "http://..."     # else AWS_ENDPOINT_URL (botocore honours it)
    profile = "ops"                 # else AWS_PROFILE / the default chain

    [rotation.vault]
    addr = "https://vault:8200"     # else VAULT_ADDR
    namespace = "team-a"            # else VAULT_NAMESPACE
    # token: VAULT_TOKEN only (never in a file); or AppRole:
    role_id = "..."                 # else VAULT_ROLE_ID
    # secret_id: VAULT_SECRET_ID only
    approle_mount = "approle"

This module also translates provider exceptions into keyward errors: one sentence naming
the denied action and the resource, never a secret value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from keyward.core.config import Config
from keyward.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """Explicit credentials (used to prove a new IAM access key works)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AwsSettings:
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3


@dataclass(frozen=True, slots=True)
class VaultSettings:
    addr: str | None = None
    token: str | None = field(default=None, repr=False)
    namespace: str | None = None
    role_id: str | None = None
    secret_id: str | None = field(default=None, repr=False)
    approle_mount: str = "approle"
    timeout: float = 10.0
    verify: bool | str = True


def _table(config: Config, *path: str) -> Mapping[str, Any]:
    node: Any = config.table
    for part in path:
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"[{'.'.join(path)}] in {config.path} must be a table")
    return node


def aws_settings(config: Config, env: Mapping[str, str] | None = None) -> AwsSettings:
    env = os.environ if env is None else env
    t = _table(config, "rotation", "aws")
    return AwsSettings(
        region=t.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        endpoint_url=t.get("endpoint_url") or None,
        profile=t.get("profile") or None,
        connect_timeout=float(t.get("connect_timeout", 5.0)),
        read_timeout=float(t.get("read_timeout", 30.0)),
        max_attempts=int(t.get("max_attempts", 3)),
    )


def vault_settings(config: Config, env: Mapping[str, str] | None = None) -> VaultSettings:
    env = os.environ if env is None else env
    t = _table(config, "rotation", "vault")
    if "token" in t or "secret_id" in t:
        raise ConfigError(
            f"A Vault token or AppRole secret_id must not be written in {config.path}",
            hint="Set VAULT_TOKEN or VAULT_SECRET_ID in the environment instead",
        )
    verify: bool | str = t.get("verify", True)
    if env.get("VAULT_CACERT"):
        verify = env["VAULT_CACERT"]
    if env.get("VAULT_SKIP_VERIFY", "").lower() in {"1", "true"}:
        verify = False
    return VaultSettings(
        addr=t.get("addr") or env.get("VAULT_ADDR"),
        token=env.get("VAULT_TOKEN") or None,
        namespace=t.get("namespace") or env.get("VAULT_NAMESPACE") or None,
        role_id=t.get("role_id") or env.get("VAULT_ROLE_ID") or None,
        secret_id=env.get("VAULT_SECRET_ID") or None,
        approle_mount=str(t.get("approle_mount", "approle")),
        timeout=float(t.get("timeout", 10.0)),
        verify=verify,
    )


class Clients:
    """Builds and caches provider clients for one CLI run or one daemon tick."""

    def __init__(
        self,
        aws: AwsSettings | None = None,
        vault: VaultSettings | None = None,
    ) -> None:
        self.aws_settings = aws or AwsSettings()
        self.vault_settings = vault or VaultSettings()
        self._cache: dict[tuple[str, str | None], Any] = {}
        self._session: Any = None
        self._vault: Any = None

    @classmethod
    def from_config(cls, config: Config) -> Clients:
        return cls(aws_settings(config), vault_settings(config))

    def __repr__(self) -> str:
        return f"Clients(aws={self.aws_settings!r}, vault={self.vault_settings!r})"

    # ------------------------------------------------------------------ AWS
    def _botocore_config(self) -> Any:
        from botocore.config import Config as BotoConfig

        s = self.aws_settings
        return BotoConfig(
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            retries={"max_attempts": s.max_attempts, "mode": "standard"},
        )

    def aws(
        self, service: str, region: str | None = None, credentials: AwsCredentials | None = None
    ) -> Any:
        """A boto3 client. With ``credentials`` a fresh, uncached client using only those."""
        import boto3

        s = self.aws_settings
        region = region or s.region
        kwargs: dict[str, Any] = {"config": self._botocore_config()}
        if s.endpoint_url:
            kwargs["endpoint_url"] = s.endpoint_url
        if credentials is not None:
            session = boto3.session.Session(
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
                region_name=region,
            )
            return session.client(service, **kwargs)
        key = (service, region)
        if key not in self._cache:
            if self._session is None:
                self._session = boto3.session.Session(profile_name=s.profile)
            self._cache[key] = self._session.client(service, region_name=region, **kwargs)
        return self._cache[key]

    # ---------------------------------------------------------------- Vault
    def vault(self) -> Any:
        """An authenticated hvac client (token, or AppRole login when a role id is set)."""
        if self._vault is not None:
            return self._vault
        import hvac

        from keyward.core.errors import StoreAuthError

        s = self.vault_settings
        if not s.addr:
            raise ConfigError(
                "No Vault address is configured",
                hint="Set VAULT_ADDR or addr in [rotation.vault]",
            )
        client = hvac.Client(
            url=s.addr, token=s.token, namespace=s.namespace, timeout=s.timeout, verify=s.verify
        )
        if s.role_id:
            if not s.secret_id:
                raise ConfigError(
                    "AppRole role_id is set but VAULT_SECRET_ID is not",
                    hint="Export VAULT_SECRET_ID, or use VAULT_TOKEN instead",
                )
            self._approle_login(client)
        elif not s.token:
            raise StoreAuthError(
                "No Vault credentials are configured",
                hint="Set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole",
            )
        self._vault = client
        return client

    def _approle_login(self, client: Any) -> None:
        s = self.vault_settings
        try:
            client.auth.approle.login(
                role_id=s.role_id, secret_id=s.secret_id, mount_point=s.approle_mount
            )
        except Exception as exc:
            raise translate_vault_error(
                exc, "log in with AppRole", f"auth/{s.approle_mount}", ErrorFamily.STORE
            ) from None

    def vault_reauth(self) -> Callable[[], None] | None:
        """With AppRole, a callable that logs the cached client in again (a fresh token when
        the old one expired mid-rotation); ``None`` for a fixed token, which cannot renew."""
        if not self.vault_settings.role_id:
            return None

        def again() -> None:
            self._approle_login(self.vault())

        return again

    # ----------------------------------------------------------- PostgreSQL
    def postgres(self, conninfo: str, **overrides: Any) -> Any:
        """A new psycopg connection (autocommit); the caller closes it."""
        import psycopg

        return psycopg.connect(conninfo, **{"autocommit": True, "connect_timeout": 10, **overrides})


# ------------------------------------------------------------------ error translation
class ErrorFamily(Enum):
    STORE = "store"  # StoreAuthError / StoreNotFound / StoreConflict / StoreUnavailable
    PROVIDER = "provider"  # ProviderDenied / ProviderUnavailable / RotationError


class Category(Enum):
    AUTH = "auth"
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    OTHER = "other"


_AWS_AUTH = {
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
    "UnauthorizedOperation",
}
_AWS_NOT_FOUND = {"ResourceNotFoundException", "NoSuchEntity", "NoSuchEntityException"}
_AWS_CONFLICT = {
    "ResourceExistsException",
    "PreconditionFailedException",
    "ResourceConflictException",
    "ConcurrentModification",
    "LimitExceeded",
    "InvalidRequestException",
}
_AWS_UNAVAILABLE = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "InternalServiceError",
    "InternalFailure",
    "InternalServiceErrorException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceException",
}


def aws_category(exc: BaseException) -> tuple[Category, str]:
    """Classify a boto3/botocore exception: (category, provider code or class name)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        body = str(exc.response.get("Error", {}).get("Message", ""))
        m = re.search(r"<Code>(.*?)</Code>", body) if body.startswith("<") else None
        if m:
            code = m.group(1).strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _AWS_AUTH or status in (401, 403):
            return Category.AUTH, code
        if code in _AWS_NOT_FOUND or status == 404:
            return Category.NOT_FOUND, code
        if code in _AWS_CONFLICT or status in (409, 412):
            return Category.CONFLICT, code
        if code in _AWS_UNAVAILABLE or status >= 500 or status == 429:
            return Category.UNAVAILABLE, code
        return Category.OTHER, code
    if isinstance(exc, NoCredentialsError):
        return Category.AUTH, "NoCredentials"
    if isinstance(
        exc,
        EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError,
    ):
        return Category.UNAVAILABLE, type(exc).__name__
    return Category.OTHER, type(exc).__name__


def aws_message(exc: BaseException) -> str:
    """The provider's own error message (AWS messages carry no secret values)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        text = str(exc.response.get("Error", {}).get("Message", "")).strip()
        if text.startswith("<"):  # an XML error body in a JSON API (seen with moto)
            m = re.search(r"<Message>(.*?)</Message>", text, re.S)
            text = m.group(1).strip() if m else ""
        return text
    return ""


def translate_aws_error(
    exc: BaseException, action: str, resource: str, family: ErrorFamily
) -> Exception:
    """A keyward error for a failed AWS call ``action`` (e.g. ``iam:CreateAccessKey``)."""
    from keyward.core.errors import (
        StoreAuthError,
        StoreConflict,
        StoreError,
        StoreNotFound,
        StoreUnavailable,
    )
    from keyward.rotation.errors import ProviderDenied, ProviderUnavailable, RotatorConflict

    category, code = aws_category(exc)
    detail = aws_message(exc)
    suffix = f" ({code}: {detail})" if detail else f" ({code})"
    if category is Category.AUTH:
        msg = f"AWS denied {action} on {resource}{suffix}"
        hint = (
            "Check the credentials keyward runs with"
            if code in {"NoCredentials", "InvalidClientTokenId", "ExpiredToken"}
            else f"Allow {action} for this resource in the IAM policy keyward runs with"
        )
        cls: type[Exception] = StoreAuthError if family is ErrorFamily.STORE else ProviderDenied
        return cls(msg, hint=hint)  # type: ignore[call-arg]
    if category is Category.UNAVAILABLE:
        msg = f"AWS could not be reached for {action} on {resource}{suffix}"
        hint = "Check the network and the endpoint, then resume"
        ucls: type[Exception] = (
            StoreUnavailable if family is ErrorFamily.STORE else ProviderUnavailable
        )
        return ucls(msg, hint=hint)  # type: ignore[call-arg]
    if family is ErrorFamily.STORE:
        if category is Category.NOT_FOUND:
            return StoreNotFound(f"{resource} does not exist ({action}{suffix})")
        if category is Category.CONFLICT:
            return StoreConflict(f"{action} on {resource} was refused{suffix}")
        return StoreError(f"{action} on {resource} failed{suffix}")
    if category is Category.CONFLICT:
        return RotatorConflict(f"{action} on {resource} was refused{suffix}")
    from keyward.core.errors import BackendError

    return BackendError(f"{action} on {resource} failed{suffix}")


def vault_category(exc: BaseException) -> Category:
    import hvac.exceptions as hx
    import requests

    if isinstance(exc, hx.Forbidden | hx.Unauthorized):
        return Category.AUTH
    if isinstance(exc, hx.InvalidPath):
        return Category.NOT_FOUND
    if isinstance(exc, hx.InvalidRequest | hx.PreconditionFailed):
        text = str(exc).lower()
        if "check-and-set" in text or "cas" in text.split():
            return Category.CONFLICT
        return Category.OTHER
    if isinstance(
        exc,
        hx.VaultDown | hx.InternalServerError | hx.BadGateway | hx.RateLimitExceeded
        | hx.VaultNotInitialized | requests.exceptions.ConnectionError
        | requests.exceptions.Timeout,
    ):  # fmt: skip
        return Category.UNAVAILABLE
    return Category.OTHER


def translate_vault_error(
    exc: BaseException,
    action: str,
    path: str,
    family: ErrorFamily = ErrorFamily.STORE,
    *,
    token_valid: bool | None = None,
) -> Exception:
    """A keyward error for a failed Vault call. ``token_valid=False`` says the token itself
    was rejected (expired or revoked), which gets its own message."""
    from keyward.core.errors import (
        StoreAuthError,
        StoreConflict,
        StoreError,
        StoreNotFound,
        StoreUnavailable,
    )

    category = vault_category(exc)
    if category is Category.AUTH:
        if token_valid is False:
            return StoreAuthError(
                f"Vault rejected the token during {action} on {path}: it has expired or "
                "been revoked",
                hint="Renew or re-issue the token (VAULT_TOKEN) or use AppRole, then resume",
            )
        verb = action.split()[0]
        capability = {"read": "read", "list": "list", "write": "create/update"}.get(verb, "update")
        return StoreAuthError(
            f"Vault denied {action} on {path}",
            hint=f"Grant the {capability} capability on {path} in the token's policy",
        )
    if category is Category.NOT_FOUND:
        return StoreNotFound(f"{path} does not exist in Vault ({action})")
    if category is Category.CONFLICT:
        return StoreConflict(
            f"{path} changed while keyward wrote it (check-and-set mismatch during {action})",
            hint="Another writer won; look at the secret's versions, then resume or roll back",
        )
    if category is Category.UNAVAILABLE:
        return StoreUnavailable(
            f"Vault could not be reached for {action} on {path} ({type(exc).__name__})",
            hint="Check VAULT_ADDR and the network, then resume",
        )
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StoreError(f"Vault {action} on {path} failed: {first_line}")
