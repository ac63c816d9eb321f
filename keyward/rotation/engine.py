"""The rotation state machine: create -> set -> test -> dependents -> finish -> retire.

It drives a :class:`~keyward.rotation.protocols.SecretStore`, a
:class:`~keyward.rotation.protocols.Rotator` and :class:`~keyward.rotation.protocols.Dependent`
plugins in the sequence documented in :mod:`keyward.rotation.protocols`, and persists its
progress through the :class:`~keyward.rotation.ports.RotationJournal` after every call that
changed the outside world, so a process killed at any point leaves a rotation that ``resume``
(forward) or ``rollback`` completes. States and steps are
:class:`~keyward.rotation.ports.RotationState` and :class:`~keyward.rotation.ports.Step`.

What is persisted (:class:`~keyward.rotation.ports.RotationDetail`; no raw value ever): the
idempotency ``token`` (first, before anything happens), the store's ``old_version`` and
``pending`` version ids, keyed fingerprints of both values, the dependent snapshots (each
persisted *before* its update), which targets were verified / restored, ``finished_at``,
``deactivated_at`` and the retirement outcome. Every step adds a ``rotation_steps`` row and an
audit event (step, actor, outcome, error text), written in the same transaction as the detail.

Fault injection: :meth:`RotationEngine.checkpoint` is called at every persisted boundary with a
name such as ``set:before`` or ``dependents:inside:3``. In keyward it does nothing; the test
suite replaces it (in a subprocess) to kill the process there with SIGKILL.
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
from typing import assert_never

from keyward.core.errors import ExitCode, KeywardError, RotationError, StoreNotFound
from keyward.core.redaction import Fingerprinter
from keyward.rotation.errors import DependentNotFound
from keyward.rotation.ports import (
    FORWARD_STEPS,
    AtStep,
    AuditEntry,
    ErrorCleared,
    ErrorNoted,
    JournalEntry,
    JsonValue,
    LeaseClaim,
    Mark,
    PreparedDependent,
    Progress,
    RotatableSecret,
    RotationDetail,
    RotationInFlight,
    RotationInventory,
    RotationState,
    SecretRotated,
    StateChanged,
    Step,
    StepBegun,
    StepEnded,
    StepOutcome,
    VersionRole,
    VersionSeen,
    VersionStage,
    VersionStaged,
    rotation_lease,
)
from keyward.rotation.protocols import (
    Dependent,
    DependentSnapshot,
    DependentTarget,
    MemoryNotes,
    RetireOutcome,
    RotationContext,
    Rotator,
    SecretStore,
    VersionedSecret,
    new_token,
)
from keyward.rotation.wiring import RotationSettings, Wiring, targets_for

log = logging.getLogger(__name__)


class RotationFailed(RotationError):
    """A rotation failed before finish and was rolled back; exit code of the cause."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: ExitCode) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class RollbackIncomplete(RotationFailed):
    """A rotation failed and its rollback could not finish yet (it stays rolling_back)."""


class LeaseLost(RotationError):
    """Another worker took this rotation over (our lease expired); we stop at once."""

    exit_code = ExitCode.BACKEND


class RotationBusy(RotationInFlight):
    """Another live process is working on this secret's rotation."""


class ManagedElsewhere(RotationError):
    """Another rotation (Secrets Manager's own) already rotates the secret; keyward refuses
    unless told to take over."""


class NotRollbackable(RotationError):
    """The rotation is past finish (or already over): there is nothing to roll back."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run of the engine achieved (for the CLI and the daemon)."""

    rotation_id: int
    secret: str
    state: RotationState
    message: str
    parked: bool = False
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
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _state_of(entry: JournalEntry) -> RotationState:
    try:
        return RotationState(entry.state)
    except ValueError:
        raise RotationError(
            f"Rotation {entry.id} of {entry.secret!r} is in state {entry.state!r}, which this "
            "keyward does not know",
            hint="It was written by another tool or a newer keyward; upgrade keyward",
        ) from None


def _key(target: DependentTarget) -> str:
    return f"{target.kind}|{target.region or ''}|{target.resource}"


def _noted(value: str | None, what: str, run: _Run) -> str:
    """A version id the detail must hold by now."""
    if value is None:
        raise RotationError(
            f"Rotation {run.id} of {run.secret.name!r} has no {what} in its detail",
            hint=f"Roll it back: keyward rotations rollback {run.id}",
        )
    return value


class Notifier:
    """Receives rotation events (the webhook); the default does nothing."""

    def notify(self, event: Mapping[str, JsonValue]) -> None:
        return None


@dataclass
class _Run:
    """One rotation being driven (internal, mutable)."""

    id: int
    secret: RotatableSecret
    state: RotationState
    detail: RotationDetail
    started_at: datetime
    store_kind: str
    name: str
    store: SecretStore
    rotator: Rotator
    cur: VersionedSecret | None = None
    new: VersionedSecret | None = None
    deps: dict[str, Dependent] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.detail.token


class _JournalNotes:
    """A rotator's notes (:class:`RotationNotes`), persisted in the rotation's detail at once."""

    def __init__(self, engine: RotationEngine, run: _Run) -> None:
        self._engine = engine
        self._run = run

    def get(self, key: str) -> str | None:
        return self._run.detail.rotator_notes.get(key)

    def record(self, key: str, value: str | None) -> None:
        notes = dict(self._run.detail.rotator_notes)
        if value is None:
            notes.pop(key, None)
        else:
            notes[key] = value
        self._engine._write(self._run, detail=replace(self._run.detail, rotator_notes=notes))


def _retired(outcome: RetireOutcome) -> str:
    """What became of the old credential, in words."""
    match outcome:
        case RetireOutcome.REVOKED:
            return "the old credential is revoked"
        case RetireOutcome.ALREADY_GONE:
            return "the old credential was already gone"
        case RetireOutcome.KEPT_IN_USE:
            return "the old credential is kept: it was used after it was deactivated"
        case RetireOutcome.NOT_APPLICABLE:
            return "there was no old credential to retire"
        case _ as unreachable:
            assert_never(unreachable)


class RotationEngine:
    """Drives rotations of inventoried secrets; one instance per CLI run or daemon worker."""

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

    # ----------------------------------------------------------------- public
    def rotate(self, secret_name: str, *, take_over: bool = False) -> Outcome:
        """Start a rotation of ``secret_name`` and drive it as far as it can go now.

        A secret that another rotation already rotates (Secrets Manager's own) is refused,
        unless ``take_over``: then that rotation is turned off first, in the audit log."""
        secret = self.inventory.rotatable(secret_name)
        kind, name, store = self.wiring.store_for(secret)
        rotator = self.wiring.rotator_for(secret)
        try:
            described = store.describe(name)
            if not described.exists:
                raise StoreNotFound(
                    f"The secret {secret.name!r} no longer exists in {kind} as {name!r}",
                    hint="Fix its reference (keyward inventory update --reference) or remove it",
                )
            if described.managed_by and not take_over:
                raise ManagedElsewhere(
                    f"The secret {secret.name!r} is already rotated by {described.managed_by}, "
                    "and two rotations would fight over its pending version",
                    hint=f"Turn that rotation off, or run keyward rotate {secret.name} "
                    "--take-over to cancel it and rotate with keyward (recorded in the audit log)",
                )
        except KeywardError as exc:
            self.inventory.audit(
                secret, AuditEntry("rotation.start", "failed", {"error": error_text(exc)})
            )
            raise
        lease = rotation_lease(secret.id)
        self._take_lease(lease, secret.name, secret.id)
        try:
            if described.managed_by:
                self._take_over(secret, kind, name, store, described.managed_by)
            detail = RotationDetail(token=new_token(), store=kind, store_name=name)
            entry = self.inventory.start(
                secret, detail, AuditEntry("rotation.start", "ok", {"token": detail.token})
            )
            log.info("rotation %s of %s started", entry.id, secret.name)
            run = _Run(
                entry.id,
                secret,
                RotationState.IN_PROGRESS,
                entry.detail,
                entry.started_at,
                kind,
                name,
                store,
                rotator,
            )
            return self._with_warnings(run, self._drive(run))
        finally:
            self.inventory.release_lease(lease, self.holder)

    def _take_over(
        self, secret: RotatableSecret, kind: str, name: str, store: SecretStore, managed_by: str
    ) -> None:
        """Turn the other rotation off (and drop the pending version it abandoned), audited."""
        detail: dict[str, JsonValue] = {"managed_by": managed_by}
        stop = getattr(store, "stop_managed_rotation", None)
        try:
            if not callable(stop):
                raise ManagedElsewhere(
                    f"The {kind} store cannot turn off {managed_by} for {secret.name!r}",
                    hint="Turn it off yourself, then rotate",
                )
            detail["done"] = str(stop(name))
            after = store.describe(name)
            token = after.pending_token
            if token and self.inventory.entry_by_token(secret.id, token) is None:
                store.discard_pending(name, token)  # its pending version, now abandoned
                detail["discarded_pending"] = after.pending
        except KeywardError as exc:
            detail["error"] = error_text(exc)
            self.inventory.audit(secret, AuditEntry("rotation.take-over", "failed", detail))
            raise
        self.inventory.audit(secret, AuditEntry("rotation.take-over", "ok", detail))
        log.warning("%s: took over from %s", secret.name, managed_by)

    def resume(self, rotation_id: int) -> Outcome:
        """Continue an unfinished rotation from where it stopped (forward, or its rollback)."""
        return self._with_run(rotation_id, self._drive)

    def rollback(self, rotation_id: int, reason: str = "rolled back by request") -> Outcome:
        """Roll back an unfinished rotation that has not reached finish."""

        def requested(run: _Run) -> Outcome:
            match run.state:
                case RotationState.RETIRING:
                    raise NotRollbackable(
                        f"Rotation {run.id} of {run.secret.name!r} already finished: the new "
                        "value is current and only retiring the old credential remains",
                        hint=f"Resume it (keyward rotations resume {run.id}) or rotate again",
                    )
                case RotationState.IN_PROGRESS:
                    self._write(
                        run,
                        StateChanged(RotationState.ROLLING_BACK),
                        ErrorNoted(reason),
                        detail=replace(run.detail, reason=reason),
                        audit=AuditEntry("rotation.rollback", "requested", {"reason": reason}),
                    )
                case RotationState.ROLLING_BACK:
                    pass
                case RotationState.FINISHED | RotationState.ROLLED_BACK | RotationState.FAILED:
                    return self._already_over(run)
                case _:
                    assert_never(run.state)
            return self._rollback_and_report(run, reason, cause=None)

        return self._with_run(rotation_id, requested)

    # -------------------------------------------------------------- plumbing
    def _take_lease(self, lease: str, secret: str, secret_id: int) -> None:
        ttl = self.settings.lease_ttl
        if self.inventory.acquire_lease(lease, self.holder, ttl, secret_id=secret_id):
            return
        held = self.inventory.lease(lease)
        if held is not None and _holder_is_dead(held.holder):
            if self.inventory.take_over_lease(lease, self.holder, held.holder, ttl):
                log.warning(
                    "took over the rotation lease of %s from %s (gone)", secret, held.holder
                )
                return
        who = f"{held.holder} until {held.expires_at:%Y-%m-%d %H:%M:%S} UTC" if held else "?"
        raise RotationBusy(
            f"Another keyward process is working on the rotation of {secret!r} ({who})",
            hint="Wait for it, or for its lease to expire, then resume",
        )

    def _with_run(self, rotation_id: int, fn: Callable[[_Run], Outcome]) -> Outcome:
        entry = self.inventory.entry(rotation_id)
        state = _state_of(entry)
        if state.terminal:
            return Outcome(
                entry.id,
                entry.secret,
                state,
                f"Rotation {entry.id} of {entry.secret!r} is already "
                f"{state.value.replace('_', ' ')}",
            )
        lease = rotation_lease(entry.secret_id)
        self._take_lease(lease, entry.secret, entry.secret_id)
        try:
            entry = self.inventory.entry(rotation_id)  # fresh, under the lease
            state = _state_of(entry)
            if state.terminal:
                over = f"Rotation {entry.id} is already over"
                return Outcome(entry.id, entry.secret, state, over)
            secret = self.inventory.rotatable_by_id(entry.secret_id)
            kind, name, store = self.wiring.store_for(secret)
            run = _Run(
                entry.id,
                secret,
                state,
                entry.detail,
                entry.started_at,
                kind,
                entry.detail.store_name or name,
                store,
                self.wiring.rotator_for(secret),
            )
            self.inventory.audit(
                secret, AuditEntry("rotation.resume", "ok", {"state": state.value}), entry.id
            )
            return self._with_warnings(run, fn(run))
        finally:
            self.inventory.release_lease(lease, self.holder)

    def _write(
        self,
        run: _Run,
        *marks: Mark,
        detail: RotationDetail | None = None,
        audit: AuditEntry | None = None,
    ) -> None:
        """One durable write: the detail, ``marks`` and the audit events (the rotator's new
        warnings first), renewing our lease in the same transaction (losing it means someone
        took over)."""
        detail = detail or run.detail
        entries: list[AuditEntry] = []
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
        for mark in marks:
            if isinstance(mark, StateChanged):
                run.state = mark.state

    def _new_warnings(self, run: _Run, detail: RotationDetail) -> list[str]:
        """New warnings of the rotator (an optional ``take_warnings()``), each once."""
        take = getattr(run.rotator, "take_warnings", None)
        fresh = [str(w) for w in take()] if callable(take) else []
        added = [w for w in dict.fromkeys(fresh) if w not in detail.warnings]
        for text in added:
            log.warning("rotation %s of %s: %s", run.id, run.secret.name, text)
        return added

    @staticmethod
    def _with_warnings(run: _Run, out: Outcome) -> Outcome:
        return replace(out, warnings=run.detail.warnings) if run.detail.warnings else out

    @staticmethod
    def _already_over(run: _Run) -> Outcome:
        return Outcome(run.id, run.secret.name, run.state, f"Rotation {run.id} is already over")

    def _ctx(self, run: _Run) -> RotationContext:
        """The rotation as its rotator sees it, with notes persisted in the rotation."""
        return RotationContext(run.token, run.started_at, _JournalNotes(self, run))

    def _begin(self, run: _Run, step: Step) -> None:
        self._write(run, StepBegun(step))

    def _done(self, run: _Run, step: Step) -> None:
        done = run.detail.done if step in run.detail.done else (*run.detail.done, step)
        self._write(
            run,
            StepEnded(step, StepOutcome.OK),
            detail=replace(run.detail, done=done),
            audit=AuditEntry(f"rotation.{step.value}", "ok", {"step": step.value}),
        )

    def _event(self, run: _Run, event: str, error: str | None = None) -> None:
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
        }
        try:
            self.notifier.notify(doc)
        except Exception as exc:  # a webhook never breaks a rotation
            log.warning("rotation %s: notifying %s failed: %s", run.id, event, error_text(exc))

    def _backoff(self) -> datetime:
        """When the scheduler may try a failed rollback or retirement again (the CLI's
        ``resume``/``rollback`` do not wait)."""
        return self.now() + self.settings.retry_backoff

    def _stopping(self, run: _Run, where: str) -> Outcome | None:
        if not self.stop.is_set():
            return None
        self.inventory.audit(
            run.secret, AuditEntry("rotation.park", "ok", {"before": where}), run.id
        )
        log.warning("rotation %s of %s parked before %s", run.id, run.secret.name, where)
        return Outcome(
            run.id,
            run.secret.name,
            run.state,
            f"Rotation {run.id} of {run.secret.name!r} parked before {where}; it resumes later",
            parked=True,
        )

    # ---------------------------------------------------------------- driving
    def _drive(self, run: _Run) -> Outcome:
        match run.state:
            case RotationState.IN_PROGRESS:
                return self._forward(run)
            case RotationState.ROLLING_BACK:
                return self._rollback_and_report(run, run.detail.reason or "", cause=None)
            case RotationState.RETIRING:
                return self._retire(run)
            case RotationState.FINISHED | RotationState.ROLLED_BACK | RotationState.FAILED:
                return self._already_over(run)
            case _:
                assert_never(run.state)

    def _forward(self, run: _Run) -> Outcome:
        step = Step.CREATE
        try:
            for step in FORWARD_STEPS:
                if step in run.detail.done:
                    continue
                parked = self._stopping(run, step.value)
                if parked:
                    return parked
                self._begin(run, step)
                self.checkpoint(f"{step.value}:before")
                match step:
                    case Step.CREATE:
                        self._create(run)
                    case Step.SET:
                        cur, new = self._load(run)
                        run.rotator.set(cur.value, new.value)
                    case Step.TEST:
                        _, new = self._load(run)
                        run.rotator.test(new.value)
                    case Step.DEPENDENTS:
                        self._load(run)
                        parked = self._dependents(run)
                        if parked:
                            return parked
                    case Step.FINISH:
                        self._load(run)
                        pending = _noted(run.detail.pending, "pending version", run)
                        run.store.promote(run.name, pending)
                    case Step.RETIRE | Step.ROLLBACK:  # not forward steps
                        raise AssertionError(step)
                    case _:
                        assert_never(step)
                self.checkpoint(f"{step.value}:after")
                if step is Step.FINISH:
                    self._finished(run)
                else:
                    self._done(run, step)
        except (LeaseLost, RotationBusy):
            raise
        except Exception as exc:
            return self._fail(run, step, exc)
        return self._retire(run)

    def _create(self, run: _Run) -> None:
        store, name = run.store, run.name
        d = store.describe(name)
        if d.pending_token and d.pending_token != run.token:
            self._clear_foreign_pending(run, d.pending_token, d.pending)
            d = store.describe(name)
        old_version = run.detail.old_version
        cur = store.read_version(name, old_version) if old_version else store.read_current(name)
        run.cur = cur
        if not old_version:
            fp = cur.value.fingerprint(self.fp)
            self._write(
                run,
                VersionSeen(VersionRole.OLD, fp, cur.version),
                detail=replace(run.detail, old_version=cur.version, old_fingerprint=fp),
            )
        if d.pending_token == run.token and d.pending:
            pending = d.pending
        else:
            value = run.rotator.create(cur.value, self._ctx(run))
            self.checkpoint("create:inside")
            pending = store.put_pending(name, value, run.token)
            self.checkpoint("create:stored")
        if run.detail.pending != pending:
            self._write(run, detail=replace(run.detail, pending=pending))
        new = store.read_version(name, pending)
        run.new = new
        fp = new.value.fingerprint(self.fp)
        if run.detail.new_fingerprint not in (None, fp):
            raise RotationError(
                f"The pending version {pending} of {run.secret.name!r} does not hold the value "
                "this rotation created",
                hint="Roll the rotation back: keyward rotations rollback",
            )
        self._write(
            run,
            VersionSeen(VersionRole.NEW, fp, pending),
            detail=replace(run.detail, new_fingerprint=fp),
        )

    def _clear_foreign_pending(self, run: _Run, token: str, pending: str | None) -> None:
        """A pending version of another (abandoned) rotation of ours: roll it back first."""
        other = self.inventory.entry_by_token(run.secret.id, token)
        if other is None:
            raise RotationError(
                f"{run.store_kind} holds a pending version of {run.secret.name!r} that keyward "
                "did not write (another tool or an old installation is rotating it)",
                hint="Finish or remove that pending version, then rotate again",
            )
        cur = run.store.read_current(run.name)
        new = None
        if pending:
            try:
                new = run.store.read_version(run.name, pending)
            except StoreNotFound:
                new = None
        ctx = RotationContext(
            token, other.started_at, MemoryNotes(dict(other.detail.rotator_notes))
        )
        run.rotator.rollback(cur.value, new.value if new else None, ctx)
        run.store.discard_pending(run.name, token)
        self.inventory.audit(
            run.secret, AuditEntry("rotation.cleanup", "ok", {"leftover_of": other.id}), run.id
        )

    def _load(self, run: _Run) -> tuple[VersionedSecret, VersionedSecret]:
        """After a crash every value comes back from the store, checked by fingerprint."""
        if run.cur is None:
            old_version = _noted(run.detail.old_version, "old version", run)
            run.cur = run.store.read_version(run.name, old_version)
        if run.new is None:
            new = run.store.read_version(
                run.name, _noted(run.detail.pending, "pending version", run)
            )
            expected = run.detail.new_fingerprint
            if expected and new.value.fingerprint(self.fp) != expected:
                raise RotationError(
                    f"Version {new.version} of {run.secret.name!r} no longer holds the value "
                    "this rotation created",
                    hint="Roll the rotation back: keyward rotations rollback",
                )
            run.new = new
        return run.cur, run.new

    def _targets(
        self, run: _Run, cur: VersionedSecret, new: VersionedSecret
    ) -> list[DependentTarget]:
        fields = sorted({*cur.value.fields, *new.value.fields})
        rows = self.inventory.dependents(run.secret.id)
        overrides = self.wiring.target_overrides(run.secret)
        return list(targets_for(rows, fields, run.secret.name, overrides))

    def _dependent(self, run: _Run, kind: str) -> Dependent:
        if kind not in run.deps:
            run.deps[kind] = self.wiring.dependent(kind, run.secret)
        return run.deps[kind]

    def _dependents(self, run: _Run) -> Outcome | None:
        cur, new = self._load(run)
        snaps: dict[str, DependentSnapshot] = {p.key: p.snapshot for p in run.detail.snapshots}
        verified: list[str] = list(run.detail.verified)
        for i, target in enumerate(self._targets(run, cur, new), 1):
            key = _key(target)
            if key in verified:
                continue
            parked = self._stopping(run, f"dependent {target.resource}")
            if parked:
                return parked
            dep = self._dependent(run, target.kind)
            snap = snaps.get(key)
            if snap is None:
                snap = snaps[key] = dep.prepare(target, cur, new)
                prepared = (*run.detail.snapshots, PreparedDependent(key, snap))
                self._write(run, detail=replace(run.detail, snapshots=prepared))
            dep.update(snap, new)
            self.checkpoint(f"dependents:inside:{i}")
            dep.verify(snap, new)
            verified.append(key)
            self._write(run, detail=replace(run.detail, verified=tuple(verified)))
        return None

    def _finished(self, run: _Run) -> None:
        now = self.now()
        self._write(
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
        self._event(run, "rotation.finished")

    # ------------------------------------------------------------ retirement
    def _retire(self, run: _Run) -> Outcome:
        now = self.now()
        finished_at = run.detail.finished_at or now
        name = run.secret.name
        deactivated = run.detail.deactivated_at
        # A rotator with nothing to retire (a random value) finishes at once: waiting out the
        # grace period would only keep the secret "in flight" and block its next rotation.
        waits = getattr(run.rotator, "retires", True)
        if deactivated is None:
            due = finished_at + self.settings.deactivate_after
            if waits and now < due:
                self._write(run, detail=replace(run.detail, next_attempt_at=due))
                return Outcome(
                    run.id,
                    name,
                    run.state,
                    f"Rotated {name!r}; the old credential "
                    f"is deactivated after {due:%Y-%m-%d %H:%M} UTC",
                )
        try:
            old_version = _noted(run.detail.old_version, "old version", run)
            old = run.store.read_version(run.name, old_version)
            new = run.store.read_version(
                run.name, _noted(run.detail.pending, "pending version", run)
            )
            if deactivated is None:
                self._begin(run, Step.RETIRE)
                self.checkpoint("retire:before")
                run.rotator.deactivate(old.value, new.value)
                self.checkpoint("retire:inside")
                deactivated = now
                self._write(
                    run,
                    detail=replace(run.detail, deactivated_at=deactivated),
                    audit=AuditEntry("rotation.deactivate", "ok", {"step": Step.RETIRE.value}),
                )
            due = deactivated + self.settings.grace_period
            retry = run.detail.retry_after
            if retry:
                due = max(due, retry)
            if waits and now < due:
                self._write(run, detail=replace(run.detail, next_attempt_at=due))
                return Outcome(
                    run.id,
                    name,
                    run.state,
                    f"Rotated {name!r}; the old credential "
                    f"is inactive and is revoked after {due:%Y-%m-%d %H:%M} UTC",
                )
            result = run.rotator.revoke(old.value, new.value, deactivated)
        except (LeaseLost, RotationBusy):
            raise
        except Exception as exc:
            text = error_text(exc)
            self._write(
                run,
                ErrorNoted(f"retire: {text}"),
                StepEnded(Step.RETIRE, StepOutcome.FAILED, {"error": text}),
                detail=replace(run.detail, next_attempt_at=self._backoff()),
                audit=AuditEntry("rotation.retire", "failed", {"error": text}),
            )
            raise RotationFailed(
                f"Rotation {run.id} of {name!r} finished (the new value is current), but "
                f"retiring the old credential failed: {text}",
                hint=f"Fix the cause, then run keyward rotations resume {run.id}",
                exit_code=exit_code_of(exc),
            ) from None
        if result.outcome is RetireOutcome.KEPT_IN_USE:
            retry_at = now + self.settings.kept_in_use_retry
            self._write(
                run,
                detail=replace(
                    run.detail,
                    retry_after=retry_at,
                    next_attempt_at=retry_at,
                    retire_detail=result.detail,
                ),
                audit=AuditEntry("rotation.retire", "kept-in-use", {"detail": result.detail}),
            )
            return Outcome(
                run.id,
                name,
                run.state,
                f"Rotated {name!r}; the old credential was "
                f"kept because it is still in use ({result.detail}); retried after "
                f"{retry_at:%Y-%m-%d %H:%M} UTC",
            )
        self._write(
            run,
            StateChanged(RotationState.FINISHED),
            StepEnded(Step.RETIRE, StepOutcome.OK, {"outcome": result.outcome.value}),
            VersionStaged(VersionRole.OLD, VersionStage.RETIRED),
            ErrorCleared(),
            SecretRotated(finished_at),  # again, as finish wrote it (idempotent)
            detail=replace(run.detail, retired=result.outcome, retire_detail=result.detail),
            audit=AuditEntry("rotation.retire", "ok", {"outcome": result.outcome.value}),
        )
        self.checkpoint("retire:after")
        self._event(run, "rotation.retired")
        return Outcome(
            run.id,
            name,
            RotationState.FINISHED,
            f"Rotated {name!r}: the new value is current and {_retired(result.outcome)}",
        )

    # --------------------------------------------------------------- rollback
    def _fail(self, run: _Run, step: Step, exc: Exception) -> Outcome:
        text = error_text(exc)
        log.info("rotation %s of %s failed at %s: %s", run.id, run.secret.name, step, text)
        reason = f"{step.value}: {text}"
        self._write(
            run,
            StateChanged(RotationState.ROLLING_BACK),
            ErrorNoted(reason),
            StepEnded(step, StepOutcome.FAILED, {"error": text}),
            detail=replace(run.detail, reason=reason, failed_step=step),
            audit=AuditEntry(
                f"rotation.{step.value}", "failed", {"step": step.value, "error": text}
            ),
        )
        return self._rollback_and_report(run, reason, cause=exc)

    def _rollback_and_report(self, run: _Run, reason: str, cause: Exception | None) -> Outcome:
        name = run.secret.name
        try:
            completed = self._rollback(run)
        except (LeaseLost, RotationBusy):
            raise
        except Exception as exc:
            text = error_text(exc)
            self._write(
                run,
                ErrorNoted(f"{reason}; rollback: {text}" if reason else f"rollback: {text}"),
                StepEnded(Step.ROLLBACK, StepOutcome.FAILED, {"error": text}),
                detail=replace(run.detail, next_attempt_at=self._backoff()),
                audit=AuditEntry("rotation.rollback", "failed", {"error": text}),
            )
            self._event(run, "rotation.failed", f"{reason}; rollback: {text}")
            what = f"failed ({reason}) and its" if cause is not None else "was not rolled back:"
            raise RollbackIncomplete(
                f"Rotation {run.id} of {name!r} {what} rollback could not finish: {text}",
                hint=f"Fix the cause, then run keyward rotations rollback {run.id}",
                exit_code=exit_code_of(exc),
            ) from None
        if completed:  # promoted after all: retire outside the rollback's error handling
            out = self._retire(run)
            return Outcome(
                out.rotation_id,
                out.secret,
                out.state,
                "The new version was already "
                f"current, so the rotation was completed instead. {out.message}",
            )
        self._event(run, "rotation.rolled_back", reason or None)
        if cause is not None:
            hint = cause.hint if isinstance(cause, KeywardError) else None
            raise RotationFailed(
                f"Rotation {run.id} of {name!r} failed at {reason}; it was rolled back and "
                "the old credential is still current",
                hint=hint.replace(", then resume", ", then rotate again") if hint else None,
                exit_code=exit_code_of(cause),
            )
        return Outcome(
            run.id,
            name,
            RotationState.ROLLED_BACK,
            f"Rotation {run.id} of {name!r} was rolled back; the old credential is still current",
        )

    def _rollback(self, run: _Run) -> bool:
        """Undo everything before finish. True if it turned out promoted (nothing undone)."""
        store, name = run.store, run.name
        self._write(run, StepBegun(Step.ROLLBACK))
        d = store.describe(name)
        pending = run.detail.pending or (d.pending if d.pending_token == run.token else None)
        if pending and d.current == pending:
            # finish happened but was not recorded: the new value is current, go forward.
            # The promote itself may have stopped half way (Secrets Manager: AWSCURRENT moved,
            # AWSPENDING still on it; Vault: the write done, the staging record not): finish it.
            store.promote(name, str(pending))
            self._write(
                run,
                StateChanged(RotationState.IN_PROGRESS),
                StepEnded(Step.ROLLBACK, StepOutcome.SKIPPED, {"why": "already promoted"}),
                detail=replace(run.detail, pending=pending),
                audit=AuditEntry(
                    "rotation.rollback", "skipped", {"why": "new version already current"}
                ),
            )
            self._load(run)
            self._finished(run)
            return True
        old_version = run.detail.old_version
        cur = store.read_version(name, old_version) if old_version else store.read_current(name)
        new: VersionedSecret | None = None
        if pending:
            try:
                new = store.read_version(name, pending)
            except StoreNotFound:
                new = None
        restored: list[str] = list(run.detail.restored)
        vanished: list[str] = list(run.detail.vanished)
        for prepared in reversed(run.detail.snapshots):
            key, snap = prepared.key, prepared.snapshot
            if key in restored or key in vanished:
                continue
            dep = self._dependent(run, snap.target.kind)
            try:
                dep.rollback(snap, cur)
            except DependentNotFound as exc:
                vanished.append(key)
                self._write(
                    run,
                    detail=replace(run.detail, vanished=tuple(vanished)),
                    audit=AuditEntry(
                        "rotation.rollback",
                        "skipped",
                        {"dependent": snap.target.resource, "error": error_text(exc)},
                    ),
                )
                continue
            restored.append(key)
            self._write(run, detail=replace(run.detail, restored=tuple(restored)))
        self.checkpoint("rollback:inside")
        run.rotator.rollback(cur.value, new.value if new else None, self._ctx(run))
        store.discard_pending(name, run.token)
        self.checkpoint("rollback:discarded")
        self._write(
            run,
            StateChanged(RotationState.ROLLED_BACK),
            StepEnded(Step.ROLLBACK, StepOutcome.OK, {"restored": len(restored)}),
            VersionStaged(VersionRole.NEW, VersionStage.DISCARDED),
            audit=AuditEntry(
                "rotation.rollback", "ok", {"restored": len(restored), "vanished": len(vanished)}
            ),
        )
        log.info("rotation %s of %s rolled back", run.id, run.secret.name)
        return False
