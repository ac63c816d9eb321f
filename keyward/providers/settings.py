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

Other AWS accounts (read by ``scan --aws-lambda``, ``discover aws-*``, ``rotate`` and
``daemon``), each reached by assuming a role with the credentials above::

    [aws.accounts.prod]                 # the name --account takes (the id works too)
    role_arn = "arn:aws:iam::111111111111:role/keyward"
    id = "111111111111"                 # optional: the role ARN's account
    external_id = "..."                 # optional: the role's sts:ExternalId condition
    regions = ["eu-west-1", "us-east-1"]  # optional: where to scan and discover
    session_name = "keyward"            # optional: the role session name (CloudTrail)

    [aws.accounts.main]                 # at most one entry without role_arn: keyward's own
    id = "123456789012"                 # account, named (and given regions) like the others

Settings say *where* and *as whom*; how patient a client is (timeouts, retries) is the
:class:`~keyward.providers.aws.ClientPreset` of its use, which a setting here overrides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from keyward.core.config import Config
from keyward.core.errors import ConfigError

RetryMode = Literal["standard", "adaptive", "legacy"]
RETRY_MODES: tuple[RetryMode, ...] = ("standard", "adaptive", "legacy")


@dataclass(frozen=True, slots=True)
class Account:
    """An AWS account keyward works in, and how it gets there.

    :data:`HOME` is the account of the credentials keyward runs with (its ``id`` unknown until
    asked). An account with a ``role_arn`` is reached by assuming that role
    (``sts:AssumeRole``, with ``external_id`` when the role's trust policy asks for one);
    every client is built for one account (``AwsClients.client(..., account=)``), and
    :class:`~keyward.providers.aws.AwsClients` refreshes the role's credentials before they
    expire. ``regions`` are where to scan and discover in it (empty: the command's)."""

    name: str = "home"
    id: str | None = None
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    regions: tuple[str, ...] = ()
    session_name: str = "keyward"

    @property
    def label(self) -> str:
        """How messages name it: ``prod (111111111111)``, ``111111111111`` or ``home``."""
        if self.id and self.id != self.name:
            return f"{self.name} ({self.id})"
        return self.name


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
    accounts: tuple[Account, ...] = ()  # [aws.accounts]: other accounts, by role


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
    """``[rotation.aws]``, then ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` for the region; the
    accounts of ``[aws.accounts]``."""
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
        accounts=aws_accounts(config),
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


# ---------------------------------------------------------------------- accounts
ACCOUNT_ID = re.compile(r"^\d{12}$")
ROLE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_ACCOUNT_KEYS = ("id", "role_arn", "external_id", "regions", "session_name")


_ARN_ACCOUNT = re.compile(r"^arn:aws(?:-[a-z]+)*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")


def account_in_arn(text: str | None) -> str | None:
    """The account id an ARN names (``arn:aws:lambda:eu-west-1:111111111111:function:f``),
    ``None`` for anything else (a name, a key id, a Vault path)."""
    found = _ARN_ACCOUNT.match(text) if text else None
    return found.group(1) if found else None


def _account(name: str, t: Any, where: str) -> Account:
    if not isinstance(t, Mapping):
        raise ConfigError(
            f"[{where}] must be a table",
            hint='Write it as [aws.accounts.NAME] with role_arn = "arn:aws:iam::ID:role/NAME"',
        )
    unknown = sorted(set(t) - set(_ACCOUNT_KEYS))
    if unknown:
        raise ConfigError(
            f"[{where}] has an unknown setting {unknown[0]!r}",
            hint=f"The settings of an account are {', '.join(_ACCOUNT_KEYS)}",
        )
    role = t.get("role_arn")
    role_account: str | None = None
    if role is not None:
        found = ROLE_ARN.match(role) if isinstance(role, str) else None
        if found is None:
            raise ConfigError(
                f"role_arn in [{where}] is not an IAM role ARN ({role!r})",
                hint="Use the ARN of the role keyward assumes: arn:aws:iam::111111111111:role/NAME",
            )
        role_account = found.group(1)
    account_id = t.get("id")
    if account_id is None:
        account_id = role_account or (name if ACCOUNT_ID.match(name) else None)
    if not isinstance(account_id, str | None) or (account_id and not ACCOUNT_ID.match(account_id)):
        raise ConfigError(
            f"id in [{where}] must be a 12-digit AWS account id in quotes, not {account_id!r}",
            hint='Write it as a string: id = "111111111111"',
        )
    if role_account is not None and account_id != role_account:
        raise ConfigError(
            f"[{where}] says id {account_id} but its role_arn is in account {role_account}",
            hint="Fix the id or the role ARN: the role must be in the account it names",
        )
    external = t.get("external_id")
    if external is not None and (not isinstance(external, str) or not _EXTERNAL_ID.match(external)):
        raise ConfigError(
            f"external_id in [{where}] must be 2 to 1224 letters, digits or +=,.@:/-",
            hint="Use the external id the role's trust policy names (sts:ExternalId)",
        )
    if external is not None and role is None:
        raise ConfigError(f"external_id in [{where}] needs a role_arn to assume")
    regions = t.get("regions", [])
    if isinstance(regions, str):
        regions = [regions]
    if not isinstance(regions, list) or not all(isinstance(r, str) and r for r in regions):
        raise ConfigError(
            f"regions in [{where}] must be a list of region names",
            hint='For example regions = ["eu-west-1", "us-east-1"]',
        )
    session = t.get("session_name", "keyward")
    if not isinstance(session, str) or not _SESSION_NAME.match(session):
        raise ConfigError(
            f"session_name in [{where}] must be 2 to 64 letters, digits or +=,.@-",
            hint="It names keyward's role sessions in CloudTrail; the default is keyward",
        )
    return Account(
        name=name,
        id=account_id,
        role_arn=role,
        external_id=external,
        regions=tuple(dict.fromkeys(regions)),
        session_name=session,
    )


def aws_accounts(config: Config) -> tuple[Account, ...]:
    """``[aws.accounts.NAME]`` tables, in the file's order (see the module docstring).

    Every mistake is a :class:`ConfigError` naming the table: an unknown setting, a malformed
    role ARN or account id, an id that is not the role's account, two entries for one account,
    more than one entry without a role (keyward's own account)."""
    table = _table(config, "aws", "accounts")
    accounts: list[Account] = []
    for name, entry in table.items():
        accounts.append(_account(str(name), entry, f"aws.accounts.{name}"))
    ids: dict[str, str] = {}
    for a in accounts:
        if a.id is not None and a.id in ids:
            raise ConfigError(
                f"[aws.accounts.{ids[a.id]}] and [aws.accounts.{a.name}] are the same account "
                f"({a.id})",
                hint="Keep one entry per account",
            )
        if a.id is not None:
            ids[a.id] = a.name
    own = [a.name for a in accounts if a.role_arn is None]
    if len(own) > 1:
        raise ConfigError(
            f"[aws.accounts.{own[0]}] and [aws.accounts.{own[1]}] both have no role_arn",
            hint="Only keyward's own account is reached without a role: give the others theirs",
        )
    return tuple(accounts)


def home_account(accounts: Sequence[Account]) -> Account:
    """keyward's own account: the configured entry without a role, else :data:`HOME`."""
    return next((a for a in accounts if a.role_arn is None), HOME)


def find_account(accounts: Sequence[Account], wanted: str) -> Account | None:
    """The configured account named ``wanted`` or with that id (``home``: keyward's own)."""
    for a in accounts:
        if wanted in (a.name, a.id):
            return a
    if wanted == HOME.name:
        return home_account(accounts)
    return None


def choose_accounts(
    accounts: Sequence[Account], wanted: Sequence[str] = (), *, every: bool = False
) -> tuple[Account, ...]:
    """The accounts a command works in: ``--account`` names or ids (repeatable), every
    configured account with ``--all-accounts``, else keyward's own."""
    if every and wanted:
        raise ConfigError("Give either --account or --all-accounts, not both")
    if every:
        if not accounts:
            raise ConfigError(
                "--all-accounts needs the accounts listed in the config file",
                hint="Add [aws.accounts.NAME] tables with role_arn (see docs/getting-started.md)",
            )
        return tuple(accounts)
    if not wanted:
        return (home_account(accounts),)
    chosen: list[Account] = []
    for w in wanted:
        found = find_account(accounts, w.strip())
        if found is None:
            known = ", ".join(a.name for a in accounts) or "none"
            raise ConfigError(
                f"No AWS account {w!r} in [aws.accounts] (configured: {known})",
                hint=f"Add [aws.accounts.{w if w.isidentifier() else 'NAME'}] with role_arn = "
                '"arn:aws:iam::ID:role/NAME", or use a configured name or id',
            )
        if found not in chosen:
            chosen.append(found)
    return tuple(chosen)
