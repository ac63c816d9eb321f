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

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, assert_never

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.errors import NotFound
from keyward.inventory.fields import current_stage, record_fields
from keyward.inventory.leaks import (
    LeakedSecret,
    LeakPolicy,
    leaked_secret_ids,
    leaked_secrets,
    policy_is,
    remediate_version,
)
from keyward.inventory.policy import rotation_due
from keyward.inventory.records import DependentRecord, SecretRecord, record_of
from keyward.inventory.service import (
    Inventory,
    dependent_record,
    link_findings_to_secret,
    secret_record,
)
from keyward.rotation.ports import (
    LEASE_PREFIX,
    TERMINAL_STATES,
    AtStep,
    AuditEntry,
    ErrorCleared,
    ErrorNoted,
    HeldLease,
    JournalEntry,
    LeakRemediated,
    LeaseClaim,
    Progress,
    RotatableSecret,
    RotationDetail,
    RotationInFlight,
    RotationState,
    SchedulerInventory,
    SecretLeak,
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


def _table(model: type[m.Base]) -> sa.Table:
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table


_ROTATIONS = _table(m.Rotation)
_STEPS = _table(m.RotationStep)
_AUDIT = _table(m.AuditEvent)
_LEASES = _table(m.Lease)
_VERSIONS = _table(m.SecretVersion)


def _take_leases(
    s: Session,
    wanted: Iterable[tuple[str, int | None]],
    holder: str,
    now: datetime,
    expires: datetime,
) -> set[str]:
    """Take or renew the leases ``wanted`` (name, secret id) for ``holder``: those nobody
    holds, those that expired and ours. One ``INSERT ... ON CONFLICT (name) DO UPDATE ...
    WHERE expires_at < now OR holder = me RETURNING name``, atomic on SQLite and PostgreSQL
    alike (a concurrent taker waits for the row and then sees it held). Returns the names
    taken."""
    rows = [
        {"name": n, "secret_id": sid, "holder": holder, "acquired_at": now, "expires_at": expires}
        for n, sid in dict(wanted).items()
    ]
    if not rows:
        return set()
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(_LEASES)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(_LEASES)
    c, ex = _LEASES.c, stmt.excluded
    stmt = (
        stmt.values(rows)
        .on_conflict_do_update(
            index_elements=[c.name],
            set_={
                "holder": ex.holder,
                "acquired_at": ex.acquired_at,
                "expires_at": ex.expires_at,
                "secret_id": sa.func.coalesce(c.secret_id, ex.secret_id),
            },
            where=sa.or_(c.expires_at < now, c.holder == holder),
        )
        .returning(c.name)
    )
    return {str(name) for (name,) in s.execute(stmt)}


def _unleased(secret_id: Any, now: datetime) -> Any:
    """SQL: nobody holds a live rotation lease on the secret ``secret_id`` (a column)."""
    c = _LEASES.c
    return ~sa.exists().where(
        c.secret_id == secret_id,
        c.name.startswith(LEASE_PREFIX, autoescape=True),
        c.expires_at >= now,
    )


def _pair_steps(
    marks: list[StepBegun | StepEnded],
) -> list[tuple[StepBegun | StepEnded, bool]]:
    """The step marks of one write, a step begun and ended in it folded into its end (flagged
    ``True``: its row is most likely not open yet)."""
    out: list[tuple[StepBegun | StepEnded, bool]] = []
    for mark in marks:
        if isinstance(mark, StepEnded):
            begun = next(
                (i for i, (m_, _) in enumerate(out)
                 if isinstance(m_, StepBegun) and m_.step is mark.step),
                None,
            )  # fmt: skip
            if begun is not None:
                del out[begun]
                out.append((mark, True))
                continue
        out.append((mark, False))
    return out


def _step(
    s: Session,
    rotation_id: int,
    mark: StepBegun | StepEnded,
    now: datetime,
    *,
    begun_here: bool = False,
) -> None:
    """Open a step row (unless one is open: a resumed step keeps its row), or close the open
    one (adding a closed row when none is open). One statement; two when a step begun and
    ended in the same write finds a row left open by an earlier attempt."""
    c = _STEPS.c
    open_row = (
        sa.select(sa.func.max(c.id))
        .where(c.rotation_id == rotation_id, c.step == mark.step.value, c.finished_at.is_(None))
        .scalar_subquery()
    )

    def insert_unless_open(state: str, finished: datetime | None, detail: Any) -> int:
        # RETURNING: SQLAlchemy reports no row count for INSERT ... SELECT on PostgreSQL
        inserted = s.execute(
            sa.insert(_STEPS)
            .from_select(
                ["rotation_id", "step", "state", "started_at", "finished_at", "detail"],
                sa.select(
                    sa.literal(rotation_id),
                    sa.literal(mark.step.value),
                    sa.literal(state),
                    sa.literal(now, m.UTCDateTime()),
                    sa.literal(finished, m.UTCDateTime()),
                    sa.literal(detail, _STEPS.c.detail.type),
                ).where(open_row.is_(None)),
            )
            .returning(c.id)
        ).all()
        return len(inserted)

    if isinstance(mark, StepBegun):
        insert_unless_open(StepOutcome.STARTED.value, None, {})
        return
    if begun_here and insert_unless_open(mark.outcome.value, now, dict(mark.detail)):
        return
    closed: dict[str, Any] = {"state": mark.outcome.value, "finished_at": now}
    if mark.detail:
        closed["detail"] = dict(mark.detail)  # an open row's own detail is always empty
    done = s.execute(sa.update(_STEPS).where(c.id == open_row).values(closed))
    if int(getattr(done, "rowcount", 0) or 0) == 0:
        s.execute(
            sa.insert(_STEPS).values(
                rotation_id=rotation_id,
                step=mark.step.value,
                state=mark.outcome.value,
                started_at=now,
                finished_at=now,
                detail=dict(mark.detail),
            )
        )


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
    steps = tuple(record_of(StepRecord, s) for s in r.steps) if with_steps else ()
    return record_of(RotationRecord, r, secret=secret, steps=steps)


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
        account=s.account,
    )


def _next_attempt(detail: dict[str, Any] | None) -> datetime | None:
    try:
        return RotationDetail.from_json(detail or {}).next_attempt_at
    except UnreadableDetail:
        return None  # resumed at once: the engine then says what is wrong with it


def _recently_failed(since: datetime) -> sa.ColumnElement[bool]:
    """SQL: the secret's rotation was rolled back since ``since``, or a rotation of it was
    refused before it started (``rotation.start`` failed: its store secret is gone, another
    rotation owns it, ...). A claim skips it until then: otherwise every tick would claim it,
    be refused again and audit the same sentence (the audit log's index on secret_id keeps
    this cheap)."""
    r, a = m.Rotation, m.AuditEvent
    rolled_back = (
        sa.select(r.id)
        .where(
            r.secret_id == m.Secret.id,
            r.state == RotationState.ROLLED_BACK.value,
            r.finished_at > since,
        )
        .exists()
    )
    refused = (
        sa.select(a.id)
        .where(
            a.secret_id == m.Secret.id,
            a.action == "rotation.start",
            a.outcome == "failed",
            a.at > since,
        )
        .exists()
    )
    return sa.or_(rolled_back, refused)


class RotationRepository:
    """The rotation engine's and the scheduler's view of the inventory; one transaction per
    call. Implements :class:`keyward.rotation.ports.SchedulerInventory`."""

    def __init__(self, db: Database, actor: str | None = None) -> None:
        self.db = db
        self.inventory = Inventory(db, actor)
        self.actor = self.inventory.actor
        self._names: dict[int, str] = {}  # rotation id -> its secret's name (audit subjects)
        # leases this repository took or renewed: name -> (holder, expires_at)
        self._held: dict[str, tuple[str, datetime]] = {}

    # ---------------------------------------------------------------- secrets
    def rotatable(self, name: str) -> RotatableSecret:
        return rotatable_secret(self.inventory.get_secret(name))

    def rotatable_by_id(self, secret_id: int) -> RotatableSecret:
        with self.db.session() as s:
            row = s.get(m.Secret, secret_id)
            if row is None:
                raise NotFound(f"No secret with id {secret_id} in the inventory")
            return rotatable_secret(secret_record(row))

    def dependents(self, secret_id: int) -> tuple[DependentRecord, ...]:
        """The secret's active dependents: one discovery marked ``missing`` (its function or
        variable is gone) is never rotated into."""
        with self.db.session() as s:
            rows = s.execute(
                sa.select(m.Dependent, m.Secret.name)
                .join(m.Secret, m.Secret.id == m.Dependent.secret_id)
                .where(
                    m.Dependent.secret_id == secret_id,
                    m.Dependent.status == m.DependentStatus.ACTIVE,
                )
                .order_by(m.Dependent.id)
            )
            return tuple(dependent_record(d, name) for d, name in rows)

    def leak_of(self, secret_id: int) -> SecretLeak | None:
        """The secret's leak (its current version found by a scan), if any."""
        with self.db.session() as s:
            found = leaked_secrets(s, LeakPolicy(), [secret_id])
            if not found:
                return None
            leak = found[0]
            return SecretLeak(
                leak.secret_id,
                leak.secret,
                leak.version_id,
                leak.leaked_at,
                leak.findings,
            )

    def old_version_leaked(self, rotation_id: int) -> bool:
        """The version the rotation replaces was found by a scan (``leaked_at``)."""
        with self.db.session() as s:
            v, r = m.SecretVersion, m.Rotation
            return bool(
                s.scalar(
                    sa.select(sa.func.count())
                    .select_from(r)
                    .join(v, v.id == r.old_version_id)
                    .where(r.id == rotation_id, v.leaked_at.is_not(None))
                )
            )

    def remediated_findings(self, rotation_id: int) -> tuple[int, ...]:
        with self.db.session() as s:
            f = m.Finding
            return tuple(
                int(i)
                for i in s.scalars(
                    sa.select(f.id).where(f.remediated_rotation_id == rotation_id).order_by(f.id)
                )
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

    def entry_in_flight(self, secret_id: int) -> JournalEntry | None:
        """The secret's rotation in flight (the partial unique index allows one), if any."""
        with self.db.session() as s:
            row = s.execute(
                sa.select(m.Rotation, m.Secret.name)
                .join(m.Secret, m.Secret.id == m.Rotation.secret_id)
                .where(
                    m.Rotation.secret_id == secret_id,
                    m.Rotation.state.not_in(IN_FLIGHT_EXCLUDED),
                )
            ).first()
            return _entry(row[0], row[1]) if row else None

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
        its secret still due).

        Few statements: the lease renewal, one ``UPDATE rotations ... RETURNING``, one
        statement per step row opened or closed, the audit events in one ``INSERT``; the
        secret's row is read only for a version seen or a rotation finished."""
        now = m.utcnow()
        with self.db.session() as s:
            expires = now + lease.ttl
            if not self._acquire(s, lease.name, lease.holder, now, expires, lease.secret_id):
                return False
            values: dict[str, Any] = {"detail": progress.detail.to_json(), "updated_at": now}
            steps: list[StepBegun | StepEnded] = []
            versions: list[VersionSeen | VersionStaged] = []
            rotated: datetime | None = None
            remediated = False
            for mark in progress.marks:
                match mark:
                    case StepBegun(step=step):
                        values["step"] = step.value
                        steps.append(mark)
                    case StepEnded():
                        steps.append(mark)
                    case AtStep(step=step):
                        values["step"] = step.value
                    case StateChanged(state=state):
                        values["state"] = state.value
                        if state.terminal:
                            values["finished_at"] = now
                    case ErrorNoted(text=text):
                        values["error"] = text[:4000]
                    case ErrorCleared():
                        values["error"] = None
                    case VersionSeen() | VersionStaged():
                        versions.append(mark)
                    case SecretRotated(at=at):
                        rotated = at
                    case LeakRemediated():
                        remediated = True
                    case _:
                        assert_never(mark)
            r = _ROTATIONS.c
            row = s.execute(
                sa.update(_ROTATIONS)
                .where(r.id == rotation_id)
                .values(values)
                .returning(r.secret_id, r.old_version_id, r.new_version_id)
            ).first()
            if row is None:
                raise NotFound(
                    f"No rotation with id {rotation_id}", hint="See `keyward rotations list`"
                )
            secret_id, old_id, new_id = int(row[0]), row[1], row[2]
            for step_mark, begun_here in _pair_steps(steps):
                _step(s, rotation_id, step_mark, now, begun_here=begun_here)
            if versions or rotated is not None:
                self._versions(s, rotation_id, secret_id, old_id, new_id, versions, rotated, now)
            entries = list(progress.audit)
            if remediated and old_id is not None:
                done = remediate_version(s, int(old_id), rotation_id, now)
                if done:
                    entries.append(
                        AuditEntry(
                            "leak.remediated",
                            "ok",
                            {"version_id": int(old_id), "findings": list(done)},
                        )
                    )
            if entries:
                name = self._secret_name(s, rotation_id, secret_id)
                self._audits(s, secret_id, name, entries, rotation_id, now)
            return True

    def _versions(
        self,
        s: Session,
        rotation_id: int,
        secret_id: int,
        old_id: int | None,
        new_id: int | None,
        marks: list[VersionSeen | VersionStaged],
        rotated: datetime | None,
        now: datetime,
    ) -> None:
        """The versions a rotation saw (recorded once each, linked to the findings that
        leaked them) and their stages; the secret's rotation time. A statement per kind of
        change, not per version."""
        ids = {VersionRole.OLD: old_id, VersionRole.NEW: new_id}
        seen = {
            mark.role: mark
            for mark in marks
            if isinstance(mark, VersionSeen) and ids[mark.role] is None
        }
        secret = s.get(m.Secret, secret_id) if seen or rotated is not None else None
        if seen:
            assert secret is not None  # rotations are deleted with their secret
            links = self._record_seen(s, secret, seen, now)
            ids.update(links)
            s.execute(
                sa.update(_ROTATIONS)
                .where(_ROTATIONS.c.id == rotation_id)
                .values({f"{role.value}_version_id": vid for role, vid in links.items()})
            )
        c = _VERSIONS.c
        for mark in marks:
            if isinstance(mark, VersionStaged) and ids[mark.role] is not None:
                values: dict[str, Any] = {"stage": mark.stage.value}
                if mark.stage in (VersionStage.RETIRED, VersionStage.DISCARDED):
                    values["retired_at"] = sa.func.coalesce(c.retired_at, now)
                s.execute(sa.update(_VERSIONS).where(c.id == ids[mark.role]).values(values))
                if mark.role is VersionRole.NEW and mark.stage is VersionStage.CURRENT:
                    # one current version: any other row still saying so (a fingerprint
                    # recorded by hand, an older discovery) is previous now, so a value
                    # matched later is never taken for the current one
                    s.execute(
                        sa.update(_VERSIONS)
                        .where(
                            c.secret_id == secret_id,
                            c.id.not_in([i for i in ids.values() if i is not None]),
                            current_stage(c.stage),
                        )
                        .values(stage=VersionStage.PREVIOUS.value)
                    )
        if rotated is not None:
            assert secret is not None
            _set_rotated(secret, rotated)
        if secret is not None:
            self._names[rotation_id] = secret.name

    @staticmethod
    def _record_seen(
        s: Session, secret: m.Secret, seen: dict[VersionRole, VersionSeen], now: datetime
    ) -> dict[VersionRole, int]:
        """Version rows for ``seen`` (found by identifier, else inserted together) with the
        fingerprints of their fields, the findings that leaked any of them linked to the
        secret."""
        c = _VERSIONS.c
        by_identifier = {mark.identifier: role for role, mark in seen.items()}
        found: dict[VersionRole, int] = {}
        for vid, identifier, fingerprint in s.execute(
            sa.select(c.id, c.identifier, c.fingerprint).where(
                c.secret_id == secret.id, c.identifier.in_(list(by_identifier))
            )
        ):
            role = by_identifier[identifier]
            found[role] = int(vid)
            if fingerprint is None:
                s.execute(
                    sa.update(_VERSIONS)
                    .where(c.id == vid)
                    .values(fingerprint=seen[role].fingerprint)
                )
        missing = [role for role in seen if role not in found]
        if missing:
            rows = [
                {
                    "secret_id": secret.id,
                    "fingerprint": seen[role].fingerprint,
                    "identifier": seen[role].identifier,
                    "stage": (
                        VersionStage.CURRENT if role is VersionRole.OLD else VersionStage.PENDING
                    ).value,
                    "created_at": now,
                }
                for role in missing
            ]
            inserted = s.execute(
                sa.insert(_VERSIONS).values(rows).returning(c.id, c.identifier)
            ).all()
            for vid, identifier in inserted:
                found[by_identifier[identifier]] = int(vid)
        fingerprints = {mark.fingerprint for mark in seen.values()}
        for role, mark in seen.items():
            fingerprints.update(record_fields(s, secret.id, found[role], mark.fields))
        link_findings_to_secret(s, secret, sorted(fingerprints))
        return found

    def _secret_name(self, s: Session, rotation_id: int, secret_id: int) -> str:
        """The name a rotation's audit events give its secret, read once per rotation."""
        name = self._names.get(rotation_id)
        if name is None:
            name = str(s.scalar(sa.select(m.Secret.name).where(m.Secret.id == secret_id)))
            if len(self._names) >= 4096:  # a long-running daemon: forget old rotations
                self._names.clear()
            self._names[rotation_id] = name
        return name

    def _audits(
        self,
        s: Session,
        secret_id: int,
        subject: str,
        entries: Iterable[AuditEntry],
        rotation_id: int | None,
        now: datetime,
    ) -> None:
        """The audit events in one ``INSERT`` (several rows: the driver's executemany)."""
        s.execute(
            sa.insert(_AUDIT),
            [
                {
                    "at": now,
                    "actor": self.actor,
                    "action": e.action,
                    "subject": subject,
                    "outcome": e.outcome,
                    "secret_id": secret_id,
                    "rotation_id": rotation_id,
                    "detail": dict(e.detail),
                }
                for e in entries
            ],
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
        if self._ours(name, holder, now, now + ttl):
            return True
        with self.db.session() as s:
            return self._acquire(s, name, holder, now, now + ttl, secret_id)

    def _ours(self, name: str, holder: str, now: datetime, expires: datetime) -> bool:
        """A lease this repository took or renewed for ``holder`` that has more than half
        its time to run: ours without asking, since nobody may take a lease before it
        expires (a renewal then only costs a statement)."""
        held = self._held.get(name)
        return held is not None and held[0] == holder and held[1] - now > (expires - now) / 2

    def _acquire(
        self,
        s: Session,
        name: str,
        holder: str,
        now: datetime,
        expires: datetime,
        secret_id: int | None,
    ) -> bool:
        """Take or renew ``name`` in ``s``'s transaction (no statement when :meth:`_ours`)."""
        if self._ours(name, holder, now, expires):
            return True
        return name in self._take(s, [(name, secret_id)], holder, now, expires)

    def _take(
        self,
        s: Session,
        wanted: Iterable[tuple[str, int | None]],
        holder: str,
        now: datetime,
        expires: datetime,
    ) -> set[str]:
        taken = _take_leases(s, wanted, holder, now, expires)
        if len(self._held) > 10_000:  # leases lost without a release: forget them
            self._held = {k: v for k, v in self._held.items() if v[1] > now}
        for name in taken:
            self._held[name] = (holder, expires)
        return taken

    def release_lease(self, name: str, holder: str) -> None:
        self._held.pop(name, None)
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
            taken = int(getattr(result, "rowcount", 0) or 0) == 1
        if taken:
            self._held[name] = (holder, now + ttl)
        return taken

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
        ``kinds``), no rotation in flight and none rolled back (or refused at its start)
        within ``failed_backoff``, leased to ``holder``. ``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL: replicas ticking at once claim different rows."""
        now = m.utcnow()
        recently_failed = _recently_failed(now - failed_backoff)
        in_flight = (
            sa.select(m.Rotation.id)
            .where(
                m.Rotation.secret_id == m.Secret.id,
                m.Rotation.state.not_in(IN_FLIGHT_EXCLUDED),
            )
            .exists()
        )
        q = (
            sa.select(m.Secret.id, m.Secret.name)
            .where(
                m.Secret.rotation_due_at < now,
                m.Secret.store.is_not(None),
                m.Secret.status == m.SecretStatus.ACTIVE,
                ~in_flight,
                ~recently_failed,
                _unleased(m.Secret.id, now),  # a leased one would only fail its lease
                sa.true() if kinds is None else m.Secret.kind.in_(list(kinds)),
                sa.true() if stores is None else m.Secret.store.in_(list(stores)),
            )
            .order_by(m.Secret.rotation_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=m.Secret)
        )
        with self.db.session() as s:
            found = [(int(sid), str(name)) for sid, name in s.execute(q)]
            taken = self._take(
                s, [(rotation_lease(sid), sid) for sid, _ in found], holder, now, now + ttl
            )
            return tuple(name for sid, name in found if rotation_lease(sid) in taken)

    def claim_leaked(
        self,
        holder: str,
        ttl: timedelta,
        *,
        on_leak: str | None = None,
        limit: int = 10,
        failed_backoff: timedelta = timedelta(hours=1),
        kinds: Iterable[str] | None = None,
        stores: Iterable[str] | None = None,
    ) -> tuple[SecretLeak, ...]:
        """Leaked secrets to rotate now, oldest leak first, leased to ``holder``: their
        current version leaked, their policy is ``rotate`` (their own ``on_leak``, else
        ``on_leak`` given here, else rotate: the caller passes the ``kinds`` and ``stores``
        it can rotate), active, with a store, no rotation in flight (one retiring is
        finished early by the new rotation), none rolled back within ``failed_backoff``.
        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, as :meth:`claim_due_secrets`."""
        now = m.utcnow()
        r = m.Rotation
        retry = _ROTATIONS.c.detail["retry_after"].as_string()
        blocking = (
            sa.select(r.id)
            .where(
                r.secret_id == m.Secret.id,
                sa.or_(
                    r.state.not_in([*IN_FLIGHT_EXCLUDED, RotationState.RETIRING.value]),
                    # retiring, but its old credential was kept (used after deactivation):
                    # the new rotation would be refused until its retry
                    sa.and_(
                        r.state == RotationState.RETIRING.value,
                        retry.is_not(None),
                        retry > now.isoformat(),
                    ),
                ),
            )
            .exists()
        )
        recently_failed = _recently_failed(now - failed_backoff)
        v = m.SecretVersion
        first_leak = (
            sa.select(sa.func.min(v.leaked_at))
            .where(v.secret_id == m.Secret.id, v.leaked_at.is_not(None), current_stage(v.stage))
            .correlate(m.Secret)
            .scalar_subquery()
        )
        q = (
            sa.select(m.Secret.id, m.Secret.name)
            .where(
                m.Secret.id.in_(leaked_secret_ids()),
                policy_is(m.OnLeak.ROTATE.value, on_leak),
                m.Secret.store.is_not(None),
                m.Secret.status == m.SecretStatus.ACTIVE,
                ~blocking,
                ~recently_failed,
                _unleased(m.Secret.id, now),
                sa.true() if kinds is None else m.Secret.kind.in_(list(kinds)),
                sa.true() if stores is None else m.Secret.store.in_(list(stores)),
            )
            .order_by(first_leak, m.Secret.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=m.Secret)
        )
        with self.db.session() as s:
            found = [(int(sid), str(name)) for sid, name in s.execute(q)]
            taken = self._take(
                s, [(rotation_lease(sid), sid) for sid, _ in found], holder, now, now + ttl
            )
            ids = [sid for sid, _ in found if rotation_lease(sid) in taken]
            if not ids:
                return ()
            leaks = {x.secret_id: x for x in leaked_secrets(s, LeakPolicy(), ids)}
            return tuple(
                SecretLeak(x.secret_id, x.secret, x.version_id, x.leaked_at, x.findings)
                for sid in ids
                if (x := leaks.get(sid)) is not None
            )

    def leaked_unrotatable(
        self, kinds: Iterable[str], stores: Iterable[str], *, on_leak: str | None = None
    ) -> tuple[SecretLeak, ...]:
        """Leaked secrets whose policy is ``rotate`` (their own, or ``on_leak`` given here)
        that no rotator among ``kinds`` or store among ``stores`` can rotate."""
        policy = LeakPolicy(
            m.OnLeak(on_leak) if on_leak else None, frozenset(kinds), frozenset(stores)
        )
        sec = m.Secret
        cannot = sa.or_(
            sec.store.is_(None), sec.kind.not_in(list(kinds)), sec.store.not_in(list(stores))
        )
        with self.db.session() as s:
            return tuple(
                SecretLeak(x.secret_id, x.secret, x.version_id, x.leaked_at)
                for x in leaked_secrets(
                    s,
                    policy,
                    where=sa.and_(cannot, sec.on_leak.is_not(None)) if on_leak is None else cannot,
                    with_findings=False,
                )
                if x.on_leak is m.OnLeak.ROTATE and x.problem is not None
            )

    def leaked(self, policy: LeakPolicy) -> builtins.list[LeakedSecret]:
        """Every leaked secret now (``keyward rotate --leaked``), with its policy in effect
        and whether keyward can rotate it."""
        with self.db.session() as s:
            return leaked_secrets(s, policy)

    def claim_in_flight(self, holder: str, ttl: timedelta, *, limit: int = 10) -> tuple[int, ...]:
        """Unfinished rotations nobody holds a live lease on and whose ``next_attempt_at``
        has passed (both in the query: rotations waiting out a grace period never fill the
        batch), leased to ``holder``."""
        now = m.utcnow()
        waits = _ROTATIONS.c.detail["next_attempt_at"].as_string()
        retry = _ROTATIONS.c.detail["retry_after"].as_string()
        # a retiring rotation whose old credential leaked (found by a scan while it waits out
        # its grace period) is due now, unless a revoke was refused and waits to be retried
        leaked_old = sa.and_(
            m.Rotation.state == RotationState.RETIRING.value,
            sa.exists().where(
                m.SecretVersion.id == m.Rotation.old_version_id,
                m.SecretVersion.leaked_at.is_not(None),
            ),
            sa.or_(retry.is_(None), retry <= now.isoformat()),
        )
        q = (
            sa.select(m.Rotation.id, m.Rotation.secret_id, m.Rotation.detail, leaked_old)
            .where(
                m.Rotation.state.not_in(IN_FLIGHT_EXCLUDED),
                sa.or_(waits.is_(None), waits <= now.isoformat(), leaked_old),
                _unleased(m.Rotation.secret_id, now),
            )
            .order_by(m.Rotation.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=m.Rotation)
        )
        with self.db.session() as s:
            found = []
            for rid, sid, detail, leaked in s.execute(q):
                wait = _next_attempt(detail)
                if wait and wait > now and not leaked:
                    continue  # (a time the query's text comparison let through)
                found.append((int(rid), int(sid)))
            taken = self._take(
                s, [(rotation_lease(sid), sid) for _, sid in found], holder, now, now + ttl
            )
            return tuple(rid for rid, sid in found if rotation_lease(sid) in taken)


if TYPE_CHECKING:  # mypy checks that the repository implements rotation's ports
    _implements: type[SchedulerInventory] = RotationRepository
