"""``keyward db``: create, inspect and migrate the inventory database."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from keyward.cli.app import EPILOG, get_state
from keyward.cli.common import confirm, format_option

if TYPE_CHECKING:
    from keyward.inventory.db import Database

F = TypeVar("F", bound=Callable[..., Any])


def database_option(fn: F) -> F:
    """``--database URL`` (overrides KEYWARD_DATABASE_URL and [inventory] database_url)."""
    return click.option(
        "--database",
        "database_url",
        metavar="URL",
        help="Inventory database URL (default: KEYWARD_DATABASE_URL, [inventory] "
        "database_url, or a SQLite file in the user data directory).",
    )(fn)


def open_db(database_url: str | None, *, migrate: bool = True) -> Database:
    """The inventory for this invocation, created and migrated on first use."""
    from keyward.inventory.db import open_database

    return open_database(get_state().config, database_url, migrate=migrate)


def connect_db(database_url: str | None) -> Database:
    """The inventory database without touching its schema."""
    from keyward.inventory.db import connect, resolve_schema, resolve_url

    config = get_state().config
    url = resolve_url(config, database_url)
    return connect(url, resolve_schema(config, url))


DB_EPILOG = (
    """\b
Examples:
  keyward db upgrade                        create or migrate the inventory
  keyward db current                        show the schema revision
  keyward db current --format json
  KEYWARD_DATABASE_URL=postgresql://keyward@db:5432/keyward keyward db upgrade
  keyward db downgrade base --yes           drop every inventory table (destructive)

"""
    + EPILOG
)


@click.group(epilog=DB_EPILOG)
def db() -> None:
    """Create, inspect and migrate the inventory database.

    The default database is a SQLite file in the user data directory, created and migrated
    on first use by any inventory command. Set KEYWARD_DATABASE_URL (or [inventory]
    database_url) to use PostgreSQL.
    """


@db.command(epilog=DB_EPILOG)
@database_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(database_url: str | None, revision: str) -> None:
    """Create the schema or migrate it to this keyward's version.

    Safe to run from several processes at once: they take a lock and the later ones find
    nothing to do.
    """
    from keyward.inventory.migrate import upgrade_to

    database = connect_db(database_url)
    try:
        st = upgrade_to(database, revision)
    finally:
        database.close()
    click.echo(f"inventory at {database.display_url} is at revision {st.current}")


@db.command(epilog=DB_EPILOG)
@database_option
@format_option("text", "json")
def current(database_url: str | None, fmt: str) -> None:
    """Show the database's schema revision and whether it is up to date."""
    from keyward.inventory.migrate import status

    database = connect_db(database_url)
    try:
        st = status(database)
    finally:
        database.close()
    doc = {
        "database": database.display_url,
        "current": st.current,
        "head": st.head,
        "up_to_date": st.up_to_date,
        "known": st.known,
        "migrated_by": st.migrated_by,
    }
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
        return
    if st.current is None:
        state = "empty (run `keyward db upgrade`, or any inventory command, to create it)"
    elif not st.known:
        state = f"NEWER than this keyward (needs keyward {st.migrated_by or '?'} or later)"
    elif st.up_to_date:
        state = "up to date"
    else:
        state = f"behind (head is {st.head}; run `keyward db upgrade`)"
    click.echo(f"{database.display_url}: revision {st.current or 'none'} - {state}")


@db.command(epilog=DB_EPILOG)
@database_option
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def downgrade(database_url: str | None, revision: str, yes: bool) -> None:
    """Migrate the schema back to REVISION ("base" drops every inventory table).

    Downgrading can delete data; it asks for confirmation unless --yes is given.
    """
    from keyward.inventory.migrate import downgrade_to

    database = connect_db(database_url)
    try:
        if not yes:
            confirm(
                f"Downgrade the inventory at {database.display_url} to {revision}? "
                "Data in dropped tables is lost",
                f"Downgrading the inventory to {revision}",
            )
        st = downgrade_to(database, revision)
    finally:
        database.close()
    click.echo(f"inventory at {database.display_url} is at revision {st.current or 'base'}")
