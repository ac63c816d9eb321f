"""Read Lambda functions' environments for dependents discovery (``keyward discover
aws-lambda``, ``scan --aws-lambda --record``): read-only calls, no value kept.

For one account and region, :func:`read_functions` lists every function (``ListFunctions``
paginator), its aliases (``ListAliases``; an alias bound to a published version is read with
``GetFunctionConfiguration`` and that qualifier) and its tags (``ListTags``: the environment
tag). Each environment variable is kept as an :class:`ObservedVariable`: its name, the keyed
fingerprint of its value (matched against ``secret_fields``) and, when the value has the shape
of a store reference, the parsed :class:`Reference` (a Secrets Manager ARN or name,
``{{resolve:secretsmanager:...}}``, an SSM parameter, a Vault path). The value itself is
dropped as soon as it is read.

Clients come from :mod:`keyward.providers`; calls go through the same boundary as the other
discoveries (:func:`keyward.inventory.discovery.aws._call`): a denied listing is a warning and
leaves that region unlisted (nothing there may be marked missing); a denied alias or tag read
leaves that function partly read (its dependents are not marked missing either).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from keyward.inventory.discovery import Scan
from keyward.inventory.discovery.aws import _call
from keyward.providers.settings import account_in_arn

STORE = "aws-lambda"  # the dependents' kind, and the name of this discovery
VERSION_VARIABLE = "KEYWARD_SECRET_VERSION"  # rotation's own marker in reference mode
ENVIRONMENT_TAGS = ("environment", "env", "stage")  # tag keys, case-insensitive, in order

Fingerprint = Callable[[str], str]


class RefKind(StrEnum):
    """What a variable's value names."""

    SM_ARN = "secretsmanager-arn"
    SM_NAME = "secretsmanager-name"
    SSM_NAME = "ssm-parameter"
    VAULT = "vault-path"


@dataclass(frozen=True, slots=True)
class Reference:
    """A store reference held in a variable: ``key`` is normalised (a Secrets Manager ARN as
    written, a name, an SSM parameter name with its leading ``/``, a Vault ``mount/path``
    without ``data/``); ``field`` the JSON key or Vault field it names, if any."""

    kind: RefKind
    key: str = field(repr=False)  # (a plain name may be any value: never shown)
    field: str | None = None


@dataclass(frozen=True, slots=True)
class ObservedVariable:
    name: str
    fingerprint: str
    references: tuple[Reference, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class ObservedFunction:
    """A function as discovery saw it: its ``$LATEST`` environment and, per alias bound to a
    published version, that version's. ``complete`` is False when part of it could not be
    read (aliases or tags denied)."""

    arn: str
    name: str
    region: str
    account: str | None
    environment: str | None = None  # the Environment / env / stage tag, lowercased
    variables: tuple[ObservedVariable, ...] = ()
    aliases: Mapping[str, tuple[ObservedVariable, ...]] = field(default_factory=dict)
    complete: bool = True


@dataclass(slots=True)
class FunctionListing:
    """The functions of one account and region. ``listed`` is False when the listing itself
    failed (a warning says why): nothing of that region may be marked missing. ``home``: the
    account of keyward's own credentials (dependents typed without an account belong here)."""

    region: str
    account: str | None
    home: bool = True
    functions: list[ObservedFunction] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    listed: bool = True


# ------------------------------------------------------------------- references
_NAME = re.compile(r"^[A-Za-z0-9/_+=.@!-]{1,512}$")
_SM_ARN = re.compile(r"^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^:]+)(?::(.*))?$")
_SSM_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:([a-z0-9-]+):(\d{12}):parameter(/?[^:]+)$")
_RESOLVE = re.compile(r"^\{\{resolve:(secretsmanager|ssm|ssm-secure):(.+)\}\}$")
_SSM_VERSION = re.compile(r":\d+$")


def vault_key(path: str) -> str | None:
    """``mount/path`` of a Vault KV v2 path as written in a variable or a reference
    (``secret/data/app/db``, ``/v1/secret/data/app/db``, ``secret/app/db``)."""
    parts = [p for p in path.strip().strip("/").split("/") if p]
    if parts[:1] == ["v1"]:
        parts = parts[1:]
    if len(parts) >= 3 and parts[1] in ("data", "metadata"):
        parts = [parts[0], *parts[2:]]
    return "/".join(parts) if len(parts) >= 2 else None


def ssm_name(text: str) -> str:
    """An SSM parameter's name with a leading ``/`` (names are compared that way)."""
    return "/" + text.strip().lstrip("/")


def _sm_field(rest: str | None) -> str | None:
    """The JSON key of ``SecretString:KEY:...`` (or of ``:KEY`` after an ARN)."""
    if not rest:
        return None
    parts = rest.split(":")
    if parts[0] == "SecretString":
        parts = parts[1:]
    return parts[0] or None if parts else None


def parse_references(value: str) -> tuple[Reference, ...]:
    """The store references ``value`` may be (none for anything not shaped like one)."""
    text = value.strip()
    if not text or len(text) > 2048 or any(c.isspace() for c in text):
        return ()
    resolved = _RESOLVE.match(text)
    if resolved:
        service, inner = resolved.groups()
        if service == "secretsmanager":
            arn = _SM_ARN.match(inner)
            if arn:
                return (Reference(RefKind.SM_ARN, arn.group(1), _sm_field(arn.group(2))),)
            secret_id, _, rest = inner.partition(":")
            return (Reference(RefKind.SM_NAME, secret_id, _sm_field(rest)),)
        return (Reference(RefKind.SSM_NAME, ssm_name(_SSM_VERSION.sub("", inner))),)
    arn = _SM_ARN.match(text)
    if arn:
        return (Reference(RefKind.SM_ARN, arn.group(1), _sm_field(arn.group(2))),)
    ssm = _SSM_ARN.match(text)
    if ssm:
        return (Reference(RefKind.SSM_NAME, ssm_name(ssm.group(3))),)
    if text.startswith("arn:"):
        return ()
    for scheme in ("vault://", "vault:"):
        if text.startswith(scheme):
            path, _, fld = text[len(scheme) :].partition("#")
            key = vault_key(path)
            return (Reference(RefKind.VAULT, key, fld or None),) if key else ()
    if not _NAME.match(text.partition("#")[0]):
        return ()
    out: list[Reference] = []
    path, _, fld = text.partition("#")
    if text.startswith("/"):
        out.append(Reference(RefKind.SSM_NAME, ssm_name(text)))
    else:
        out.append(Reference(RefKind.SM_NAME, text))
    key = vault_key(path) if "/" in path and not text.startswith("/") else None
    if text.startswith("/v1/"):
        key = vault_key(path)
    if key:
        out.append(Reference(RefKind.VAULT, key, fld or None))
    return tuple(out)


def observe(env: Mapping[str, Any], fingerprint: Fingerprint) -> tuple[ObservedVariable, ...]:
    """Each variable of an environment as a fingerprint and the references it may be."""
    out: list[ObservedVariable] = []
    for name, value in sorted(env.items()):
        if not isinstance(value, str) or not value or name == VERSION_VARIABLE:
            continue
        out.append(ObservedVariable(str(name), fingerprint(value), parse_references(value)))
    return tuple(out)


def environment_of(tags: Mapping[str, str]) -> str | None:
    lowered = {str(k).lower(): str(v) for k, v in tags.items()}
    for key in ENVIRONMENT_TAGS:
        value = lowered.get(key)
        if value:
            return value.strip().lower()
    return None


# ---------------------------------------------------------------------- reading
def _variables(config: Mapping[str, Any]) -> dict[str, Any]:
    return dict((config.get("Environment") or {}).get("Variables") or {})


DEFAULT_WORKERS = 8  # functions read at once (their tags, aliases and alias versions)


def read_functions(
    client: Any,
    region: str,
    fingerprint: Fingerprint,
    *,
    account: str | None = None,
    home: bool = True,
    label: str | None = None,
    workers: int = DEFAULT_WORKERS,
) -> FunctionListing:
    """Every function of one region (of one account: ``account`` its id when known, else the
    one the ARNs name), with its aliases' environments and its environment tag; ``workers``
    functions are read at once (boto3 clients are thread-safe), in the listing's order."""
    where = f"{region} of account {label}" if label else region
    listing = FunctionListing(region, account, home)
    scan = Scan(STORE)  # collects the boundary's warnings
    service = f"Lambda ({where})"

    def list_all() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in client.get_paginator("list_functions").paginate():
            out.extend(page.get("Functions", []))
        return out

    configs = _call(scan, "ListFunctions", list_all, service, client)
    if configs is None:
        listing.listed = False
        listing.warnings.extend(scan.warnings or [f"{service}: nothing listed"])
        return listing
    listing.account = listing.account or next(
        (account_in_arn(str(c.get("FunctionArn", ""))) for c in configs), None
    )

    def read(conf: Mapping[str, Any]) -> tuple[ObservedFunction, list[str]]:
        return _read_function(client, conf, region, fingerprint, service, listing.account)

    if workers > 1 and len(configs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        size = min(workers, len(configs))
        with ThreadPoolExecutor(max_workers=size, thread_name_prefix="keyward-deps") as pool:
            done = list(pool.map(read, configs))
    else:
        done = [read(conf) for conf in configs]
    for function, warnings in done:
        listing.functions.append(function)
        listing.warnings.extend(warnings)
    return listing


def _read_function(
    client: Any,
    conf: Mapping[str, Any],
    region: str,
    fingerprint: Fingerprint,
    service: str,
    account: str | None,
) -> tuple[ObservedFunction, list[str]]:
    """One listed function: its variables, tags and aliases' variables, and the warnings of
    what could not be read (then it is not ``complete``)."""
    scan = Scan(STORE)
    arn = str(conf.get("FunctionArn", ""))
    name = str(conf.get("FunctionName", ""))
    env = conf.get("Environment") or {}
    if env.get("Error"):
        scan.warn(f"environment of {arn} could not be read; check kms:Decrypt on its key")
    variables = observe(_variables(conf), fingerprint)
    tags = _call(scan, f"ListTags on {name}", partial(client.list_tags, Resource=arn),
                 service, client)  # fmt: skip
    aliases: dict[str, tuple[ObservedVariable, ...]] = {}
    # by name: the client is the function's region and account (and moto reads no ARN)
    listed_aliases = _call(scan, f"ListAliases on {name}", partial(_aliases, client, name),
                           service, client)  # fmt: skip
    for alias in listed_aliases or []:
        if alias.get("FunctionVersion") in (None, "$LATEST"):
            continue
        alias_name = str(alias["Name"])
        got = _call(
            scan,
            f"GetFunctionConfiguration on {name}:{alias_name}",
            partial(client.get_function_configuration, FunctionName=name, Qualifier=alias_name),
            service,
            client,
        )
        if got is not None:
            aliases[alias_name] = observe(_variables(got), fingerprint)
    function = ObservedFunction(
        arn=arn,
        name=name,
        region=region,
        account=account_in_arn(arn) or account,
        environment=environment_of((tags or {}).get("Tags") or {}),
        variables=variables,
        aliases=aliases,
        complete=not scan.warnings,
    )
    return function, scan.warnings


def _aliases(client: Any, function: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in client.get_paginator("list_aliases").paginate(FunctionName=function):
        out.extend(page.get("Aliases", []))
    return out
