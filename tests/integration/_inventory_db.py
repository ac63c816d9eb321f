"""Fixtures shared by the inventory tests: every test runs on SQLite and on PostgreSQL.

Import them into a test module with ``from _inventory_db import *  # noqa: F403``.
SQLite tests get a copy of a migrated template file; PostgreSQL tests share one migrated
database per session (from the ``postgres_url`` fixture) and it is emptied before each test.
Tests that need an unmigrated database use ``fresh_db_url``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from keyward.inventory.db import Database, connect, normalize_url, open_database
from keyward.inventory.migrate import upgrade_to
from keyward.inventory.models import Base
from keyward.inventory.service import Inventory

__all__ = [
    "BACKENDS",
    "Cli",
    "cli",
    "database",
    "db_url",
    "fresh_db_url",
    "inventory",
    "pg_migrated_url",
    "sqlite_template",
]

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inventory-template") / "inventory.db"
    db = connect(f"sqlite:///{path}")
    upgrade_to(db)
    db.close()
    return path


@pytest.fixture(scope="session")
def pg_migrated_url(postgres_url: str) -> str:
    url = normalize_url(postgres_url)
    db = connect(url)
    upgrade_to(db)
    db.close()
    return url


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "keyward_schema")
    with engine.begin() as conn:
        # The audit table refuses TRUNCATE through a trigger; replica mode skips triggers.
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty inventory database URL on each backend."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "inventory.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_migrated_url")
    _empty_postgres(url)
    return url


@pytest.fixture(params=BACKENDS)
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, never migrated database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    import psycopg

    base: str = request.getfixturevalue("postgres_url")
    name = f"keyward_fresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield normalize_url(f"{base.rsplit('/', 1)[0]}/{name}")
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = open_database(url=db_url)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def inventory(database: Database) -> Inventory:
    return Inventory(database, actor="tester")


# --------------------------------------------------------------------- the CLI
class Cli:
    """Runs ``keyward`` in this process against the test database."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        import io
        import sys

        from keyward.cli import main

        self.capsys.readouterr()
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            main(list(args))
            rc = 0
        except SystemExit as exc:
            rc = int(exc.code or 0)
        finally:
            sys.stdin = old_stdin
        out, err = self.capsys.readouterr()
        return rc, out, err

    def json(self, *args: str) -> Any:
        import json

        rc, out, err = self(*args, "--format", "json")
        assert rc == 0, err
        return json.loads(out)


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.setenv("KEYWARD_DATABASE_URL", db_url)
    monkeypatch.setenv("KEYWARD_ACTOR", "tester")
    return Cli(capsys)
