"""Rolling back a rotation that failed (or was stopped) before finish.

The rotation becomes ``rolling_back`` with its reason, then: every dependent restored from its
persisted snapshot, newest first (one that no longer exists is recorded as vanished and
skipped), the rotator's ``rollback`` (revoke the new credential, undo ``set``), the store's
pending version discarded; then ``rolled_back``. The old credential is never touched. A
rollback that cannot finish stays ``rolling_back`` (resumed by ``keyward rotations rollback``
or, after ``retry_backoff``, by the scheduler). A rollback that finds the new version already
current completes the rotation instead: the finish happened but was not recorded.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from keyward.core.errors import KeywardError, StoreNotFound
from keyward.rotation.driver import Driver, Outcome, Run, error_text, exit_code_of
from keyward.rotation.errors import (
    DependentNotFound,
    LeaseLost,
    RollbackIncomplete,
    RotationBusy,
    RotationFailed,
)
from keyward.rotation.ports import (
    AuditEntry,
    ErrorNoted,
    RotationState,
    StateChanged,
    Step,
    StepEnded,
    StepOutcome,
    VersionRole,
    VersionStage,
    VersionStaged,
)
from keyward.rotation.protocols import VersionedSecret
from keyward.rotation.retire import retire

log = logging.getLogger(__name__)


def fail(driver: Driver, run: Run, step: Step, exc: Exception) -> Outcome:
    """``step`` failed with ``exc``: record why, roll back, raise :class:`RotationFailed`
    with the cause's exit code (or :class:`RollbackIncomplete`)."""
    text = error_text(exc)
    log.info("rotation %s of %s failed at %s: %s", run.id, run.secret.name, step, text)
    reason = f"{step.value}: {text}"
    driver.write(
        run,
        StateChanged(RotationState.ROLLING_BACK),
        ErrorNoted(reason),
        StepEnded(step, StepOutcome.FAILED, {"error": text}),
        detail=replace(run.detail, reason=reason, failed_step=step),
        audit=AuditEntry(f"rotation.{step.value}", "failed", {"step": step.value, "error": text}),
    )
    return roll_back(driver, run, reason, cause=exc)


def requested(driver: Driver, run: Run, reason: str) -> Outcome:
    """An operator asked for the rollback of a rotation in progress (or rolling back)."""
    driver.write(
        run,
        StateChanged(RotationState.ROLLING_BACK),
        ErrorNoted(reason),
        detail=replace(run.detail, reason=reason),
        audit=AuditEntry("rotation.rollback", "requested", {"reason": reason}),
    )
    return roll_back(driver, run, reason, cause=None)


def roll_back(driver: Driver, run: Run, reason: str, cause: Exception | None) -> Outcome:
    """Undo the rotation and report: an outcome when it was asked for (``cause`` None),
    :class:`RotationFailed` when ``cause`` made it necessary."""
    name = run.secret.name
    try:
        completed = _undo(driver, run)
    except (LeaseLost, RotationBusy):
        raise
    except Exception as exc:
        text = error_text(exc)
        driver.write(
            run,
            ErrorNoted(f"{reason}; rollback: {text}" if reason else f"rollback: {text}"),
            StepEnded(Step.ROLLBACK, StepOutcome.FAILED, {"error": text}),
            detail=replace(run.detail, next_attempt_at=driver.backoff()),
            audit=AuditEntry("rotation.rollback", "failed", {"error": text}),
        )
        driver.event(run, "rotation.failed", f"{reason}; rollback: {text}")
        what = f"failed ({reason}) and its" if cause is not None else "was not rolled back:"
        raise RollbackIncomplete(
            f"Rotation {run.id} of {name!r} {what} rollback could not finish: {text}",
            hint=f"Fix the cause, then run keyward rotations rollback {run.id}",
            exit_code=exit_code_of(exc),
        ) from None
    if completed:  # promoted after all: retire outside the rollback's error handling
        out = retire(driver, run)
        return replace(
            out,
            message="The new version was already "
            f"current, so the rotation was completed instead. {out.message}",
        )
    driver.event(run, "rotation.rolled_back", reason or None)
    if cause is not None:
        hint = cause.hint if isinstance(cause, KeywardError) else None
        raise RotationFailed(
            f"Rotation {run.id} of {name!r} failed at {reason}; it was rolled back and "
            "the old credential is still current",
            hint=hint.replace(", then resume", ", then rotate again") if hint else None,
            exit_code=exit_code_of(cause),
        )
    return run.outcome(
        f"Rotation {run.id} of {name!r} was rolled back; the old credential is still current"
    )


def _undo(driver: Driver, run: Run) -> bool:
    """Undo everything before finish. True if it turned out promoted (nothing undone)."""
    store, name = run.store, run.name
    driver.begin(run, Step.ROLLBACK)
    d = store.describe(name)
    pending = run.detail.pending or (d.pending if d.pending_token == run.token else None)
    if pending and d.current == pending:
        # finish happened but was not recorded: the new value is current, go forward.
        # The promote itself may have stopped half way (Secrets Manager: AWSCURRENT moved,
        # AWSPENDING still on it; Vault: the write done, the staging record not): finish it.
        store.promote(name, pending)
        driver.write(
            run,
            StateChanged(RotationState.IN_PROGRESS),
            StepEnded(Step.ROLLBACK, StepOutcome.SKIPPED, {"why": "already promoted"}),
            detail=replace(run.detail, pending=pending),
            audit=AuditEntry(
                "rotation.rollback", "skipped", {"why": "new version already current"}
            ),
        )
        driver.load(run)
        driver.record_finished(run)
        return True
    old_version = run.detail.old_version
    cur = store.read_version(name, old_version) if old_version else store.read_current(name)
    new: VersionedSecret | None = None
    if pending:
        try:
            new = store.read_version(name, pending)
        except StoreNotFound:
            new = None
    restored, vanished = _restore_dependents(driver, run, cur)
    driver.checkpoint("rollback:inside")
    run.rotator.rollback(cur.value, new.value if new else None, driver.context(run))
    store.discard_pending(name, run.token)
    driver.checkpoint("rollback:discarded")
    driver.write(
        run,
        StateChanged(RotationState.ROLLED_BACK),
        StepEnded(Step.ROLLBACK, StepOutcome.OK, {"restored": restored}),
        VersionStaged(VersionRole.NEW, VersionStage.DISCARDED),
        audit=AuditEntry("rotation.rollback", "ok", {"restored": restored, "vanished": vanished}),
    )
    log.info("rotation %s of %s rolled back", run.id, run.secret.name)
    return False


def _restore_dependents(driver: Driver, run: Run, cur: VersionedSecret) -> tuple[int, int]:
    """Each persisted snapshot, newest first, restored (or found gone); how many of each."""
    restored: list[str] = list(run.detail.restored)
    vanished: list[str] = list(run.detail.vanished)
    for prepared in reversed(run.detail.snapshots):
        key, snap = prepared.key, prepared.snapshot
        if key in restored or key in vanished:
            continue
        dep = driver.dependent(run, snap.target.kind)
        try:
            dep.rollback(snap, cur)
        except DependentNotFound as exc:
            vanished.append(key)
            driver.write(
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
        driver.write(run, detail=replace(run.detail, restored=tuple(restored)))
    return len(restored), len(vanished)
