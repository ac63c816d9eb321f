"""``keyward daemon``: leases and SKIP LOCKED on PostgreSQL (two workers never rotate the same
secret twice), /healthz and /metrics, JSON logs, SIGTERM parks the current step."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from keyward.core.config import load_config
from keyward.core.redaction import Fingerprinter
from keyward.inventory.db import open_database
from keyward.inventory.rotations import RotationRepository
from keyward.inventory.service import Inventory
from keyward.providers import Providers
from keyward.rotation.engine import RotationEngine
from keyward.rotation.registry import PluginContext
from keyward.rotation.scheduler import Metrics, Worker
from keyward.rotation.wiring import RotationSettings, Wiring
from tests.conftest import free_port
from tests.integration._inventory_db import *  # noqa: F403
from tests.integration._inventory_db import _empty_postgres

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_crash_driver.py")


def due_secrets(db_url: str, count: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    inv = Inventory(open_database(url=db_url), actor="tester")
    long_ago = datetime.now(UTC) - timedelta(days=3)
    for i in range(count):
        sm.create_secret(Name=f"daemon/s{i}", SecretString=json.dumps({"value": "v" * 40}))
        inv.add_secret(
            f"s{i}", "random", store="aws-secretsmanager", reference=f"daemon/s{i}",
            max_age_seconds=86400, created_at=long_ago,
        )  # fmt: skip
    inv.db.close()
    config = tmp_path / "keyward.toml"
    config.write_text('[rotation]\ngrace_period = "0s"\nlease_ttl = "60s"\n')
    monkeypatch.setenv("KEYWARD_DATABASE_URL", db_url)
    monkeypatch.setenv("KEYWARD_CONFIG", str(config))
    return config


def worker(db_url: str, config: Path, holder: str) -> Worker:
    from keyward.cli.common import fingerprint_key

    cfg = load_config(config)
    fp = Fingerprinter(fingerprint_key(cfg))  # the installation's key, as the CLI uses
    db = open_database(url=db_url)
    repo = RotationRepository(db, actor=holder)
    settings = RotationSettings.from_config(cfg)

    def make(stop: threading.Event) -> RotationEngine:
        wiring = Wiring(cfg, PluginContext(Providers.from_config(cfg), fp))
        return RotationEngine(repo, wiring, fp, settings, holder=holder, stop=stop)

    return Worker(repo, make, holder, lease_ttl=settings.lease_ttl, batch=3, metrics=Metrics())


def rotations(db_url: str) -> list[tuple[str, str, str]]:
    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        rows = c.execute(
            sa.text(
                "SELECT s.name, r.state, r.actor FROM rotations r JOIN secrets s "
                "ON s.id = r.secret_id ORDER BY s.name"
            )
        )
        out = [(a, b, c_) for a, b, c_ in rows]
    engine.dispose()
    return out


def test_two_workers_on_postgresql_never_rotate_the_same_secret_twice(
    aws: Any,
    pg_migrated_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _empty_postgres(pg_migrated_url)
    config = due_secrets(pg_migrated_url, 8, tmp_path, monkeypatch)
    workers = [worker(pg_migrated_url, config, f"w{i}") for i in range(2)]
    barrier = threading.Barrier(2)
    done: dict[str, list[str]] = {w.holder: [] for w in workers}

    def loop(w: Worker) -> None:
        barrier.wait()
        for _ in range(6):
            done[w.holder] += w.run_once()

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    rows = rotations(pg_migrated_url)
    assert sorted(r[0] for r in rows) == [f"s{i}" for i in range(8)]  # once each
    assert {r[1] for r in rows} == {"finished"}
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    for i in range(8):
        stages = sm.describe_secret(SecretId=f"daemon/s{i}")["VersionIdsToStages"]
        assert len(stages) == 2  # exactly one rotation: current + previous
    assert all(done[w.holder] for w in workers), done  # both did some of the work


def test_skip_locked_claims_other_rows_instead_of_waiting_on_postgresql(
    aws: Any,
    pg_migrated_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _empty_postgres(pg_migrated_url)
    due_secrets(pg_migrated_url, 3, tmp_path, monkeypatch)
    locker = sa.create_engine(pg_migrated_url)
    repo = RotationRepository(open_database(url=pg_migrated_url), actor="t")
    with locker.begin() as c:
        c.execute(sa.text("SELECT id FROM secrets WHERE name IN ('s0', 's1') FOR UPDATE"))
        started = time.monotonic()
        claimed = repo.claim_due_secrets("w1", timedelta(seconds=60))
        assert time.monotonic() - started < 2  # did not wait for the lock
        assert claimed == ("s2",)
    assert set(repo.claim_due_secrets("w2", timedelta(seconds=60))) == {"s0", "s1"}
    assert repo.claim_due_secrets("w3", timedelta(seconds=60)) == ()  # all leased now
    repo.db.close()
    locker.dispose()


def test_a_live_lease_keeps_others_out_and_an_expired_one_is_taken_over(
    pg_migrated_url: str,
) -> None:
    _empty_postgres(pg_migrated_url)
    repo = RotationRepository(open_database(url=pg_migrated_url), actor="t")
    assert repo.acquire_lease("x", "a", timedelta(seconds=60))
    assert not repo.acquire_lease("x", "b", timedelta(seconds=60))
    assert repo.acquire_lease("x", "a", timedelta(seconds=60))  # renewal
    assert repo.acquire_lease("y", "b", timedelta(seconds=-1))  # already expired
    assert repo.acquire_lease("y", "c", timedelta(seconds=60))
    repo.release_lease("x", "a")
    assert repo.acquire_lease("x", "b", timedelta(seconds=60))
    repo.db.close()


def test_a_due_secret_in_no_store_plugin_is_not_claimed_by_a_tick(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a discovered IAM key (store "aws-iam", kind "aws-iam-access-key") given a policy: its
    # kind has a rotator, but no store plugin holds it, so a rotation could never start
    inv = Inventory(open_database(url=sqlite_url), actor="tester")
    key = inv.add_secret(
        "aws-iam/app/AKIAEXAMPLE", "aws-iam-access-key", store="aws-iam",
        reference="AKIAEXAMPLE", max_age_seconds=86400,
        created_at=datetime.now(UTC) - timedelta(days=3),
    )  # fmt: skip
    inv.db.close()
    config = tmp_path / "keyward.toml"
    config.write_text('[rotation]\nlease_ttl = "60s"\n')
    w = worker(sqlite_url, config, "w1")
    assert w.run_once() == []
    assert rotations(sqlite_url) == []
    # no lease was left behind either: another holder can take the secret's lease at once
    assert w.repo.acquire_lease(f"rotate:{key.id}", "w2", timedelta(seconds=60))
    w.repo.db.close()


# ------------------------------------------------------------------------ the process
def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), *args],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def test_daemon_serves_health_and_metrics_rotates_due_secrets_and_stops_on_sigterm(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    due_secrets(sqlite_url, 2, tmp_path, monkeypatch)
    port = free_port()
    proc = _start(["daemon", "--port", str(port), "--interval", "0.5"], dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        status, metrics = 0, ""
        while time.monotonic() < deadline:
            try:
                status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
                continue
            # the posture follows the tick's rotations: no longer long-lived, still ownerless
            if 'keyward_rotations_total{outcome="finished"} 2.0' in metrics and (
                'keyward_secrets_breaches{breach="long-lived"} 0.0' in metrics
            ):
                break
            time.sleep(0.2)
        assert 'keyward_rotations_total{outcome="finished"} 2.0' in metrics, metrics
        assert 'keyward_secrets_breaches{breach="long-lived"} 0.0' in metrics, metrics
        assert 'keyward_secrets_breaches{breach="no-owner"} 2.0' in metrics, metrics
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert _get(f"http://127.0.0.1:{port}/nope")[0] == 404
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert all(line.startswith("{") for line in err.splitlines()), err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # JSON logs only
    messages = [doc["message"] for doc in lines]
    assert any("received SIGTERM" in m for m in messages)
    assert any(m.startswith("Rotated 's0'") for m in messages)
    assert {r[1] for r in rotations(sqlite_url)} == {"finished"}
    assert "v" * 40 not in err


def test_sigterm_mid_rotation_parks_the_step_and_resume_finishes_it(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    due_secrets(sqlite_url, 1, tmp_path, monkeypatch)
    env = {**os.environ, "KEYWARD_TEST_SIGTERM_AT": "set:before"}
    proc = _start(["daemon", "--port", "0", "--interval", "0.5"], env)
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    messages = [json.loads(line)["message"] for line in err.splitlines() if line.strip()]
    assert any("parked before" in m for m in messages), messages
    assert rotations(sqlite_url) == [("s0", "in_progress", rotations(sqlite_url)[0][2])]
    repo = RotationRepository(open_database(url=sqlite_url), actor="t")
    events = [e.action for e in repo.inventory.audit_events("s0")]
    assert "rotation.park" in events and "rotation.set" in events  # set finished first
    assert repo.lease("rotate:1") is None  # released: another replica may resume it
    repo.db.close()
    w = worker(sqlite_url, tmp_path / "keyward.toml", "w2")
    assert w.run_once() == ["finished"]
    assert rotations(sqlite_url)[0][1] == "finished"


def test_a_daemon_killed_mid_rotation_is_resumed_by_another_once_its_lease_expires(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = due_secrets(sqlite_url, 1, tmp_path, monkeypatch)
    config.write_text(config.read_text().replace('lease_ttl = "60s"', 'lease_ttl = "2s"'))
    env = {**os.environ, "KEYWARD_TEST_CRASH_AT": "test:before"}
    proc = _start(["daemon", "--port", "0", "--interval", "0.5"], env)
    try:
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert rotations(sqlite_url)[0][1] == "in_progress"
    other = worker(sqlite_url, config, "replica-2")
    assert other.run_once() == []  # the dead daemon's lease is still live
    time.sleep(2.2)
    assert other.run_once() == ["finished"]
    repo = RotationRepository(open_database(url=sqlite_url), actor="t")
    events = [(e.action, e.actor) for e in repo.inventory.audit_events("s0")]
    repo.db.close()
    assert ("rotation.set", "replica-2") not in events  # set (persisted) is not repeated...
    assert ("rotation.test", "replica-2") in events  # ...the next step is


def test_a_tick_claims_again_while_its_batches_come_back_full(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = due_secrets(sqlite_url, 7, tmp_path, monkeypatch)
    w = worker(sqlite_url, config, "w1")  # batches of 3
    assert w.run_once() == ["finished"] * 7  # 3 + 3 + 1, in one tick
    assert w.metrics.registry.get_sample_value("keyward_ticks_total") == 1
    assert [r[1] for r in rotations(sqlite_url)] == ["finished"] * 7
    assert w.run_once() == []  # nothing due: one claim, and the tick ends
