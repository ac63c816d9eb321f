"""Retiring the old credential once the new one is current (the rotation is ``retiring``).

After finish the old credential is deactivated (at once, or ``deactivate_after`` later), then
revoked once ``grace_period`` has passed since its deactivation; a rotator with nothing to
retire (``retires = False``: a random value) does both at once. A revoke the provider refuses
because the old credential is still in use (``KEPT_IN_USE``) keeps it and is tried again after
``kept_in_use_retry``. Until it is revoked the rotation stays ``retiring`` (and in flight);
every wait is written as ``next_attempt_at`` for the scheduler.

A leaked old credential waits for nothing: when the rotation was started for a leak
(``detail.leaked``) or a scan found the old value later (its version's ``leaked_at``), it is
deactivated and revoked as soon as the new one is current (only a refused revoke waits for its
retry). Revoking it remediates its findings (:class:`~keyward.rotation.ports.LeakRemediated`).

:func:`retire_early` finishes a retirement before its time, for a new rotation of the same
secret (an emergency: the new credential leaked during the grace period). It revokes the old
credential if it was not used since it was deactivated (deactivating it first, when
``deactivate_after`` has not come yet: then it must not have been used since the rotation
finished); otherwise it refuses, naming the last use, and the rotation keeps retiring.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import assert_never

from keyward.rotation.driver import Driver, Outcome, Run, error_text, exit_code_of
from keyward.rotation.errors import LeaseLost, RotationBusy, RotationFailed, StillRetiring
from keyward.rotation.ports import (
    AuditEntry,
    ErrorCleared,
    ErrorNoted,
    JsonValue,
    LeakRemediated,
    Mark,
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

log = logging.getLogger(__name__)


def retire(driver: Driver, run: Run) -> Outcome:
    """Deactivate, then revoke, the old credential as far as the grace periods allow now."""
    now = driver.now()
    finished_at = run.detail.finished_at or now
    # A rotator with nothing to retire (a random value) finishes at once: waiting out the
    # grace period would only keep the secret "in flight" and block its next rotation. A
    # leaked credential does not wait either: the new one is current and every dependent
    # verified, so it is deactivated and revoked now.
    leaked = run.detail.leaked or driver.inventory.old_version_leaked(run.id)
    waits = getattr(run.rotator, "retires", True) and not leaked
    if leaked and run.detail.retry_after and now < run.detail.retry_after:
        # a refused revoke (used after deactivation) is retried after kept_in_use_retry
        return _wait(driver, run, run.detail.retry_after, "is inactive and is revoked after")
    if run.detail.deactivated_at is None:
        due = finished_at + driver.settings.deactivate_after
        if waits and now < due:
            return _wait(driver, run, due, "is deactivated after")
    try:
        old, new = driver.load(run)  # what the forward steps read, else from the store
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
    return _retired(driver, run, result, finished_at, leaked=leaked)


def retire_early(driver: Driver, run: Run, reason: str) -> Outcome:
    """Revoke the old credential of ``run`` (retiring) now, so the secret can be rotated
    again; :class:`StillRetiring`, and nothing revoked, when it was used since."""
    now = driver.now()
    finished_at = run.detail.finished_at or now
    why: dict[str, JsonValue] = {"early": True, "reason": reason}
    try:
        old = run.store.read_version(run.name, run.noted(run.detail.old_version, "old version"))
        new = run.store.read_version(run.name, run.noted(run.detail.pending, "pending version"))
        # a credential used after the new one replaced it is still needed by someone
        since = run.detail.deactivated_at or finished_at
        if run.detail.deactivated_at is None:
            _deactivate(driver, run, old, new, now)
        result = run.rotator.revoke(old.value, new.value, since)
        driver.checkpoint("retire-early:revoked")
    except (LeaseLost, RotationBusy):
        raise
    except Exception as exc:
        failed = _failed(driver, run, exc)
        raise RotationFailed(
            f"{failed.message}, so {run.secret.name!r} was not rotated again",
            hint="Fix the cause, then rotate again",
            exit_code=failed.exit_code,
        ) from None
    if result.outcome is RetireOutcome.KEPT_IN_USE:
        _kept(driver, run, result, now, why)
        raise StillRetiring(
            f"Rotation {run.id} of {run.secret.name!r} is still retiring its old credential, "
            f"and keyward will not revoke it early: {result.detail}",
            hint="Find what still uses it and stop that, then rotate again; until then the "
            "old credential stays inactive",
        )
    leaked = run.detail.leaked or driver.inventory.old_version_leaked(run.id)
    done = _retired(driver, run, result, finished_at, why, leaked=leaked)
    log.info("rotation %s of %s retired early (%s)", run.id, run.secret.name, reason)
    return done


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


def _kept(
    driver: Driver,
    run: Run,
    result: Retirement,
    now: datetime,
    why: Mapping[str, JsonValue] | None = None,
) -> Outcome:
    retry_at = now + driver.settings.kept_in_use_retry
    driver.write(
        run,
        detail=replace(
            run.detail, retry_after=retry_at, next_attempt_at=retry_at, retire_detail=result.detail
        ),
        audit=AuditEntry(
            "rotation.retire", "kept-in-use", {"detail": result.detail, **(why or {})}
        ),
    )
    return run.outcome(
        f"Rotated {run.secret.name!r}; the old credential was "
        f"kept because it is still in use ({result.detail}); retried after "
        f"{retry_at:%Y-%m-%d %H:%M} UTC"
    )


def _retired(
    driver: Driver,
    run: Run,
    result: Retirement,
    finished_at: datetime,
    why: Mapping[str, JsonValue] | None = None,
    *,
    leaked: bool = False,
) -> Outcome:
    marks: list[Mark] = [
        StateChanged(RotationState.FINISHED),
        StepEnded(Step.RETIRE, StepOutcome.OK, {"outcome": result.outcome.value}),
        VersionStaged(VersionRole.OLD, VersionStage.RETIRED),
        ErrorCleared(),
        SecretRotated(finished_at),  # again, as finish wrote it (idempotent)
    ]
    if _old_value_gone(run, result.outcome):
        marks.append(LeakRemediated())  # the findings of the old value are remediated
    driver.write(
        run,
        *marks,
        detail=replace(run.detail, retired=result.outcome, retire_detail=result.detail),
        audit=AuditEntry("rotation.retire", "ok", {"outcome": result.outcome.value, **(why or {})}),
    )
    driver.checkpoint("retire:after")
    driver.event(run, "rotation.retired")
    if leaked or run.detail.leaked:
        remediated = driver.inventory.remediated_findings(run.id)
        driver.event(run, "leak.remediated", extra={"findings": list(remediated)})
    old = _old_credential(result.outcome)
    return run.outcome(f"Rotated {run.secret.name!r}: the new value is current and {old}")


def _old_value_gone(run: Run, outcome: RetireOutcome) -> bool:
    """The old value no longer works: revoked, already gone, or (nothing to revoke) replaced
    by a different value."""
    match outcome:
        case RetireOutcome.REVOKED | RetireOutcome.ALREADY_GONE:
            return True
        case RetireOutcome.NOT_APPLICABLE:
            old, new = run.detail.old_fingerprint, run.detail.new_fingerprint
            return old is not None and new is not None and old != new
        case RetireOutcome.KEPT_IN_USE:
            return False
        case _ as unreachable:
            assert_never(unreachable)


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
