"""Alembic environment for the keyward inventory.

keyward runs migrations in code (``keyward db upgrade``), handing this script an open
connection in ``config.attributes["connection"]``. Run by the ``alembic`` command instead
(``alembic.ini`` at the top of the checkout), it connects to ``sqlalchemy.url`` or, when that
is unset, to the database keyward would use (``KEYWARD_DATABASE_URL`` or the default file,
in ``KEYWARD_DATABASE_SCHEMA`` on PostgreSQL).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from keyward.inventory.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: later migrations use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    from keyward.inventory.db import create_db_engine, normalize_url, resolve_schema, resolve_url

    url = normalize_url(config.get_main_option("sqlalchemy.url") or resolve_url())
    engine = create_db_engine(url, resolve_schema(None, url))  # KEYWARD_DATABASE_SCHEMA
    try:
        with engine.begin() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
