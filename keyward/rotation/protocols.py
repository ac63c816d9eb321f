"""The three small protocols through which rotation talks to the outside world.

* :class:`SecretStore` keeps versions of a secret: a *current* one that readers use, the
  *previous* one (kept for rollback and for restoring dependents) and at most one *pending*
  one while a rotation is in flight.
* :class:`Rotator` makes, applies, proves and retires a credential of one kind.
* :class:`Dependent` updates something that holds the secret (a Lambda function's
  environment), verifies it, and restores it.

Every method is safe to call again after a crash or a timeout (idempotent). The state machine
drives them step by step; see ``docs/rotation.md`` and the sequence below in this module's
docstring.

Values are frozen dataclasses. A raw secret lives only in :class:`SecretValue`, whose repr shows
field names, never values. Nothing here is persisted with a raw value: what the inventory keeps
are keyed fingerprints (:meth:`SecretValue.fingerprint`), store version ids and
:class:`DependentSnapshot` documents (fingerprints and non-secret identifiers only).

Driving sequence. Persist first: token ``T = new_token()``, ``started_at`` (UTC), then after
each marked call what it returned (``#>``); on resume, skip what is persisted::

    1 create   d = store.describe(name)
               d.pending_token not in (None, T): another rotation's leftover -> roll it back
               cur = store.read_current(name)                      #> old_version = cur.version
               if d.pending_token == T and d.pending: pending = d.pending      (resume)
               else: value = rotator.create(cur.value, RotationContext(T, started_at))
                     pending = store.put_pending(name, value, T)   #> pending
               new = store.read_version(name, pending)             #> new.value.fingerprint(fp)
    2 set      rotator.set(cur.value, new.value)
    3 test     rotator.test(new.value)
    4 deps     per target: snap = dependent.prepare(target, cur, new)   #> snap.to_dict()
               (a persisted snapshot is reused on resume: never prepare the same target twice)
               dependent.update(snap, new); dependent.verify(snap, new)   #> verified
    5 finish   store.promote(name, pending)          (afterwards describe().current == pending)
    6 retire   old = store.read_version(name, old_version)
               rotator.deactivate(old.value, new.value)                #> deactivated_at
               after the grace period:
               rotator.revoke(old.value, new.value, deactivated_at)    #> Retirement
               (KEPT_IN_USE: keep it, report, try again later)
    rollback   (any failure before 5) cur = store.read_version(name, old_version)
               dependent.rollback(snap, cur) for each persisted snapshot, newest first
               (DependentNotFound: record it and go on)
               rotator.rollback(cur.value, new.value or None if never stored, ctx)
               store.discard_pending(name, T)        (Vault: current may get a new number)

A rotator may persist small non-secret facts of its own at once through ``ctx.notes``
(:class:`RotationNotes`): for a crash between two provider calls of one method, e.g. the id
``CreateAccessKey`` returned, recorded before the new value is stored. The same notes come
back in the ``ctx`` of a resumed ``create`` or of ``rollback``.

On resume, ``cur`` is ``store.read_version(name, old_version)`` and ``new`` is
``store.read_version(name, pending)``: after a crash every value comes back from the store.
The old value for restoring dependents always comes from the store (the current version before
finish, ``describe().previous`` after it), never from the inventory.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from keyward.core.redaction import Fingerprinter


def new_token() -> str:
    """A fresh idempotency token for one rotation (36 characters; valid as an AWS
    ``ClientRequestToken``, which must be 32-64 characters)."""
    return str(uuid.uuid4())


# ----------------------------------------------------------------------------- values
@dataclass(frozen=True, slots=True, eq=False)
class SecretValue:
    """The content of one secret version: string fields.

    Secrets Manager stores them as a JSON object (a plain, non-JSON ``SecretString`` reads as
    the single field ``value``); Vault KV v2 stores them as the version's data. The repr shows
    the field names only. Compare two values with :meth:`same_as` (constant time).
    """

    fields: Mapping[str, str] = field(repr=False)

    def __post_init__(self) -> None:
        items = dict(self.fields)
        for k, v in items.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("secret fields must map str to str")
        object.__setattr__(self, "fields", MappingProxyType(items))

    @classmethod
    def single(cls, value: str) -> SecretValue:
        """A secret with one field, ``value`` (a plain string secret)."""
        return cls({"value": value})

    def __repr__(self) -> str:
        return f"SecretValue(fields={sorted(self.fields)})"

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)

    def replace(self, **changes: str) -> SecretValue:
        """A copy with some fields changed (e.g. a new ``password``)."""
        return SecretValue({**self.fields, **changes})

    def canonical(self) -> str:
        """Deterministic serialisation (sorted JSON) - raw secret, use with care."""
        return json.dumps(dict(self.fields), sort_keys=True, separators=(",", ":"))

    def same_as(self, other: SecretValue) -> bool:
        return hmac.compare_digest(self.canonical().encode(), other.canonical().encode())

    def fingerprint(self, fp: Fingerprinter) -> str:
        """Keyed fingerprint of the whole value (what the inventory stores)."""
        return fp.fingerprint(self.canonical())

    def field_fingerprints(self, fp: Fingerprinter) -> dict[str, str]:
        """Keyed fingerprints of the fields worth recording (``secret_fields``): see
        :func:`keyward.core.secretfields.field_fingerprints`."""
        from keyward.core.secretfields import field_fingerprints

        return field_fingerprints(self.fields, fp.fingerprint)


@dataclass(frozen=True, slots=True)
class VersionedSecret:
    """A secret value together with the store's id for that version."""

    name: str
    version: str
    value: SecretValue


@dataclass(frozen=True, slots=True)
class SecretDescription:
    """What a store knows about a secret, without reading any value.

    ``pending_token`` is the idempotency token of an unfinished ``put_pending``; a rotation
    that finds its own token here after a crash resumes from ``pending`` (which is ``None``
    when the write itself never happened: call ``put_pending`` again with the same token).

    ``pending == current`` (with ``pending_token`` ``None``) means a promote stopped after the
    pending version became current but before its pending mark was removed (Secrets Manager's
    ``AWSPENDING`` left on the ``AWSCURRENT`` version): ``promote(name, pending)`` finishes it.
    A store never hides such a mark.

    ``managed_by`` names another rotation that already rotates this secret (Secrets Manager's
    own, with its rotation Lambda): keyward refuses to rotate it too, unless told to take over,
    which calls the store's optional ``stop_managed_rotation(name) -> str`` first.
    """

    name: str
    exists: bool
    ref: str = ""  # provider reference: ARN, or ``mount/path`` for Vault
    current: str | None = None
    previous: str | None = None
    pending: str | None = None
    pending_token: str | None = None
    managed_by: str | None = None  # "AWS Secrets Manager rotation with the Lambda arn:..."


# ------------------------------------------------------------------------ SecretStore
@runtime_checkable
class SecretStore(Protocol):
    """Versions of secrets with current / previous / pending stages.

    Errors are :class:`keyward.core.errors.StoreAuthError` (denied: names the action),
    :class:`~keyward.core.errors.StoreNotFound`, :class:`~keyward.core.errors.StoreConflict`
    (check-and-set lost, token reused for another value, version in the wrong stage) and
    :class:`~keyward.core.errors.StoreUnavailable` (connection refused, timeouts).
    """

    kind: str

    def plan(self, name: str) -> tuple[str, ...]:
        """The provider calls a rotation would make on ``name``, for ``--dry-run``."""
        ...

    def describe(self, name: str) -> SecretDescription:
        """Stage ids of a secret; ``exists=False`` (no error) when it does not exist."""
        ...

    def read_current(self, name: str) -> VersionedSecret:
        """The value readers should use now (never the pending one)."""
        ...

    def read_version(self, name: str, version: str) -> VersionedSecret:
        """One specific version (pending, current or previous)."""
        ...

    def put_pending(self, name: str, value: SecretValue, token: str) -> str:
        """Store ``value`` as the pending version and return its version id.

        Idempotent per ``token``: a retry with the same token and the same value returns the
        same version id; the same token with a different value raises ``StoreConflict``.
        """
        ...

    def promote(self, name: str, version: str) -> None:
        """Make pending ``version`` current; the old current becomes previous. Idempotent."""
        ...

    def discard_pending(self, name: str, token: str) -> None:
        """Roll back whatever ``put_pending`` wrote with ``token`` (even if it was interrupted
        before returning a version id); current is untouched. Idempotent; a no-op when
        nothing was written. Raises ``StoreConflict`` if that version is already current.
        """
        ...

    def list_secrets(self, prefix: str = "") -> Iterator[str]:
        """Names of the secrets this store can see (for discovery)."""
        ...


@dataclass(frozen=True, slots=True)
class CreatedSecret:
    """A secret a store has just created (``keyward adopt``): where it is and its first version.

    ``ref`` is what a consumer names it by (Secrets Manager: the ARN; Vault: ``mount/path``)."""

    name: str
    ref: str
    version: str


@runtime_checkable
class CreatableStore(Protocol):
    """Optional part of a :class:`SecretStore`: create a secret that does not exist yet, with
    a first (current) version and tags. ``keyward adopt`` needs it; rotation does not."""

    kind: str

    def create(
        self, name: str, value: SecretValue, *, tags: Mapping[str, str], token: str
    ) -> CreatedSecret:
        """Create ``name`` holding ``value`` as its current version, tagged with ``tags``
        (owner, team...: never a value). Raises ``StoreConflict`` when ``name`` exists;
        a retry with the same ``token`` after a timeout does not create a second secret."""
        ...

    def reference_variable(self) -> str:
        """The environment variable a Lambda function reads the secret's ``ref`` from when it
        loads the secret itself (``KEYWARD_SECRET_ARN``, ``KEYWARD_SECRET_PATH``)."""
        ...


# --------------------------------------------------------------------------- Rotator
@runtime_checkable
class RotationNotes(Protocol):
    """A rotator's own journal inside one rotation: small non-secret facts (resource ids,
    never a secret value) that must survive a crash *between two provider calls* of one
    method, e.g. the id of the access key ``CreateAccessKey`` just returned, before the new
    value reaches the store. The engine persists each ``record`` at once, in the rotation."""

    def get(self, key: str) -> str | None:
        """What was recorded under ``key`` (in this run or before a crash), else ``None``."""
        ...

    def record(self, key: str, value: str | None) -> None:
        """Persist ``value`` under ``key`` now (``None`` removes it); returns once durable."""
        ...


@dataclass(slots=True)
class MemoryNotes:
    """Notes kept in memory only: for a rotator driven without the engine (tests, ``plan``)."""

    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def record(self, key: str, value: str | None) -> None:
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value


@dataclass(frozen=True, slots=True)
class RotationContext:
    """Identifies one rotation to a rotator so that ``create`` can recognise its own leftovers.

    ``token`` is the rotation's idempotency token; ``started_at`` (UTC) is when the rotation
    was first persisted: a provider resource created before it is never "ours". ``notes`` is
    the rotator's crash-safe journal for this rotation (see :class:`RotationNotes`).
    """

    token: str
    started_at: datetime
    notes: RotationNotes = field(default_factory=MemoryNotes)


class RetireOutcome(StrEnum):
    REVOKED = "revoked"  # the old credential is gone (deleted / password cleared)
    ALREADY_GONE = "already-gone"  # nothing to do: it no longer exists
    KEPT_IN_USE = "kept-in-use"  # refused: it was used after deactivation; look, then retry
    NOT_APPLICABLE = "not-applicable"  # this kind has nothing to retire (random value, ...)


@dataclass(frozen=True, slots=True)
class Retirement:
    outcome: RetireOutcome
    detail: str = ""  # one sentence, no secret values


@runtime_checkable
class Rotator(Protocol):
    """One credential kind: create, set, test, deactivate/revoke the old, roll back the new.

    Optional, looked up with ``getattr`` by the engine: ``retires = False`` (nothing to retire:
    finish at once) and ``take_warnings() -> list[str]`` (what the rotator wants the operator
    to know, e.g. a change that will not survive a server restart; the engine audits each one
    as ``rotation.warning`` and returns them in the outcome). Warnings never hold a value.
    """

    kind: str

    def plan(self, current: SecretValue) -> tuple[str, ...]:
        """The provider calls a rotation would make, for ``--dry-run`` (no side effects)."""
        ...

    def create(self, current: SecretValue, ctx: RotationContext) -> SecretValue:
        """Make a new credential and return the full new secret value (all fields).

        Call it only when the store holds no pending version for ``ctx.token`` (otherwise
        read that version back). A retry cleans up what an interrupted earlier call left
        behind (e.g. an IAM key created after ``ctx.started_at`` whose secret was never
        stored) before creating again.
        """
        ...

    def set(self, current: SecretValue, new: SecretValue) -> None:
        """Apply the new credential where it is enforced (no-op for kinds that need none)."""
        ...

    def test(self, new: SecretValue) -> None:
        """Prove the new credential works; raises ``CredentialRejected`` otherwise."""
        ...

    def deactivate(self, old: SecretValue, new: SecretValue) -> None:
        """First half of retiring the old credential (reversible: IAM key Inactive)."""
        ...

    def revoke(self, old: SecretValue, new: SecretValue, deactivated_at: datetime) -> Retirement:
        """Second half, after the grace period: delete the old credential unless it was
        used after ``deactivated_at``."""
        ...

    def rollback(self, current: SecretValue, new: SecretValue | None, ctx: RotationContext) -> None:
        """Undo ``create``/``set``: revoke the new credential, leave ``current`` working.

        ``new`` is ``None`` when the rotation stopped before its value reached the store;
        the rotator then removes what an interrupted ``create`` may have left (identified by
        ``ctx``) and restores what ``set`` may have changed. Idempotent."""
        ...


# ------------------------------------------------------------------------- Dependent
class DependentMode(StrEnum):
    VALUE = "value"  # variables hold fields of the secret
    REFERENCE = "reference"  # the function loads the secret itself; bump KEYWARD_SECRET_VERSION


@dataclass(frozen=True, slots=True)
class EnvBinding:
    """One environment variable and the secret field it holds (``None`` in reference mode)."""

    variable: str
    field: str | None = "value"


@dataclass(frozen=True, slots=True)
class DependentTarget:
    """Something that holds a secret: e.g. a Lambda function (name or ARN) and its variables."""

    kind: str  # entry point name in ``keyward.dependents``, e.g. "aws-lambda"
    resource: str
    bindings: tuple[EnvBinding, ...] = ()
    region: str | None = None
    mode: DependentMode = DependentMode.VALUE
    alias: str | None = None  # publish a version and move this alias to it
    account: str | None = None  # its AWS account, when not the secret's


class HeldState(StrEnum):
    ABSENT = "absent"  # the variable did not exist; rollback removes it
    OLD = "old"  # held the old (current) value; rollback restores it from the store
    NEW = "new"  # already held the new value (a retried prepare); rollback restores old
    PLAIN = "plain"  # a non-secret marker (KEYWARD_SECRET_VERSION); rollback restores ``plain``


@dataclass(frozen=True, slots=True)
class VariableBefore:
    variable: str
    field: str | None
    state: HeldState
    fingerprint: str | None = None  # keyed fingerprint of what it held (None if absent)
    plain: str | None = None  # only for non-secret markers such as KEYWARD_SECRET_VERSION


@dataclass(frozen=True, slots=True)
class DependentSnapshot:
    """What a dependent held before keyward changed it: persist it before ``update``.

    No raw value: fingerprints, the store version that holds the old values (``old_version``)
    and non-secret identifiers. ``to_dict``/``from_dict`` give a JSON-safe document.
    """

    target: DependentTarget
    old_version: str
    new_version: str
    variables: tuple[VariableBefore, ...]
    alias_version: str | None = None  # the version the alias pointed to before

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "target": {
                "kind": t.kind,
                "resource": t.resource,
                "region": t.region,
                "account": t.account,
                "mode": t.mode.value,
                "alias": t.alias,
                "bindings": [[b.variable, b.field] for b in t.bindings],
            },
            "old_version": self.old_version,
            "new_version": self.new_version,
            "alias_version": self.alias_version,
            "variables": [
                {
                    "variable": v.variable,
                    "field": v.field,
                    "state": v.state.value,
                    "fingerprint": v.fingerprint,
                    "plain": v.plain,
                }
                for v in self.variables
            ],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DependentSnapshot:
        t = doc["target"]
        target = DependentTarget(
            kind=t["kind"],
            resource=t["resource"],
            region=t.get("region"),
            account=t.get("account"),
            mode=DependentMode(t.get("mode", "value")),
            alias=t.get("alias"),
            bindings=tuple(EnvBinding(b[0], b[1]) for b in t.get("bindings", [])),
        )
        return cls(
            target=target,
            old_version=doc["old_version"],
            new_version=doc["new_version"],
            alias_version=doc.get("alias_version"),
            variables=tuple(
                VariableBefore(
                    variable=v["variable"],
                    field=v.get("field"),
                    state=HeldState(v["state"]),
                    fingerprint=v.get("fingerprint"),
                    plain=v.get("plain"),
                )
                for v in doc["variables"]
            ),
        )


@runtime_checkable
class Dependent(Protocol):
    """Updates, verifies and restores one kind of dependent."""

    kind: str

    def plan(self, target: DependentTarget) -> tuple[str, ...]:
        """The provider calls an update of ``target`` would make, for ``--dry-run``."""
        ...

    def prepare(
        self, target: DependentTarget, old: VersionedSecret, new: VersionedSecret
    ) -> DependentSnapshot:
        """Read-only: record what the target holds now. Raises ``DependentNotFound`` if it is
        gone and ``DependentDrift`` if a variable holds neither the old nor the new value."""
        ...

    def update(self, snapshot: DependentSnapshot, new: VersionedSecret) -> None:
        """Change only the bound variables to the new value; wait until applied. Idempotent."""
        ...

    def verify(self, snapshot: DependentSnapshot, new: VersionedSecret) -> None:
        """Read back and prove the target now holds the new value; raise otherwise."""
        ...

    def rollback(self, snapshot: DependentSnapshot, old: VersionedSecret) -> None:
        """Restore exactly what ``snapshot`` recorded, using the old value from the store."""
        ...
