"""Where keyward reaches AWS and Vault, and as whom: settings from config and environment.

Configuration (``keyward.toml``; read by ``keyward rotate``, ``daemon`` and ``discover``)::

    [rotation.aws]
    region = "eu-west-1"            # else AWS_REGION / AWS_DEFAULT_REGION
    endpoint_url = "http://..."     # else AWS_ENDPOINT_URL (botocore honours it)
    profile = "ops"                 # else AWS_PROFILE / the default chain
    connect_timeout = 5             # seconds; default: the preset's
    read_timeout = 30               # seconds; default: the preset's
    max_attempts = 3                # retries after the first attempt; default: the preset's
    retry_mode = "standard"         # standard | adaptive | legacy; default: the preset's

    [rotation.vault]
    addr = "https://vault:8200"     # else VAULT_ADDR
    namespace = "team-a"            # else VAULT_NAMESPACE
    # token: VAULT_TOKEN only (never in a file); or AppRole:
    role_id = "..."                 # else VAULT_ROLE_ID
    # secret_id: VAULT_SECRET_ID only
    approle_mount = "approle"
    timeout = 10
    verify = true                   # or a CA bundle path; VAULT_CACERT, VAULT_SKIP_VERIFY

Settings say *where* and *as whom*; how patient a client is (timeouts, retries) is the
:class:`~keyward.providers.aws.ClientPreset` of its use, which a setting here overrides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from keyward.core.config import Config
from keyward.core.errors import ConfigError

RetryMode = Literal["standard", "adaptive", "legacy"]
RETRY_MODES: tuple[RetryMode, ...] = ("standard", "adaptive", "legacy")


@dataclass(frozen=True, slots=True)
class Account:
    """An AWS account keyward works in, and how it gets there.

    :data:`HOME` is the account of the credentials keyward runs with. An account with a
    ``role_arn`` is reached by assuming that role (``sts:AssumeRole``); every client is built
    for one account (``AwsClients.client(..., account=)``), so adding accounts changes no
    caller. Assuming roles is not implemented yet: such an account is refused with a
    :class:`ConfigError` by :meth:`keyward.providers.aws.AwsClients.client`."""

    name: str = "home"
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    session_name: str = "keyward"


HOME = Account()


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """Explicit credentials (a new IAM access key to test, a found key pair to verify)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """Where AWS is and as whom; ``None`` timeouts and retries mean the preset's."""

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    max_attempts: int | None = None  # retries after the first attempt (botocore's meaning)
    retry_mode: RetryMode | None = None


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
    return cast(Mapping[str, Any], node)


def _number(t: Mapping[str, Any], key: str, where: str) -> float | None:
    value = t.get(key)
    if value is None:
        return None
    try:
        seconds = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(f"{key} in [{where}] must be a positive number of seconds")
    return seconds


def _retries(t: Mapping[str, Any], where: str) -> int | None:
    value = t.get("max_attempts")
    if value is None:
        return None
    try:
        retries = int(value) if not isinstance(value, bool | float) else -1
    except (TypeError, ValueError):
        retries = -1
    if retries < 0:
        raise ConfigError(f"max_attempts in [{where}] must be a whole number of retries (>= 0)")
    return retries


def aws_settings(config: Config, env: Mapping[str, str] | None = None) -> AwsSettings:
    """``[rotation.aws]``, then ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` for the region."""
    env = os.environ if env is None else env
    where = "rotation.aws"
    t = _table(config, "rotation", "aws")
    mode = t.get("retry_mode")
    if mode is not None and mode not in RETRY_MODES:
        raise ConfigError(
            f"retry_mode in [{where}] must be one of {', '.join(RETRY_MODES)}, not {mode!r}"
        )
    return AwsSettings(
        region=t.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        endpoint_url=t.get("endpoint_url") or None,
        profile=t.get("profile") or None,
        connect_timeout=_number(t, "connect_timeout", where),
        read_timeout=_number(t, "read_timeout", where),
        max_attempts=_retries(t, where),
        retry_mode=cast(RetryMode | None, mode),
    )


def vault_settings(config: Config, env: Mapping[str, str] | None = None) -> VaultSettings:
    """``[rotation.vault]``, then ``VAULT_*``; secrets (token, secret id) only from the
    environment."""
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
        timeout=_number(t, "timeout", "rotation.vault") or 10.0,
        verify=verify,
    )
