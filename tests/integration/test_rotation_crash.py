"""SIGKILL at every persisted boundary of a rotation (a real subprocess), then resume or
rollback in a fresh process: exactly one credential is current, every dependent holds it,
nothing in use was deleted, and the audit log tells the story. Also between two provider
calls of one plugin method: the IAM rotator's create, Secrets Manager's promote, and the
Vault store's staging writes (migrating an earlier release's stages, discarding in a
rollback; its put and promote writes are killed under readers in test_vault_readers.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import hvac
import pytest

from tests.integration._inventory_db import Cli, pg_migrated_url, sqlite_template  # noqa: F401
from tests.integration._rotation_world import SECRET, build_world
from tests.integration.test_rotation_engine import audit, rotation_rows

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_crash_driver.py")


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:  # noqa: F811
    path = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


class HasEnv(Protocol):
    env: dict[str, str]


def crash(world: HasEnv, point: str, *args: str) -> subprocess.CompletedProcess[str]:
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


# ------------------------------------------------------- Vault: the staging area's own writes
@dataclass
class VaultWorld:
    root: Any  # hvac client with the root token (the test's own checks)
    path: str
    env: dict[str, str]

    def versions(self) -> list[str]:
        meta = self.root.secrets.kv.v2.read_secret_metadata(path=self.path, mount_point="secret")
        return list(meta["data"]["versions"])

    def custom(self) -> dict[str, str]:
        meta = self.root.secrets.kv.v2.read_secret_metadata(path=self.path, mount_point="secret")
        return dict(meta["data"]["custom_metadata"] or {})

    def latest(self) -> str:
        got = self.root.secrets.kv.v2.read_secret_version(
            path=self.path, mount_point="secret", raise_on_deleted_version=True
        )
        return str(got["data"]["data"]["value"])

    def staging_clean(self) -> bool:
        """Nothing pending in the staging secret: no intent, no live staged copy."""
        try:
            meta = self.root.secrets.kv.v2.read_secret_metadata(
                path=f"keyward-staging/secret/{self.path}", mount_point="secret"
            )["data"]
        except hvac.exceptions.InvalidPath:
            return True
        pending = "keyward_pending_token" in (meta["custom_metadata"] or {})
        return not pending and all(v["destroyed"] for v in meta["versions"].values())


OLD_VALUE = "s" * 48


@pytest.fixture
def vault_world(
    openbao: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> VaultWorld:
    from keyward.inventory.db import open_database
    from keyward.inventory.service import Inventory

    root = hvac.Client(url=openbao.addr, token=openbao.token)
    path = f"app/signing-{uuid.uuid4().hex[:8]}"
    root.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"value": OLD_VALUE}, mount_point="secret"
    )
    inv = Inventory(open_database(url=sqlite_url), actor="tester")
    inv.add_secret("app/signing", "random", store="vault", reference=f"secret/data/{path}")
    inv.db.close()
    config = tmp_path / "keyward.toml"
    config.write_text('[rotation]\ngrace_period = "0s"\nlease_ttl = "60s"\n')
    env = {"KEYWARD_DATABASE_URL": sqlite_url, "KEYWARD_CONFIG": str(config),
           "KEYWARD_ACTOR": "tester", "VAULT_ADDR": openbao.addr,
           "VAULT_TOKEN": openbao.token}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return VaultWorld(root, path, dict(os.environ))


@pytest.mark.parametrize(("then", "rotated"), [("resume", True), ("rollback", False)])
def test_sigkill_after_migrating_an_earlier_releases_vault_stages_then_resume_or_rollback(
    vault_world: VaultWorld, capsys: pytest.CaptureFixture[str], then: str, rotated: bool
) -> None:
    w = vault_world
    # an earlier keyward kept the stages in the secret's own custom_metadata
    w.root.secrets.kv.v2.update_metadata(
        path=w.path, mount_point="secret",
        custom_metadata={"keyward_current_version": "1"},
    )  # fmt: skip
    crash(w, "after update metadata", "rotate", "app/signing")  # keys removed, then killed
    assert w.custom() == {} and w.versions() == ["1"]
    rc, _out, err = run_cli(capsys, "rotations", then, "1")
    assert rc == 0, err
    assert (w.latest() != OLD_VALUE) is rotated
    assert w.versions() == (["1", "2"] if rotated else ["1"])
    assert w.staging_clean() and w.custom() == {}


@pytest.mark.parametrize("after", ["destroy staging version*", "clear intent in staging metadata"])
def test_sigkill_inside_a_vault_rollback_between_its_staging_writes_then_resume_completes_it(
    vault_world: VaultWorld, capsys: pytest.CaptureFixture[str], after: str
) -> None:
    w = vault_world
    crash(w, "test:before", "rotate", "app/signing")  # the new value staged, untested
    assert not w.staging_clean() and w.versions() == ["1"]
    crash(w, f"after {after}", "rotations", "rollback", "1")
    rc, _out, err = run_cli(capsys, "rotations", "resume", "1")
    assert rc == 0, err
    assert w.latest() == OLD_VALUE and w.versions() == ["1"]  # the path never gained a version
    assert w.staging_clean()
    rc, _out, err = run_cli(capsys, "rotate", "app/signing")  # nothing left blocks the next
    assert rc == 0, err
    assert w.versions() == ["1", "2"] and w.staging_clean()


# -------------------------------------- rotating again while the previous one is retiring
# (point, extra config, what the operator runs afterwards, the rotations' states at the end)
EARLY = [
    ("retire-early:revoked", "", ("rotate", SECRET), ["finished", "retiring"]),
    ("retire:after", "", ("rotate", SECRET), ["finished", "retiring"]),
    # the old credential not deactivated yet: deactivated, then revoked, in the new run
    ("retire:inside", 'deactivate_after = "1h"\n', ("rotate", SECRET), ["finished", "retiring"]),
    # the new rotation itself crashes after the early retirement: rolled back, the first
    # rotation's new key stays current (its old one is gone for good)
    ("create:inside", "", ("rotations", "rollback", "2"), ["finished", "rolled_back"]),
]


@pytest.mark.parametrize(("point", "extra", "then", "states"), EARLY,
                         ids=[f"{p}-{t[0]}" for p, _e, t, _s in EARLY])  # fmt: skip
def test_sigkill_while_rotating_again_during_retirement_then_resume_leaves_one_credential(
    aws: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    point: str,
    extra: str,
    then: tuple[str, ...],
    states: list[str],
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=2, grace_period="7d")
    if extra:  # [rotation] is the config file's first table
        world.config.write_text(
            world.config.read_text().replace("[rotation]\n", f"[rotation]\n{extra}", 1)
        )
    rc, _out, err = run_cli(capsys, "rotate", SECRET)
    assert rc == 0, err
    first = world.current()
    assert [r["state"] for r in rotation_rows(world)] == ["retiring"]
    crash(world, point, "rotate", SECRET, "--reason", "leaked")
    rc, _out, err = run_cli(capsys, *then)
    assert rc == 0, err
    assert [r["state"] for r in rotation_rows(world)] == states
    if extra:  # the second rotation deactivates its old key (the first's new one) in 1 h
        cur = world.current()
        assert world.works(cur) and world.works(first)
    else:
        cur = world.assert_consistent()
    ids = {k for k, _ in world.keys()}
    assert world.old["access_key_id"] not in ids  # the first rotation's old key: revoked
    if states[-1] == "retiring":
        assert cur not in (first, world.old)
        status = "Active" if extra else "Inactive"
        assert world.keys() == sorted(
            [(first["access_key_id"], status), (cur["access_key_id"], "Active")]
        )
    else:
        assert cur == first and world.keys() == [(first["access_key_id"], "Active")]
    retired = [(a, o) for a, o in audit(world) if a == "rotation.retire"]
    assert ("rotation.retire", "ok") in retired
