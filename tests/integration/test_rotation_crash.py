"""SIGKILL at every persisted boundary of a rotation (a real subprocess), then resume or
rollback in a fresh process: exactly one credential is current, every dependent holds it,
nothing in use was deleted, and the audit log tells the story."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration._inventory_db import Cli, pg_migrated_url, sqlite_template  # noqa: F401
from tests.integration._rotation_world import SECRET, World, build_world
from tests.integration.test_rotation_engine import audit, rotation_rows

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_crash_driver.py")


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:  # noqa: F811
    path = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def crash(world: World, point: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Kill ``keyward ARGS`` with SIGKILL at an engine checkpoint (``set:before``), or right
    after a provider call returned (``after iam:CreateAccessKey``: no checkpoint there)."""
    call = point.removeprefix("after ")
    where = {"KEYWARD_TEST_CRASH_AFTER_CALL": call} if call != point else {
        "KEYWARD_TEST_CRASH_AT": point}  # fmt: skip
    env = {**world.env, **where, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(DRIVER), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return Cli(capsys)(*args)


# (crash point, what the operator runs afterwards, the state the world must end in)
CASES = [
    ("create:before", "resume", "rotated"),
    ("create:inside", "resume", "rotated"),  # IAM key made, never stored: cleaned, made again
    ("create:inside", "rollback", "old"),  # ... or deleted by the rollback
    # inside create: the key exists, its id not yet recorded (the one candidate is ours)
    ("after iam:CreateAccessKey", "resume", "rotated"),
    ("after iam:CreateAccessKey", "rollback", "old"),
    ("create:stored", "resume", "rotated"),
    ("set:after", "rollback", "old"),
    ("test:before", "resume", "rotated"),
    ("dependents:inside:10", "resume", "rotated"),  # half of the 20 functions updated
    ("dependents:inside:10", "rollback", "old"),
    ("finish:before", "rollback", "old"),
    ("finish:after", "rollback", "rotated"),  # promoted but not recorded: completed instead
    # between Secrets Manager's two calls of promote: AWSCURRENT moved, AWSPENDING still on it
    ("after UpdateSecretVersionStage", "rollback", "rotated"),
    ("after UpdateSecretVersionStage", "resume", "rotated"),
    ("finish:after", "resume", "rotated"),
    ("retire:inside", "resume", "rotated"),  # old key deactivated, not recorded
]


@pytest.mark.parametrize(("point", "then", "expect"), CASES, ids=[f"{p}-{t}" for p, t, _ in CASES])
def test_sigkill_then_resume_or_rollback_leaves_one_working_credential(
    aws: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    point: str,
    then: str,
    expect: str,
) -> None:
    # 20 functions where the crash is among them; a few elsewhere (keeps the suite fast)
    functions = 20 if point.startswith("dependents") else 3
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=functions)
    crash(world, point, "rotate", SECRET)
    (row,) = rotation_rows(world)
    assert row["state"] in ("in_progress", "retiring")
    rc, _out, err = run_cli(capsys, "rotations", then, "1")
    assert rc == 0, err
    cur = world.assert_consistent()
    (row,) = rotation_rows(world)
    actions = audit(world)
    assert ("rotation.resume", "ok") in actions
    if expect == "rotated":
        assert cur != world.old
        assert row["state"] == "finished", row
        assert world.keys() == [(cur["access_key_id"], "Active")]
        assert ("rotation.finish", "ok") in actions and ("rotation.retire", "ok") in actions
    else:
        assert cur == world.old
        assert row["state"] == "rolled_back", row
        assert world.keys() == [(world.old["access_key_id"], "Active")]
        assert ("rotation.rollback", "ok") in actions
    if point in ("create:inside", "finish:after"):  # nothing left behind blocks the next one
        rc, _out, err = run_cli(capsys, "rotate", SECRET)
        assert rc == 0, err
        world.assert_consistent()


def test_a_rollback_after_a_crash_before_create_keeps_a_key_a_person_made_meanwhile(
    aws: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=1)
    crash(world, "create:before", "rotate", SECRET)  # CreateAccessKey never called
    person = world.client("iam").create_access_key(UserName="app")["AccessKey"]["AccessKeyId"]
    rc, _out, err = run_cli(capsys, "rotations", "rollback", "1")
    assert rc == 0, err
    assert rotation_rows(world)[0]["state"] == "rolled_back"
    assert world.keys() == sorted([(world.old["access_key_id"], "Active"), (person, "Active")])
    assert world.current() == world.old


@pytest.mark.parametrize("point", ["rollback:inside", "rollback:discarded"])
def test_sigkill_inside_a_rollback_then_resume_completes_it(
    aws: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    point: str,
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=3)
    crash(world, "dependents:inside:2", "rotate", SECRET)
    crash(world, point, "rotations", "rollback", "1")
    (row,) = rotation_rows(world)
    assert row["state"] == "rolling_back"
    rc, _out, err = run_cli(capsys, "rotations", "resume", "1")
    assert rc == 0, err
    assert world.assert_consistent() == world.old
    assert rotation_rows(world)[0]["state"] == "rolled_back"


@pytest.mark.parametrize("point", ["dependents:inside:10", "finish:after"])
def test_sigkill_on_postgresql_then_resume_completes_the_rotation(
    aws: Any,
    pg_migrated_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    point: str,
) -> None:
    from tests.integration._inventory_db import _empty_postgres

    _empty_postgres(pg_migrated_url)
    functions = 20 if point.startswith("dependents") else 3
    world = build_world(aws, pg_migrated_url, tmp_path, monkeypatch, functions=functions)
    crash(world, point, "rotate", SECRET)
    rc, _out, err = run_cli(capsys, "rotations", "resume", "1")
    assert rc == 0, err
    assert world.assert_consistent() != world.old
    assert rotation_rows(world)[0]["state"] == "finished"
