"""What rotation needs from persistence, declared as protocols; the inventory implements them.

:mod:`keyward.rotation` imports nothing from :mod:`keyward.inventory`. This module is the one
part of rotation the inventory imports: the protocols its repository satisfies
(``keyward.inventory.rotations.RotationRepository``), the frozen values that cross between the
two, and the one spelling of rotation states, steps and the lease key (the engine, the ORM
models and the SQL of the in-flight index all use these). The composition root
(``keyward.cli.compose``) hands the repository to the engine and the scheduler.

* :class:`RotationJournal` keeps each rotation's progress: :meth:`~RotationJournal.start`,
  :meth:`~RotationJournal.record` (progress written together with its audit events, in one
  transaction, only while the writer still holds its lease), and the audit log. Finishing and
  rolling back are kinds of progress (:class:`StateChanged` to a terminal state, with
  :class:`VersionStaged` and :class:`SecretRotated`).
* :class:`Leases` are named, expiring claims; a rotation holds :func:`rotation_lease` of its
  secret.
* :class:`RotatableSecrets` gives a secret's rotation settings as a frozen
  :class:`RotatableSecret`, and the rows of its dependents (:class:`DependentRow`).
* :class:`DueWork` claims what the scheduler should do next.
* :class:`RotationInventory` is all of the above but :class:`DueWork`: what the engine needs.

A rotation writes down what it needs to resume or roll back after a crash in its
:class:`RotationDetail` (``rotations.detail``; no raw value: store version ids, keyed
fingerprints, dependent snapshots, the rotator's notes). Each call of
:meth:`RotationJournal.record` carries the whole detail and a few small marks, each one kind of
progress (:data:`Mark`), so a step's durable write is one transaction however many things it
changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeAlias

from keyward.core.errors import InventoryError, RotationError
from keyward.rotation.protocols import DependentSnapshot, RetireOutcome

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
JsonObject: TypeAlias = Mapping[str, JsonValue]


# ------------------------------------------------------------------- states and steps
class RotationState(StrEnum):
    """``rotations.state``::

        in_progress --(any failure before finish)--> rolling_back --> rolled_back
            |                                   (a failed rollback stays rolling_back)
            +--(finish: pending promoted)--> retiring --(old credential revoked)--> finished

    ``in_progress``, ``rolling_back`` and ``retiring`` are in flight (at most one per secret,
    enforced by the database); the others are terminal.
    """

    IN_PROGRESS = "in_progress"
    ROLLING_BACK = "rolling_back"
    RETIRING = "retiring"
    FINISHED = "finished"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"  # terminal, reserved by the schema; not produced by the engine

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


# In this order in the SQL of the partial unique index ``uq_rotations_in_flight``.
TERMINAL_STATES: tuple[RotationState, ...] = (
    RotationState.FINISHED,
    RotationState.ROLLED_BACK,
    RotationState.FAILED,
)
IN_FLIGHT_STATES: tuple[RotationState, ...] = tuple(
    s for s in RotationState if s not in TERMINAL_STATES
)


def in_flight_sql(column: str = "state") -> str:
    """The SQL condition "this rotation is in flight" (the partial unique index's WHERE)."""
    return f"{column} NOT IN ({', '.join(repr(s.value) for s in TERMINAL_STATES)})"


class Step(StrEnum):
    """``rotations.step`` and ``rotation_steps.step``."""

    CREATE = "create"
    SET = "set"
    TEST = "test"
    DEPENDENTS = "dependents"
    FINISH = "finish"
    RETIRE = "retire"
    ROLLBACK = "rollback"


FORWARD_STEPS: tuple[Step, ...] = (Step.CREATE, Step.SET, Step.TEST, Step.DEPENDENTS, Step.FINISH)


class StepOutcome(StrEnum):
    """``rotation_steps.state``."""

    STARTED = "started"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class VersionRole(StrEnum):
    """Which of a rotation's two secret versions: the one it replaces or the one it made."""

    OLD = "old"
    NEW = "new"


class VersionStage(StrEnum):
    """``secret_versions.stage`` of the versions a rotation touches."""

    CURRENT = "current"
    PENDING = "pending"
    PREVIOUS = "previous"
    RETIRED = "retired"
    DISCARDED = "discarded"


LEASE_PREFIX = "rotate:"


def rotation_lease(secret_id: int) -> str:
    """The name of the lease a worker holds while it rotates the secret ``secret_id``."""
    return f"{LEASE_PREFIX}{secret_id}"


class RotationInFlight(InventoryError):
    """The secret already has an unfinished rotation (the database allows one at a time)."""


class UnreadableDetail(RotationError):
    """A rotation's detail was written by something this keyward cannot read."""


# ----------------------------------------------------------------------- the secret
@dataclass(frozen=True, slots=True)
class RotatableSecret:
    """A secret's rotation settings, as the inventory keeps them.

    ``kind`` names its rotator (``keyward.rotators``), ``store`` its secret store
    (``keyward.stores``) and ``reference`` where it lives there (else its ``name``).
    ``options`` are its own ``[rotation]`` overrides (``{"store": {...}, "rotator": {...},
    "dependent": {...}}``), merged over the config file's tables. ``account`` is the AWS
    account it lives in (``None``: keyward's own): its store, rotator and dependents act there.
    """

    id: int
    name: str
    kind: str
    store: str | None
    reference: str | None
    options: JsonObject = field(default_factory=dict)
    account: str | None = None


class DependentRow(Protocol):
    """One inventoried dependent of a secret: a variable of a target that holds (a field of)
    the secret. ``attributes`` may say ``field``, ``mode`` (``"reference"``) and ``alias``."""

    @property
    def kind(self) -> str: ...

    @property
    def target(self) -> str: ...

    @property
    def variable(self) -> str | None: ...

    @property
    def region(self) -> str | None: ...

    @property
    def account(self) -> str | None:
        """The target's AWS account (``None``: the secret's)."""
        ...

    @property
    def attributes(self) -> JsonObject: ...


# ----------------------------------------------------------------------- the detail
@dataclass(frozen=True, slots=True)
class PreparedDependent:
    """A dependent's snapshot, persisted before its update (``key`` identifies the target)."""

    key: str
    snapshot: DependentSnapshot


def _text(doc: JsonObject, key: str) -> str | None:
    value = doc.get(key)
    return None if value is None else str(value)


def _texts(doc: JsonObject, key: str) -> tuple[str, ...]:
    value = doc.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError(f"{key} is not a list")
    return tuple(str(v) for v in value)


def _time(doc: JsonObject, key: str) -> datetime | None:
    value = doc.get(key)
    return None if value is None else datetime.fromisoformat(str(value))


_KNOWN = frozenset(
    {
        "token", "store", "store_name", "done", "old_version", "old_fingerprint", "pending",
        "new_fingerprint", "snapshots", "verified", "restored", "vanished", "reason",
        "failed_step", "finished_at", "deactivated_at", "next_attempt_at", "retry_after",
        "retired", "retire_detail", "warnings", "notes", "leaked",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RotationDetail:
    """What a rotation has written down about itself (``rotations.detail``; never a value).

    ``token`` is its idempotency token (persisted before anything happens), ``store`` and
    ``store_name`` where the secret is, ``done`` the forward steps completed. Then, as they
    become known: the store's ``old_version`` and ``pending`` version ids and keyed
    fingerprints of both values, each dependent's snapshot (before its update) and which
    targets were ``verified`` / ``restored`` / ``vanished``; why it is rolling back
    (``reason``, ``failed_step``); when it finished and deactivated the old credential, when
    it may be tried again (``next_attempt_at``, read by :meth:`DueWork.claim_in_flight`),
    the retirement's outcome, the rotator's warnings, whether the credential it replaces
    ``leaked`` (then it is deactivated and revoked as soon as the new one is current, without
    waiting out the grace period), and the rotator's own crash-safe notes
    (``rotator_notes``, JSON key ``notes``: see
    :class:`~keyward.rotation.protocols.RotationNotes`). Keys a newer keyward wrote are kept
    in ``extra`` and written back unchanged.
    """

    token: str
    store: str
    store_name: str
    done: tuple[Step, ...] = ()
    old_version: str | None = None
    old_fingerprint: str | None = None
    pending: str | None = None
    new_fingerprint: str | None = None
    snapshots: tuple[PreparedDependent, ...] = ()
    verified: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()
    vanished: tuple[str, ...] = ()
    reason: str | None = None
    failed_step: Step | None = None
    finished_at: datetime | None = None
    deactivated_at: datetime | None = None
    next_attempt_at: datetime | None = None
    retry_after: datetime | None = None
    retired: RetireOutcome | None = None
    retire_detail: str | None = None
    warnings: tuple[str, ...] = ()
    rotator_notes: Mapping[str, str] = field(default_factory=dict)
    extra: JsonObject = field(default_factory=dict)
    leaked: bool = False

    def to_json(self) -> dict[str, JsonValue]:
        """The JSON document stored in ``rotations.detail`` (unset fields are left out)."""
        doc: dict[str, JsonValue] = dict(self.extra)
        doc.update(token=self.token, store=self.store, store_name=self.store_name)
        doc["done"] = [s.value for s in self.done]
        texts: dict[str, str | None] = {
            "old_version": self.old_version,
            "old_fingerprint": self.old_fingerprint,
            "pending": self.pending,
            "new_fingerprint": self.new_fingerprint,
            "reason": self.reason,
            "failed_step": self.failed_step.value if self.failed_step else None,
            "retired": self.retired.value if self.retired else None,
            "retire_detail": self.retire_detail,
        }
        times = {
            "finished_at": self.finished_at,
            "deactivated_at": self.deactivated_at,
            "next_attempt_at": self.next_attempt_at,
            "retry_after": self.retry_after,
        }
        lists = {
            "verified": self.verified,
            "restored": self.restored,
            "vanished": self.vanished,
            "warnings": self.warnings,
        }
        doc.update({k: v for k, v in texts.items() if v is not None})
        doc.update({k: v.isoformat() for k, v in times.items() if v is not None})
        if self.snapshots:
            doc["snapshots"] = [
                {"key": p.key, "snapshot": p.snapshot.to_dict()} for p in self.snapshots
            ]
        doc.update({k: list(v) for k, v in lists.items() if v})
        if self.rotator_notes:
            doc["notes"] = dict(self.rotator_notes)
        if self.leaked:
            doc["leaked"] = True
        return doc

    @classmethod
    def from_json(cls, doc: JsonObject) -> RotationDetail:
        """Read a ``rotations.detail`` document (as :meth:`to_json` or an older keyward wrote
        it); :class:`UnreadableDetail` when it is not one."""
        try:
            snapshots = []
            listed = doc.get("snapshots") or []
            if not isinstance(listed, list):
                raise TypeError("snapshots is not a list")
            for entry in listed:
                snap = entry.get("snapshot") if isinstance(entry, dict) else None
                if not isinstance(entry, dict) or not isinstance(snap, dict):
                    raise TypeError("a dependent snapshot is not an object")
                snapshots.append(
                    PreparedDependent(str(entry["key"]), DependentSnapshot.from_dict(snap))
                )
            failed = _text(doc, "failed_step")
            retired = _text(doc, "retired")
            notes = doc.get("notes") or {}
            if not isinstance(notes, dict):
                raise TypeError("notes is not an object")
            return cls(
                token=_text(doc, "token") or "",
                store=_text(doc, "store") or "",
                store_name=_text(doc, "store_name") or "",
                done=tuple(Step(s) for s in _texts(doc, "done")),
                old_version=_text(doc, "old_version"),
                old_fingerprint=_text(doc, "old_fingerprint"),
                pending=_text(doc, "pending"),
                new_fingerprint=_text(doc, "new_fingerprint"),
                snapshots=tuple(snapshots),
                verified=_texts(doc, "verified"),
                restored=_texts(doc, "restored"),
                vanished=_texts(doc, "vanished"),
                reason=_text(doc, "reason"),
                failed_step=Step(failed) if failed else None,
                finished_at=_time(doc, "finished_at"),
                deactivated_at=_time(doc, "deactivated_at"),
                next_attempt_at=_time(doc, "next_attempt_at"),
                retry_after=_time(doc, "retry_after"),
                retired=RetireOutcome(retired) if retired else None,
                retire_detail=_text(doc, "retire_detail"),
                warnings=_texts(doc, "warnings"),
                rotator_notes={str(k): str(v) for k, v in notes.items()},
                extra={k: v for k, v in doc.items() if k not in _KNOWN},
                leaked=doc.get("leaked") is True,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UnreadableDetail(
                f"The rotation's detail cannot be read ({type(exc).__name__}: {exc})",
                hint="It was written by another tool or a newer keyward; upgrade keyward",
            ) from None


# ------------------------------------------------------------------------ progress
@dataclass(frozen=True, slots=True)
class StepBegun:
    """``rotations.step`` becomes ``step`` and a ``started`` step row opens (unless one is
    open already: a resumed step keeps its row)."""

    step: Step


@dataclass(frozen=True, slots=True)
class StepEnded:
    """The open row of ``step`` closes with ``outcome`` (a closed row is added if none is
    open); ``detail`` is merged into the row's."""

    step: Step
    outcome: StepOutcome
    detail: JsonObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AtStep:
    """``rotations.step`` becomes ``step``, without opening a step row."""

    step: Step


@dataclass(frozen=True, slots=True)
class StateChanged:
    """``rotations.state`` becomes ``state``; a terminal state also sets ``finished_at``."""

    state: RotationState


@dataclass(frozen=True, slots=True)
class ErrorNoted:
    """``rotations.error``: what went wrong, for operators (no value; cut at 4,000 chars)."""

    text: str


@dataclass(frozen=True, slots=True)
class ErrorCleared:
    """``rotations.error`` is emptied (the rotation went on after a failure)."""


@dataclass(frozen=True, slots=True)
class VersionSeen:
    """The secret's version ``identifier`` (keyed ``fingerprint``) is the rotation's ``role``
    version: recorded once, linked to the findings that leaked it. ``fields`` are the keyed
    fingerprints of each of its fields (field -> fingerprint), so a later leak of one field
    (the new secret key of a key pair) links back to this secret and version."""

    role: VersionRole
    fingerprint: str
    identifier: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VersionStaged:
    """The rotation's ``role`` version (when recorded) now has ``stage``."""

    role: VersionRole
    stage: VersionStage


@dataclass(frozen=True, slots=True)
class LeakRemediated:
    """The rotation revoked its old version: the findings of that version are remediated
    (with this rotation and the time), audited ``leak.remediated`` when there were any."""


@dataclass(frozen=True, slots=True)
class SecretRotated:
    """The secret was last rotated ``at``: its next due time follows from its policy."""

    at: datetime


Mark: TypeAlias = (
    StepBegun
    | StepEnded
    | AtStep
    | StateChanged
    | ErrorNoted
    | ErrorCleared
    | VersionSeen
    | VersionStaged
    | SecretRotated
    | LeakRemediated
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit event (``rotation.test`` / ``ok``); ``detail`` never holds a value."""

    action: str
    outcome: str = "ok"
    detail: JsonObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Progress:
    """One durable write: the rotation's detail as it is now, what else changed, and the
    audit events that tell it; all in one transaction, or nothing."""

    detail: RotationDetail
    marks: tuple[Mark, ...] = ()
    audit: tuple[AuditEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseClaim:
    """The lease a write is made under: ``holder`` keeps ``name`` for ``ttl`` more."""

    name: str
    holder: str
    ttl: timedelta
    secret_id: int | None = None


@dataclass(frozen=True, slots=True)
class HeldLease:
    name: str
    holder: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A rotation as the journal has it. ``state`` is as stored (a newer keyward may know
    more states: :meth:`RotationState` of it may fail)."""

    id: int
    secret_id: int
    secret: str
    state: str
    started_at: datetime
    detail: RotationDetail


@dataclass(frozen=True, slots=True)
class SecretLeak:
    """A secret whose current version was found by a scan (a leak): the version, since when,
    and the open findings of it."""

    secret_id: int
    secret: str
    version_id: int
    leaked_at: datetime
    findings: tuple[int, ...] = ()

    def reason(self) -> str:
        """Why a rotation of it starts (the audit log's ``reason``; ids only)."""
        shown = ", ".join(f"#{i}" for i in self.findings[:10])
        more = f" and {len(self.findings) - 10} more" if len(self.findings) > 10 else ""
        where = f" (findings {shown}{more})" if self.findings else ""
        return f"leak: its current version was found{where}"


# ----------------------------------------------------------------------- protocols
class RotationJournal(Protocol):
    """Where rotations are kept. Every method is one transaction."""

    @property
    def actor(self) -> str:
        """Who the audit events name (a user, or ``keyward-daemon@holder``)."""
        ...

    def start(
        self, secret: RotatableSecret, detail: RotationDetail, audit: AuditEntry
    ) -> JournalEntry:
        """Insert a rotation of ``secret`` (``in_progress`` at ``create``) with its audit
        event; :class:`RotationInFlight` when the secret has one in flight already."""
        ...

    def entry(self, rotation_id: int) -> JournalEntry:
        """The rotation ``rotation_id``; a usage error (exit 2) when there is none."""
        ...

    def entry_by_token(self, secret_id: int, token: str) -> JournalEntry | None:
        """The rotation of this secret whose idempotency token is ``token``, if any."""
        ...

    def entry_in_flight(self, secret_id: int) -> JournalEntry | None:
        """The secret's rotation in flight (there is at most one), if any."""
        ...

    def record(self, rotation_id: int, progress: Progress, lease: LeaseClaim) -> bool:
        """Renew ``lease`` and write ``progress`` in one transaction. False, and nothing
        written, when another holder has the lease now."""
        ...

    def audit(
        self, secret: RotatableSecret, entry: AuditEntry, rotation_id: int | None = None
    ) -> None:
        """Append an audit event about ``secret`` (and a rotation of it)."""
        ...


class Leases(Protocol):
    """Named, expiring claims, each held by one worker at a time."""

    def acquire_lease(
        self, name: str, holder: str, ttl: timedelta, *, secret_id: int | None = None
    ) -> bool:
        """Take or renew ``name``; False when another holder's lease is live."""
        ...

    def release_lease(self, name: str, holder: str) -> None: ...

    def lease(self, name: str) -> HeldLease | None: ...

    def take_over_lease(self, name: str, holder: str, previous: str, ttl: timedelta) -> bool:
        """Replace ``previous``'s lease (known dead) by ours; False if it changed meanwhile."""
        ...


class RotatableSecrets(Protocol):
    """Secrets as rotation sees them: settings and dependents."""

    def rotatable(self, name: str) -> RotatableSecret:
        """The secret named ``name``; a usage error (exit 2) when there is none."""
        ...

    def rotatable_by_id(self, secret_id: int) -> RotatableSecret: ...

    def dependents(self, secret_id: int) -> Sequence[DependentRow]:
        """The secret's active dependents (not those discovery marked missing), in the order
        they were added."""
        ...

    def leak_of(self, secret_id: int) -> SecretLeak | None:
        """The secret's leak, when its current version was found by a scan; else None."""
        ...

    def remediated_findings(self, rotation_id: int) -> tuple[int, ...]:
        """The findings the rotation ``rotation_id`` remediated (it revoked their value)."""
        ...

    def old_version_leaked(self, rotation_id: int) -> bool:
        """The version the rotation ``rotation_id`` replaces was found by a scan (a leak:
        even one found after the rotation started, while it waits out its grace period)."""
        ...


class DueWork(Protocol):
    """What the scheduler claims on each tick (leased to ``holder`` as it is claimed)."""

    def claim_in_flight(self, holder: str, ttl: timedelta, *, limit: int = 10) -> tuple[int, ...]:
        """Rotations in flight that nobody holds a live lease on and whose
        ``next_attempt_at`` has passed, or that are retiring a credential that leaked
        (unless a refused revoke waits for its ``retry_after``)."""
        ...

    def claim_due_secrets(
        self,
        holder: str,
        ttl: timedelta,
        *,
        limit: int = 10,
        failed_backoff: timedelta = ...,
        kinds: Iterable[str] | None = None,
        stores: Iterable[str] | None = None,
    ) -> tuple[str, ...]:
        """Names of secrets due for rotation with no rotation in flight, none rolled back or
        refused at its start within ``failed_backoff``."""
        ...

    def claim_leaked(
        self,
        holder: str,
        ttl: timedelta,
        *,
        on_leak: str | None = None,
        limit: int = 10,
        failed_backoff: timedelta = ...,
        kinds: Iterable[str] | None = None,
        stores: Iterable[str] | None = None,
    ) -> tuple[SecretLeak, ...]:
        """Leaked secrets whose policy is to rotate (their own ``on_leak``, else ``on_leak``
        here, else rotate), oldest leak first, with no rotation in flight but one retiring,
        and none rolled back (or refused at its start) within ``failed_backoff``."""
        ...

    def leaked_unrotatable(
        self, kinds: Iterable[str], stores: Iterable[str], *, on_leak: str | None = None
    ) -> tuple[SecretLeak, ...]:
        """Leaked secrets whose policy is to rotate but that no rotator or store plugin
        among ``kinds`` and ``stores`` can rotate (never claimed: the daemon says so once)."""
        ...


class RotationInventory(RotationJournal, Leases, RotatableSecrets, Protocol):
    """Everything the rotation engine needs from persistence."""


class SchedulerInventory(RotationInventory, DueWork, Protocol):
    """Everything the scheduler needs: the engine's needs and the claims."""
