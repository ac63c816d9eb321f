"""The rotation state machine with fakes of our own protocols and a temp SQLite inventory."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyward.core.config import Config
from keyward.core.errors import ExitCode, StoreConflict, StoreUnavailable
from keyward.core.redaction import Fingerprinter
from keyward.inventory.db import open_database
from keyward.inventory.errors import RotationInFlight
from keyward.inventory.rotations import RotationRepository
from keyward.rotation.engine import RotationEngine
from keyward.rotation.errors import (
    CredentialRejected,
    DependentNotFound,
    NotRollbackable,
    RollbackIncomplete,
    RotationBusy,
    RotationFailed,
)
from keyward.rotation.ports import (
    AuditEntry,
    LeaseClaim,
    Progress,
    RotationDetail,
    RotationState,
    StateChanged,
)
from keyward.rotation.protocols import (
    DependentSnapshot,
    DependentTarget,
    HeldState,
    Retirement,
    RetireOutcome,
    RotationContext,
    SecretDescription,
    SecretValue,
    VariableBefore,
    VersionedSecret,
)
from keyward.rotation.wiring import RotationSettings, Wiring

FP = Fingerprinter(b"engine-unit-test-key-0123456789")
OLD = "old-value-0123456789abcdef"


class FakeStore:
    kind = "fake-store"

    def __init__(self) -> None:
        self.versions: dict[str, SecretValue] = {"1": SecretValue.single(OLD)}
        self.current = "1"
        self.previous: str | None = None
        self.pending: str | None = None
        self.token: str | None = None
        self.fail: dict[str, Exception] = {}
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def plan(self, name: str) -> tuple[str, ...]:
        return ("put pending", "promote")

    def describe(self, name: str) -> SecretDescription:
        self._call("describe")
        return SecretDescription(name, True, name, self.current, self.previous, self.pending,
                                 self.token)  # fmt: skip

    def read_current(self, name: str) -> VersionedSecret:
        self._call("read_current")
        return VersionedSecret(name, self.current, self.versions[self.current])

    def read_version(self, name: str, version: str) -> VersionedSecret:
        self._call("read_version")
        return VersionedSecret(name, version, self.versions[version])

    def put_pending(self, name: str, value: SecretValue, token: str) -> str:
        self._call("put_pending")
        if self.token == token and self.pending:
            return self.pending
        if self.token not in (None, token):
            raise StoreConflict("another rotation's pending version")
        version = str(len(self.versions) + 1)
        self.versions[version] = value
        self.pending, self.token = version, token
        return version

    def promote(self, name: str, version: str) -> None:
        self._call("promote")
        if self.current != version:
            self.previous, self.current = self.current, version
        self.pending = self.token = None

    def discard_pending(self, name: str, token: str) -> None:
        self._call("discard_pending")
        if self.token == token:
            if self.pending:
                del self.versions[self.pending]
            self.pending = self.token = None

    def list_secrets(self, prefix: str = "") -> Iterator[str]:
        return iter(())


class FakeRotator:
    kind = "fake"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.made = 0
        self.retire = RetireOutcome.REVOKED

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def plan(self, current: SecretValue) -> tuple[str, ...]:
        return ("make a new value",)

    def create(self, current: SecretValue, ctx: RotationContext) -> SecretValue:
        self._call("create")
        self.made += 1
        return SecretValue.single(f"new-value-{self.made}-abcdefghijklmnop")

    def set(self, current: SecretValue, new: SecretValue) -> None:
        self._call("set")

    def test(self, new: SecretValue) -> None:
        self._call("test")

    def deactivate(self, old: SecretValue, new: SecretValue) -> None:
        self._call("deactivate")

    def revoke(self, old: SecretValue, new: SecretValue, deactivated_at: datetime) -> Retirement:
        self._call("revoke")
        return Retirement(self.retire, "reason")

    def rollback(self, current: SecretValue, new: SecretValue | None, ctx: Any) -> None:
        self._call("rollback")


class FakeDependent:
    kind = "fake-dep"

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.gone: set[str] = set()
        self.fail_update: set[str] = set()

    def plan(self, target: DependentTarget) -> tuple[str, ...]:
        return (f"update {target.resource}",)

    def prepare(self, target: Any, old: VersionedSecret, new: VersionedSecret) -> Any:
        self.calls.append(("prepare", target.resource))
        if target.resource in self.gone:
            raise DependentNotFound(f"{target.resource} no longer exists")
        var = VariableBefore("V", "value", HeldState.OLD, FP.fingerprint(old.value["value"]))
        return DependentSnapshot(target, old.version, new.version, (var,))

    def update(self, snapshot: Any, new: VersionedSecret) -> None:
        r = snapshot.target.resource
        self.calls.append(("update", r))
        if r in self.fail_update:
            raise DependentNotFound(f"{r} no longer exists")
        self.held[r] = new.value["value"]

    def verify(self, snapshot: Any, new: VersionedSecret) -> None:
        self.calls.append(("verify", snapshot.target.resource))

    def rollback(self, snapshot: Any, old: VersionedSecret) -> None:
        r = snapshot.target.resource
        self.calls.append(("rollback", r))
        if r in self.gone:
            raise DependentNotFound(f"{r} no longer exists")
        self.held[r] = old.value["value"]


class FakeWiring(Wiring):
    def __init__(self, store: FakeStore, rotator: FakeRotator, dep: FakeDependent) -> None:
        super().__init__(Config(), None)
        self.store, self.rotator, self.dep = store, rotator, dep

    def store_for(self, secret: Any) -> Any:
        return "fake-store", secret.reference or secret.name, self.store

    def rotator_for(self, secret: Any) -> Any:
        return self.rotator

    def dependent(self, kind: str, secret: Any) -> Any:
        return self.dep


class Env:
    def __init__(self, url: str) -> None:
        self.db = open_database(url=url)
        self.repo = RotationRepository(self.db, actor="unit")
        self.repo.inventory.add_secret("app/key", "fake", store="fake-store", reference="k")
        for fn in ("fn-a", "fn-b", "fn-c"):
            self.repo.inventory.add_dependent("app/key", "fake-dep", fn, variable="V")
        self.store, self.rot, self.dep = FakeStore(), FakeRotator(), FakeDependent()
        self.now = datetime.now(UTC)
        self.stop = threading.Event()

    def engine(self, grace: timedelta = timedelta(0), holder: str = "unit:1:a") -> RotationEngine:
        settings = RotationSettings(grace_period=grace, lease_ttl=timedelta(seconds=60))
        return RotationEngine(
            self.repo, FakeWiring(self.store, self.rot, self.dep), FP, settings,
            holder=holder, stop=self.stop, clock=lambda: self.now,
        )  # fmt: skip

    def state(self) -> str:
        return self.repo.get(1).state

    def actions(self) -> list[tuple[str, str]]:
        return [(e.action, e.outcome) for e in reversed(self.repo.inventory.audit_events())]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engine") / "template.db"
    open_database(url=f"sqlite:///{path}").close()
    return path


@pytest.fixture
def env(template: Path, tmp_path: Path) -> Iterator[Env]:
    shutil.copyfile(template, tmp_path / "inv.db")
    e = Env(f"sqlite:///{tmp_path / 'inv.db'}")
    yield e
    e.db.close()


def test_a_rotation_runs_every_step_in_order_and_finishes(env: Env) -> None:
    out = env.engine().rotate("app/key")
    assert out.state is RotationState.FINISHED
    assert env.rot.calls == ["create", "set", "test", "deactivate", "revoke"]
    assert env.store.current == "2" and env.store.previous == "1"
    assert set(env.dep.held.values()) == {env.store.versions["2"]["value"]}
    assert [c for c, _ in env.dep.calls].count("prepare") == 3
    steps = [(s.step, s.state) for s in env.repo.get(1, steps=True).steps]
    assert steps == [("create", "ok"), ("set", "ok"), ("test", "ok"), ("dependents", "ok"),
                     ("finish", "ok"), ("retire", "ok")]  # fmt: skip
    assert ("rotation.retire", "ok") in env.actions()
    assert env.repo.inventory.get_secret("app/key").last_rotated_at is not None


@pytest.mark.parametrize(
    ("where", "exc"),
    [
        ("create", StoreUnavailable("store unreachable")),
        ("set", CredentialRejected("set refused")),
        ("test", CredentialRejected("new value rejected")),
        ("promote", StoreUnavailable("promote timed out")),
    ],
)
def test_a_failure_before_finish_rolls_everything_back(
    env: Env, where: str, exc: Exception
) -> None:
    (env.store.fail if where == "promote" else env.rot.fail)[where] = exc
    with pytest.raises(RotationFailed) as err:
        env.engine().rotate("app/key")
    assert err.value.exit_code is ExitCode.BACKEND
    assert "rolled back" in err.value.message
    assert env.state() == "rolled_back"
    assert env.store.current == "1" and env.store.pending is None
    assert "rollback" in env.rot.calls
    assert all(v == OLD for v in env.dep.held.values())
    assert env.repo.get(1).error is not None


def test_dependents_are_restored_newest_first_and_a_vanished_one_is_skipped(env: Env) -> None:
    orig = env.dep.update

    def update(snapshot: Any, new: Any) -> None:
        if snapshot.target.resource == "fn-c":  # fails, and fn-a was deleted meanwhile
            env.dep.gone.add("fn-a")
            raise DependentNotFound("fn-c no longer exists")
        orig(snapshot, new)

    env.dep.update = update  # type: ignore[method-assign]
    with pytest.raises(RotationFailed, match="fn-c no longer exists"):
        env.engine().rotate("app/key")
    rollbacks = [r for c, r in env.dep.calls if c == "rollback"]
    assert rollbacks == ["fn-c", "fn-b", "fn-a"]
    assert env.dep.held["fn-b"] == OLD
    assert env.state() == "rolled_back"
    assert ("rotation.rollback", "skipped") in env.actions()
    assert env.repo.get(1).detail["vanished"] == ["fake-dep||fn-a"]


def test_a_failing_rollback_stays_rolling_back_and_a_later_rollback_completes(env: Env) -> None:
    env.rot.fail["test"] = CredentialRejected("nope")
    env.rot.fail["rollback"] = StoreUnavailable("provider down")
    with pytest.raises(RollbackIncomplete) as err:
        env.engine().rotate("app/key")
    assert "keyward rotations rollback 1" in err.value.diagnostics()
    assert env.state() == "rolling_back"
    del env.rot.fail["rollback"]
    out = env.engine().rollback(1)
    assert out.state is RotationState.ROLLED_BACK and env.store.pending is None


def test_grace_period_keeps_the_old_credential_until_it_passes(env: Env) -> None:
    out = env.engine(grace=timedelta(hours=1)).rotate("app/key")
    assert out.state is RotationState.RETIRING and "revoked after" in out.message
    assert env.rot.calls[-1] == "deactivate"
    out = env.engine(grace=timedelta(hours=1)).resume(1)
    assert out.state is RotationState.RETIRING and "revoke" not in env.rot.calls
    env.now += timedelta(hours=2)
    out = env.engine(grace=timedelta(hours=1)).resume(1)
    assert out.state is RotationState.FINISHED and env.rot.calls[-1] == "revoke"


def test_a_rotator_with_nothing_to_retire_finishes_without_the_grace_period(env: Env) -> None:
    env.rot.retires = False  # type: ignore[attr-defined]  # like the random rotator
    env.rot.retire = RetireOutcome.NOT_APPLICABLE
    out = env.engine(grace=timedelta(days=7)).rotate("app/key")
    assert out.state is RotationState.FINISHED
    assert out.message.endswith("there was no old credential to retire")  # not "is not-applicable"
    assert env.rot.calls[-2:] == ["deactivate", "revoke"]
    env.engine(grace=timedelta(days=7)).rotate("app/key")  # nothing in flight blocks the next
    assert env.state() == "finished"


def test_a_finished_rotation_cannot_be_rolled_back(env: Env) -> None:
    env.engine(grace=timedelta(hours=1)).rotate("app/key")
    with pytest.raises(NotRollbackable) as err:
        env.engine().rollback(1)
    assert "already finished" in err.value.message
    assert env.store.current == "2"


def test_an_old_credential_still_in_use_is_kept_and_retried_later(env: Env) -> None:
    env.rot.retire = RetireOutcome.KEPT_IN_USE
    out = env.engine().rotate("app/key")
    assert out.state is RotationState.RETIRING and "still in use" in out.message
    assert ("rotation.retire", "kept-in-use") in env.actions()
    env.rot.retire = RetireOutcome.REVOKED
    env.now += timedelta(hours=2)
    assert env.engine().resume(1).state is RotationState.FINISHED


def test_a_stop_request_parks_the_rotation_and_resume_finishes_it(env: Env) -> None:
    orig = env.rot.set

    def set_and_stop(cur: Any, new: Any) -> None:
        orig(cur, new)
        env.stop.set()

    env.rot.set = set_and_stop  # type: ignore[method-assign]
    out = env.engine().rotate("app/key")
    assert out.parked and env.state() == "in_progress"
    assert ("rotation.park", "ok") in env.actions()
    env.stop.clear()
    assert env.engine().resume(1).state is RotationState.FINISHED
    assert env.rot.calls.count("set") == 1 and env.rot.calls.count("create") == 1


def test_the_database_refuses_a_second_rotation_in_flight(env: Env) -> None:
    detail = RotationDetail(token="t", store="fake-store", store_name="k")
    env.repo.start(env.repo.rotatable("app/key"), detail, AuditEntry("rotation.start"))
    with pytest.raises(RotationInFlight, match="already has a rotation in progress"):
        env.engine().rotate("app/key")
    assert env.rot.calls == []


def test_a_live_lease_of_another_process_keeps_us_out(env: Env) -> None:
    env.repo.acquire_lease("rotate:1", "otherhost:1:x", timedelta(minutes=5))
    with pytest.raises(RotationBusy, match="Another keyward process"):
        env.engine().rotate("app/key")


def test_a_dead_local_holder_is_taken_over(env: Env) -> None:
    import socket

    env.repo.acquire_lease("rotate:1", f"{socket.gethostname()}:999999:x", timedelta(minutes=5))
    assert env.engine().rotate("app/key").state is RotationState.FINISHED


def test_resume_after_an_interrupted_step_never_creates_twice(env: Env) -> None:
    eng = env.engine()
    env.rot.fail["set"] = KeyboardInterrupt()  # a "crash" that is not an Exception
    with pytest.raises(KeyboardInterrupt):
        eng.rotate("app/key")
    del env.rot.fail["set"]
    env.repo.release_lease("rotate:1", "unit:1:a")
    assert env.engine().resume(1).state is RotationState.FINISHED
    assert env.rot.made == 1  # never created twice


def test_the_scheduler_waits_before_retrying_a_failed_rollback_but_the_cli_does_not(
    env: Env,
) -> None:
    env.rot.fail["test"] = CredentialRejected("nope")
    env.rot.fail["rollback"] = StoreUnavailable("provider down")
    with pytest.raises(RollbackIncomplete):
        env.engine().rotate("app/key")
    assert env.repo.claim_in_flight("daemon:1:x", timedelta(minutes=1)) == ()  # backing off
    del env.rot.fail["rollback"]
    assert env.engine().rollback(1).state is RotationState.ROLLED_BACK


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler catches it."""


def test_a_death_right_after_finish_is_persisted_leaves_the_secret_rotated_and_not_due(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_ago = env.now - timedelta(days=3)
    env.repo.inventory.update_secret("app/key", max_age_seconds=86400, created_at=long_ago)
    assert env.repo.inventory.get_secret("app/key").overdue(env.now)
    record = env.repo.record

    def record_then_die(rotation_id: int, progress: Progress, lease: LeaseClaim) -> bool:
        out = record(rotation_id, progress, lease)
        if StateChanged(RotationState.RETIRING) in progress.marks:  # the finish commit, SIGKILL
            raise Killed
        return out

    monkeypatch.setattr(env.repo, "record", record_then_die)
    with pytest.raises(Killed):
        env.engine(grace=timedelta(days=7)).rotate("app/key")
    assert env.state() == "retiring"
    secret = env.repo.inventory.get_secret("app/key")
    assert secret.last_rotated_at is not None
    assert not secret.overdue(env.now)  # the daemon will not start a second rotation


def test_rotator_warnings_are_audited_once_persisted_and_returned_with_the_outcome(
    env: Env,
) -> None:
    said: list[str] = []

    def take_warnings() -> list[str]:
        out = list(said)
        said.clear()
        return out

    def set_(current: SecretValue, new: SecretValue) -> None:
        env.rot.calls.append("set")
        said.extend(["the change lives in memory only", "the change lives in memory only"])

    def deactivate(old: SecretValue, new: SecretValue) -> None:
        env.rot.calls.append("deactivate")
        said.append("the change lives in memory only")  # the same again: audited once

    env.rot.take_warnings = take_warnings  # type: ignore[attr-defined]
    env.rot.set = set_  # type: ignore[method-assign]
    env.rot.deactivate = deactivate  # type: ignore[method-assign]
    out = env.engine().rotate("app/key")
    assert out.state is RotationState.FINISHED
    assert out.warnings == ("the change lives in memory only",)
    assert env.actions().count(("rotation.warning", "warning")) == 1
    assert env.repo.get(1).detail["warnings"] == ["the change lives in memory only"]
    again = env.engine().resume(1)  # already finished: nothing new to say
    assert again.warnings == ()
