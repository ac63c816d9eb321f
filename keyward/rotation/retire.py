"""Retiring the old credential once the new one is current (the rotation is ``retiring``).

After finish the old credential is deactivated (at once, or ``deactivate_after`` later), then
revoked once ``grace_period`` has passed since its deactivation; a rotator with nothing to
retire (``retires = False``: a random value) does both at once. A revoke the provider refuses
because the old credential is still in use (``KEPT_IN_USE``) keeps it and is tried again after
``kept_in_use_retry``. Until it is revoked the rotation stays ``retiring`` (and in flight);
every wait is written as ``next_attempt_at`` for the scheduler.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import assert_never

from keyward.rotation.driver import Driver, Outcome, Run, error_text, exit_code_of
from keyward.rotation.errors import LeaseLost, RotationBusy, RotationFailed
from keyward.rotation.ports import (
    AuditEntry,
    ErrorCleared,
    ErrorNoted,
    RotationState,
    SecretRotated,
    StateChanged,
    Step,
    StepEnded,
    StepOutcome,
    VersionRole,
    VersionStage,
    VersionStaged,
)
from keyward.rotation.protocols import Retirement, RetireOutcome, VersionedSecret


def retire(driver: Driver, run: Run) -> Outcome:
    """Deactivate, then revoke, the old credential as far as the grace periods allow now."""
    now = driver.now()
    finished_at = run.detail.finished_at or now
    # A rotator with nothing to retire (a random value) finishes at once: waiting out the
    # grace period would only keep the secret "in flight" and block its next rotation.
    waits = getattr(run.rotator, "retires", True)
    if run.detail.deactivated_at is None:
        due = finished_at + driver.settings.deactivate_after
        if waits and now < due:
            return _wait(driver, run, due, "is deactivated after")
    try:
        old = run.store.read_version(run.name, run.noted(run.detail.old_version, "old version"))
        new = run.store.read_version(run.name, run.noted(run.detail.pending, "pending version"))
        deactivated = run.detail.deactivated_at or _deactivate(driver, run, old, new, now)
        due = deactivated + driver.settings.grace_period
        if run.detail.retry_after:
            due = max(due, run.detail.retry_after)
        if waits and now < due:
            return _wait(driver, run, due, "is inactive and is revoked after")
        result = run.rotator.revoke(old.value, new.value, deactivated)
    except (LeaseLost, RotationBusy):
        raise
    except Exception as exc:
        raise _failed(driver, run, exc) from None
    if result.outcome is RetireOutcome.KEPT_IN_USE:
        return _kept(driver, run, result, now)
    return _retired(driver, run, result, finished_at)


def _wait(driver: Driver, run: Run, due: datetime, what: str) -> Outcome:
    driver.write(run, detail=replace(run.detail, next_attempt_at=due))
    return run.outcome(
        f"Rotated {run.secret.name!r}; the old credential {what} {due:%Y-%m-%d %H:%M} UTC"
    )


def _deactivate(
    driver: Driver, run: Run, old: VersionedSecret, new: VersionedSecret, now: datetime
) -> datetime:
    driver.begin(run, Step.RETIRE)
    driver.checkpoint("retire:before")
    run.rotator.deactivate(old.value, new.value)
    driver.checkpoint("retire:inside")
    driver.write(
        run,
        detail=replace(run.detail, deactivated_at=now),
        audit=AuditEntry("rotation.deactivate", "ok", {"step": Step.RETIRE.value}),
    )
    return now


def _failed(driver: Driver, run: Run, exc: Exception) -> RotationFailed:
    text = error_text(exc)
    driver.write(
        run,
        ErrorNoted(f"retire: {text}"),
        StepEnded(Step.RETIRE, StepOutcome.FAILED, {"error": text}),
        detail=replace(run.detail, next_attempt_at=driver.backoff()),
        audit=AuditEntry("rotation.retire", "failed", {"error": text}),
    )
    return RotationFailed(
        f"Rotation {run.id} of {run.secret.name!r} finished (the new value is current), but "
        f"retiring the old credential failed: {text}",
        hint=f"Fix the cause, then run keyward rotations resume {run.id}",
        exit_code=exit_code_of(exc),
    )


def _kept(driver: Driver, run: Run, result: Retirement, now: datetime) -> Outcome:
    retry_at = now + driver.settings.kept_in_use_retry
    driver.write(
        run,
        detail=replace(
            run.detail, retry_after=retry_at, next_attempt_at=retry_at, retire_detail=result.detail
        ),
        audit=AuditEntry("rotation.retire", "kept-in-use", {"detail": result.detail}),
    )
    return run.outcome(
        f"Rotated {run.secret.name!r}; the old credential was "
        f"kept because it is still in use ({result.detail}); retried after "
        f"{retry_at:%Y-%m-%d %H:%M} UTC"
    )


def _retired(driver: Driver, run: Run, result: Retirement, finished_at: datetime) -> Outcome:
    driver.write(
        run,
        StateChanged(RotationState.FINISHED),
        StepEnded(Step.RETIRE, StepOutcome.OK, {"outcome": result.outcome.value}),
        VersionStaged(VersionRole.OLD, VersionStage.RETIRED),
        ErrorCleared(),
        SecretRotated(finished_at),  # again, as finish wrote it (idempotent)
        detail=replace(run.detail, retired=result.outcome, retire_detail=result.detail),
        audit=AuditEntry("rotation.retire", "ok", {"outcome": result.outcome.value}),
    )
    driver.checkpoint("retire:after")
    driver.event(run, "rotation.retired")
    old = _old_credential(result.outcome)
    return run.outcome(f"Rotated {run.secret.name!r}: the new value is current and {old}")


def _old_credential(outcome: RetireOutcome) -> str:
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
