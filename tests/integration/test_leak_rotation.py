"""A leak is a reason to rotate now, on moto (credential checking on, inactive keys refused):
an IAM key of Secrets Manager secret ``prod/aws`` held by Lambda functions is found in their
environment by ``scan --aws-lambda --record``; the daemon rotates it at once (a 7-day grace
period notwithstanding), deletes the leaked key at once, the findings become remediated, and
a re-scan finds the old key nowhere and sets nothing off. Also: ``rotate --leaked``, a
leaked secret nobody can rotate, and two daemons on PostgreSQL seeing the same leak."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from keyward.cli.common import fingerprint_key
from keyward.core.config import load_config
from keyward.core.redaction import Fingerprinter
from keyward.inventory.fields import record_fields
from keyward.rotation.protocols import SecretValue
from tests.integration._inventory_db import Cli, pg_migrated_url, sqlite_template  # noqa: F401
from tests.integration._rotation_world import SECRET, World, build_world
from tests.integration.test_rotation_faults import Hook

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:  # noqa: F811
    path = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def know_current_version(world: World) -> int:
    """What `discover --fingerprint-values` records: the store's current version of prod/aws
    and a keyed fingerprint of each of its fields."""
    fp = Fingerprinter(fingerprint_key(load_config(world.config)))
    stages = world.stages()
    (current,) = [v for v, s in stages.items() if "AWSCURRENT" in s]
    inv = world.inventory()
    try:
        value = SecretValue(world.old)
        version = inv.add_version(
            SECRET, identifier=current, fingerprint=value.fingerprint(fp), stage="current"
        )
        with inv.db.session() as s:
            sid = inv.get_secret(SECRET).id
            fields = {k: fp.fingerprint(v) for k, v in world.old.items()}
            record_fields(s, sid, version.id, fields)
    finally:
        inv.db.close()
    return version.id


def scan(cli: Cli) -> str:
    rc, out, err = cli("scan", "--aws-lambda", "--region", "us-east-1", "--record")
    assert rc == 1, err
    return out + err


def rows(world: World, sql: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(world.db_url)
    with engine.connect() as conn:
        out = [dict(r._mapping) for r in conn.execute(sa.text(sql))]
    engine.dispose()
    return out


def test_a_leaked_key_is_rotated_by_the_daemon_and_deleted_at_once_and_stays_remediated(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=2, grace_period="7d")
    hook = Hook()
    monkeypatch.setenv("KEYWARD_WEBHOOK_URL", hook.url)
    try:
        vid = know_current_version(world)
        said = scan(cli)
        assert f"'{SECRET}' leaked: its current version is in 2 findings" in said, said
        assert "due for rotation now" in said
        leaked = rows(world, f"SELECT id, state, version_id FROM findings WHERE version_id={vid}")
        assert len(leaked) == 2 and {f["state"] for f in leaked} == {"open"}
        rc, _out, err = cli("daemon", "--once")
        assert rc == 0, err
        # rotated once, finished: the leaked key deleted at once, not in seven days
        (rot,) = rows(world, "SELECT id, state, detail FROM rotations")
        assert rot["state"] == "finished", rot
        cur = world.assert_consistent()
        assert world.keys() == [(cur["access_key_id"], "Active")]
        assert not world.works(world.old)
        found = rows(world, f"SELECT state, remediated_rotation_id, remediated_at FROM findings "
                            f"WHERE version_id={vid}")  # fmt: skip
        assert {(f["state"], f["remediated_rotation_id"]) for f in found} == {
            ("remediated", rot["id"])
        }
        assert all(f["remediated_at"] for f in found)
        # the re-scan finds the new key where the rotation put it (not a leak), the old one
        # nowhere; nothing reopens, nothing leaks, the daemon has nothing to do
        said = scan(cli)
        assert "leaked" not in said, said
        assert {f["state"] for f in rows(world, f"SELECT state FROM findings WHERE "
                                                f"version_id={vid}")} == {"remediated"}  # fmt: skip
        rc, _out, err = cli("daemon", "--once")
        assert rc == 0, err
        assert len(rows(world, "SELECT id FROM rotations")) == 1
        rc, out, err = cli("findings", "list", "--state", "remediated")
        assert rc == 0 and f"remediated (rotation {rot['id']})" in out, out + err
        # audit and webhook: detected, started because of it, remediated; never a value
        actions = [
            (r["action"], r["outcome"])
            for r in rows(world, "SELECT action, outcome FROM audit_events ORDER BY id")
        ]
        for wanted in (("leak.detected", "ok"), ("rotation.start", "ok"),
                       ("leak.remediated", "ok")):  # fmt: skip
            assert actions.count(wanted) == 1, actions
        events = [e["event"] for e in hook.events]
        assert events == ["leak.detected", "rotation.started", "rotation.finished",
                          "rotation.retired", "leak.remediated"], events  # fmt: skip
        assert hook.events[1]["reason"] == "leak"
        assert sorted(hook.events[-1]["findings"]) == sorted(f["id"] for f in leaked)
        text = json.dumps(hook.events) + json.dumps(
            rows(world, "SELECT detail FROM audit_events"), default=str
        )
        for key in (world.old, cur):
            assert key["secret_access_key"] not in text
            assert key["access_key_id"] not in text
    finally:
        hook.close()


def test_rotate_leaked_from_a_terminal_lists_then_rotates_and_says_what_it_cannot(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=1, grace_period="7d")
    know_current_version(world)
    inv = world.inventory()
    try:  # a second leaked secret keyward has no rotator for
        fp = Fingerprinter(fingerprint_key(load_config(world.config)))
        token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
        inv.add_secret("ci/token", "github-token", store="vault", reference="ci/token",
                       fingerprint=fp.fingerprint(token))  # fmt: skip
    finally:
        inv.db.close()
    (tmp_path / "leak").mkdir()
    (tmp_path / "leak" / "ci.py").write_text(f"TOKEN = '{token}'\n")
    rc, _out, err = cli("scan", str(tmp_path / "leak"), "--engine", "re", "--record")
    assert rc == 1, err
    assert "'ci/token' leaked" in err and "its policy is to alert only" in err, err
    scan(cli)
    plan = cli.json("rotate", "--leaked", "--dry-run")
    assert {p["secret"]: p["action"] for p in plan} == {SECRET: "rotate", "ci/token": "none"}
    assert rows(world, "SELECT id FROM rotations") == []  # a dry run changes nothing
    # its own policy says rotate, but nothing can: one sentence, exit 2, nothing half-done
    assert cli("inventory", "update", "ci/token", "--on-leak", "rotate")[0] == 0
    rc, out, err = cli("rotate", "--leaked")
    assert rc == 2, out + err
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert "keyward cannot rotate it: no rotator for its kind 'github-token' is installed" \
        in lines["ci/token"]  # fmt: skip
    assert "the new value is current and the old credential is revoked" in lines[SECRET]
    (rot,) = rows(world, "SELECT secret_id, state FROM rotations")
    assert rot["state"] == "finished"
    cur = world.assert_consistent()
    assert world.keys() == [(cur["access_key_id"], "Active")]
    refused = rows(world, "SELECT outcome, detail FROM audit_events WHERE action='leak.rotate'")
    assert [r["outcome"] for r in refused] == ["refused"]
    # again: the rotated secret is no longer leaked; the other is still said, not retried
    rc, out, _err = cli("rotate", "--leaked")
    assert rc == 2 and SECRET not in out and "ci/token" in out
    assert len(rows(world, "SELECT id FROM rotations")) == 1
    assert token not in out + err


def test_two_daemons_on_postgresql_seeing_the_same_leak_rotate_it_once(
    aws: Any,
    pg_migrated_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    from tests.integration._inventory_db import _empty_postgres
    from tests.integration.test_daemon_scheduler import worker

    _empty_postgres(pg_migrated_url)
    world = build_world(aws, pg_migrated_url, tmp_path, monkeypatch, functions=2,
                        grace_period="7d")  # fmt: skip
    know_current_version(world)
    scan(cli)
    workers = [worker(pg_migrated_url, world.config, f"w{i}") for i in range(2)]
    barrier = threading.Barrier(2)
    done: dict[str, list[str]] = {w.holder: [] for w in workers}

    def loop(w: Any) -> None:
        barrier.wait()
        for _ in range(3):
            done[w.holder] += w.run_once()

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for w in workers:
        w.repo.db.close()
    (rot,) = rows(world, "SELECT state FROM rotations")
    assert rot["state"] == "finished"
    assert sorted(o for outs in done.values() for o in outs) == ["finished"], done
    stages = world.stages()
    assert len(stages) == 2, stages  # one rotation: current + previous
    cur = world.assert_consistent()
    assert world.keys() == [(cur["access_key_id"], "Active")]
    assert {f["state"] for f in rows(world, "SELECT state FROM findings WHERE "
                                            "version_id IS NOT NULL AND secret_id IS NOT NULL "
                                            "AND state <> 'open'")} == {"remediated"}  # fmt: skip
