"""``keyward rotate`` and ``keyward rotations``: run, inspect, resume and roll back rotations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from keyward.cli.app import EPILOG, get_state
from keyward.cli.common import format_option
from keyward.cli.db import database_option, open_db
from keyward.core.errors import ConfigError

if TYPE_CHECKING:
    from keyward.cli.compose import RotationParts
    from keyward.inventory.leaks import LeakedSecret
    from keyward.inventory.rotations import RotationRecord
    from keyward.rotation.driver import Outcome

ROTATE_EPILOG = (
    """\b
Examples:
  keyward rotate prod/aws --dry-run         print the plan; change nothing
  keyward rotate prod/aws                   rotate now (store, provider, dependents)
  keyward rotate prod/db --format json
  keyward rotate prod/db --take-over        cancel AWS's own rotation of it first
  keyward rotate prod/aws --reason "leaked in #42"   also while the last one is retiring
  keyward rotate --leaked --dry-run         the leaked secrets, and what would happen
  keyward rotate --leaked                   rotate every leaked secret whose policy says so
  keyward rotations list --in-flight        rotations not finished yet
  keyward rotations show 12
  keyward rotations resume 12               continue after a crash or a fixed failure
  keyward rotations rollback 12             undo a rotation that has not finished

"""
    + EPILOG
)


@contextmanager
def rotation_session(database_url: str | None) -> Iterator[RotationParts]:
    """Inventory, plugins and engine for one command (closed afterwards)."""
    from keyward.cli.compose import compose_rotation

    parts = compose_rotation(get_state().config, lambda: open_db(database_url))
    try:
        yield parts
    finally:
        parts.close()


def refresh_posture_after(parts: RotationParts) -> None:
    """The posture follows a rotation or an adoption (a leaked, long-lived or shared value
    may be gone, a new secret come). The command's outcome stands if this fails: a warning
    says so."""
    from keyward.core.errors import KeywardError

    try:
        parts.refresh_posture()
    except KeywardError as exc:
        click.echo(f"keyward: warning: the posture was not recomputed: {exc}", err=True)


def _outcome(out: Outcome, fmt: str) -> None:
    if fmt == "json":
        doc = {
            "rotation_id": out.rotation_id,
            "secret": out.secret,
            "state": out.state.value,
            "parked": out.parked,
            "message": out.message,
            "warnings": list(out.warnings),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(out.message)
        for text in out.warnings:
            click.echo(f"warning: {text}", err=True)


@click.command(epilog=ROTATE_EPILOG)
@click.argument("secret", required=False)
@click.option(
    "--leaked",
    is_flag=True,
    help="Rotate every leaked secret (a scan found its current version) whose on_leak policy "
    "is rotate, as the daemon does; the leaked credential is revoked without a grace period.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan (calls and dependents); no changes.")
@click.option(
    "--take-over",
    is_flag=True,
    help="If AWS Secrets Manager rotates the secret itself, cancel that rotation first "
    "(CancelRotateSecret; recorded in the audit log). Without it such a secret is refused.",
)
@click.option(
    "--reason",
    metavar="TEXT",
    help="Why rotate now (e.g. 'the new key leaked'); recorded in the audit log, also for "
    "the early retirement of a previous rotation still retiring.",
)
@database_option
@format_option("text", "json")
def rotate(
    secret: str | None,
    leaked: bool,
    dry_run: bool,
    take_over: bool,
    reason: str | None,
    database_url: str | None,
    fmt: str,
) -> None:
    """Rotate SECRET: create, set, test, update dependents, finish, retire the old one.

    Any failure before finish is rolled back. A crash leaves a rotation that
    `keyward rotations resume` or `rollback` completes. If the previous rotation is still
    retiring (its grace period), its old credential is revoked first, unless it was used
    since it was deactivated (then this is refused, naming that use). A secret that AWS
    Secrets Manager rotates itself (RotationEnabled) is refused unless --take-over.

    A leaked secret (a scan found its current value) is rotated for the leak: its old
    credential is deactivated and revoked as soon as the new one is current and every
    dependent verified, without a grace period. --leaked rotates every leaked secret whose
    on_leak policy is rotate (--dry-run lists them).
    """
    if leaked:
        if secret:
            raise ConfigError(
                "Give either a SECRET or --leaked, not both",
                hint="keyward rotate --leaked rotates every leaked secret",
            )
        _rotate_leaked(dry_run, take_over, reason, database_url, fmt)
        return
    if not secret:
        raise ConfigError(
            "Name the SECRET to rotate, or give --leaked",
            hint="keyward rotate prod/aws, or keyward rotate --leaked",
        )
    with rotation_session(database_url) as parts:
        wiring = parts.wiring()
        if dry_run:
            from keyward.rotation.plan import build_plan

            plan = build_plan(parts.inventory, wiring, secret)
            if fmt == "json":
                click.echo(json.dumps(plan.to_dict(), indent=2))
            else:
                click.echo("\n".join(plan.lines()))
            return
        engine = parts.engine(wiring)
        out = engine.rotate(secret, take_over=take_over, reason=reason)
        refresh_posture_after(parts)
        _outcome(out, fmt)


def _leak_line(x: LeakedSecret) -> str:
    ids = ", ".join(f"#{i}" for i in x.findings[:5]) + (" ..." if len(x.findings) > 5 else "")
    return f"{x.secret}: leaked since {x.leaked_at:%Y-%m-%d %H:%M} UTC (findings {ids or '-'})"


def _rotate_leaked(
    dry_run: bool, take_over: bool, reason: str | None, database_url: str | None, fmt: str
) -> None:
    """``rotate --leaked``: each leaked secret rotated (or said why not), one line each; the
    exit code is the worst of them (0 when every one whose policy is rotate was rotated)."""
    from keyward.cli.compose import leak_policy
    from keyward.core.errors import ExitCode, KeywardError
    from keyward.rotation.ports import AuditEntry

    config = get_state().config
    with rotation_session(database_url) as parts:
        found = parts.inventory.leaked(leak_policy(config))
        results: list[dict[str, object]] = []
        code = int(ExitCode.OK)
        engine = None
        for x in found:
            doc: dict[str, object] = x.to_dict()
            line = _leak_line(x)
            if x.on_leak.value != "rotate":
                doc["action"] = "none"
                line += (
                    f"; its policy is {x.on_leak.value}: not rotated "
                    f"(keyward rotate {x.secret} rotates it)"
                )
            elif x.problem:
                doc["action"] = "refused"
                line += f"; keyward cannot rotate it: {x.problem}; rotate it by hand"
                code = max(code, int(ExitCode.USAGE))
                if not dry_run:
                    parts.inventory.audit(
                        parts.inventory.rotatable(x.secret),
                        AuditEntry("leak.rotate", "refused", {"problem": x.problem}),
                    )
            elif dry_run:
                doc["action"] = "rotate"
                line += "; would be rotated, the leaked credential revoked at once"
            else:
                engine = engine or parts.engine()
                try:
                    out = engine.rotate(
                        x.secret, take_over=take_over, reason=reason, only_if_leaked=True
                    )
                except KeywardError as exc:
                    doc["action"] = "failed"
                    doc["error"] = exc.message
                    line += f"; not rotated: {exc.diagnostics()}"
                    code = max(code, int(exc.exit_code))
                else:
                    doc["action"] = "skipped" if out.skipped else "rotated"
                    doc["rotation_id"] = out.rotation_id or None
                    doc["message"] = out.message
                    line += f"; {out.message}"
            results.append(doc)
            if fmt != "json":
                click.echo(line)
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
    elif not found:
        click.echo("No leaked secrets.")
    if code:
        click.get_current_context().exit(code)


@click.group(epilog=ROTATE_EPILOG)
def rotations() -> None:
    """List, show, resume and roll back rotations."""


def _row(r: RotationRecord) -> str:
    when = r.updated_at.strftime("%Y-%m-%d %H:%M")
    err = f"  {r.error[:80]}" if r.error else ""
    return f"{r.id:>5}  {r.secret:<30} {r.state:<13} {r.step or '-':<11} {when}{err}"


@rotations.command("list", epilog=ROTATE_EPILOG)
@click.option("--secret", help="Only rotations of this secret.")
@click.option("--in-flight", is_flag=True, help="Only unfinished rotations.")
@click.option("--limit", default=50, show_default=True, help="At most this many.")
@database_option
@format_option("text", "json")
def list_rotations(
    secret: str | None, in_flight: bool, limit: int, database_url: str | None, fmt: str
) -> None:
    """Rotations, newest first."""
    from keyward.inventory.rotations import RotationRepository

    db = open_db(database_url)
    try:
        rows = RotationRepository(db).list(secret=secret, in_flight=in_flight, limit=limit)
    finally:
        db.close()
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    if not rows:
        click.echo("No rotations.")
        return
    click.echo(f"{'id':>5}  {'secret':<30} {'state':<13} {'step':<11} updated (UTC)")
    for r in rows:
        click.echo(_row(r))


@rotations.command("show", epilog=ROTATE_EPILOG)
@click.argument("rotation_id", type=int)
@database_option
@format_option("text", "json")
def show_rotation(rotation_id: int, database_url: str | None, fmt: str) -> None:
    """A rotation's state, steps and versions (fingerprints only)."""
    from keyward.inventory.rotations import RotationRepository

    db = open_db(database_url)
    try:
        r = RotationRepository(db).get(rotation_id, steps=True)
    finally:
        db.close()
    if fmt == "json":
        click.echo(json.dumps(r.to_dict(), indent=2))
        return
    d = r.detail
    lines = [
        f"rotation:     {r.id}",
        f"secret:       {r.secret}",
        f"state:        {r.state} (step {r.step or '-'})",
        f"actor:        {r.actor}",
        f"started:      {r.started_at:%Y-%m-%d %H:%M:%S} UTC",
        f"store:        {d.get('store', '-')} {d.get('store_name', '')}",
        f"versions:     old {d.get('old_version', '-')} -> new {d.get('pending', '-')}",
        f"dependents:   {len(d.get('snapshots', []))} prepared, "
        f"{len(d.get('verified', []))} verified, {len(d.get('restored', []))} restored",
    ]
    if r.finished_at:
        lines.append(f"finished:     {r.finished_at:%Y-%m-%d %H:%M:%S} UTC")
    if r.error:
        lines.append(f"error:        {r.error}")
    lines.extend(f"warning:      {w}" for w in d.get("warnings", []))
    lines.append("steps:")
    for st in r.steps:
        extra = f"  {st.detail.get('error')}" if st.detail.get("error") else ""
        lines.append(f"  {st.started_at:%H:%M:%S} {st.step:<11} {st.state}{extra}")
    click.echo("\n".join(lines))


@rotations.command("resume", epilog=ROTATE_EPILOG)
@click.argument("rotation_id", type=int)
@database_option
@format_option("text", "json")
def resume_rotation(rotation_id: int, database_url: str | None, fmt: str) -> None:
    """Continue an unfinished rotation from its last persisted step."""
    with rotation_session(database_url) as parts:
        out = parts.engine().resume(rotation_id)
        refresh_posture_after(parts)
        _outcome(out, fmt)


@rotations.command("rollback", epilog=ROTATE_EPILOG)
@click.argument("rotation_id", type=int)
@click.option("--reason", default="rolled back by request", help="Recorded in the audit log.")
@database_option
@format_option("text", "json")
def rollback_rotation(rotation_id: int, reason: str, database_url: str | None, fmt: str) -> None:
    """Undo an unfinished rotation: dependents restored, new credential revoked."""
    with rotation_session(database_url) as parts:
        _outcome(parts.engine().rollback(rotation_id, reason), fmt)
