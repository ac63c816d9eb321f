"""The rotation state machine: create -> set -> test -> dependents -> finish -> retire.

:class:`RotationEngine` starts, resumes and rolls back rotations of inventoried secrets and
drives them forward: it calls a :class:`~keyward.rotation.protocols.SecretStore`, a
:class:`~keyward.rotation.protocols.Rotator` and :class:`~keyward.rotation.protocols.Dependent`
plugins in the sequence documented in :mod:`keyward.rotation.protocols`, and persists its
progress through the :class:`~keyward.rotation.ports.RotationJournal` after every call that
changed the outside world, so a process killed at any point leaves a rotation that ``resume``
(forward) or ``rollback`` completes. After finish, :mod:`keyward.rotation.retire` retires the
old credential; any failure before finish hands over to :mod:`keyward.rotation.rollback`.
States and steps are :class:`~keyward.rotation.ports.RotationState` and
:class:`~keyward.rotation.ports.Step`, dispatched exhaustively (``assert_never``).

What is persisted (:class:`~keyward.rotation.ports.RotationDetail`; no raw value ever): the
idempotency ``token`` (first, before anything happens), the store's ``old_version`` and
``pending`` version ids, keyed fingerprints of both values, the dependent snapshots (each
persisted *before* its update), which targets were verified / restored, ``finished_at``,
``deactivated_at`` and the retirement outcome. Every step adds a ``rotation_steps`` row and an
audit event (step, actor, outcome, error text), written in the same transaction as the detail.

Fault injection: :meth:`~keyward.rotation.driver.Driver.checkpoint` is called at every
persisted boundary with a name such as ``set:before`` or ``dependents:inside:3``. In keyward it
does nothing; the test suite replaces ``RotationEngine.checkpoint`` (in a subprocess) to kill
the process there with SIGKILL.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import assert_never

from keyward.core.errors import KeywardError, RotationError, StoreNotFound
from keyward.rotation import retire as retiring
from keyward.rotation import rollback as rolling_back
from keyward.rotation.driver import Driver, Outcome, Run, dependent_key, error_text
from keyward.rotation.errors import LeaseLost, ManagedElsewhere, NotRollbackable, RotationBusy
from keyward.rotation.ports import (
    FORWARD_STEPS,
    AuditEntry,
    JournalEntry,
    JsonValue,
    PreparedDependent,
    RotatableSecret,
    RotationDetail,
    RotationState,
    Step,
    StepEnded,
    StepOutcome,
    VersionRole,
    VersionSeen,
    rotation_lease,
)
from keyward.rotation.protocols import (
    DependentSnapshot,
    DependentTarget,
    MemoryNotes,
    RotationContext,
    SecretDescription,
    SecretStore,
    VersionedSecret,
    new_token,
)
from keyward.rotation.wiring import targets_for

log = logging.getLogger(__name__)


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


# forward steps followed by a durable write of their own: create and set change something
# that must be recovered after a crash; test's success is written before finish makes the
# new value current (the audit log shows every current value tested first). Dependents write
# around each update themselves; finish writes the rotation finished.
_DURABLE = frozenset({Step.CREATE, Step.SET, Step.TEST})


def _state_of(entry: JournalEntry) -> RotationState:
    try:
        return RotationState(entry.state)
    except ValueError:
        raise RotationError(
            f"Rotation {entry.id} of {entry.secret!r} is in state {entry.state!r}, which this "
            "keyward does not know",
            hint="It was written by another tool or a newer keyward; upgrade keyward",
        ) from None


class RotationEngine(Driver):
    """Drives rotations of inventoried secrets; one instance per CLI run or daemon worker.

    Built with the inventory (a :class:`~keyward.rotation.ports.RotationInventory`), the
    :class:`~keyward.rotation.wiring.Wiring` of plugins, the fingerprinter and the
    ``[rotation]`` settings (see :class:`~keyward.rotation.driver.Driver`)."""

    # ----------------------------------------------------------------- public
    def rotate(
        self,
        secret_name: str,
        *,
        take_over: bool = False,
        reason: str | None = None,
        only_if_leaked: bool = False,
    ) -> Outcome:
        """Start a rotation of ``secret_name`` and drive it as far as it can go now.

        A secret whose current version leaked (a scan found it) is rotated for the leak: the
        rotation's reason says so (unless ``reason`` is given), and its old credential is
        deactivated and revoked as soon as the new one is current and every dependent
        verified, without waiting out the grace period. ``only_if_leaked`` (the daemon's and
        ``rotate --leaked``'s): a secret that is no longer leaked when its lease is taken
        (another worker rotated it meanwhile) is not rotated again (a ``skipped`` outcome).

        If the secret's previous rotation is still retiring its old credential (the grace
        period), that retirement is finished early first (:func:`retire.retire_early`): the
        old credential is revoked if it was not used since it was deactivated, otherwise the
        new rotation is refused (:class:`StillRetiring`), naming the last use. ``reason`` (why
        rotate now: "the key leaked in finding 42") goes into the audit log of both.

        A secret that another rotation already rotates (Secrets Manager's own) is refused,
        unless ``take_over``: then that rotation is turned off first, in the audit log."""
        secret = self.inventory.rotatable(secret_name)
        kind, name, store = self.wiring.store_for(secret)
        rotator = self.wiring.rotator_for(secret)
        lease = rotation_lease(secret.id)
        self._take_lease(lease, secret.name, secret.id)
        try:
            leak = self.inventory.leak_of(secret.id)  # under the lease: as it is now
            if leak is None and only_if_leaked:
                return Outcome(
                    0,
                    secret.name,
                    RotationState.FINISHED,
                    f"{secret.name!r} is no longer leaked (rotated meanwhile): not rotated again",
                    skipped=True,
                )
            if leak is not None:
                reason = reason or leak.reason()
            described: SecretDescription | None
            try:  # under the lease: described once, for the checks and for create
                described = store.describe(name)
                if not described.exists:
                    raise StoreNotFound(
                        f"The secret {secret.name!r} no longer exists in {kind} as {name!r}",
                        hint="Fix its reference (keyward inventory update --reference) or "
                        "remove it",
                    )
                if described.managed_by and not take_over:
                    raise ManagedElsewhere(
                        f"The secret {secret.name!r} is already rotated by "
                        f"{described.managed_by}, and two rotations would fight over its "
                        "pending version",
                        hint=f"Turn that rotation off, or run keyward rotate {secret.name} "
                        "--take-over to cancel it and rotate with keyward (recorded in the "
                        "audit log)",
                    )
            except KeywardError as exc:
                self.inventory.audit(
                    secret, AuditEntry("rotation.start", "failed", {"error": error_text(exc)})
                )
                raise
            managed_by = described.managed_by
            early = self._retire_previous_early(secret, kind, name, store, reason)
            if early:
                described = None  # the retirement went on meanwhile: create describes again
            if managed_by:
                self._take_over(secret, kind, name, store, managed_by)
                described = None  # it changed: create describes it again
            detail = RotationDetail(
                token=new_token(), store=kind, store_name=name, leaked=leak is not None
            )
            started: dict[str, JsonValue] = {"token": detail.token}
            if reason:
                started["reason"] = reason
            leaked: dict[str, JsonValue] = {}
            if leak is not None:
                leaked = {
                    "leak": True,
                    "version_id": leak.version_id,
                    "leaked_at": leak.leaked_at.isoformat(),
                    "findings": list(leak.findings),
                }
            entry = self.inventory.start(
                secret, detail, AuditEntry("rotation.start", "ok", {**started, **leaked})
            )
            log.info("rotation %s of %s started", entry.id, secret.name)
            run = Run(
                entry.id,
                secret,
                RotationState.IN_PROGRESS,
                entry.detail,
                entry.started_at,
                kind,
                name,
                store,
                rotator,
                described=described,
            )
            if leak is not None:
                self.event(run, "rotation.started", extra={"reason": "leak", **leaked})
            out = self._with_warnings(run, self._drive(run))
            return replace(out, message=f"{early} {out.message}") if early else out
        finally:
            self.inventory.release_lease(lease, self.holder)

    def _retire_previous_early(
        self,
        secret: RotatableSecret,
        kind: str,
        name: str,
        store: SecretStore,
        reason: str | None,
    ) -> str | None:
        """Finish the retirement of the secret's previous rotation now, if one is retiring
        (under the secret's lease); what became of it, in words, for the outcome."""
        previous = self.inventory.entry_in_flight(secret.id)
        if previous is None or _state_of(previous) is not RotationState.RETIRING:
            return None  # nothing in flight, or in progress: start() refuses that one
        run = Run(
            previous.id,
            secret,
            RotationState.RETIRING,
            previous.detail,
            previous.started_at,
            kind,
            previous.detail.store_name or name,
            store,
            self.wiring.rotator_for(secret),
        )
        out = retiring.retire_early(self, run, reason or "rotated again while retiring")
        return f"Finished retiring rotation {previous.id} early: {out.message}."

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

        def requested(run: Run) -> Outcome:
            match run.state:
                case RotationState.IN_PROGRESS:
                    return rolling_back.requested(self, run, reason)
                case RotationState.ROLLING_BACK:
                    return rolling_back.roll_back(self, run, reason, cause=None)
                case RotationState.RETIRING:
                    raise NotRollbackable(
                        f"Rotation {run.id} of {run.secret.name!r} already finished: the new "
                        "value is current and only retiring the old credential remains",
                        hint=f"Rotate again if the new value must be replaced (keyward rotate "
                        f"{run.secret.name}: it finishes this retirement first), or resume it "
                        f"(keyward rotations resume {run.id})",
                    )
                case RotationState.FINISHED | RotationState.ROLLED_BACK | RotationState.FAILED:
                    return run.outcome(f"Rotation {run.id} is already over")
                case _:
                    assert_never(run.state)

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

    def _with_run(self, rotation_id: int, fn: Callable[[Run], Outcome]) -> Outcome:
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
            run = Run(
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

    @staticmethod
    def _with_warnings(run: Run, out: Outcome) -> Outcome:
        return replace(out, warnings=run.detail.warnings) if run.detail.warnings else out

    # ---------------------------------------------------------------- driving
    def _drive(self, run: Run) -> Outcome:
        match run.state:
            case RotationState.IN_PROGRESS:
                return self._forward(run)
            case RotationState.ROLLING_BACK:
                return rolling_back.roll_back(self, run, run.detail.reason or "", cause=None)
            case RotationState.RETIRING:
                return retiring.retire(self, run)
            case RotationState.FINISHED | RotationState.ROLLED_BACK | RotationState.FAILED:
                return run.outcome(f"Rotation {run.id} is already over")
            case _:
                assert_never(run.state)

    def _forward(self, run: Run) -> Outcome:
        step = Step.CREATE
        try:
            for step in FORWARD_STEPS:
                if step in run.detail.done:
                    continue
                parked = self.stopping(run, step.value)
                if parked:
                    return parked
                self.begin(run, step)
                self.checkpoint(f"{step.value}:before")
                match step:
                    case Step.CREATE:
                        self._create(run)
                    case Step.SET:
                        cur, new = self.load(run)
                        run.rotator.set(cur.value, new.value)
                    case Step.TEST:
                        _, new = self.load(run)
                        run.rotator.test(new.value)
                    case Step.DEPENDENTS:
                        parked = self._dependents(run)
                        if parked:
                            return parked
                    case Step.FINISH:
                        self.load(run)
                        run.store.promote(
                            run.name, run.noted(run.detail.pending, "pending version")
                        )
                    case Step.RETIRE | Step.ROLLBACK:  # not forward steps
                        raise AssertionError(step)
                    case _:
                        assert_never(step)
                self.checkpoint(f"{step.value}:after")
                if step is Step.FINISH:
                    self.record_finished(run)
                else:
                    self._done(run, step, durable=step in _DURABLE)
        except (LeaseLost, RotationBusy):
            raise
        except Exception as exc:
            return rolling_back.fail(self, run, step, exc)
        return retiring.retire(self, run)

    def _done(self, run: Run, step: Step, *, durable: bool) -> None:
        """``step`` is done: written at once after create, set and test (see ``_DURABLE``),
        else noted for the next write (see :meth:`Driver.note`)."""
        done = run.detail.done if step in run.detail.done else (*run.detail.done, step)
        (self.write if durable else self.note)(
            run,
            StepEnded(step, StepOutcome.OK),
            detail=replace(run.detail, done=done),
            audit=AuditEntry(f"rotation.{step.value}", "ok", {"step": step.value}),
        )

    def _create(self, run: Run) -> None:
        """Stage the new value. The token was written when the rotation started, so a
        retried ``put_pending`` finds its own value; the old and new versions are written
        after it, with the step (one durable write)."""
        store, name = run.store, run.name
        d = run.described or store.describe(name)  # described once: when rotate() began
        run.described = None
        if d.pending_token and d.pending_token != run.token:
            self._clear_foreign_pending(run, d.pending_token, d.pending)
            d = store.describe(name)
        old_version = run.detail.old_version
        cur = store.read_version(name, old_version) if old_version else store.read_current(name)
        run.cur = cur
        if not old_version:
            fp = cur.value.fingerprint(self.fp)
            self.note(
                run,
                VersionSeen(
                    VersionRole.OLD, fp, cur.version, cur.value.field_fingerprints(self.fp)
                ),
                detail=replace(run.detail, old_version=cur.version, old_fingerprint=fp),
            )
        if d.pending_token == run.token and d.pending:  # staged before a crash: read back
            pending = d.pending
            new = store.read_version(name, pending)
        else:
            value = run.rotator.create(cur.value, self.context(run))
            self.checkpoint("create:inside")
            pending = store.put_pending(name, value, run.token)
            self.checkpoint("create:stored")
            # the store holds exactly this value as ``pending`` (the store contract)
            new = VersionedSecret(name, pending, value)
        run.new = new
        fp = new.value.fingerprint(self.fp)
        if run.detail.new_fingerprint not in (None, fp):
            raise RotationError(
                f"The pending version {pending} of {run.secret.name!r} does not hold the value "
                "this rotation created",
                hint="Roll the rotation back: keyward rotations rollback",
            )
        self.note(
            run,
            VersionSeen(VersionRole.NEW, fp, pending, new.value.field_fingerprints(self.fp)),
            detail=replace(run.detail, pending=pending, new_fingerprint=fp),
        )

    def _clear_foreign_pending(self, run: Run, token: str, pending: str | None) -> None:
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
        notes = MemoryNotes(dict(other.detail.rotator_notes))
        ctx = RotationContext(token, other.started_at, notes)
        run.rotator.rollback(cur.value, new.value if new else None, ctx)
        run.store.discard_pending(run.name, token)
        self.inventory.audit(
            run.secret, AuditEntry("rotation.cleanup", "ok", {"leftover_of": other.id}), run.id
        )

    def _targets(
        self, run: Run, cur: VersionedSecret, new: VersionedSecret
    ) -> list[DependentTarget]:
        fields = sorted({*cur.value.fields, *new.value.fields})
        rows = self.inventory.dependents(run.secret.id)
        overrides = self.wiring.target_overrides(run.secret)
        return list(targets_for(rows, fields, run.secret.name, overrides, run.secret.account))

    def _dependents(self, run: Run) -> Outcome | None:
        cur, new = self.load(run)
        snaps: dict[str, DependentSnapshot] = {p.key: p.snapshot for p in run.detail.snapshots}
        verified: list[str] = list(run.detail.verified)
        for i, target in enumerate(self._targets(run, cur, new), 1):
            key = dependent_key(target)
            if key in verified:
                continue
            parked = self.stopping(run, f"dependent {target.resource}")
            if parked:
                return parked
            dep = self.dependent(run, target.kind)
            snap = snaps.get(key)
            if snap is None:
                snap = snaps[key] = dep.prepare(target, cur, new)
                prepared = (*run.detail.snapshots, PreparedDependent(key, snap))
                self.write(run, detail=replace(run.detail, snapshots=prepared))
            dep.update(snap, new)
            self.checkpoint(f"dependents:inside:{i}")
            dep.verify(snap, new)
            verified.append(key)
            self.write(run, detail=replace(run.detail, verified=tuple(verified)))
        return None
