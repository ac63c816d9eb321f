"""What every phase of a rotation shares: the run being driven and the durable writes.

The state machine is split by phase: :mod:`keyward.rotation.engine` starts and resumes
rotations and drives them forward (create, set, test, dependents, finish),
:mod:`keyward.rotation.retire` retires the old credential after finish, and
:mod:`keyward.rotation.rollback` undoes a rotation that failed (or was stopped) before finish.
All three work on a :class:`Run` through a :class:`Driver` (the engine is one): each durable
write goes through :meth:`Driver.write`, one :meth:`~keyward.rotation.ports.RotationJournal.record`
call under the worker's lease; :meth:`Driver.checkpoint` marks every persisted boundary for the
crash tests.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from keyward.core.errors import ExitCode, KeywardError, RotationError
from keyward.core.redaction import Fingerprinter
from keyward.rotation.errors import LeaseLost
from keyward.rotation.ports import (
    AtStep,
    AuditEntry,
    ErrorCleared,
    JsonValue,
    LeaseClaim,
    Mark,
    Progress,
    RotatableSecret,
    RotationDetail,
    RotationInventory,
    RotationState,
    SecretRotated,
    StateChanged,
    Step,
    StepBegun,
    StepEnded,
    StepOutcome,
    VersionRole,
    VersionStage,
    VersionStaged,
    rotation_lease,
)
from keyward.rotation.protocols import (
    Dependent,
    DependentTarget,
    RotationContext,
    Rotator,
    SecretDescription,
    SecretStore,
    VersionedSecret,
)
from keyward.rotation.wiring import RotationSettings, Wiring

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run of the engine achieved (for the CLI and the daemon)."""

    rotation_id: int
    secret: str
    state: RotationState
    message: str
    parked: bool = False
    # nothing was started (e.g. `rotate --leaked` of a secret rotated meanwhile)
    skipped: bool = False
    # what a rotator warned about (e.g. "Redis has no ACL file: lost at restart"); each one is
    # also an audit event ``rotation.warning``
    warnings: tuple[str, ...] = ()


def error_text(exc: BaseException) -> str:
    """One line describing ``exc`` without secret values (its hint left out: the engine
    says what to do next itself)."""
    from keyward.core.logging import scrub

    if isinstance(exc, KeywardError):
        return scrub(exc.message.rstrip("."))
    return f"{type(exc).__name__}: {scrub(str(exc))[:300]}"


def exit_code_of(exc: BaseException) -> ExitCode:
    return exc.exit_code if isinstance(exc, KeywardError) else ExitCode.BACKEND


def default_holder() -> str:
    """A lease holder name for this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dependent_key(target: DependentTarget) -> str:
    """How the rotation's detail names a dependent target (``kind|region|resource``)."""
    return f"{target.kind}|{target.region or ''}|{target.resource}"


class Notifier:
    """Receives rotation events (the webhook); the default does nothing."""

    def notify(self, event: Mapping[str, JsonValue]) -> None:
        return None


@dataclass
class Run:
    """One rotation being driven (mutable: its state and detail follow each durable write)."""

    id: int
    secret: RotatableSecret
    state: RotationState
    detail: RotationDetail
    started_at: datetime
    store_kind: str
    name: str  # the name the store knows the secret by
    store: SecretStore
    rotator: Rotator
    cur: VersionedSecret | None = None
    new: VersionedSecret | None = None
    deps: dict[str, Dependent] = field(default_factory=dict)
    # progress that needs no durable write of its own (a step begun, a step with no effect
    # done): it goes with the next durable write (Driver.note)
    noted_marks: list[Mark] = field(default_factory=list)
    noted_audit: list[AuditEntry] = field(default_factory=list)
    # what rotate() learnt from the store under the lease, used by create (read once)
    described: SecretDescription | None = None

    @property
    def token(self) -> str:
        return self.detail.token

    def noted(self, value: str | None, what: str) -> str:
        """A version id the detail must hold by now (``run.noted(run.detail.pending, ...)``)."""
        if value is None:
            raise RotationError(
                f"Rotation {self.id} of {self.secret.name!r} has no {what} in its detail",
                hint=f"Roll it back: keyward rotations rollback {self.id}",
            )
        return value

    def outcome(self, message: str, *, parked: bool = False) -> Outcome:
        return Outcome(self.id, self.secret.name, self.state, message, parked=parked)


class Driver:
    """The collaborators of a rotation and the plumbing every phase uses."""

    def __init__(
        self,
        inventory: RotationInventory,
        wiring: Wiring,
        fingerprinter: Fingerprinter,
        settings: RotationSettings | None = None,
        *,
        holder: str | None = None,
        notifier: Notifier | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.inventory = inventory
        self.wiring = wiring
        self.fp = fingerprinter
        self.settings = settings or RotationSettings()
        self.holder = holder or default_holder()
        self.notifier = notifier or Notifier()
        self.stop = stop or threading.Event()
        self.now = clock or (lambda: datetime.now(UTC))

    # ------------------------------------------------------------- test seam
    def checkpoint(self, point: str) -> None:
        """Called at every persisted boundary (``create:before``, ``dependents:inside:3``...).

        Does nothing. It exists so that the test suite can kill the process at exactly that
        point (tests/integration/_crash_driver.py replaces it in a subprocess)."""

    # ------------------------------------------------------------- durable writes
    def note(
        self,
        run: Run,
        *marks: Mark,
        detail: RotationDetail | None = None,
        audit: AuditEntry | None = None,
    ) -> None:
        """Progress that needs no durable write of its own, written with the next one.

        What crash safety needs is one durable write before each outside call whose effect
        must be recovered and one after it; a step begun, or a step without effect done (a
        test, no dependent to update), would only cost a commit: if the process dies before
        the next write, the step runs again."""
        run.noted_marks.extend(marks)
        if audit is not None:
            run.noted_audit.append(audit)
        if detail is not None:
            run.detail = detail
        for mark in marks:
            if isinstance(mark, StateChanged):
                run.state = mark.state

    def write(
        self,
        run: Run,
        *marks: Mark,
        detail: RotationDetail | None = None,
        audit: AuditEntry | None = None,
    ) -> None:
        """One durable write: what was noted since the last one, then the detail, ``marks``
        and the audit events (the rotator's new warnings first), renewing our lease in the
        same transaction (losing it means someone took over)."""
        detail = detail or run.detail
        marks = (*run.noted_marks, *marks)
        entries: list[AuditEntry] = list(run.noted_audit)
        warned = self._new_warnings(run, detail)
        if warned:
            detail = replace(detail, warnings=(*detail.warnings, *warned))
            entries.extend(
                AuditEntry("rotation.warning", "warning", {"warning": text}) for text in warned
            )
        if audit is not None:
            entries.append(audit)
        lease = LeaseClaim(
            rotation_lease(run.secret.id), self.holder, self.settings.lease_ttl, run.secret.id
        )
        if not self.inventory.record(run.id, Progress(detail, marks, tuple(entries)), lease):
            raise LeaseLost(
                f"Rotation {run.id} of {run.secret.name!r} was taken over by another worker",
                hint="Nothing to do: it carries on there",
            )
        run.detail = detail
        run.noted_marks.clear()
        run.noted_audit.clear()
        for mark in marks:
            if isinstance(mark, StateChanged):
                run.state = mark.state

    def _new_warnings(self, run: Run, detail: RotationDetail) -> list[str]:
        """New warnings of the rotator (an optional ``take_warnings()``), each once."""
        take = getattr(run.rotator, "take_warnings", None)
        fresh = [str(w) for w in take()] if callable(take) else []
        added = [w for w in dict.fromkeys(fresh) if w not in detail.warnings]
        for text in added:
            log.warning("rotation %s of %s: %s", run.id, run.secret.name, text)
        return added

    def context(self, run: Run) -> RotationContext:
        """The rotation as its rotator sees it, with notes persisted in the rotation."""
        return RotationContext(run.token, run.started_at, _JournalNotes(self, run))

    def begin(self, run: Run, step: Step) -> None:
        """``step`` begins: its row opens with the next durable write (before the step's
        first outside call with an effect, or with the write after it)."""
        self.note(run, StepBegun(step))

    def record_finished(self, run: Run) -> None:
        """The new version is current: the rotation is retiring, the secret rotated now."""
        now = self.now()
        self.write(
            run,
            StateChanged(RotationState.RETIRING),
            AtStep(Step.RETIRE),
            StepEnded(Step.FINISH, StepOutcome.OK),
            VersionStaged(VersionRole.OLD, VersionStage.PREVIOUS),
            VersionStaged(VersionRole.NEW, VersionStage.CURRENT),
            ErrorCleared(),
            SecretRotated(now),
            detail=replace(run.detail, done=(*run.detail.done, Step.FINISH), finished_at=now),
            audit=AuditEntry("rotation.finish", "ok", {"step": Step.FINISH.value}),
        )
        log.info("rotation %s of %s: new version is current", run.id, run.secret.name)
        self.event(run, "rotation.finished")

    # ---------------------------------------------------------------- helpers
    def event(
        self,
        run: Run,
        event: str,
        error: str | None = None,
        extra: Mapping[str, JsonValue] | None = None,
    ) -> None:
        """Tell the notifier (the webhook); a failing notifier never breaks a rotation."""
        doc: dict[str, JsonValue] = {
            "event": event,
            "rotation_id": run.id,
            "secret": run.secret.name,
            "store": run.store_kind,
            "kind": run.secret.kind,
            "state": run.state.value,
            "actor": self.inventory.actor,
            "at": self.now().isoformat(),
            "error": error,
            **(extra or {}),
        }
        try:
            self.notifier.notify(doc)
        except Exception as exc:
            log.warning("rotation %s: notifying %s failed: %s", run.id, event, error_text(exc))

    def backoff(self) -> datetime:
        """When the scheduler may try a failed rollback or retirement again (the CLI's
        ``resume``/``rollback`` do not wait)."""
        return self.now() + self.settings.retry_backoff

    def stopping(self, run: Run, where: str) -> Outcome | None:
        """A parked outcome when a stop was requested (SIGTERM), else None."""
        if not self.stop.is_set():
            return None
        park = AuditEntry("rotation.park", "ok", {"before": where})
        if run.noted_marks or run.noted_audit:
            self.write(run, audit=park)  # what was noted, with the park
        else:
            self.inventory.audit(run.secret, park, run.id)
        log.warning("rotation %s of %s parked before %s", run.id, run.secret.name, where)
        return run.outcome(
            f"Rotation {run.id} of {run.secret.name!r} parked before {where}; it resumes later",
            parked=True,
        )

    def load(self, run: Run) -> tuple[VersionedSecret, VersionedSecret]:
        """The old and new values: after a crash every value comes back from the store,
        the new one checked by fingerprint."""
        if run.cur is None:
            run.cur = run.store.read_version(
                run.name, run.noted(run.detail.old_version, "old version")
            )
        if run.new is None:
            new = run.store.read_version(run.name, run.noted(run.detail.pending, "pending version"))
            expected = run.detail.new_fingerprint
            if expected and new.value.fingerprint(self.fp) != expected:
                raise RotationError(
                    f"Version {new.version} of {run.secret.name!r} no longer holds the value "
                    "this rotation created",
                    hint="Roll the rotation back: keyward rotations rollback",
                )
            run.new = new
        return run.cur, run.new

    def dependent(self, run: Run, kind: str) -> Dependent:
        """The dependent plugin of ``kind`` for this run (built once)."""
        if kind not in run.deps:
            run.deps[kind] = self.wiring.dependent(kind, run.secret)
        return run.deps[kind]


class _JournalNotes:
    """A rotator's notes (:class:`~keyward.rotation.protocols.RotationNotes`), persisted in
    the rotation's detail at once."""

    def __init__(self, driver: Driver, run: Run) -> None:
        self._driver = driver
        self._run = run

    def get(self, key: str) -> str | None:
        return self._run.detail.rotator_notes.get(key)

    def record(self, key: str, value: str | None) -> None:
        notes = dict(self._run.detail.rotator_notes)
        if value is None:
            notes.pop(key, None)
        else:
            notes[key] = value
        self._driver.write(self._run, detail=replace(self._run.detail, rotator_notes=notes))
