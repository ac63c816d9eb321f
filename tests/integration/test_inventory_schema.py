"""The inventory schema and its migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from _inventory_db import *  # noqa: F403
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from keyward.inventory import models as m
from keyward.inventory.db import Database, connect, open_database
from keyward.inventory.errors import (
    DatabaseCorrupt,
    DatabaseTooNew,
    DatabaseUnavailable,
    RotationInFlight,
)
from keyward.inventory.migrate import (
    SCHEMA_HEAD,
    downgrade_to,
    head_revision,
    status,
    upgrade_to,
)
from keyward.inventory.service import Inventory

pytestmark = pytest.mark.integration


def _keyward(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyward", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_models_and_migration_head_agree(database: Database) -> None:
    with database.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, m.Base.metadata)
    assert diff == []


def test_the_fast_schema_check_knows_the_real_head() -> None:
    assert head_revision() == SCHEMA_HEAD


def test_upgrade_downgrade_upgrade_round_trip(fresh_db_url: str) -> None:
    db = connect(fresh_db_url)
    try:
        assert status(db).current is None
        assert upgrade_to(db).current == head_revision()
        assert downgrade_to(db, "base").current is None
        tables = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert tables == set()
        assert upgrade_to(db).current == head_revision()
        Inventory(db).add_secret("after-round-trip", "random")
        assert Inventory(db).get_secret("after-round-trip").kind == "random"
    finally:
        db.close()


def test_the_accounts_migration_takes_each_rows_account_from_its_arn(fresh_db_url: str) -> None:
    db = connect(fresh_db_url)
    try:
        upgrade_to(db, "0002")
        now = datetime.now(UTC).replace(tzinfo=None)
        sm = "arn:aws:secretsmanager:us-east-1:111111111111:secret:app/db-AbCdEf"
        fn = "arn:aws:lambda:eu-west-1:222222222222:function:orders"
        user = "arn:aws:iam::333333333333:user/app"
        with db.engine.begin() as conn:
            for i, (name, store, ref, attrs) in enumerate(
                [
                    ("sm", "aws-secretsmanager", sm, "{}"),
                    ("iam", "aws-iam", "AKIAEXAMPLEKEYID0001", f'{{"user_arn": "{user}"}}'),
                    ("vault", "vault-kv", "secret/app", "{}"),
                ],
                start=1,
            ):
                conn.execute(
                    sa.text(
                        "INSERT INTO secrets (id, name, kind, store, reference, tags, attributes,"
                        " status, source, created_at, updated_at) VALUES (:i, :n, 'generic', :s,"
                        " :r, '{}', :a, 'active', 'manual', :t, :t)"
                    ),
                    {"i": i, "n": name, "s": store, "r": ref, "a": attrs, "t": now},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO dependents (secret_id, kind, target, attributes, created_at) "
                    "VALUES (1, 'aws-lambda', :t, '{}', :now), "
                    "(1, 'aws-lambda', 'bare', '{}', :now)"
                ),
                {"t": fn, "now": now},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO findings (identity, target, rule_id, severity, source, resource,"
                    ' line, "column", preview, fingerprint, first_seen_at, last_seen_at, state,'
                    " confidence) VALUES ('x', 'lambda', 'r', 'high', 'lambda', :fn, 0, 0, 'p',"
                    " 'f', :now, :now, 'open', 'high')"
                ),
                {"fn": fn, "now": now},
            )
        upgrade_to(db)
        with db.engine.connect() as conn:
            secrets = dict(conn.execute(sa.text("SELECT name, account FROM secrets")).all())
            deps = dict(conn.execute(sa.text("SELECT target, account FROM dependents")).all())
            # 0004: rows typed before discovery existed are manual and active
            origins = set(conn.execute(sa.text("SELECT origin, status FROM dependents")).all())
            found = conn.execute(sa.text("SELECT account FROM findings")).scalar_one()
        assert secrets == {"sm": "111111111111", "iam": "333333333333", "vault": None}
        assert deps == {fn: "222222222222", "bare": None}
        assert origins == {("manual", "active")}
        assert found == "222222222222"
    finally:
        db.close()


def test_first_use_creates_and_migrates_the_database(fresh_db_url: str) -> None:
    db = open_database(url=fresh_db_url)
    try:
        assert status(db).up_to_date
        assert status(db).migrated_by is not None
    finally:
        db.close()


def test_default_database_is_a_private_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    env = {"KEYWARD_DATA_DIR": str(tmp_path / "data")}
    result = _keyward("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "data" / "inventory.db"
    assert path.is_file()
    assert path.stat().st_mode & 0o077 == 0


def test_timestamps_come_back_utc_aware(inventory: Inventory) -> None:
    created = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    inventory.add_secret("ts", "random", created_at=created, max_age_seconds=86400)
    rec = inventory.get_secret("ts")
    assert rec.created_at == created
    assert rec.created_at.tzinfo is not None
    assert rec.rotation_due_at == created + timedelta(days=1)


def test_at_most_one_rotation_in_flight_per_secret(inventory: Inventory) -> None:
    from keyward.inventory.rotations import RotationRepository
    from keyward.rotation.ports import AuditEntry, RotationDetail

    inventory.add_secret("db-password", "postgres-password")
    repo = RotationRepository(inventory.db)
    secret = repo.rotatable("db-password")
    detail = RotationDetail(token="t", store="vault-kv", store_name="db-password")
    first = repo.start(secret, detail, AuditEntry("rotation.start")).id
    with pytest.raises(RotationInFlight):
        repo.start(secret, detail, AuditEntry("rotation.start"))
    # Enforced by the database itself, not only by RotationRepository.start.
    with inventory.db.session() as s:
        sid = s.scalar(sa.select(m.Secret.id).where(m.Secret.name == "db-password"))
    with pytest.raises(sa.exc.IntegrityError), inventory.db.session() as s:
        s.add(m.Rotation(secret_id=sid, state="create", actor="x", detail={}))
    with inventory.db.session() as s:
        rot = s.get(m.Rotation, first)
        assert rot is not None
        rot.state = "rolled_back"
    second = repo.start(secret, detail, AuditEntry("rotation.start")).id
    assert second != first


def test_audit_events_are_append_only(inventory: Inventory, database: Database) -> None:
    inventory.add_secret("audited", "random")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), database.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_events SET outcome = 'failed'"))
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), database.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_events"))
    if database.dialect == "postgresql":
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with database.engine.begin() as c:
                c.execute(sa.text("TRUNCATE audit_events"))
    events = inventory.audit_events()
    assert [(e.action, e.subject, e.outcome) for e in events] == [("secret.add", "audited", "ok")]


def test_database_migrated_by_a_newer_keyward_is_refused(fresh_db_url: str) -> None:
    db = connect(fresh_db_url)
    upgrade_to(db)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
        conn.execute(
            sa.text("UPDATE keyward_schema SET value = '9.1.0' WHERE key = 'keyward_version'")
        )
    db.close()
    with pytest.raises(DatabaseTooNew) as err:
        open_database(url=fresh_db_url)
    text = err.value.diagnostics()
    assert "0099" in text and "keyward 9.1.0 or later" in text
    result = _keyward("db", "upgrade", "--database", fresh_db_url)
    assert result.returncode == 3
    assert "9.1.0" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_postgres_names_host_and_port_and_exits_3() -> None:
    from conftest import free_port

    port = free_port()
    url = f"postgresql://keyward:hunter2secret@127.0.0.1:{port}/inventory"
    with pytest.raises(DatabaseUnavailable) as err:
        open_database(url=url)
    assert f"127.0.0.1:{port}" in err.value.diagnostics()
    result = _keyward("db", "current", env={"KEYWARD_DATABASE_URL": url})
    assert result.returncode == 3
    assert f"127.0.0.1:{port}" in result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all\n" * 100, b"SQLite format 3\x00" + b"\xff" * 8000],
    ids=["not-sqlite", "damaged-sqlite"],
)
def test_corrupted_sqlite_file_is_refused_and_left_untouched(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "inventory.db"
    path.write_bytes(content)
    with pytest.raises(DatabaseCorrupt):
        open_database(url=f"sqlite:///{path}")
    for args in (("db", "current"), ("db", "upgrade")):
        result = _keyward(*args, "--database", f"sqlite:///{path}")
        assert result.returncode == 3, result.stderr
        assert "not a valid SQLite database" in result.stderr
        assert "Traceback" not in result.stderr
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) in (
        ["inventory.db"],
        ["inventory.db", "inventory.db.lock"],
    )


def test_two_upgrades_at_once_both_succeed(fresh_db_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "keyward", "db", "upgrade", "--database", fresh_db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    db = connect(fresh_db_url)
    try:
        assert status(db).current == head_revision()
    finally:
        db.close()


def test_db_current_reports_revision_as_json(db_url: str) -> None:
    import json

    result = _keyward("db", "current", "--format", "json", "--database", db_url)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["current"] == head_revision() and doc["up_to_date"] is True


def test_database_url_from_the_config_file(tmp_path: Path) -> None:
    target = tmp_path / "from-config.db"
    config = tmp_path / "keyward.toml"
    config.write_text(f'[inventory]\ndatabase_url = "sqlite:///{target}"\n')
    result = _keyward("--config", str(config), "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert target.is_file() and str(target) in result.stdout


def test_postgres_login_refused_says_what_the_server_answered(postgres_url: str) -> None:
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    host = postgres_url.rsplit("/", 1)[0].split("@", 1)[1]
    url = f"postgresql://{role}:hunter2secret@{host}/test"
    result = _keyward("inventory", "list", env={"KEYWARD_DATABASE_URL": url})
    assert result.returncode == 3
    assert f'role "{role}" does not exist' in result.stderr
    assert "did not answer" not in result.stderr and "hunter2secret" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_sqlite_url_in_a_missing_directory_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    result = _keyward(
        "inventory", "list", env={"KEYWARD_DATABASE_URL": f"sqlite:///{missing}/x.db"}
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr and "does not exist" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "no").exists()
