"""Rotating again while the previous rotation is still retiring (a 7-day grace period), on moto.

The new rotation first finishes that retirement early: the old key, deactivated at finish, is
deleted if it was not used since; if it was, the new rotation is refused naming that use.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration._inventory_db import Cli, sqlite_template  # noqa: F401
from tests.integration._rotation_world import SECRET, World, build_world
from tests.integration.test_rotation_engine import audit, rotation_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:  # noqa: F811
    path = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def world(aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=2, grace_period="7d")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def rotated_once(world: World, cli: Cli) -> dict[str, str]:
    """The first rotation: finished, its old key inactive for the next seven days."""
    rc, out, err = cli("rotate", SECRET)
    assert rc == 0, err
    assert "is inactive and is revoked after" in out
    cur = world.assert_consistent()
    assert world.keys() == sorted(
        [(world.old["access_key_id"], "Inactive"), (cur["access_key_id"], "Active")]
    )
    assert [r["state"] for r in rotation_rows(world)] == ["retiring"]
    return cur


def test_rotating_again_while_retiring_revokes_the_unused_old_key_first(
    world: World, cli: Cli
) -> None:
    first = rotated_once(world, cli)
    rc, out, err = cli("rotate", SECRET, "--reason", "the new key was pasted in a ticket")
    assert rc == 0, err
    assert "Finished retiring rotation 1 early: " in out, out
    second = world.assert_consistent()
    assert second not in (first, world.old)
    # the first old key is gone, the leaked one is inactive for its own grace period
    assert world.keys() == sorted(
        [(first["access_key_id"], "Inactive"), (second["access_key_id"], "Active")]
    )
    assert [r["state"] for r in rotation_rows(world)] == ["finished", "retiring"]
    inv = world.inventory()
    try:
        events = inv.audit_events(SECRET, limit=200)
    finally:
        inv.db.close()
    (early,) = [e for e in events if e.action == "rotation.retire" and e.rotation_id == 1]
    assert early.outcome == "ok" and early.detail["early"] is True
    assert early.detail["reason"] == "the new key was pasted in a ticket"
    (started,) = [e for e in events if e.action == "rotation.start" and e.rotation_id == 2]
    assert started.detail.get("reason") == "the new key was pasted in a ticket"


def test_rotating_again_is_refused_naming_the_last_use_of_a_retiring_key_used_since(
    world: World, cli: Cli
) -> None:
    first = rotated_once(world, cli)
    assert not world.works(world.old)  # refused (inactive), but AWS records the attempt
    keys = world.keys()
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 2, err
    (line,) = err.splitlines()
    assert "Rotation 1 of 'prod/aws' is still retiring" in line, line
    assert "was used with sts at" in line and "after it was deactivated" in line, line
    assert world.old["access_key_id"] not in line  # the id is shown redacted
    assert world.keys() == keys and world.current() == first
    assert [r["state"] for r in rotation_rows(world)] == ["retiring"]
    assert ("rotation.retire", "kept-in-use") in audit(world)


def test_while_retiring_rollback_points_to_rotating_again_which_works(
    world: World, cli: Cli
) -> None:
    rotated_once(world, cli)
    rc, _out, err = cli("rotations", "rollback", "1")
    assert rc == 2, err
    assert "rotate again" in err.lower() and "keyward rotate prod/aws" in err, err
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 0, err
    world.assert_consistent()
