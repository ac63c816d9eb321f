"""``keyward inventory``, ``keyward dependents`` and ``keyward findings``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from keyward.cli.app import EPILOG
from keyward.cli.common import confirm, format_option
from keyward.cli.db import database_option, open_db
from keyward.core.errors import ConfigError
from keyward.core.text import plural
from keyward.core.textout import plain

if TYPE_CHECKING:
    from keyward.inventory.records import FindingRecord, SecretDetail, SecretRecord
    from keyward.inventory.service import Inventory

F = TypeVar("F", bound=Callable[..., Any])

# the posture breaches (keyward.inventory.models.Breach), for help texts without the database
BREACH_NAMES = (
    "leaked, reused, duplicated, long-lived, no-owner, no-policy, unused, cross-environment"
)

INVENTORY_EPILOG = (
    """\b
Examples:
  keyward inventory add prod/db --kind postgres-password --owner alice --team payments \\
      --max-age 90d --store vault --reference secret/data/prod/db
  keyward inventory list --owner alice --format json
  keyward inventory list --overdue
  keyward inventory list --breach leaked,reused
  keyward inventory show prod/db
  keyward inventory posture                 recompute every secret's breaches now
  keyward inventory update prod/db --schedule "0 3 * * 1" --rotated-now
  keyward inventory report --format csv -o report.csv
  keyward inventory report --format html -o inventory.html
  keyward inventory remove prod/db --yes

"""
    + EPILOG
)
DEPENDENTS_EPILOG = (
    """\b
Examples:
  keyward dependents add prod/db --target arn:aws:lambda:eu-west-1:123456789012:function:api \\
      --variable DB_PASSWORD --environment prod --application orders
  keyward dependents list prod/db --format json
  keyward dependents remove 7

"""
    + EPILOG
)
FINDINGS_EPILOG = (
    """\b
Examples:
  keyward scan . --record                   record findings first
  keyward findings list --state open --owner @org/payments
  keyward findings list --format json --limit 0
  keyward findings ignore 12 13 --reason "test fixture"
  keyward findings link 12 prod/db          this leak is that secret
  keyward findings link 12 --unlink

"""
    + EPILOG
)


def parse_when(value: str | None, option: str) -> datetime | None:
    """ISO 8601 date or date-time; naive values are UTC."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option} {value!r} is not a date",
            hint="Use ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00Z",
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_tags(values: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--tag {item!r} is not KEY=VALUE")
        tags[key.strip()] = value.strip()
    return tags


@contextmanager
def inventory_for(database_url: str | None) -> Iterator[Inventory]:
    from keyward.inventory.service import Inventory

    db = open_db(database_url)
    try:
        yield Inventory(db)
    finally:
        db.close()


def account_id(value: str | None) -> str | None:
    """``--account``: a 12-digit id as given, or the name of an entry of ``[aws.accounts]``
    (its id). Anything else is one sentence (exit 2)."""
    if value is None:
        return None
    from keyward.cli.app import get_state
    from keyward.providers.settings import ACCOUNT_ID, aws_accounts, find_account

    value = value.strip()
    if ACCOUNT_ID.match(value):
        return value
    found = find_account(aws_accounts(get_state().config), value)
    if found is None or found.id is None:
        raise ConfigError(
            f"{value!r} is neither an AWS account id nor an account of [aws.accounts] with an id",
            hint="Give the 12-digit account id, or add [aws.accounts.NAME] with its role_arn "
            "(or id)",
        )
    return found.id


def _console(file: IO[str] | None = None) -> Any:
    """Tables as wide as the terminal (or COLUMNS), unwrapped in a pipe; user data literal."""
    from keyward.core.textout import make_console

    return make_console(file or sys.stdout)


def _emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=str))


def _days(seconds: int | None) -> str:
    from keyward.inventory.policy import format_duration

    return format_duration(seconds) if seconds else ""


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def _secrets_table(
    rows: Sequence[SecretRecord], breaches: dict[int, list[str]] | None = None
) -> Any:
    from rich.table import Table

    now = datetime.now(UTC)
    t = Table()
    accounts = any(s.account for s in rows)
    cols = ("name", "kind", "store", "account", "owner", "team", "age (d)", "policy", "due")
    for col in (*(c for c in cols if accounts or c != "account"), "status"):
        t.add_column(col)
    if breaches is not None:
        t.add_column("breaches")
    for s in rows:
        policy = " ".join(p for p in (_days(s.max_age_seconds), s.schedule or "") if p)
        due = plain(_date(s.rotation_due_at))
        if s.overdue(now):
            due = plain(f"{due} overdue", "red")
        t.add_row(
            *map(plain, (s.name, s.kind, s.store)),
            *((plain(s.account),) if accounts else ()),
            *map(plain, (s.owner, s.team)),
            str(s.age_seconds(now) // 86400),
            plain(policy),
            due,
            plain(s.status),
            *((plain(", ".join(breaches.get(s.id, []))),) if breaches is not None else ()),
        )
    return t


# ----------------------------------------------------------------- inventory
@click.group(epilog=INVENTORY_EPILOG)
def inventory() -> None:
    """Every secret keyward knows: owner, age, policy, store, dependents, findings."""


def _secret_options(fn: F) -> F:
    options = [
        click.option(
            "--kind",
            help="Credential kind, e.g. aws-iam-access-key, postgres-password, mysql-password, "
            "redis-acl, random.",
        ),
        click.option("--store", help="Where it lives: aws-secretsmanager, vault, aws-iam..."),
        click.option("--reference", help="Its reference in the store (ARN, path, key id)."),
        click.option(
            "--account",
            metavar="ID|NAME",
            help="The AWS account it lives in (default: the one its reference's ARN names; "
            "rotation acts there with the role of [aws.accounts]).",
        ),
        click.option("--owner", help="Who answers for it (person or @org/team)."),
        click.option("--team", help="Owning team."),
        click.option("--contact", help="How to reach the owner (e-mail, channel)."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable)."),
        click.option("--description", help="Free text."),
        click.option("--created", metavar="DATE", help="When it was created (ISO 8601)."),
        click.option("--last-rotated", metavar="DATE", help="When it was last rotated."),
        click.option("--max-age", metavar="DURATION", help="Rotate at least this often: 90d, 12w."),
        click.option(
            "--schedule", metavar="CRON", help='Rotate on a cron schedule (UTC): "0 3 * * 1".'
        ),
        click.option(
            "--on-leak",
            type=click.Choice(["rotate", "alert", "ignore", "default"]),
            help="What a leak of its current value sets off: rotate it at once (the leaked "
            "credential revoked without a grace period), alert (webhook and audit only), "
            "ignore; default: [rotation] on_leak, else rotate when keyward can rotate it.",
        ),
        click.option(
            "--value-stdin",
            is_flag=True,
            help="Read the current value from stdin to record its keyed fingerprint and "
            "each field's (the value itself is never stored).",
        ),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _fingerprint_stdin() -> tuple[str, dict[str, str]]:
    """The keyed fingerprint of the value on stdin, and of each of its fields (each string
    field of a JSON object, else the one field ``value``); the value is not kept."""
    from keyward.cli.app import get_state
    from keyward.cli.common import fingerprint_key
    from keyward.core.redaction import Fingerprinter
    from keyward.inventory.discovery import value_fingerprints

    value = sys.stdin.read().rstrip("\r\n")
    if not value:
        raise ConfigError("--value-stdin was given but stdin is empty")
    fp = Fingerprinter(fingerprint_key(get_state().config)).fingerprint
    _whole, fields = value_fingerprints(value, fp)
    return fp(value), fields


@inventory.command("add", epilog=INVENTORY_EPILOG)
@click.argument("name")
@_secret_options
@database_option
@format_option("text", "json")
def inventory_add(name: str, database_url: str | None, fmt: str, **opts: Any) -> None:
    """Add the secret NAME to the inventory."""
    from keyward.inventory.policy import parse_duration

    kind = opts["kind"] or "generic"
    fp, fields = _fingerprint_stdin() if opts["value_stdin"] else (None, {})
    with inventory_for(database_url) as inv:
        rec = inv.add_secret(
            name,
            kind,
            store=opts["store"],
            reference=opts["reference"],
            account=account_id(opts["account"]),
            owner=opts["owner"],
            team=opts["team"],
            contact=opts["contact"],
            tags=parse_tags(opts["tags"]),
            description=opts["description"],
            created_at=parse_when(opts["created"], "--created"),
            last_rotated_at=parse_when(opts["last_rotated"], "--last-rotated"),
            max_age_seconds=parse_duration(opts["max_age"]) if opts["max_age"] else None,
            schedule=opts["schedule"],
            fingerprint=fp,
            on_leak=None if opts["on_leak"] in (None, "default") else opts["on_leak"],
            fields=fields,
        )
        _refresh_own_posture(inv, rec.id)
    if fmt == "json":
        _emit_json(rec.to_dict())
    else:
        click.echo(f"added {rec.name} ({rec.kind})")


@inventory.command("list", epilog=INVENTORY_EPILOG)
@click.option("--owner", help="Only secrets this person or team answers for.")
@click.option("--team", help="Only secrets of this team.")
@click.option("--kind", help="Only secrets of this kind (random, postgres-password, ...).")
@click.option("--store", help="Only secrets in this store (aws-secretsmanager, vault-kv, ...).")
@click.option(
    "--account", metavar="ID|NAME", help="AWS account (an id, or a name of [aws.accounts])."
)
@click.option(
    "--status",
    type=click.Choice(["active", "inactive", "retired", "missing"]),
    help="Only secrets in this state (missing: no longer found in its store).",
)
@click.option("--overdue", is_flag=True, help="Only secrets past their rotation policy.")
@click.option(
    "--breach",
    "breach_names",
    multiple=True,
    metavar="NAME[,NAME]",
    help=f"Only secrets with any of these posture breaches (repeatable): {BREACH_NAMES}.",
)
@database_option
@format_option("text", "json")
def inventory_list(
    owner: str | None,
    team: str | None,
    kind: str | None,
    store: str | None,
    account: str | None,
    status: str | None,
    overdue: bool,
    breach_names: tuple[str, ...],
    database_url: str | None,
    fmt: str,
) -> None:
    """List secrets (filtered by owner, team, kind, store, account, status, overdue or
    posture breach)."""
    from keyward.inventory.posture import parse_breaches

    breaches = parse_breaches(breach_names)  # a wrong name: exit 2 before any database
    with inventory_for(database_url) as inv:
        rows = inv.list_secrets(
            owner=owner,
            team=team,
            kind=kind,
            store=store,
            account=account_id(account),
            status=status,
            overdue_at=datetime.now(UTC) if overdue else None,
            breaches=breaches,
        )
        found = inv.breaches_of([r.id for r in rows]) if breaches else None
    if fmt == "json":
        docs = [r.to_dict() for r in rows]
        if found is not None:
            for doc in docs:
                doc["breaches"] = found.get(doc["id"], [])
        _emit_json(docs)
        return
    if not rows:
        click.echo("no secrets in the inventory match")
        return
    _console().print(_secrets_table(rows, found))


@inventory.command("show", epilog=INVENTORY_EPILOG)
@click.argument("name")
@database_option
@format_option("text", "json")
def inventory_show(name: str, database_url: str | None, fmt: str) -> None:
    """Show one secret: policy, versions, dependents, findings and recent history."""
    with inventory_for(database_url) as inv:
        detail = inv.show(name)
    leak = _leak_state(detail)
    if fmt == "json":
        _emit_json({**detail.to_dict(), "leak": leak})
        return
    from rich.table import Table

    s = detail.secret
    now = datetime.now(UTC)
    con = _console()
    # every value here is user data: shown literally (an ARN's ":secret:" stays as it is)
    lines = [
        plain(s.name, "bold") + plain(f" ({s.kind}) - {s.status}"),
        plain(f"store:        {s.store or '-'} {s.reference or ''}"),
        *([plain(f"account:      {s.account}")] if s.account else []),
        plain(
            f"owner:        {s.owner or '-'}   team: {s.team or '-'}   contact: {s.contact or '-'}"
        ),
        plain(
            f"created:      {_date(s.created_at)}   "
            f"last rotated: {_date(s.last_rotated_at) or 'never'}"
            f"   age: {s.age_seconds(now) // 86400} days"
        ),
        plain(
            f"policy:       max age {_days(s.max_age_seconds) or '-'}   "
            f"schedule {s.schedule or '-'}   next due {_date(s.rotation_due_at) or '-'}"
        )
        + (plain("  OVERDUE", "red") if s.overdue(now) else plain("")),
    ]
    if s.tags:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(s.tags.items()))
        lines.append(plain("tags:         " + tags))
    if s.attributes:
        attributes = json.dumps(s.attributes, sort_keys=True, default=str)
        lines.append(plain("attributes:   " + attributes))
    own = "" if s.on_leak else " (default)"
    lines.append(plain(f"on leak:      {leak['on_leak']}{own}"))
    if leak["leaked_at"]:
        lines.append(
            plain(f"LEAKED since {leak['leaked_at'][:16].replace('T', ' ')} UTC", "red")
            + plain(f": its current version is in findings {_ids(leak['findings'])}")
        )
    lines.append(plain(f"open findings: {detail.open_findings}"))
    for line in lines:
        con.print(line)
    if detail.versions:
        t = Table(title="Versions")
        cols = ("id", "identifier", "stage", "fingerprint", "fields", "created", "retired")
        for col in (*cols, "leaked"):
            t.add_column(col)
        for v in detail.versions:
            t.add_row(
                str(v.id),
                plain(v.identifier),
                plain(v.stage),
                (v.fingerprint or "")[:12],
                plain(", ".join(sorted(v.fields))),
                _date(v.created_at),
                _date(v.retired_at),
                _date(v.leaked_at),
            )
        con.print(t)
    if detail.breaches:
        t = Table(title="Posture breaches")
        for col in ("breach", "since", "why"):
            t.add_column(col)
        for b in detail.breaches:
            t.add_row(
                plain(b.breach), _date(b.since), plain(breach_why(b.breach, b.detail, s, now))
            )
        con.print(t)
    else:
        con.print(plain("posture:      no breach"))
    if detail.dependents:
        con.print(_dependents_table(detail.dependents))
    if detail.findings:
        con.print(_findings_table(detail.findings, title="Findings"))
    if detail.audit:
        t = Table(title="History")
        for col in ("time", "actor", "action", "outcome"):
            t.add_column(col)
        for e in detail.audit:
            t.add_row(
                e.at.strftime("%Y-%m-%d %H:%M:%S"), *map(plain, (e.actor, e.action, e.outcome))
            )
        con.print(t)


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(f"#{i}" for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _leak_state(detail: SecretDetail) -> dict[str, Any]:
    """Its leak policy (its own, else the default) and whether its current version leaked."""
    from keyward.cli.app import get_state
    from keyward.cli.compose import leak_policy
    from keyward.inventory import models as m
    from keyward.inventory.fields import is_current_stage

    s = detail.secret
    own = m.OnLeak(s.on_leak) if s.on_leak else None
    policy = leak_policy(get_state().config).effective(own, s.kind, s.store)
    leaked = [v for v in detail.versions if v.leaked_at and is_current_stage(v.stage)]
    ids = {v.id for v in leaked}
    return {
        "on_leak": policy.value,
        "own": s.on_leak,
        "leaked_at": min(v.leaked_at for v in leaked if v.leaked_at).isoformat()
        if leaked
        else None,
        "findings": sorted(f.id for f in detail.findings if f.version_id in ids),
    }


@inventory.command("update", epilog=INVENTORY_EPILOG)
@click.argument("name")
@click.option("--rename", help="New name.")
@click.option(
    "--status",
    type=click.Choice(["active", "inactive", "retired", "missing"]),
    help="Set its state (retired: no longer in use).",
)
@click.option("--rotated-now", is_flag=True, help="Record a rotation that happened now.")
@click.option("--clear-max-age", is_flag=True, help="Remove the maximum-age policy.")
@click.option("--clear-schedule", is_flag=True, help="Remove the schedule policy.")
@_secret_options
@database_option
@format_option("text", "json")
def inventory_update(
    name: str,
    rename: str | None,
    status: str | None,
    rotated_now: bool,
    clear_max_age: bool,
    clear_schedule: bool,
    database_url: str | None,
    fmt: str,
    **opts: Any,
) -> None:
    """Change a secret's owner, policy, store reference, tags or status."""
    from keyward.inventory.policy import parse_duration

    changes: dict[str, Any] = {}
    for key in ("kind", "store", "reference", "owner", "team", "contact", "description"):
        if opts[key] is not None:
            changes[key] = opts[key]
    if opts["account"] is not None:
        changes["account"] = account_id(opts["account"])
    if opts["on_leak"] is not None:
        changes["on_leak"] = None if opts["on_leak"] == "default" else opts["on_leak"]
    if rename:
        changes["name"] = rename
    if status:
        changes["status"] = status
    if opts["tags"]:
        changes["tags"] = parse_tags(opts["tags"])
    if opts["created"]:
        changes["created_at"] = parse_when(opts["created"], "--created")
    if opts["last_rotated"]:
        changes["last_rotated_at"] = parse_when(opts["last_rotated"], "--last-rotated")
    if rotated_now:
        changes["last_rotated_at"] = datetime.now(UTC)
    if opts["max_age"]:
        changes["max_age_seconds"] = parse_duration(opts["max_age"])
    elif clear_max_age:
        changes["max_age_seconds"] = None
    if opts["schedule"]:
        changes["schedule"] = opts["schedule"]
    elif clear_schedule:
        changes["schedule"] = None
    fp, fields = _fingerprint_stdin() if opts["value_stdin"] else (None, {})
    if not changes and fp is None:
        raise ConfigError("Nothing to update", hint="Give at least one option, see --help")
    with inventory_for(database_url) as inv:
        rec = inv.update_secret(name, **changes) if changes else inv.get_secret(name)
        if fp is not None:
            inv.add_version(rec.name, fingerprint=fp, stage="current", fields=fields)
        _refresh_own_posture(inv, rec.id)
    if fmt == "json":
        _emit_json(rec.to_dict())
    else:
        click.echo(f"updated {rec.name}")


@inventory.command("remove", epilog=INVENTORY_EPILOG)
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@database_option
def inventory_remove(name: str, yes: bool, database_url: str | None) -> None:
    """Remove a secret with its versions and dependents (its findings stay, unlinked)."""
    with inventory_for(database_url) as inv:
        inv.get_secret(name)
        if not yes:
            confirm(f"Remove {name} from the inventory?", f"Removing {name}")
        inv.remove_secret(name)
    click.echo(f"removed {name}")


@inventory.command("report", epilog=INVENTORY_EPILOG)
@click.option("--limit", default=50, show_default=True, help="Overdue secrets to list.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write it here."
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Recompute the posture breaches first (as `inventory posture` does); otherwise they "
    "are as of the last discovery, scan --record, rotation or daemon tick.",
)
@database_option
@format_option("text", "json", "csv", "html")
def inventory_report(
    limit: int, output: Path | None, refresh: bool, database_url: str | None, fmt: str
) -> None:
    """Overdue secrets, an age histogram, counts by owner and team, posture breaches.

    --format html writes one self-contained page with charts (no script, nothing loaded).
    """
    from keyward.inventory.report import build_report, render_csv, render_json, render_text

    db = open_db(database_url)
    try:
        if refresh:
            _refresh_posture(db)
        report = build_report(db, limit=limit)
    finally:
        db.close()
    fh: IO[str]
    if output is not None:
        try:
            fh = output.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise ConfigError(f"Cannot write the report to {output}: {exc.strerror}") from None
    else:
        fh = sys.stdout
    try:
        if fmt == "json":
            fh.write(render_json(report) + "\n")
        elif fmt == "csv":
            fh.write(render_csv(report))
        elif fmt == "html":
            from keyward.inventory.report_html import render_html

            fh.write(render_html(report))
        else:
            render_text(report, fh, color=False if output else None)
    finally:
        if output is not None:
            fh.close()


def _refresh_own_posture(inv: Inventory, secret_id: int) -> None:
    """After a change by hand: the breaches a secret's own columns tell (long-lived, no
    owner, no policy, unused), for that secret only; the ones across secrets (a copy, a
    leak, its functions) wait for the next full refresh (`inventory posture`)."""
    from keyward.cli.app import get_state
    from keyward.inventory.posture import METADATA, refresh_for

    refresh_for(inv.db, get_state().config, only=METADATA, secret_ids=[secret_id])


def _refresh_posture(db: Any) -> Any:
    from keyward.cli.app import get_state
    from keyward.inventory.posture import refresh_for

    return refresh_for(db, get_state().config)


@inventory.command("posture", epilog=INVENTORY_EPILOG)
@database_option
@format_option("text", "json")
def inventory_posture(database_url: str | None, fmt: str) -> None:
    """Recompute every secret's posture breaches now and store them.

    Breaches: leaked, reused, duplicated, long-lived, no-owner, no-policy, unused
    ([inventory] unused_days, default 90), cross-environment. Discovery, scan --record,
    rotations and the daemon also recompute them; see `inventory list --breach` and
    `inventory show`.
    """
    db = open_db(database_url)
    try:
        summary = _refresh_posture(db)
    finally:
        db.close()
    if fmt == "json":
        _emit_json(summary.to_dict())
        return
    counts = ", ".join(f"{n} {b.value}" for b, n in summary.counts.items())
    click.echo(
        f"posture: {counts} ({summary.added} new, {summary.removed} gone, "
        f"{summary.updated} changed)"
    )


def breach_why(
    breach: str, detail: dict[str, Any], secret: SecretRecord, now: datetime | None = None
) -> str:
    """One line saying why a secret has a breach, from its stored detail and the secret's own
    dates (never a value)."""
    now = now or datetime.now(UTC)

    def names(key: str) -> str:
        return ", ".join(str(x) for x in detail.get(key) or [])

    def groups(key: str) -> str:
        doc = detail.get(key) or {}
        return "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in sorted(doc.items()))

    def ago(when: datetime | None) -> str:
        return f"{_date(when)} ({(now - when).days} days ago)" if when else "never"

    parts: list[str] = []
    if breach == "leaked":
        if detail.get("open_findings"):
            parts.append(plural(int(detail["open_findings"]), "open finding"))
        if detail.get("versions"):
            parts.append(f"leaked version {names('versions')}")
    elif breach == "duplicated":
        parts.append(f"same value as {names('secrets')}")
        if detail.get("fields"):
            parts.append(f"fields {names('fields')}")
    elif breach == "reused":
        if detail.get("secrets"):
            parts.append(f"shared with {names('secrets')} (owners {names('owners')})")
        if detail.get("applications"):
            parts.append(f"applications {groups('applications')}")
        if detail.get("function_owners"):
            parts.append(f"function owners {groups('function_owners')}")
    elif breach == "long-lived":
        last = secret.last_rotated_at or secret.created_at
        if detail.get("limit_days"):
            parts.append(
                f"no policy, not rotated since {ago(last)}, over {detail['limit_days']} days"
            )
        else:
            policy = " ".join(
                p for p in (_days(secret.max_age_seconds), secret.schedule or "") if p
            )
            parts.append(f"policy {policy}: due {_date(secret.rotation_due_at)}")
    elif breach == "unused":
        parts.append(
            f"last used {ago(secret.last_used_at)}, over {detail.get('unused_days', '?')} days"
        )
    elif breach == "cross-environment":
        parts.append(groups("environments"))
    elif breach == "no-owner" and detail.get("team"):
        parts.append(f"team {detail['team']}")
    return "; ".join(p for p in parts if p)


# ---------------------------------------------------------------- dependents
def _dependents_table(rows: Sequence[Any]) -> Any:
    from rich.table import Table

    t = Table(title="Dependents")
    accounts = any(d.account for d in rows)
    for col in ("id", "secret", "kind", "target", "variable", "region", "account"):
        if accounts or col != "account":
            t.add_column(col)
    t.add_column("origin")
    t.add_column("status")
    for d in rows:
        extra = (plain(d.account),) if accounts else ()
        status = plain(d.status, "red") if d.status == "missing" else plain(d.status)
        t.add_row(
            str(d.id),
            *map(plain, (d.secret, d.kind, d.target, d.variable, d.region)),
            *extra,
            plain(d.origin),
            status,
        )
    return t


@click.group(epilog=DEPENDENTS_EPILOG)
def dependents() -> None:
    """What holds a secret and must be updated when it rotates (e.g. Lambda variables)."""


@dependents.command("add", epilog=DEPENDENTS_EPILOG)
@click.argument("secret")
@click.option(
    "--kind",
    default="aws-lambda",
    show_default=True,
    help="Dependent kind (a keyward.dependents plugin).",
)
@click.option("--target", required=True, help="What depends on it, e.g. a Lambda function ARN.")
@click.option("--variable", help="Environment variable holding the secret.")
@click.option("--region", help="Region (taken from the ARN when omitted).")
@click.option(
    "--account",
    metavar="ID|NAME",
    help="AWS account of the target (taken from the ARN when omitted; default: the secret's).",
)
@click.option(
    "--environment",
    metavar="ENV",
    help="The target's environment (prod, dev...): one secret in functions of two "
    "environments is a cross-environment breach.",
)
@click.option(
    "--application",
    metavar="APP",
    help="The application the target belongs to: one secret in functions of two "
    "applications is a reused breach.",
)
@database_option
@format_option("text", "json")
def dependents_add(
    secret: str,
    kind: str,
    target: str,
    variable: str | None,
    region: str | None,
    account: str | None,
    environment: str | None,
    application: str | None,
    database_url: str | None,
    fmt: str,
) -> None:
    """Record that TARGET depends on SECRET."""
    from keyward.rotation.registry import PluginGroup, available

    known = available(PluginGroup.DEPENDENTS)
    if kind not in known:  # caught now, not mid-rotation after the new credential was set
        raise ConfigError(
            f"There is no dependent kind {kind!r} (installed: {', '.join(known) or 'none'})",
            hint="Use one of the installed kinds, or install the plugin that provides it",
        )
    with inventory_for(database_url) as inv:
        labels = {"environment": environment, "application": application}
        rec = inv.add_dependent(
            secret,
            kind,
            target,
            variable=variable,
            region=region,
            account=account_id(account),
            attributes={k: v for k, v in labels.items() if v},
        )
    if fmt == "json":
        _emit_json(rec.to_dict())
    else:
        click.echo(f"dependent {rec.id} added to {secret}")


@dependents.command("list", epilog=DEPENDENTS_EPILOG)
@click.argument("secret", required=False)
@database_option
@format_option("text", "json")
def dependents_list(secret: str | None, database_url: str | None, fmt: str) -> None:
    """List dependents (of one SECRET, or of all)."""
    with inventory_for(database_url) as inv:
        rows = inv.list_dependents(secret)
    if fmt == "json":
        _emit_json([r.to_dict() for r in rows])
    elif not rows:
        click.echo("no dependents")
    else:
        _console().print(_dependents_table(rows))


@dependents.command("remove", epilog=DEPENDENTS_EPILOG)
@click.argument("dependent_id", type=int)
@database_option
def dependents_remove(dependent_id: int, database_url: str | None) -> None:
    """Remove the dependent with id DEPENDENT_ID (see `dependents list`)."""
    with inventory_for(database_url) as inv:
        rec = inv.remove_dependent(dependent_id)
    click.echo(f"removed dependent {rec.id} ({rec.target}) of {rec.secret}")


# ------------------------------------------------------------------ findings
def _findings_table(rows: Sequence[FindingRecord], title: str | None = None) -> Any:
    from rich.table import Table

    t = Table(title=title)
    cols = ("id", "state", "rule", "target", "where", "preview", "owner", "secret", "last seen")
    for col in cols:
        t.add_column(col)
    for f in rows:
        state = f.state
        if f.state == "remediated" and f.remediated_rotation_id is not None:
            state = f"remediated (rotation {f.remediated_rotation_id})"
        t.add_row(
            str(f.id),
            *map(plain, (state, f.rule_id, f.target, f.where(), f.preview, f.owner, f.secret)),
            _date(f.last_seen_at),
        )
    return t


@click.group(epilog=FINDINGS_EPILOG)
def findings() -> None:
    """Findings recorded by `keyward scan --record`: list, ignore, link to secrets."""


@findings.command("list", epilog=FINDINGS_EPILOG)
@click.option(
    "--state",
    type=click.Choice(["open", "ignored", "resolved", "remediated", "all"]),
    default="open",
    show_default=True,
    help="Findings in this state (resolved: gone from a later scan; remediated: the leaked "
    "value was revoked by a rotation).",
)
@click.option("--owner", help="Effective owner (linked secret's owner, else CODEOWNERS/blame).")
@click.option("--rule", help="Rule id.")
@click.option("--target", help="Scan target (e.g. files:/abs/path).")
@click.option("--secret", help="Only findings linked to this secret.")
@click.option(
    "--account", metavar="ID|NAME", help="AWS account of the resource (live Lambda findings)."
)
@click.option("--limit", default=500, show_default=True, help="At most this many (0: all).")
@database_option
@format_option("text", "json")
def findings_list(
    state: str,
    owner: str | None,
    rule: str | None,
    target: str | None,
    secret: str | None,
    account: str | None,
    limit: int,
    database_url: str | None,
    fmt: str,
) -> None:
    """List recorded findings, newest first."""
    with inventory_for(database_url) as inv:
        page = inv.list_findings(
            state=None if state == "all" else state,
            owner=owner,
            rule=rule,
            target=target,
            secret=secret,
            account=account_id(account),
            limit=limit or None,
        )
    if fmt == "json":
        _emit_json([f.to_dict() for f in page.findings])
    elif not page.findings:
        click.echo("no findings match")
    else:
        _console().print(_findings_table(page.findings))
    if page.total > len(page.findings):
        click.echo(
            f"showing {len(page.findings)} of {plural(page.total, 'finding')}; "
            "use --limit 0 for all",
            err=True,
        )


@findings.command("ignore", epilog=FINDINGS_EPILOG)
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--reason", required=True, help="Why (kept with the finding and in the audit log).")
@database_option
def findings_ignore(ids: tuple[int, ...], reason: str, database_url: str | None) -> None:
    """Ignore findings by id; they stay ignored when later scans see them again."""
    with inventory_for(database_url) as inv:
        n = inv.ignore_findings(ids, reason)
    click.echo(f"ignored {n} finding{'s' if n != 1 else ''}")


@findings.command("link", epilog=FINDINGS_EPILOG)
@click.argument("finding_id", type=int)
@click.argument("secret", required=False)
@click.option("--unlink", is_flag=True, help="Remove the finding's link instead.")
@database_option
@format_option("text", "json")
def findings_link(
    finding_id: int, secret: str | None, unlink: bool, database_url: str | None, fmt: str
) -> None:
    """Link finding FINDING_ID to SECRET (its owner becomes the finding's owner)."""
    if bool(secret) == unlink:
        raise ConfigError("Give either a SECRET or --unlink", hint="See `keyward findings link -h`")
    with inventory_for(database_url) as inv:
        rec = inv.link_finding(finding_id, None if unlink else secret)
    if fmt == "json":
        _emit_json(rec.to_dict())
    elif unlink:
        click.echo(f"finding {finding_id} unlinked")
    else:
        click.echo(f"finding {finding_id} linked to {secret}")
