"""The inventory's part of ``keyward adopt``: the finding to adopt, the other places that hold
its value, and the one transaction that records an adopted secret.

Only keyed fingerprints and identifiers come in and go out; the value itself never reaches
this module. :func:`record_adoption` writes, in one transaction: the secret (its store and
reference), its current version (the store's version id, the keyed fingerprint of the whole
value, ``leaked_at``: it was found hardcoded), one ``secret_fields`` row per field, the
dependents (discovered: the Lambda variables that hold a field), the findings linked to it
(their ``version_id`` too) and the ``secret.adopted`` audit event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.errors import AlreadyExists, NotFound
from keyward.inventory.fields import fields_by_fingerprint, record_fields
from keyward.inventory.records import SecretRecord
from keyward.inventory.service import Inventory, apply_policy, secret_record


@dataclass(frozen=True, slots=True)
class AdoptableFinding:
    """A recorded finding, as adoption needs it (fingerprints, never a value)."""

    id: int
    target: str
    rule_id: str
    source: str
    path: str | None
    line: int
    column: int
    commit: str | None
    variable: str | None
    resource: str | None
    region: str | None
    account: str | None
    preview: str
    fingerprint: str
    companion_fingerprint: str | None
    state: str
    first_seen_at: datetime
    secret: str | None  # the inventoried secret it is linked to
    secret_store: str | None

    def where(self) -> str:
        """``path:line``, ``ARN $VAR``, ``$VAR``: how messages name its location."""
        parts: list[str] = []
        if self.resource:
            parts.append(self.resource)
        if self.path:
            parts.append(f"{self.path}:{self.line}" if self.line else self.path)
        if self.variable and not self.path:
            parts.append(f"${self.variable}")
        return " ".join(parts) or self.source


_COLUMNS = (
    m.Finding.id,
    m.Finding.target,
    m.Finding.rule_id,
    m.Finding.source,
    m.Finding.path,
    m.Finding.line,
    m.Finding.column,
    m.Finding.commit,
    m.Finding.variable,
    m.Finding.resource,
    m.Finding.region,
    m.Finding.account,
    m.Finding.preview,
    m.Finding.fingerprint,
    m.Finding.companion_fingerprint,
    m.Finding.state,
    m.Finding.first_seen_at,
    m.Secret.name,
    m.Secret.store,
)


def _finding(row: Sequence[Any]) -> AdoptableFinding:
    values = list(row)
    state = values[15]
    values[15] = state.value if isinstance(state, m.FindingState) else str(state)
    return AdoptableFinding(*values)


def _select() -> Any:
    return sa.select(*_COLUMNS).outerjoin(m.Secret, m.Secret.id == m.Finding.secret_id)


def adoptable_finding(db: Database, finding_id: int) -> AdoptableFinding:
    """The finding ``finding_id``; :class:`NotFound` (exit 2) when there is none."""
    with db.session() as s:
        row = s.execute(_select().where(m.Finding.id == finding_id)).one_or_none()
    if row is None:
        raise NotFound(
            f"No finding with id {finding_id} in the inventory",
            hint="See `keyward findings list` (findings are recorded by `keyward scan --record`)",
        )
    return _finding(row)


def findings_holding(db: Database, fingerprints: Iterable[str]) -> tuple[AdoptableFinding, ...]:
    """Every recorded finding (any source, any state but resolved) whose value or paired value
    is one of ``fingerprints``, oldest first."""
    fps = sorted(set(fingerprints))
    if not fps:
        return ()
    q = (
        _select()
        .where(
            sa.or_(m.Finding.fingerprint.in_(fps), m.Finding.companion_fingerprint.in_(fps)),
            m.Finding.state != m.FindingState.RESOLVED,
        )
        .order_by(m.Finding.id)
    )
    with db.session() as s:
        return tuple(_finding(r) for r in s.execute(q))


def stored_as(
    db: Database, fingerprints: Iterable[str], stores: Iterable[str]
) -> tuple[str, str] | None:
    """(secret, store) of a secret in one of ``stores`` whose current version has a field
    with one of ``fingerprints``: the value is kept there already."""
    wanted = set(stores)
    with db.session() as s:
        found = fields_by_fingerprint(s, fingerprints, current_only=True)
    for matches in found.values():
        for match in matches:
            if match.store in wanted:
                return match.secret, match.store or ""
    return None


def secret_name_taken(db: Database, name: str) -> bool:
    with db.session() as s:
        return s.scalar(sa.select(m.Secret.id).where(m.Secret.name == name)) is not None


@dataclass(frozen=True, slots=True)
class AdoptedDependent:
    """A variable of a Lambda function that holds a field of the adopted secret (value mode),
    or the variable naming the secret that the function loads itself (reference mode)."""

    target: str  # function ARN
    variable: str
    region: str | None
    account: str | None  # None: the secret's account
    field: str | None  # value mode: the secret field it holds
    reference: bool = False

    def attributes(self) -> dict[str, Any]:
        if self.reference:
            return {"mode": "reference"}
        return {"field": self.field}


@dataclass(frozen=True, slots=True)
class Adoption:
    """What to record for an adopted secret (no value: fingerprints and identifiers)."""

    name: str
    kind: str
    store: str
    reference: str
    account: str | None
    version: str  # the store's version id of the adopted value
    fingerprint: str  # keyed fingerprint of the whole value (as rotation records versions)
    fields: Mapping[str, str]  # field -> keyed fingerprint
    finding_id: int
    owner: str | None = None
    team: str | None = None
    contact: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    dependents: tuple[AdoptedDependent, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)  # for the audit event
    identifier_fingerprint: str | None = None  # e.g. of the access key id
    # the fingerprints findings are linked by: the secret fields' (not a host's or a port's)
    secret_fingerprints: frozenset[str] = frozenset()


def _add_dependent(s: Session, secret: m.Secret, d: AdoptedDependent, now: datetime) -> None:
    s.add(
        m.Dependent(
            secret_id=secret.id,
            kind="aws-lambda",
            target=d.target,
            variable=d.variable,
            region=d.region,
            account=d.account,
            attributes=d.attributes(),
            origin=m.DependentOrigin.DISCOVERED,
            status=m.DependentStatus.ACTIVE,
            last_seen_at=now,
        )
    )


def record_adoption(db: Database, actor: str | None, a: Adoption) -> SecretRecord:
    """Record ``a`` in one transaction (see the module docstring); the audit event
    ``secret.adopted`` names the finding, the store, the reference and the dependents."""
    inv = Inventory(db, actor)
    now = m.utcnow()
    fps = sorted(a.secret_fingerprints or set(a.fields.values()))
    with db.session() as s:
        if s.scalar(sa.select(m.Secret.id).where(m.Secret.name == a.name)) is not None:
            raise AlreadyExists(
                f"A secret named {a.name!r} is already in the inventory",
                hint="Choose another --name",
            )
        leaked = s.scalar(
            sa.select(sa.func.min(m.Finding.first_seen_at)).where(
                sa.or_(m.Finding.fingerprint.in_(fps), m.Finding.companion_fingerprint.in_(fps))
            )
        )
        secret = m.Secret(
            name=a.name,
            kind=a.kind,
            store=a.store,
            reference=a.reference,
            account=a.account,
            owner=a.owner,
            team=a.team,
            contact=a.contact,
            tags=dict(a.tags),
            attributes={"adopted_from_finding": a.finding_id},
            description="adopted by keyward from a hardcoded value",
            source="adopt",
            created_at=now,
        )
        apply_policy(secret)
        s.add(secret)
        s.flush()
        version = m.SecretVersion(
            secret_id=secret.id,
            fingerprint=a.fingerprint,
            identifier=a.version,
            identifier_fingerprint=a.identifier_fingerprint,
            stage="current",
            created_at=now,
            leaked_at=leaked or now,
        )
        s.add(version)
        s.flush()
        record_fields(s, secret.id, version.id, a.fields)
        for d in a.dependents:
            _add_dependent(s, secret, d, now)
        linked = s.execute(
            sa.update(m.Finding)
            .where(
                sa.or_(m.Finding.fingerprint.in_(fps), m.Finding.companion_fingerprint.in_(fps)),
                sa.or_(m.Finding.secret_id.is_(None), m.Finding.id == a.finding_id),
            )
            .values(
                secret_id=secret.id,
                version_id=version.id,
                owner=sa.func.coalesce(sa.literal(a.owner, sa.String), m.Finding.code_owner),
            )
        )
        detail = {
            "finding": a.finding_id,
            "store": a.store,
            "reference": a.reference,
            "version": a.version,
            "kind": a.kind,
            "fields": sorted(a.fields),
            "dependents": [f"{d.target} {d.variable}" for d in a.dependents],
            "findings_linked": int(getattr(linked, "rowcount", 0) or 0),
            **dict(a.detail),
        }
        inv.append_audit(s, inv.actor, "secret.adopted", a.name, secret_id=secret.id, detail=detail)
        s.flush()
        return secret_record(secret)


def switch_to_reference(
    db: Database, actor: str | None, secret_name: str, reference: AdoptedDependent
) -> None:
    """The function ``reference.target`` now loads the secret itself: its value-mode
    dependents rows of the secret become one reference-mode row (``reference.variable``)."""
    inv = Inventory(db, actor)
    now = m.utcnow()
    with db.session() as s:
        secret = s.scalar(sa.select(m.Secret).where(m.Secret.name == secret_name))
        if secret is None:
            raise NotFound(f"No secret named {secret_name!r} in the inventory")
        removed = [
            str(v)
            for v in s.scalars(
                sa.delete(m.Dependent)
                .where(
                    m.Dependent.secret_id == secret.id,
                    m.Dependent.kind == "aws-lambda",
                    m.Dependent.target == reference.target,
                )
                .returning(m.Dependent.variable)
            )
        ]
        _add_dependent(s, secret, reference, now)
        inv.append_audit(
            s,
            inv.actor,
            "dependent.reference",
            secret.name,
            secret_id=secret.id,
            detail={
                "target": reference.target,
                "variable": reference.variable,
                "replaced": sorted(removed),
            },
        )
