"""``keyward discover``: import secrets that already exist in AWS and Vault."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from keyward.cli.app import EPILOG, get_state
from keyward.cli.common import format_option
from keyward.cli.db import database_option, open_db
from keyward.core.errors import ConfigError, ExitCode
from keyward.core.text import plural
from keyward.providers.aws import AwsService

if TYPE_CHECKING:
    from keyward.inventory.dependents import DependentsResult
    from keyward.inventory.discovery import DiscoveryResult, Scan, TagKeys
    from keyward.inventory.discovery.aws_lambda import FunctionListing
    from keyward.providers import Account, AwsClients

F = TypeVar("F", bound=Callable[..., Any])

DISCOVER_EPILOG = (
    """\b
Examples:
  keyward discover aws-secretsmanager --region eu-west-1 --region us-east-1
  keyward discover aws-ssm --path /prod --region eu-west-1
  keyward discover aws-iam --owner-tag owner --owner-tag CostCenter
  keyward discover vault --mount secret --path apps/
  VAULT_ROLE_ID=... VAULT_SECRET_ID=... keyward discover vault --format json
  keyward discover aws-secretsmanager --fingerprint-values   (link leaks to these secrets)
  keyward discover aws-ssm --all-accounts       (every account in [aws.accounts], by role)
  keyward discover aws-iam --account prod --account 222222222222
  keyward discover aws-lambda --region eu-west-1 --region us-east-1
                                  (functions holding inventoried secrets: dependents)

\b
Running a discovery again updates what it imported (it never duplicates).
Denied calls, and accounts whose role cannot be assumed, are skipped with a
warning and the rest is imported in one transaction; exit 3 when nothing at all
could be read.
Settings: [inventory.discovery] owner_tags, team_tags, contact_tags (lists).

"""
    + EPILOG
)


def _common(fn: F) -> F:
    options = [
        click.option(
            "--owner-tag",
            "owner_tags",
            multiple=True,
            metavar="KEY",
            help="Tag / custom_metadata key naming the owner (repeatable; default: owner).",
        ),
        click.option(
            "--team-tag",
            "team_tags",
            multiple=True,
            metavar="KEY",
            help="Tag / custom_metadata key naming the team (repeatable; default: team).",
        ),
        click.option(
            "--contact-tag",
            "contact_tags",
            multiple=True,
            metavar="KEY",
            help="Tag / custom_metadata key naming a contact (repeatable; default: contact).",
        ),
        click.option(
            "--fingerprint-values",
            is_flag=True,
            help="Also read each current value to record its keyed fingerprints (so leaked "
            "copies link to the secret); values are never stored.",
        ),
        database_option,
        format_option("text", "json"),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _tag_keys(owner: tuple[str, ...], team: tuple[str, ...], contact: tuple[str, ...]) -> TagKeys:
    from keyward.inventory.discovery import TagKeys

    section = get_state().config.section("inventory").get("discovery", {})
    if not isinstance(section, dict):
        raise ConfigError("[inventory.discovery] must be a table")

    def keys(cli: tuple[str, ...], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        if cli:
            return cli
        value = section.get(name)
        if value is None:
            return default
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"[inventory.discovery] {name} must be a list of tag keys")

    base = TagKeys()
    return TagKeys(
        owner=keys(owner, "owner_tags", base.owner),
        team=keys(team, "team_tags", base.team),
        contact=keys(contact, "contact_tags", base.contact),
    )


def _fingerprinter() -> Callable[[str], str]:
    from keyward.cli.common import fingerprint_key
    from keyward.core.redaction import Fingerprinter

    return Fingerprinter(fingerprint_key(get_state().config)).fingerprint


def _import(scans: list[Scan], database_url: str | None, fmt: str) -> None:
    from keyward.inventory.discovery import import_discovered
    from keyward.inventory.posture import refresh_for

    db = open_db(database_url)
    try:
        from keyward.inventory.leaks import LeakPolicy
        from keyward.rotation.wiring import rotatable_plugins

        policy = LeakPolicy(None, *rotatable_plugins())
        results = [import_discovered(db, scan, leak_policy=policy) for scan in scans]
        refresh_for(db, get_state().config)  # the posture follows what was found
    finally:
        db.close()
    _render(results, fmt)
    warnings = [w for r in results for w in r.warnings]
    read_anything = any(s.items for s in scans)
    if warnings and not read_anything:
        click.get_current_context().exit(int(ExitCode.BACKEND))


def _render(results: list[DiscoveryResult], fmt: str) -> None:
    for r in results:
        for w in r.warnings:
            click.echo(f"keyward: warning: {w}", err=True)
    if fmt == "json":
        doc = [r.to_dict() for r in results]
        click.echo(json.dumps(doc[0] if len(doc) == 1 else doc, indent=2))
        return
    for r in results:
        click.echo(
            f"{r.store}: {r.added} added, {r.updated} updated, {r.unchanged} unchanged, "
            f"{r.missing} missing"
            + (f", {plural(len(r.warnings), 'warning')}" if r.warnings else "")
        )


def _aws_clients() -> AwsClients:
    """boto3 clients with rotation's settings (``[rotation.aws]`` endpoint, profile and
    overrides, else the environment), so discovery and rotation talk to the same AWS; with
    the scan preset's timeouts and retries, since discovery only reads. One factory per
    command: each account's role is assumed once."""
    from keyward.providers import SCAN, Providers

    return Providers.from_config(get_state().config, preset=SCAN).aws


def _accounts(names: tuple[str, ...], every: bool) -> tuple[Account, ...]:
    from keyward.providers import aws_accounts, choose_accounts

    return choose_accounts(aws_accounts(get_state().config), names, every=every)


def _account_options(fn: F) -> F:
    options = [
        click.option(
            "--account",
            "account_names",
            multiple=True,
            metavar="NAME|ID",
            help="An account of [aws.accounts] (its role is assumed; repeatable; default: "
            "keyward's own account).",
        ),
        click.option("--all-accounts", is_flag=True, help="Every account of [aws.accounts]."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _per_account(
    store: str,
    accounts: tuple[Account, ...],
    regions: tuple[str, ...] | None,
    read: Callable[[AwsClients, Account, str | None, str | None, str], Scan],
) -> list[Scan]:
    """Run ``read(clients, account, account id, name for new secrets, region)`` for each
    account and region (``regions`` None: a global service, one call per account). An account
    whose role cannot be assumed is one warning (a Scan with no items) and the others go on."""
    from keyward.core.errors import KeywardError
    from keyward.inventory.discovery import Scan
    from keyward.providers.errors import skip_reason

    clients = _aws_clients()
    scans: list[Scan] = []
    for account in accounts:
        name = account.name if account.role_arn is not None else None
        wanted = (
            (regions or account.regions or tuple(_regions(()))) if regions is not None else ("",)
        )
        try:
            clients.session(account)  # assume its role now: a refusal is about the account
        except KeywardError as err:
            if err.fault is None or err.fault.action != "sts:AssumeRole":
                raise
            skipped = Scan(store, complete=False, account=account.id)
            skipped.warn(
                f"account {account.label} skipped: cannot assume its role {account.role_arn}: "
                f"{skip_reason(err.fault)}"
            )
            scans.append(skipped)
            continue
        account_id = clients.account_id(account)
        scans.extend(read(clients, account, account_id, name, region) for region in wanted)
    return scans


@click.group(epilog=DISCOVER_EPILOG)
def discover() -> None:
    """Import what already exists: Secrets Manager, SSM Parameter Store, IAM access keys,
    Vault KV v2; and the Lambda functions that depend on them."""


@discover.command("aws-secretsmanager", epilog=DISCOVER_EPILOG)
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="Region (repeatable; default: the account's regions, else AWS_REGION / "
    "AWS_DEFAULT_REGION).",
)
@_account_options
@_common
def aws_secretsmanager(
    regions: tuple[str, ...],
    account_names: tuple[str, ...],
    all_accounts: bool,
    owner_tags: tuple[str, ...],
    team_tags: tuple[str, ...],
    contact_tags: tuple[str, ...],
    fingerprint_values: bool,
    database_url: str | None,
    fmt: str,
) -> None:
    """Secrets Manager secrets: tags -> owner/team, last rotated/changed -> age, rotation
    settings -> policy, version ids and stages. Honours AWS_ENDPOINT_URL."""
    from keyward.inventory.discovery.aws import SM_STORE, discover_secretsmanager

    accounts = _accounts(account_names, all_accounts)
    keys = _tag_keys(owner_tags, team_tags, contact_tags)
    fp = _fingerprinter() if fingerprint_values else None

    def read(
        clients: AwsClients, account: Account, aid: str | None, name: str | None, region: str
    ) -> Scan:
        return discover_secretsmanager(
            clients.client(AwsService.SECRETS_MANAGER, region, account=account),
            region,
            tag_keys=keys,
            fingerprint=fp,
            account=aid,
            account_name=name,
        )

    _import(_per_account(SM_STORE, accounts, regions, read), database_url, fmt)


@discover.command("aws-ssm", epilog=DISCOVER_EPILOG)
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="Region (repeatable; default: the account's regions, else AWS_REGION / "
    "AWS_DEFAULT_REGION).",
)
@click.option(
    "--path",
    default="/",
    show_default=True,
    help="Only parameters under this path (recursive).",
)
@_account_options
@_common
def aws_ssm(
    regions: tuple[str, ...],
    path: str,
    account_names: tuple[str, ...],
    all_accounts: bool,
    owner_tags: tuple[str, ...],
    team_tags: tuple[str, ...],
    contact_tags: tuple[str, ...],
    fingerprint_values: bool,
    database_url: str | None,
    fmt: str,
) -> None:
    """SSM Parameter Store SecureString parameters: tags -> owner/team, last modified ->
    last rotation, versions and labels. keyward's staging area is skipped. Honours
    AWS_ENDPOINT_URL."""
    from keyward.inventory.discovery.aws import SSM_STORE, discover_ssm

    accounts = _accounts(account_names, all_accounts)
    keys = _tag_keys(owner_tags, team_tags, contact_tags)
    fp = _fingerprinter() if fingerprint_values else None

    def read(
        clients: AwsClients, account: Account, aid: str | None, name: str | None, region: str
    ) -> Scan:
        return discover_ssm(
            clients.client(AwsService.SSM, region, account=account),
            region,
            path=path,
            tag_keys=keys,
            fingerprint=fp,
            account=aid,
            account_name=name,
        )

    _import(_per_account(SSM_STORE, accounts, regions, read), database_url, fmt)


def _regions(regions: tuple[str, ...]) -> list[str]:
    chosen = list(regions) or [
        r for r in (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),) if r
    ]
    if not chosen:
        raise ConfigError("No AWS region given", hint="Pass --region or set AWS_DEFAULT_REGION")
    return chosen


@discover.command("aws-iam", epilog=DISCOVER_EPILOG)
@_account_options
@_common
def aws_iam(
    account_names: tuple[str, ...],
    all_accounts: bool,
    owner_tags: tuple[str, ...],
    team_tags: tuple[str, ...],
    contact_tags: tuple[str, ...],
    fingerprint_values: bool,
    database_url: str | None,
    fmt: str,
) -> None:
    """IAM users' access keys: key id, created, last used, status; owner from user tags.

    Key ids are also fingerprinted so that a key id found by `scan --record` links here.
    """
    from keyward.inventory.discovery.aws import IAM_STORE, discover_iam

    accounts = _accounts(account_names, all_accounts)
    keys = _tag_keys(owner_tags, team_tags, contact_tags)
    fp = _fingerprinter()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    def read(
        clients: AwsClients, account: Account, aid: str | None, name: str | None, _r: str
    ) -> Scan:
        return discover_iam(
            clients.client(AwsService.IAM, region, account=account),
            tag_keys=keys,
            fingerprint=fp,
            account=aid,
            account_name=name,
        )

    _import(_per_account(IAM_STORE, accounts, None, read), database_url, fmt)


@discover.command("vault", epilog=DISCOVER_EPILOG)
@click.option("--addr", help="Vault / OpenBao address (default VAULT_ADDR).")
@click.option("--mount", default="secret", show_default=True, help="KV v2 mount.")
@click.option("--path", "prefix", default="", help="Only secrets under this path.")
@_common
def vault(
    addr: str | None,
    mount: str,
    prefix: str,
    owner_tags: tuple[str, ...],
    team_tags: tuple[str, ...],
    contact_tags: tuple[str, ...],
    fingerprint_values: bool,
    database_url: str | None,
    fmt: str,
) -> None:
    """Vault / OpenBao KV v2 secrets from metadata: created and updated times, versions,
    custom_metadata owner. Auth: VAULT_TOKEN, or VAULT_ROLE_ID + VAULT_SECRET_ID (AppRole)."""
    from dataclasses import replace

    from keyward.inventory.discovery.vault import discover_vault
    from keyward.providers import VaultClients, vault_settings

    keys = _tag_keys(owner_tags, team_tags, contact_tags)
    settings = vault_settings(get_state().config)
    vault_ = VaultClients(replace(settings, addr=addr) if addr else settings).caller()
    fp = _fingerprinter() if fingerprint_values else None
    scan = discover_vault(vault_, mount=mount, prefix=prefix, tag_keys=keys, fingerprint=fp)
    _import([scan], database_url, fmt)


# ------------------------------------------------------------------ dependents
def lambda_listings(
    accounts: tuple[Account, ...],
    regions: tuple[str, ...],
    *,
    all_regions: bool = False,
    profile: str | None = None,
) -> list[FunctionListing]:
    """Every function of each account and region, read for dependents discovery (values
    fingerprinted and dropped). Regions: ``regions``, else all enabled ones (``all_regions``),
    else the account's, else the default region. An account whose role cannot be assumed is
    one warning and the others go on."""
    from keyward.core.errors import KeywardError
    from keyward.inventory.discovery.aws_lambda import FunctionListing, read_functions
    from keyward.providers.errors import skip_reason

    clients = _aws_clients()
    fp = _fingerprinter()
    listings: list[FunctionListing] = []
    for account in accounts or (_home(),):
        label = account.label if account.role_arn is not None else None
        try:
            clients.session(account)  # assume its role now: a refusal is about the account
        except KeywardError as err:
            if err.fault is None or err.fault.action != "sts:AssumeRole":
                raise
            skipped = FunctionListing("", account.id, home=False, listed=False)
            skipped.warnings.append(
                f"account {account.label} skipped: cannot assume its role {account.role_arn}: "
                f"{skip_reason(err.fault)}"
            )
            listings.append(skipped)
            continue
        account_id = clients.account_id(account)
        if regions:
            wanted = list(dict.fromkeys(regions))
        elif all_regions:
            from keyward.scan.sources.aws_lambda import LambdaOptions, LambdaSource

            wanted = LambdaSource(LambdaOptions(all_regions=True, profile=profile)).regions(account)
        else:
            wanted = list(account.regions) or _regions(())
        for region in wanted:
            client = clients.client(AwsService.LAMBDA, region, account=account)
            listings.append(
                read_functions(
                    client,
                    region,
                    fp,
                    account=account_id,
                    home=account.role_arn is None,
                    label=label,
                )
            )
    return listings


def _home() -> Account:
    from keyward.providers.settings import HOME

    return HOME


def record_lambda_dependents(
    listings: list[FunctionListing], database_url: str | None
) -> DependentsResult:
    from keyward.inventory.dependents import record_dependents
    from keyward.inventory.posture import refresh_for

    db = open_db(database_url)
    try:
        result = record_dependents(db, listings)
        refresh_for(db, get_state().config)  # cross-environment and reuse follow dependents
        return result
    finally:
        db.close()


def _change_line(c: Any) -> str:
    how = c.mode + (f", field {c.field}" if c.field else "")
    extra = "".join(
        f", {k} {v}" for k, v in (("alias", c.alias), ("environment", c.environment)) if v
    )
    origin = "" if c.origin == "discovered" else f" [{c.origin}]"
    return f"{c.secret} <- {c.target} ${c.variable or '-'} ({how}{extra}){origin}"


def render_dependents(result: DependentsResult, fmt: str, *, err: bool = False) -> None:
    """The added, kept and missing dependents of one run (``err``: all of it on stderr)."""
    for w in result.warnings:
        click.echo(f"keyward: warning: {w}", err=True)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2), err=err)
        return
    regions = plural(len(result.regions), "region")
    click.echo(
        f"aws-lambda: {plural(result.functions, 'function')} in {regions}: "
        f"{len(result.added)} added, {len(result.kept)} kept, {len(result.missing)} missing"
        + (f", {plural(len(result.warnings), 'warning')}" if result.warnings else ""),
        err=err,
    )
    for title, changes in (
        ("added", result.added),
        ("kept", result.kept),
        ("missing", result.missing),
    ):
        for c in changes:
            click.echo(f"  {title:8} {_change_line(c)}", err=err)


@discover.command("aws-lambda", epilog=DISCOVER_EPILOG)
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="Region (repeatable; default: the account's regions, else AWS_REGION / "
    "AWS_DEFAULT_REGION).",
)
@click.option("--all-regions", is_flag=True, help="Every region enabled in the account.")
@_account_options
@database_option
@format_option("text", "json")
def aws_lambda(
    regions: tuple[str, ...],
    all_regions: bool,
    account_names: tuple[str, ...],
    all_accounts: bool,
    database_url: str | None,
    fmt: str,
) -> None:
    """Lambda functions (and their aliases) whose environment holds an inventoried secret,
    recorded as its dependents: by value (a variable holds a field of the secret's current
    version: fingerprints, run `discover ... --fingerprint-values` first) or by reference (a
    Secrets Manager ARN or name, {{resolve:secretsmanager:...}}, an SSM parameter, a Vault
    path). Idempotent; a dependent no longer found is marked missing (never rotated into);
    dependents added by hand are kept. Honours AWS_ENDPOINT_URL."""
    accounts = _accounts(account_names, all_accounts)
    listings = lambda_listings(accounts, regions, all_regions=all_regions)
    result = record_lambda_dependents(listings, database_url)
    render_dependents(result, fmt)
    if result.warnings and not any(lst.listed for lst in listings):
        click.get_current_context().exit(int(ExitCode.BACKEND))
