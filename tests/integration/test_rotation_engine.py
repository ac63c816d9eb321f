"""The rotation state machine end to end: moto (IAM with credential checking, Secrets Manager,
20 Lambda functions), every test on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration._inventory_db import *  # noqa: F403
from tests.integration._inventory_db import Cli
from tests.integration._rotation_world import SECRET, SM_NAME, World, build_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(
    aws: Any,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> World:
    # the 20-function set-up only where the functions matter (keeps the suite fast)
    many = any(k in request.node.name for k in ("replaces_the_key", "half_way"))
    return build_world(aws, db_url, tmp_path, monkeypatch, functions=20 if many else 3)


def audit(world: World) -> list[tuple[str, str]]:
    inv = world.inventory()
    try:
        events = inv.audit_events(SECRET, limit=1000)
    finally:
        inv.db.close()
    return [(e.action, e.outcome) for e in reversed(events)]


def rotation_rows(world: World) -> list[dict[str, Any]]:
    rc = world.inventory()
    try:
        with rc.db.session() as s:
            rows = s.execute(sa.text("SELECT id, state, step, error FROM rotations ORDER BY id"))
            return [dict(r._mapping) for r in rows]
    finally:
        rc.db.close()


def test_rotation_replaces_the_key_everywhere_and_retires_the_old_one(
    world: World, cli: Cli
) -> None:
    rc, out, err = cli("rotate", SECRET)
    assert rc == 0, err
    assert "new value is current and the old credential is revoked" in out
    cur = world.assert_consistent()
    assert cur["access_key_id"] != world.old["access_key_id"]
    assert world.keys() == [(cur["access_key_id"], "Active")]
    assert not world.works(world.old)
    (row,) = rotation_rows(world)
    assert row["state"] == "finished" and row["error"] is None
    actions = audit(world)
    for step in ("create", "set", "test", "dependents", "finish", "deactivate", "retire"):
        assert (f"rotation.{step}", "ok") in actions, step
    inv = world.inventory()
    try:
        versions = inv.versions(SECRET)
        secret = inv.get_secret(SECRET)
    finally:
        inv.db.close()
    assert [v.stage for v in versions] == ["retired", "current"]
    assert secret.last_rotated_at is not None
    assert secret.rotation_due_at is not None and secret.rotation_due_at > secret.last_rotated_at
    (listed,) = cli.json("rotations", "list")
    assert listed["state"] == "finished" and listed["secret"] == SECRET
    shown = cli.json("rotations", "show", "1")
    assert [st["step"] for st in shown["steps"]] == [
        "create", "set", "test", "dependents", "finish", "retire",
    ]  # fmt: skip
    assert len(shown["detail"]["verified"]) == 20
    rc, out, _ = cli("rotations", "resume", "1")
    assert rc == 0 and "already finished" in out


def test_dry_run_prints_the_plan_and_changes_nothing(world: World, cli: Cli) -> None:
    before = (world.stages(), world.keys(), world.env_of("svc-00"))
    rc, out, err = cli("rotate", SECRET, "--dry-run")
    assert rc == 0, err
    assert "iam:CreateAccessKey" in out
    assert "secretsmanager:UpdateSecretVersionStage" in out or "UpdateSecretVersionStage" in out
    assert "Lambda function svc-02" in out
    assert "dependents it would touch: 3" in out
    assert (world.stages(), world.keys(), world.env_of("svc-00")) == before
    assert rotation_rows(world) == []
    rc, out, _ = cli("rotate", SECRET, "--dry-run", "--format", "json")
    assert rc == 0 and len(json.loads(out)["dependents"]) == 3


def test_a_dependent_failing_half_way_rolls_everything_back(world: World, cli: Cli) -> None:
    world.client("lambda").delete_function(FunctionName="svc-10")
    world.functions.remove("svc-10")
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 2, err
    assert "failed at dependents" in err and "svc-10" in err and "rolled back" in err
    cur = world.assert_consistent()
    assert cur == world.old
    assert world.keys() == [(world.old["access_key_id"], "Active")]
    (row,) = rotation_rows(world)
    assert row["state"] == "rolled_back" and "svc-10" in row["error"]
    actions = audit(world)
    assert ("rotation.dependents", "failed") in actions
    assert ("rotation.rollback", "ok") in actions
    rc, out, _ = cli("rotations", "show", "1")
    assert rc == 0 and "rolled_back" in out and "dependents   10 prepared" not in out
    assert "10 prepared, 10 verified, 10 restored" in out


def test_a_second_rotation_in_flight_is_refused_by_the_database(world: World, cli: Cli) -> None:
    from keyward.inventory.rotations import RotationRepository
    from keyward.rotation.ports import AuditEntry, RotationDetail

    inv = world.inventory()
    try:
        repo = RotationRepository(inv.db, actor="other")
        detail = RotationDetail(token="t", store="aws-secretsmanager", store_name=SECRET)
        repo.start(repo.rotatable(SECRET), detail, AuditEntry("rotation.start"))
    finally:
        inv.db.close()
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 2
    assert "already has a rotation in progress" in err
    assert err.count("\n") == 1  # one sentence, no traceback
    assert world.keys() == [(world.old["access_key_id"], "Active")]


def test_unknown_secret_is_one_sentence(world: World, cli: Cli) -> None:
    rc, _out, err = cli("rotate", "no/such")
    assert rc == 2 and "No secret named 'no/such'" in err and err.count("\n") == 1


def test_a_store_reference_that_no_longer_exists_is_one_sentence(world: World, cli: Cli) -> None:
    world.client("secretsmanager").delete_secret(SecretId=SM_NAME, ForceDeleteWithoutRecovery=True)
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 2, err
    assert "no longer exists" in err or "does not exist" in err
    assert err.count("\n") == 1
    assert rotation_rows(world) == []
