"""``keyward adopt``: put a hardcoded secret (a recorded finding) into a secret store."""

from __future__ import annotations

import json
from pathlib import Path

import click

from keyward.cli.app import get_state
from keyward.cli.common import format_option, rules_option
from keyward.cli.db import database_option

ADOPT_EPILOG = """\b
Examples:
  keyward findings list                     the findings recorded by scan --record
  keyward adopt 42 --store aws-secretsmanager --name prod/orders/aws --owner alice
  keyward adopt 42 --store aws-secretsmanager --name prod/orders/aws --rotate --reference
  keyward adopt 7 --store vault-kv --name app/db --kind postgres-password --format json

\b
Exit codes: 0 adopted, 2 refused before any change (no such finding, name taken in the
inventory or the store, a kind with no rotator for --rotate, ...), 3 the value is no longer
where it was found (changed, removed, function deleted), a backend unavailable or refused, or
a step after the store write failed (the message says what exists).
"""


@click.command(epilog=ADOPT_EPILOG)
@click.argument("finding_id", type=int)
@click.option(
    "--store",
    type=click.Choice(["aws-secretsmanager", "vault-kv"]),
    required=True,
    help="Where to keep the secret.",
)
@click.option("--name", required=True, help="The secret's name in the store and the inventory.")
@click.option(
    "--kind",
    default=None,
    help="Its rotator (default: inferred from the finding's rule, e.g. aws-iam-access-key; "
    "generic: kept without a rotator; random: an application secret keyward may replace).",
)
@click.option("--owner", default=None, help="Who answers for it (a tag in the store too).")
@click.option("--team", default=None, help="Its team (a tag in the store too).")
@click.option("--contact", default=None, help="How to reach the owner (a tag in the store too).")
@click.option("--rotate", is_flag=True, help="Rotate it right away: it has leaked.")
@click.option(
    "--reference",
    is_flag=True,
    help="Switch Lambda functions that hold the value to a reference to the new secret "
    "(KEYWARD_SECRET_ARN / KEYWARD_SECRET_PATH; their code must load it).",
)
@rules_option
@database_option
@format_option("text", "json")
def adopt(
    finding_id: int,
    store: str,
    name: str,
    kind: str | None,
    owner: str | None,
    team: str | None,
    contact: str | None,
    rotate: bool,
    reference: bool,
    rule_files: tuple[Path, ...],
    database_url: str | None,
    fmt: str,
) -> None:
    """Adopt the hardcoded secret of FINDING_ID: re-read its value where it was found, store
    it as a new secret, record it in the inventory with its dependents.

    The value is read again from the finding's location (the Lambda function's live
    configuration, the file line, the .env entry), never from the inventory, and must still
    be the value found. Lambda functions holding the same value become dependents; files are
    never edited: the output says what to replace where.
    """
    from keyward.adopt.service import Adopter, AdoptRequest
    from keyward.cli.common import engine_spec
    from keyward.cli.compose import compose_rotation
    from keyward.cli.db import open_db
    from keyward.cli.rotate import refresh_posture_after

    config = get_state().config
    spec = engine_spec(config, rule_files)
    parts = compose_rotation(config, lambda: open_db(database_url))
    try:
        request = AdoptRequest(
            finding_id=finding_id,
            store=store,
            name=name.strip(),
            kind=kind,
            owner=owner,
            team=team,
            contact=contact,
            rotate=rotate,
            reference=reference,
        )
        result = Adopter(parts, spec.rules()).adopt(request)
        refresh_posture_after(parts)
    finally:
        parts.close()
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo("\n".join(result.lines()))
    for text in result.warnings:
        click.echo(f"warning: {text}", err=True)
