"""Queries of the rotation engine and the scheduler: rotations, their steps, leases.

Every method is one transaction. A rotation's progress lives in ``rotations.detail`` (a JSON
document of store version ids, the idempotency token, dependent snapshots: fingerprints and
identifiers, never a value) and its history in ``rotation_steps`` and ``audit_events``.

Leases are rows ``(name, holder, expires_at)``. Taking one is a single conditional
``UPDATE ... WHERE name = ? AND (expires_at < now OR holder = me)`` (or an ``INSERT`` that the
primary key refuses when someone else got there first), which is atomic on SQLite and on
PostgreSQL alike. On PostgreSQL the scheduler additionally claims due secrets with
``SELECT ... FOR UPDATE SKIP LOCKED`` so that replicas ticking at once pick different rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.errors import NotFound, RotationInFlight
from keyward.inventory.policy import rotation_due
from keyward.inventory.service import Inventory, secret_record

IN_FLIGHT_EXCLUDED = m.TERMINAL_ROTATION_STATES


@dataclass(frozen=True, slots=True)
class DependentBinding:
    """A dependents row with its attributes (field, mode, alias), for the rotation engine."""

    id: int
    kind: str
    target: str
    variable: str | None
    region: str | None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepRecord:
    id: int
    step: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RotationRecord:
    id: int
    secret_id: int
    secret: str
    state: str
    step: str | None
    actor: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None
    detail: dict[str, Any]
    steps: tuple[StepRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "secret": self.secret,
            "state": self.state,
            "step": self.step,
            "actor": self.actor,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "error": self.error,
            "detail": self.detail,
            "steps": [
                {
                    "step": s.step,
                    "state": s.state,
                    "started_at": s.started_at.isoformat(),
                    "finished_at": s.finished_at.isoformat() if s.finished_at else None,
                    "detail": s.detail,
                }
                for s in self.steps
            ],
        }


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    name: str
    holder: str
    expires_at: datetime


def _set_rotated(sec: m.Secret, when: datetime) -> None:
    sec.last_rotated_at = when
    sec.rotation_due_at = rotation_due(sec.created_at, when, sec.max_age_seconds, sec.schedule)


def _record(r: m.Rotation, secret: str, with_steps: bool = False) -> RotationRecord:
    steps: tuple[StepRecord, ...] = ()
    if with_steps:
        steps = tuple(
            StepRecord(s.id, s.step, s.state, s.started_at, s.finished_at, dict(s.detail or {}))
            for s in r.steps
        )
    return RotationRecord(
        id=r.id,
        secret_id=r.secret_id,
        secret=secret,
        state=r.state,
        step=r.step,
        actor=r.actor,
        started_at=r.started_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
        error=r.error,
        detail=dict(r.detail or {}),
        steps=steps,
    )


class RotationRepository:
    """The rotation engine's view of the inventory; one transaction per call."""

    def __init__(self, db: Database, actor: str | None = None) -> None:
        self.db = db
        self.inventory = Inventory(db, actor)
        self.actor = self.inventory.actor

    # ---------------------------------------------------------------- secrets
    def secret(self, name: str) -> Any:
        return self.inventory.get_secret(name)

    def secret_by_id(self, secret_id: int) -> Any:
        with self.db.session() as s:
            row = s.get(m.Secret, secret_id)
            if row is None:
                raise NotFound(f"No secret with id {secret_id} in the inventory")
            return secret_record(row)

    def dependents(self, secret_id: int) -> tuple[DependentBinding, ...]:
        with self.db.session() as s:
            rows = s.scalars(
                sa.select(m.Dependent)
                .where(m.Dependent.secret_id == secret_id)
                .order_by(m.Dependent.id)
            )
            return tuple(
                DependentBinding(
                    d.id, d.kind, d.target, d.variable, d.region, dict(d.attributes or {})
                )
                for d in rows
            )

    def set_dependent_attributes(self, dependent_id: int, **attrs: Any) -> None:
        """Set rotation attributes of a dependent: ``field``, ``mode``, ``alias``."""
        with self.db.session() as s:
            dep = s.get(m.Dependent, dependent_id)
            if dep is None:
                raise NotFound(f"No dependent with id {dependent_id}")
            dep.attributes = {**(dep.attributes or {}), **attrs}
            Inventory.append_audit(
                s,
                self.actor,
                "dependent.update",
                dep.target,
                secret_id=dep.secret_id,
                detail={"changed": sorted(attrs)},
            )

    # -------------------------------------------------------------- rotations
    def start(
        self, secret_id: int, secret_name: str, detail: dict[str, Any], *, state: str, step: str
    ) -> RotationRecord:
        """Insert a rotation; the partial unique index refuses a second one in flight."""
        with self.db.session() as s:
            now = m.utcnow()
            rot = m.Rotation(
                secret_id=secret_id,
                state=state,
                step=step,
                actor=self.actor,
                started_at=now,
                updated_at=now,
                detail=dict(detail),
            )
            s.add(rot)
            try:
                s.flush()
            except sa.exc.IntegrityError:
                s.rollback()
                raise RotationInFlight(
                    f"The secret {secret_name!r} already has a rotation in progress, and the "
                    "database allows only one at a time",
                    hint="See `keyward rotations list`, then resume or roll it back",
                ) from None
            Inventory.append_audit(
                s,
                self.actor,
                "rotation.start",
                secret_name,
                secret_id=secret_id,
                rotation_id=rot.id,
                detail={"token": detail.get("token")},
            )
            return _record(rot, secret_name)

    def _rotation(self, s: Session, rotation_id: int) -> tuple[m.Rotation, str]:
        row = s.execute(
            sa.select(m.Rotation, m.Secret.name)
            .join(m.Secret, m.Secret.id == m.Rotation.secret_id)
            .where(m.Rotation.id == rotation_id)
        ).first()
        if row is None:
            raise NotFound(
                f"No rotation with id {rotation_id}", hint="See `keyward rotations list`"
            )
        return row[0], row[1]

    def get(self, rotation_id: int, *, steps: bool = False) -> RotationRecord:
        with self.db.session() as s:
            rot, name = self._rotation(s, rotation_id)
            return _record(rot, name, steps)

    def in_flight(self, secret_id: int) -> RotationRecord | None:
        with self.db.session() as s:
            row = s.execute(
                sa.select(m.Rotation, m.Secret.name)
                .join(m.Secret, m.Secret.id == m.Rotation.secret_id)
                .where(
                    m.Rotation.secret_id == secret_id,
                    m.Rotation.state.not_in(IN_FLIGHT_EXCLUDED),
                )
            ).first()
            return _record(row[0], row[1]) if row else None

    def list(
        self,
        *,
        secret: str | None = None,
        states: Iterable[str] | None = None,
        in_flight: bool = False,
        limit: int | None = 100,
    ) -> tuple[RotationRecord, ...]:
        with self.db.session() as s:
            q = (
                sa.select(m.Rotation, m.Secret.name)
                .join(m.Secret, m.Secret.id == m.Rotation.secret_id)
                .order_by(m.Rotation.id.desc())
            )
            if secret is not None:
                q = q.where(m.Secret.name == secret)
            if states is not None:
                q = q.where(m.Rotation.state.in_(list(states)))
            if in_flight:
                q = q.where(m.Rotation.state.not_in(IN_FLIGHT_EXCLUDED))
            if limit:
                q = q.limit(limit)
            return tuple(_record(r, n) for r, n in s.execute(q))

    def token_owner(self, secret_id: int, token: str) -> RotationRecord | None:
        """The rotation of this secret whose idempotency token is ``token``, if any."""
        with self.db.session() as s:
            rows = s.execute(
                sa.select(m.Rotation, m.Secret.name)
                .join(m.Secret, m.Secret.id == m.Rotation.secret_id)
                .where(m.Rotation.secret_id == secret_id)
            )
            for rot, name in rows:
                if (rot.detail or {}).get("token") == token:
                    return _record(rot, name)
            return None

    def update(
        self,
        rotation_id: int,
        *,
        state: str | None = None,
        step: str | None = None,
        detail: dict[str, Any] | None = None,
        error: str | None = None,
        clear_error: bool = False,
        finished: bool = False,
        audit: tuple[str, str, dict[str, Any]] | None = None,
        step_row: tuple[str, str, dict[str, Any]] | None = None,
        old_version: tuple[str | None, str | None] | None = None,
        new_version: tuple[str | None, str | None] | None = None,
        version_stages: dict[str, str] | None = None,
        rotated_at: datetime | None = None,
    ) -> RotationRecord:
        """Persist progress in one transaction.

        ``rotated_at`` sets the secret's last rotation and next due time in the same
        transaction (a crash cannot leave a finished rotation with its secret still due).

        ``detail`` keys are merged into the document; ``audit`` is (action, outcome, detail);
        ``step_row`` (step, state, detail) closes the open row of that step or adds one;
        ``old_version``/``new_version`` (fingerprint, identifier) record secret versions once;
        ``version_stages`` maps "old"/"new" to a stage ("previous", "retired", ...).
        """
        with self.db.session() as s:
            rot, name = self._rotation(s, rotation_id)
            now = m.utcnow()
            if state is not None:
                rot.state = state
            if step is not None:
                rot.step = step
            if detail:
                rot.detail = {**(rot.detail or {}), **detail}
            if error is not None:
                rot.error = error[:4000]
            elif clear_error:
                rot.error = None
            if finished:
                rot.finished_at = now
            rot.updated_at = now
            secret = s.get(m.Secret, rot.secret_id)
            assert secret is not None
            if rotated_at is not None:
                _set_rotated(secret, rotated_at)
            if old_version is not None and rot.old_version_id is None:
                rot.old_version_id = self._version(s, secret, *old_version, "current").id
            if new_version is not None and rot.new_version_id is None:
                rot.new_version_id = self._version(s, secret, *new_version, "pending").id
            for which, stage in (version_stages or {}).items():
                vid = rot.old_version_id if which == "old" else rot.new_version_id
                v = s.get(m.SecretVersion, vid) if vid is not None else None
                if v is not None:
                    v.stage = stage
                    if stage in ("retired", "discarded") and v.retired_at is None:
                        v.retired_at = now
            if step_row is not None:
                sname, sstate, sdetail = step_row
                open_row = s.scalar(
                    sa.select(m.RotationStep)
                    .where(
                        m.RotationStep.rotation_id == rot.id,
                        m.RotationStep.step == sname,
                        m.RotationStep.finished_at.is_(None),
                    )
                    .order_by(m.RotationStep.id.desc())
                    .limit(1)
                )
                if sstate == "started":
                    if open_row is None:
                        s.add(
                            m.RotationStep(
                                rotation_id=rot.id,
                                step=sname,
                                state="started",
                                started_at=now,
                                detail=dict(sdetail),
                            )
                        )
                else:
                    if open_row is None:
                        open_row = m.RotationStep(
                            rotation_id=rot.id, step=sname, started_at=now, detail={}
                        )
                        s.add(open_row)
                    open_row.state = sstate
                    open_row.finished_at = now
                    open_row.detail = {**(open_row.detail or {}), **sdetail}
            if audit is not None:
                action, outcome, adetail = audit
                Inventory.append_audit(
                    s,
                    self.actor,
                    action,
                    name,
                    outcome,
                    secret_id=rot.secret_id,
                    rotation_id=rot.id,
                    detail=adetail,
                )
            s.flush()
            return _record(rot, name)

    @staticmethod
    def _version(
        s: Session, secret: m.Secret, fingerprint: str | None, identifier: str | None, stage: str
    ) -> m.SecretVersion:
        if identifier is not None:
            found = s.scalar(
                sa.select(m.SecretVersion).where(
                    m.SecretVersion.secret_id == secret.id,
                    m.SecretVersion.identifier == identifier,
                )
            )
            if found is not None:
                if found.fingerprint is None:
                    found.fingerprint = fingerprint
                return found
        return Inventory._add_version(
            s, secret, fingerprint=fingerprint, identifier=identifier, stage=stage
        )

    def audit(
        self,
        secret_id: int | None,
        subject: str,
        action: str,
        outcome: str,
        detail: dict[str, Any],
        rotation_id: int | None = None,
    ) -> None:
        with self.db.session() as s:
            Inventory.append_audit(
                s,
                self.actor,
                action,
                subject,
                outcome,
                secret_id=secret_id,
                rotation_id=rotation_id,
                detail=detail,
            )

    # ----------------------------------------------------------------- leases
    def acquire_lease(
        self, name: str, holder: str, ttl: timedelta, *, secret_id: int | None = None
    ) -> bool:
        """Take or renew the lease ``name``; False when another holder's lease is live."""
        now = m.utcnow()
        with self.db.session() as s:
            return self._acquire(s, name, holder, now, now + ttl, secret_id)

    @staticmethod
    def _acquire(
        s: Session,
        name: str,
        holder: str,
        now: datetime,
        expires: datetime,
        secret_id: int | None,
    ) -> bool:
        result = s.execute(
            sa.update(m.Lease)
            .where(
                m.Lease.name == name,
                sa.or_(m.Lease.expires_at < now, m.Lease.holder == holder),
            )
            .values(holder=holder, acquired_at=now, expires_at=expires)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) == 1:
            return True
        if s.get(m.Lease, name) is not None:
            return False
        try:
            with s.begin_nested():
                s.add(
                    m.Lease(
                        name=name,
                        secret_id=secret_id,
                        holder=holder,
                        acquired_at=now,
                        expires_at=expires,
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def release_lease(self, name: str, holder: str) -> None:
        with self.db.session() as s:
            s.execute(
                sa.delete(m.Lease)
                .where(m.Lease.name == name, m.Lease.holder == holder)
                .execution_options(synchronize_session=False)
            )

    def lease(self, name: str) -> LeaseRecord | None:
        with self.db.session() as s:
            row = s.get(m.Lease, name)
            return LeaseRecord(row.name, row.holder, row.expires_at) if row else None

    def take_over_lease(self, name: str, holder: str, previous: str, ttl: timedelta) -> bool:
        """Replace ``previous``'s lease (known dead) by ours; False if it changed meanwhile."""
        now = m.utcnow()
        with self.db.session() as s:
            result = s.execute(
                sa.update(m.Lease)
                .where(m.Lease.name == name, m.Lease.holder == previous)
                .values(holder=holder, acquired_at=now, expires_at=now + ttl)
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0) == 1

    # ------------------------------------------------------------ scheduling
    def claim_due_secrets(
        self,
        holder: str,
        ttl: timedelta,
        *,
        limit: int = 10,
        lease_prefix: str = "rotate:",
        failed_backoff: timedelta = timedelta(hours=1),
        kinds: Iterable[str] | None = None,
        stores: Iterable[str] | None = None,
    ) -> tuple[str, ...]:
        """Secrets whose rotation is due, have a store (among ``stores``, and a rotator among
        ``kinds``), no rotation in flight and none rolled back within ``failed_backoff``,
        leased to ``holder``. ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: replicas ticking at
        once claim different rows."""
        now = m.utcnow()
        recently_failed = (
            sa.select(m.Rotation.id)
            .where(
                m.Rotation.secret_id == m.Secret.id,
                m.Rotation.state == "rolled_back",
                m.Rotation.finished_at > now - failed_backoff,
            )
            .exists()
        )
        in_flight = (
            sa.select(m.Rotation.id)
            .where(
                m.Rotation.secret_id == m.Secret.id,
                m.Rotation.state.not_in(IN_FLIGHT_EXCLUDED),
            )
            .exists()
        )
        q = (
            sa.select(m.Secret)
            .where(
                m.Secret.rotation_due_at < now,
                m.Secret.store.is_not(None),
                m.Secret.status == m.SecretStatus.ACTIVE,
                ~in_flight,
                ~recently_failed,
                sa.true() if kinds is None else m.Secret.kind.in_(list(kinds)),
                sa.true() if stores is None else m.Secret.store.in_(list(stores)),
            )
            .order_by(m.Secret.rotation_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=m.Secret)
        )
        claimed: list[str] = []
        with self.db.session() as s:
            for sec in list(s.scalars(q)):
                lease = f"{lease_prefix}{sec.id}"
                if self._acquire(s, lease, holder, now, now + ttl, sec.id):
                    claimed.append(sec.name)
        return tuple(claimed)

    def claim_in_flight(
        self, holder: str, ttl: timedelta, *, limit: int = 10, lease_prefix: str = "rotate:"
    ) -> tuple[int, ...]:
        """Unfinished rotations nobody holds a live lease on, leased to ``holder``."""
        now = m.utcnow()
        q = (
            sa.select(m.Rotation)
            .where(m.Rotation.state.not_in(IN_FLIGHT_EXCLUDED))
            .order_by(m.Rotation.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=m.Rotation)
        )
        claimed: list[int] = []
        with self.db.session() as s:
            for rot in list(s.scalars(q)):
                wait = (rot.detail or {}).get("next_attempt_at")
                if wait and datetime.fromisoformat(str(wait)) > now:
                    continue  # e.g. waiting out the grace period before revoking
                lease = f"{lease_prefix}{rot.secret_id}"
                if self._acquire(s, lease, holder, now, now + ttl, rot.secret_id):
                    claimed.append(rot.id)
        return tuple(claimed)
