"""PostgreSQL as people set it up: no CREATE on schema public (the default since PostgreSQL 15),
a database that already has a ``secrets`` table of someone else's, and keyward in its own
schema (``[inventory] schema`` / ``KEYWARD_DATABASE_SCHEMA``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from _inventory_db import Cli

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class PgWorld:
    admin_url: str  # the superuser, on the test database
    user_url: str  # an ordinary login role, on the same database
    role: str
    database: str

    def admin(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def tables(self, schema: str) -> set[str]:
        engine = sa.create_engine(self.admin_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            return set(sa.inspect(engine).get_table_names(schema=schema))
        finally:
            engine.dispose()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[PgWorld]:
    """A new database owned by the superuser and a login role that only may connect: what a
    DBA hands an application on PostgreSQL 15+."""
    import psycopg

    suffix = uuid.uuid4().hex[:10]
    role, name = f"kw_app_{suffix}", f"keyward_setup_{suffix}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')  # type: ignore[arg-type]
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    base, _ = postgres_url.rsplit("/", 1)
    host = base.split("@", 1)[1]
    try:
        yield PgWorld(f"{base}/{name}", f"postgresql://{role}@{host}/{name}", role, name)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')  # type: ignore[arg-type]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.setenv("KEYWARD_ACTOR", "tester")
    monkeypatch.delenv("KEYWARD_DATABASE_SCHEMA", raising=False)
    return Cli(capsys)


def _one_sentence(err: str) -> str:
    assert err.count("\n") == 1, err
    assert err.startswith("keyward: error: "), err
    for noise in ("Traceback", "internal error", "[SQL", "ProgrammingError", "LINE "):
        assert noise not in err, err
    return err


def test_no_create_on_schema_public_names_the_privilege_and_the_way_out(
    pg: PgWorld, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYWARD_DATABASE_URL", pg.user_url)
    rc, _, err = cli("inventory", "list")
    assert rc == 3
    err = _one_sentence(err)
    assert "CREATE" in err and "schema public" in err and pg.role in err, err
    assert "[inventory] schema" in err, err
    assert pg.tables("public") == set()


def test_inventory_schema_setting_keeps_keyward_in_its_own_schema(
    pg: PgWorld, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pg.admin(f'CREATE SCHEMA keyward AUTHORIZATION "{pg.role}"')
    config = tmp_path / "keyward.toml"
    config.write_text(f'[inventory]\ndatabase_url = "{pg.user_url}"\nschema = "keyward"\n')
    rc, _, err = cli("--config", str(config), "inventory", "add", "prod/db", "--owner", "ann")
    assert rc == 0, err
    rc, out, err = cli("--config", str(config), "inventory", "list", "--format", "json")
    assert rc == 0 and "prod/db" in out, err
    assert {"secrets", "alembic_version", "audit_events"} <= pg.tables("keyward")
    assert pg.tables("public") == set()

    # The schema's tables match the models exactly (autogenerate finds nothing to do).
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from keyward.inventory.db import connect, normalize_url
    from keyward.inventory.models import Base

    db = connect(normalize_url(pg.user_url), schema="keyward")
    try:
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        db.close()


def test_schema_from_the_environment_is_created_when_the_user_may(
    pg: PgWorld, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.admin(f'GRANT CREATE ON DATABASE "{pg.database}" TO "{pg.role}"')
    monkeypatch.setenv("KEYWARD_DATABASE_URL", pg.user_url)
    monkeypatch.setenv("KEYWARD_DATABASE_SCHEMA", "kw_inventory")
    rc, _, err = cli("inventory", "add", "ci/token")
    assert rc == 0, err
    assert "secrets" in pg.tables("kw_inventory")


def test_missing_schema_the_user_may_not_create_is_named(
    pg: PgWorld, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYWARD_DATABASE_URL", pg.user_url)
    monkeypatch.setenv("KEYWARD_DATABASE_SCHEMA", "kw_missing")
    rc, _, err = cli("inventory", "list")
    assert rc == 3
    err = _one_sentence(err)
    assert "kw_missing" in err and "CREATE SCHEMA" in err and pg.role in err, err


def test_someone_elses_secrets_table_is_named_and_left_alone(
    pg: PgWorld, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.admin(
        "CREATE TABLE secrets (id int PRIMARY KEY, label text)",
        "INSERT INTO secrets VALUES (1, 'theirs')",
    )
    admin_db = pg.admin_url
    monkeypatch.setenv("KEYWARD_DATABASE_URL", admin_db)
    rc, _, err = cli("inventory", "list")
    assert rc == 2
    err = _one_sentence(err)
    assert "secrets" in err and "[inventory] schema" in err, err
    assert pg.tables("public") == {"secrets"}  # nothing created beside it, nothing changed

    monkeypatch.setenv("KEYWARD_DATABASE_SCHEMA", "keyward")
    rc, _, err = cli("inventory", "add", "prod/db")
    assert rc == 0, err
    assert "secrets" in pg.tables("keyward") and pg.tables("public") == {"secrets"}


def test_another_applications_alembic_version_is_not_called_newer(
    pg: PgWorld, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.admin(
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('3f2a9c1b7d4e')",
    )
    monkeypatch.setenv("KEYWARD_DATABASE_URL", pg.admin_url)
    rc, _, err = cli("inventory", "list")
    assert rc == 2
    err = _one_sentence(err)
    assert "another application" in err and "[inventory] schema" in err, err
    assert "newer" not in err


def test_schema_setting_on_sqlite_is_a_configuration_error(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEYWARD_DATABASE_URL", f"sqlite:///{tmp_path / 'inv.db'}")
    monkeypatch.setenv("KEYWARD_DATABASE_SCHEMA", "keyward")
    rc, _, err = cli("inventory", "list")
    assert rc == 2
    assert "KEYWARD_DATABASE_SCHEMA" in _one_sentence(err) and "PostgreSQL" in err


def test_schema_name_that_is_not_an_identifier_is_refused(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setenv("KEYWARD_DATABASE_URL", postgres_url)
    monkeypatch.setenv("KEYWARD_DATABASE_SCHEMA", "x; DROP TABLE secrets")
    rc, _, err = cli("inventory", "list")
    assert rc == 2
    assert "KEYWARD_DATABASE_SCHEMA" in _one_sentence(err)
