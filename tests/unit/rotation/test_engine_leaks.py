"""A rotation of a leaked secret (fakes of our own protocols, a temp SQLite inventory): the
leaked credential is revoked as soon as the new one is current, its findings remediated;
audit and webhook say so without a value."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_engine import FP, OLD, Env, FakeWiring

from keyward.inventory import models as m
from keyward.inventory.db import open_database
from keyward.rotation.driver import Notifier
from keyward.rotation.engine import RotationEngine
from keyward.rotation.ports import JsonValue, RotationState
from keyward.rotation.protocols import RetireOutcome, SecretValue
from keyward.rotation.wiring import RotationSettings

WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("leak-engine") / "template.db"
    open_database(url=f"sqlite:///{path}").close()
    return path


@pytest.fixture
def env(migrated: Path, tmp_path: Path) -> Iterator[Env]:
    shutil.copyfile(migrated, tmp_path / "inv.db")
    e = Env(f"sqlite:///{tmp_path / 'inv.db'}")
    yield e
    e.db.close()


class Events(Notifier):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def notify(self, event: Mapping[str, JsonValue]) -> None:
        self.events.append(dict(event))


def engine(env: Env, notifier: Notifier | None = None) -> RotationEngine:
    settings = RotationSettings(grace_period=WEEK, lease_ttl=timedelta(seconds=60))
    return RotationEngine(
        env.repo, FakeWiring(env.store, env.rot, env.dep), FP, settings,
        holder="unit:1:a", stop=env.stop, clock=lambda: env.now, notifier=notifier,
    )  # fmt: skip


def leak(env: Env, *, findings: int = 2) -> tuple[int, list[int]]:
    """The store's current value is found by a scan: its version leaked, with findings."""
    inv = env.repo.inventory
    fp = SecretValue.single(OLD).fingerprint(FP)
    version = inv.add_version("app/key", identifier="1", fingerprint=fp, stage="current")
    ids = []
    with env.db.session() as s:
        sid = s.scalar(sa.select(m.Secret.id).where(m.Secret.name == "app/key"))
        s.execute(sa.update(m.SecretVersion).values(leaked_at=m.utcnow()))
        for i in range(findings):
            row = m.Finding(
                identity=f"{i:064d}", target="files:/x", rule_id="generic", severity="high",
                source="file", path=f"f{i}.py", preview="old-…", fingerprint=FP.fingerprint(OLD),
                secret_id=sid, version_id=version.id,
            )  # fmt: skip
            s.add(row)
            s.flush()
            ids.append(row.id)
    return version.id, ids


def test_a_leaked_credential_is_revoked_at_once_and_its_findings_remediated(env: Env) -> None:
    vid, ids = leak(env)
    hook = Events()
    out = engine(env, hook).rotate("app/key", only_if_leaked=True)
    # no grace period: deactivated and revoked right after finish
    assert out.state is RotationState.FINISHED, out.message
    assert env.rot.calls == ["create", "set", "test", "deactivate", "revoke"]
    found = {f.id: f for f in env.repo.inventory.list_findings(state=None).findings}
    assert {f.state for f in found.values()} == {"remediated"}
    assert {f.remediated_rotation_id for f in found.values()} == {out.rotation_id}
    assert env.repo.remediated_findings(out.rotation_id) == tuple(ids)
    assert env.repo.leak_of(env.repo.rotatable("app/key").id) is None  # no longer leaked
    events = {e.action: e for e in env.repo.inventory.audit_events()}
    start = events["rotation.start"].detail
    assert start["leak"] is True and start["findings"] == ids and start["version_id"] == vid
    assert start["reason"] == f"leak: its current version was found (findings #{ids[0]}, #{ids[1]})"
    assert events["leak.remediated"].detail == {"version_id": vid, "findings": ids}
    assert [e["event"] for e in hook.events] == [
        "rotation.started", "rotation.finished", "rotation.retired", "leak.remediated",
    ]  # fmt: skip
    assert hook.events[0]["reason"] == "leak" and hook.events[0]["findings"] == ids
    assert hook.events[-1]["findings"] == ids
    text = json.dumps(hook.events) + json.dumps([e.detail for e in events.values()])
    for value in (OLD, *(v["value"] for v in env.store.versions.values())):
        assert value not in text


def test_a_credential_that_did_not_leak_keeps_its_grace_period(env: Env) -> None:
    hook = Events()
    out = engine(env, hook).rotate("app/key")
    assert out.state is RotationState.RETIRING
    assert env.rot.calls == ["create", "set", "test", "deactivate"]
    assert [e["event"] for e in hook.events] == ["rotation.finished"]


def test_a_secret_no_longer_leaked_is_not_rotated_again_by_a_leak_claim(env: Env) -> None:
    out = engine(env).rotate("app/key", only_if_leaked=True)
    assert out.skipped and "is no longer leaked" in out.message
    assert env.rot.calls == [] and env.repo.list() == ()


def test_a_leaked_credential_used_after_deactivation_is_kept_and_not_remediated(
    env: Env,
) -> None:
    leak(env)
    env.rot.retire = RetireOutcome.KEPT_IN_USE
    out = engine(env).rotate("app/key")
    assert out.state is RotationState.RETIRING and "still in use" in out.message
    assert {f.state for f in env.repo.inventory.list_findings(state=None).findings} == {"open"}
    # the secret is not leaked any more (its current version is the new one): nothing claims
    # it again; the retiring rotation tries the revoke again later
    assert env.repo.leak_of(env.repo.rotatable("app/key").id) is None


def test_an_old_credential_found_during_its_grace_period_is_revoked_at_once(env: Env) -> None:
    first = engine(env).rotate("app/key")
    assert first.state is RotationState.RETIRING  # seven days to go
    ttl = timedelta(minutes=5)
    assert env.repo.claim_in_flight("other", ttl) == ()  # waiting out its grace period
    # a scan finds the old (inactive, not yet revoked) value
    rot = env.repo.get(first.rotation_id)
    with env.db.session() as s:
        old = s.scalar(sa.select(m.Rotation.old_version_id).where(m.Rotation.id == rot.id))
        s.execute(sa.update(m.SecretVersion).where(m.SecretVersion.id == old)
                  .values(leaked_at=m.utcnow()))  # fmt: skip
        s.add(m.Finding(identity="1" * 64, target="files:/x", rule_id="generic", severity="high",
                        source="file", path="f.py", preview="old-…",
                        fingerprint=FP.fingerprint(OLD), version_id=old))  # fmt: skip
    assert env.repo.claim_in_flight("daemon", ttl) == (rot.id,)  # due now
    env.repo.release_lease(f"rotate:{rot.secret_id}", "daemon")
    # refused (used after it was deactivated): kept, and not claimed again every tick
    env.rot.retire = RetireOutcome.KEPT_IN_USE
    assert engine(env).resume(rot.id).state is RotationState.RETIRING
    assert env.repo.claim_in_flight("daemon", ttl) == ()
    env.rot.retire = RetireOutcome.REVOKED
    env.rot.calls.clear()
    env.now += timedelta(hours=2)  # past kept_in_use_retry
    hook = Events()
    out = engine(env, hook).resume(rot.id)
    assert out.state is RotationState.FINISHED
    assert env.rot.calls == ["revoke"]
    (f,) = env.repo.inventory.list_findings(state=None).findings
    assert f.state == "remediated" and f.remediated_rotation_id == rot.id
    assert [e["event"] for e in hook.events] == ["rotation.retired", "leak.remediated"]


def test_a_leak_is_not_claimed_again_while_the_previous_old_key_is_kept_in_use(
    env: Env,
) -> None:
    from keyward.rotation.errors import StillRetiring

    first = engine(env).rotate("app/key")
    assert first.state is RotationState.RETIRING
    # the new (current) value leaks while the first old one still waits out its grace period
    with env.db.session() as s:
        new = s.scalar(sa.select(m.Rotation.new_version_id))
        s.execute(sa.update(m.SecretVersion).where(m.SecretVersion.id == new)
                  .values(leaked_at=m.utcnow()))  # fmt: skip
    ttl = timedelta(minutes=5)
    (claimed,) = env.repo.claim_leaked("daemon", ttl)
    env.repo.release_lease(f"rotate:{claimed.secret_id}", "daemon")
    # the first old key was used since it was deactivated: the new rotation is refused...
    env.rot.retire = RetireOutcome.KEPT_IN_USE
    with pytest.raises(StillRetiring):
        engine(env).rotate("app/key", only_if_leaked=True)
    # ...and the daemon does not try again at every tick, only after kept_in_use_retry
    assert env.repo.claim_leaked("daemon", ttl) == ()
