"""The rotation engine's and the scheduler's persistence: rotations, their steps, leases.

:class:`RotationRepository` implements the protocols rotation declares in
:mod:`keyward.rotation.ports` (journal, leases, rotatable secrets, due work); the composition
root (``keyward.cli.compose``) hands it to the engine and the scheduler. It also answers the
``keyward rotations`` commands (:class:`RotationRecord`).

Every method is one transaction. A rotation's progress lives in ``rotations.detail`` (the
JSON form of :class:`~keyward.rotation.ports.RotationDetail`: store version ids, the
idempotency token, dependent snapshots: fingerprints and identifiers, never a value) and its
history in ``rotation_steps`` and ``audit_events``; :meth:`RotationRepository.record` writes
the detail, the marks of one kind of progress each and their audit events together, under the
writer's lease.

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
from typing import TYPE_CHECKING, Any, assert_never

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.errors import NotFound
from keyward.inventory.policy import rotation_due
from keyward.inventory.records import SecretRecord
from keyward.inventory.service import Inventory, record_version, secret_record
from keyward.rotation.ports import (
    TERMINAL_STATES,
    AtStep,
    AuditEntry,
    ErrorCleared,
    ErrorNoted,
    HeldLease,
    JournalEntry,
    LeaseClaim,
    Progress,
    RotatableSecret,
    RotationDetail,
    RotationInFlight,
    RotationState,
    SchedulerInventory,
    SecretRotated,
    StateChanged,
    Step,
    StepBegun,
    StepEnded,
    StepOutcome,
    UnreadableDetail,
    VersionRole,
    VersionSeen,
    VersionStage,
    VersionStaged,
    rotation_lease,
)

IN_FLIGHT_EXCLUDED = tuple(s.value for s in TERMINAL_STATES)


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
    """A rotation as ``keyward rotations list/show`` present it."""

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


def _entry(r: m.Rotation, secret: str) -> JournalEntry:
    return JournalEntry(
        id=r.id,
        secret_id=r.secret_id,
        secret=secret,
        state=r.state,
        started_at=r.started_at,
        detail=RotationDetail.from_json(r.detail or {}),
    )


def rotatable_secret(s: SecretRecord) -> RotatableSecret:
    """A secret's rotation settings: its per-secret options live in ``attributes["rotation"]``."""
    options = s.attributes.get("rotation")
    return RotatableSecret(
        id=s.id,
        name=s.name,
        kind=s.kind,
        store=s.store,
        reference=s.reference,
        options=dict(options) if isinstance(options, dict) else {},
    )


def _next_attempt(detail: dict[str, Any] | None) -> datetime | None:
    try:
        return RotationDetail.from_json(detail or {}).next_attempt_at
    except UnreadableDetail:
        return None  # resumed at once: the engine then says what is wrong with it


class RotationRepository:
    """The rotation engine's and the scheduler's view of the inventory; one transaction per
    call. Implements :class:`keyward.rotation.ports.SchedulerInventory`."""

    def __init__(self, db: Database, actor: str | None = None) -> None:
        self.db = db
        self.inventory = Inventory(db, actor)
        self.actor = self.inventory.actor

    # ---------------------------------------------------------------- secrets
    def rotatable(self, name: str) -> RotatableSecret:
        return rotatable_secret(self.inventory.get_secret(name))

    def rotatable_by_id(self, secret_id: int) -> RotatableSecret:
        with self.db.session() as s:
            row = s.get(m.Secret, secret_id)
            if row is None:
                raise NotFound(f"No secret with id {secret_id} in the inventory")
            return rotatable_secret(secret_record(row))

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

    # ---------------------------------------------------------------- journal
    def start(
        self, secret: RotatableSecret, detail: RotationDetail, audit: AuditEntry
    ) -> JournalEntry:
        """Insert a rotation; the partial unique index refuses a second one in flight."""
        with self.db.session() as s:
            now = m.utcnow()
            rot = m.Rotation(
                secret_id=secret.id,
                state=RotationState.IN_PROGRESS.value,
                step=Step.CREATE.value,
                actor=self.actor,
                started_at=now,
                updated_at=now,
                detail=detail.to_json(),
            )
            s.add(rot)
            try:
                s.flush()
            except sa.exc.IntegrityError:
                s.rollback()
                raise RotationInFlight(
                    f"The secret {secret.name!r} already has a rotation in progress, and the "
                    "database allows only one at a time",
                    hint="See `keyward rotations list`, then resume or roll it back",
                ) from None
            self._audit(s, secret.id, secret.name, audit, rot.id)
            return _entry(rot, secret.name)

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

    def entry(self, rotation_id: int) -> JournalEntry:
        with self.db.session() as s:
            rot, name = self._rotation(s, rotation_id)
            return _entry(rot, name)

    def entry_by_token(self, secret_id: int, token: str) -> JournalEntry | None:
        """The rotation of this secret whose idempotency token is ``token``, if any."""
        with self.db.session() as s:
            rows = s.execute(
                sa.select(m.Rotation, m.Secret.name)
                .join(m.Secret, m.Secret.id == m.Rotation.secret_id)
                .where(m.Rotation.secret_id == secret_id)
            )
            for rot, name in rows:
                if (rot.detail or {}).get("token") == token:
                    return _entry(rot, name)
            return None

    def record(self, rotation_id: int, progress: Progress, lease: LeaseClaim) -> bool:
        """Renew ``lease``, then persist ``progress`` in the same transaction.

        :class:`~keyward.rotation.ports.SecretRotated` sets the secret's last rotation and
        next due time in that transaction too (a crash cannot leave a finished rotation with
        its secret still due)."""
        now = m.utcnow()
        with self.db.session() as s:
            expires = now + lease.ttl
            if not self._acquire(s, lease.name, lease.holder, now, expires, lease.secret_id):
                return False
            rot, name = self._rotation(s, rotation_id)
            rot.detail = progress.detail.to_json()
            rot.updated_at = now
            for mark in progress.marks:
                match mark:
                    case StepBegun(step=step):
                        rot.step = step.value
                        if self._open_step(s, rot, step) is None:
                            s.add(
                                m.RotationStep(
                                    rotation_id=rot.id,
                                    step=step.value,
                                    state=StepOutcome.STARTED.value,
                                    started_at=now,
                                    detail={},
                                )
                            )
                    case StepEnded(step=step, outcome=outcome, detail=detail):
                        row = self._open_step(s, rot, step)
                        if row is None:
                            row = m.RotationStep(
                                rotation_id=rot.id, step=step.value, started_at=now, detail={}
                            )
                            s.add(row)
                        row.state = outcome.value
                        row.finished_at = now
                        row.detail = {**(row.detail or {}), **detail}
                    case AtStep(step=step):
                        rot.step = step.value
                    case StateChanged(state=state):
                        rot.state = state.value
                        if state.terminal:
                            rot.finished_at = now
                    case ErrorNoted(text=text):
                        rot.error = text[:4000]
                    case ErrorCleared():
                        rot.error = None
                    case VersionSeen(role=role, fingerprint=fp, identifier=identifier):
                        secret = self._secret_row(s, rot)
                        if role is VersionRole.OLD and rot.old_version_id is None:
                            stage = VersionStage.CURRENT
                            rot.old_version_id = self._version(s, secret, fp, identifier, stage).id
                        elif role is VersionRole.NEW and rot.new_version_id is None:
                            stage = VersionStage.PENDING
                            rot.new_version_id = self._version(s, secret, fp, identifier, stage).id
                    case VersionStaged(role=role, stage=stage):
                        vid = rot.old_version_id if role is VersionRole.OLD else rot.new_version_id
                        v = s.get(m.SecretVersion, vid) if vid is not None else None
                        if v is not None:
                            v.stage = stage.value
                            retired = (VersionStage.RETIRED, VersionStage.DISCARDED)
                            if stage in retired and v.retired_at is None:
                                v.retired_at = now
                    case SecretRotated(at=at):
                        _set_rotated(self._secret_row(s, rot), at)
                    case _:
                        assert_never(mark)
            for entry in progress.audit:
                self._audit(s, rot.secret_id, name, entry, rot.id)
            s.flush()
            return True

    @staticmethod
    def _open_step(s: Session, rot: m.Rotation, step: Step) -> m.RotationStep | None:
        return s.scalar(
            sa.select(m.RotationStep)
            .where(
                m.RotationStep.rotation_id == rot.id,
                m.RotationStep.step == step.value,
                m.RotationStep.finished_at.is_(None),
            )
            .order_by(m.RotationStep.id.desc())
            .limit(1)
        )

    @staticmethod
    def _secret_row(s: Session, rot: m.Rotation) -> m.Secret:
        secret = s.get(m.Secret, rot.secret_id)
        assert secret is not None  # rotations are deleted with their secret
        return secret

    @staticmethod
    def _version(
        s: Session, secret: m.Secret, fingerprint: str, identifier: str, stage: VersionStage
    ) -> m.SecretVersion:
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
        return record_version(
            s, secret, fingerprint=fingerprint, identifier=identifier, stage=stage.value
        )

    def _audit(
        self,
        s: Session,
        secret_id: int,
        subject: str,
        entry: AuditEntry,
        rotation_id: int | None,
    ) -> None:
        Inventory.append_audit(
            s,
            self.actor,
            entry.action,
            subject,
            entry.outcome,
            secret_id=secret_id,
            rotation_id=rotation_id,
            detail=dict(entry.detail),
        )

    def audit(
        self, secret: RotatableSecret, entry: AuditEntry, rotation_id: int | None = None
    ) -> None:
        with self.db.session() as s:
            self._audit(s, secret.id, secret.name, entry, rotation_id)

    # ------------------------------------------------------- operators' view
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

    def lease(self, name: str) -> HeldLease | None:
        with self.db.session() as s:
            row = s.get(m.Lease, name)
            return HeldLease(row.name, row.holder, row.expires_at) if row else None

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
                m.Rotation.state == RotationState.ROLLED_BACK.value,
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
        with self.db.session() as s:
            return tuple(
                sec.name
                for sec in list(s.scalars(q))
                if self._acquire(s, rotation_lease(sec.id), holder, now, now + ttl, sec.id)
            )

    def claim_in_flight(self, holder: str, ttl: timedelta, *, limit: int = 10) -> tuple[int, ...]:
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
                wait = _next_attempt(rot.detail)
                if wait and wait > now:
                    continue  # e.g. waiting out the grace period before revoking
                lease = rotation_lease(rot.secret_id)
                if self._acquire(s, lease, holder, now, now + ttl, rot.secret_id):
                    claimed.append(rot.id)
        return tuple(claimed)


if TYPE_CHECKING:  # mypy checks that the repository implements rotation's ports
    _implements: type[SchedulerInventory] = RotationRepository
