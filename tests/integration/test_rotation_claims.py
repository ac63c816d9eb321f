"""What a scheduler tick claims, on SQLite and PostgreSQL: only work nobody holds a lease on,
so a batch is filled with work this replica can do; rotations waiting out a grace period
never take the places of those that can go on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from keyward.inventory.db import Database
from keyward.inventory.rotations import RotationRepository
from keyward.inventory.service import Inventory
from keyward.rotation.ports import (
    AuditEntry,
    LeaseClaim,
    Progress,
    RotationDetail,
    Step,
    StepBegun,
    StepEnded,
    StepOutcome,
    rotation_lease,
)
from tests.integration._inventory_db import *  # noqa: F403

pytestmark = pytest.mark.integration
TTL = timedelta(minutes=5)


def due(inventory: Inventory, count: int) -> list[int]:
    """``count`` overdue secrets, the first the most overdue."""
    ids = []
    for i in range(count):
        created = datetime.now(UTC) - timedelta(days=30 - i)
        rec = inventory.add_secret(f"s{i}", "random", store="vault-kv", reference=f"app/s{i}",
                                   max_age_seconds=86400, created_at=created)  # fmt: skip
        ids.append(rec.id)
    return ids


def test_secrets_leased_by_another_replica_do_not_take_places_in_the_batch(
    database: Database, inventory: Inventory
) -> None:
    ids = due(inventory, 5)
    repo = RotationRepository(database, actor="t")
    for sid in ids[:2]:  # the two most overdue are being worked on elsewhere
        assert repo.acquire_lease(rotation_lease(sid), "other", TTL, secret_id=sid)
    assert repo.claim_due_secrets("me", TTL, limit=3) == ("s2", "s3", "s4")
    assert repo.claim_due_secrets("third", TTL, limit=3) == ()  # all leased now
    repo.release_lease(rotation_lease(ids[0]), "other")
    assert repo.claim_due_secrets("third", TTL, limit=3) == ("s0",)


def test_an_expired_lease_is_claimed_and_renewing_ones_own_lease_works(
    database: Database, inventory: Inventory
) -> None:
    (sid,) = due(inventory, 1)
    repo = RotationRepository(database, actor="t")
    assert repo.acquire_lease(rotation_lease(sid), "gone", timedelta(seconds=-1), secret_id=sid)
    assert repo.claim_due_secrets("me", TTL) == ("s0",)
    assert repo.acquire_lease(rotation_lease(sid), "me", TTL, secret_id=sid)  # renewal
    assert not repo.acquire_lease(rotation_lease(sid), "gone", TTL, secret_id=sid)


def test_rotations_waiting_out_their_grace_period_do_not_fill_the_batch(
    database: Database, inventory: Inventory
) -> None:
    ids = due(inventory, 4)
    repo = RotationRepository(database, actor="t")
    later = datetime.now(UTC) + timedelta(days=7)
    rotations = []
    for i, sid in enumerate(ids):
        detail = RotationDetail(token=f"t{i}", store="vault-kv", store_name=f"app/s{i}")
        entry = repo.start(repo.rotatable_by_id(sid), detail, AuditEntry("rotation.start"))
        rotations.append(entry.id)
        if i < 3:  # the oldest three wait (the grace period of a retiring rotation)
            claim = LeaseClaim(rotation_lease(sid), "w", TTL, sid)
            assert repo.record(entry.id, Progress(replace(detail, next_attempt_at=later)), claim)
            repo.release_lease(rotation_lease(sid), "w")
    assert repo.claim_in_flight("me", TTL, limit=2) == (rotations[3],)


def test_one_durable_write_keeps_step_rows_and_audit_events_as_before(
    database: Database, inventory: Inventory
) -> None:
    (sid,) = due(inventory, 1)
    repo = RotationRepository(database, actor="t")
    detail = RotationDetail(token="t", store="vault-kv", store_name="app/s0")
    entry = repo.start(repo.rotatable_by_id(sid), detail, AuditEntry("rotation.start"))
    claim = LeaseClaim(rotation_lease(sid), "w", TTL, sid)
    marks = (StepEnded(Step.CREATE, StepOutcome.OK), StepBegun(Step.SET))
    audits = (AuditEntry("rotation.create", "ok", {"step": "create"}),)
    assert repo.record(entry.id, Progress(detail, (StepBegun(Step.CREATE),)), claim)
    assert repo.record(entry.id, Progress(detail, marks, audits), claim)
    assert repo.record(entry.id, Progress(detail, (StepBegun(Step.SET),)), claim)  # resumed
    assert not repo.record(entry.id, Progress(detail), replace(claim, holder="thief"))
    got = repo.get(entry.id, steps=True)
    assert [(s.step, s.state) for s in got.steps] == [("create", "ok"), ("set", "started")]
    assert got.step == "set"
    # a step begun and ended in one write closes the row an earlier attempt left open
    pair = (StepBegun(Step.SET), StepEnded(Step.SET, StepOutcome.OK))
    fresh = (StepBegun(Step.TEST), StepEnded(Step.TEST, StepOutcome.OK))
    assert repo.record(entry.id, Progress(detail, (*pair, *fresh)), claim)
    got = repo.get(entry.id, steps=True)
    assert [(s.step, s.state) for s in got.steps] == [
        ("create", "ok"), ("set", "ok"), ("test", "ok")
    ]  # fmt: skip
    assert all(s.finished_at is not None for s in got.steps)
    with database.engine.connect() as c:
        actions = c.execute(
            sa.text("SELECT action, subject FROM audit_events WHERE rotation_id = :r ORDER BY id"),
            {"r": entry.id},
        ).all()
    assert [tuple(a) for a in actions] == [("rotation.start", "s0"), ("rotation.create", "s0")]


def test_a_secret_whose_rotation_was_refused_at_its_start_waits_out_the_backoff(
    database: Database, inventory: Inventory
) -> None:
    _, other = due(inventory, 2)
    repo = RotationRepository(database, actor="t")
    # what the engine writes when it refuses before starting (a store secret gone, another
    # rotation owning it): the next ticks must not claim it, be refused and audit it again
    repo.audit(repo.rotatable("s0"), AuditEntry("rotation.start", "failed", {"error": "x"}))
    repo.audit(repo.rotatable("s1"), AuditEntry("rotation.start", "ok", {}))
    assert repo.claim_due_secrets("me", TTL, limit=5) == ("s1",)
    repo.release_lease(rotation_lease(other), "me")
    # an hour later it is tried again
    assert repo.claim_due_secrets("me", TTL, limit=5, failed_backoff=timedelta(0)) == (
        "s0",
        "s1",
    )
