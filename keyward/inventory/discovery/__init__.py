"""Discovery: import secrets that already exist in a store, idempotently.

A provider module (``aws``, ``vault``) *reads* the store and yields :class:`Discovered`
values, collecting a warning for anything it was denied. :func:`import_discovered` then
writes the whole run in **one transaction**: either every readable item is imported or, if
the database fails, nothing is. Items the store refused are skipped with a warning (partial
results); secrets of this store that are no longer found are marked ``missing`` only when the
listing was complete (no warning), so a denied listing never marks healthy secrets missing.
An AWS discovery reads one account (``Scan.account``): only that account's secrets can go
missing by it.

Values are never stored. With ``fingerprint_values`` a provider reads the current value,
keeps only its keyed fingerprints (of the whole value, on the current version, and one per
field in ``secret_fields``: :func:`value_fingerprints`) and forgets it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.core.secretfields import can_be_secret, field_fingerprints
from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.fields import PLAIN_FIELD, record_fields
from keyward.inventory.leaks import LeakPolicy, link_versions
from keyward.inventory.service import (
    Inventory,
    apply_policy,
    default_actor,
    link_findings_to_secret,
    propagate_owner,
)

DEFAULT_OWNER_TAGS = ("owner", "keyward:owner")
DEFAULT_TEAM_TAGS = ("team", "keyward:team")
DEFAULT_CONTACT_TAGS = ("contact", "keyward:contact")
DEFAULT_KIND_TAGS = ("keyward:kind",)


@dataclass(frozen=True, slots=True)
class TagKeys:
    """Which tag (or Vault custom_metadata) keys name the owner, team, contact and kind."""

    owner: tuple[str, ...] = DEFAULT_OWNER_TAGS
    team: tuple[str, ...] = DEFAULT_TEAM_TAGS
    contact: tuple[str, ...] = DEFAULT_CONTACT_TAGS
    kind: tuple[str, ...] = DEFAULT_KIND_TAGS

    @staticmethod
    def _pick(tags: Mapping[str, str], keys: Sequence[str]) -> str | None:
        lowered = {k.lower(): v for k, v in tags.items()}
        for key in keys:
            value = lowered.get(key.lower())
            if value:
                return value
        return None

    def owner_of(self, tags: Mapping[str, str]) -> str | None:
        return self._pick(tags, self.owner)

    def team_of(self, tags: Mapping[str, str]) -> str | None:
        return self._pick(tags, self.team)

    def contact_of(self, tags: Mapping[str, str]) -> str | None:
        return self._pick(tags, self.contact)

    def kind_of(self, tags: Mapping[str, str]) -> str | None:
        return self._pick(tags, self.kind)


DEFAULT_TAG_KEYS = TagKeys()


@dataclass(frozen=True, slots=True)
class DiscoveredVersion:
    identifier: str
    stage: str | None = None
    created_at: datetime | None = None
    retired_at: datetime | None = None
    fingerprint: str | None = None
    identifier_fingerprint: str | None = None
    # field -> keyed fingerprint (``secret_fields``; see :func:`value_fingerprints`)
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Discovered:
    store: str
    reference: str
    name: str
    kind: str
    account: str | None = None  # the AWS account id it lives in
    owner: str | None = None
    team: str | None = None
    contact: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    last_rotated_at: datetime | None = None
    last_used_at: datetime | None = None
    status: m.SecretStatus = m.SecretStatus.ACTIVE
    max_age_seconds: int | None = None  # from the store's own rotation settings
    versions: tuple[DiscoveredVersion, ...] = ()


@dataclass(slots=True)
class Scan:
    """What a provider read: items, warnings, and whether the listing was complete."""

    store: str
    items: list[Discovered] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    scope: str | None = None  # only secrets whose reference starts with this may go missing
    complete: bool = True
    # the AWS account listed: only its secrets may go missing (None: those with no account)
    account: str | None = None

    def warn(self, message: str, *, incomplete: bool = True) -> None:
        self.warnings.append(message)
        if incomplete:
            self.complete = False


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    store: str
    added: int
    updated: int
    unchanged: int
    missing: int
    warnings: tuple[str, ...]
    names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "warnings": list(self.warnings),
            "secrets": list(self.names),
        }


_COMPARED = (
    "kind",
    "account",
    "owner",
    "team",
    "contact",
    "tags",
    "attributes",
    "created_at",
    "last_rotated_at",
    "last_used_at",
    "status",
    "max_age_seconds",
)


def _unique_name(session: Session, wanted: str) -> str:
    name = wanted[:240]
    n = 1
    while session.scalar(sa.select(m.Secret.id).where(m.Secret.name == name)) is not None:
        n += 1
        name = f"{wanted[:240]}~{n}"
    return name


def _upsert(
    session: Session, d: Discovered, source: str, policy: LeakPolicy | None = None
) -> tuple[m.Secret, str]:
    """Insert or update one discovered secret; returns (row, "added"|"updated"|"unchanged")."""
    secret = session.scalar(
        sa.select(m.Secret).where(m.Secret.store == d.store, m.Secret.reference == d.reference)
    )
    outcome = "unchanged"
    if secret is None:
        secret = m.Secret(
            name=_unique_name(session, d.name),
            kind=d.kind,
            store=d.store,
            reference=d.reference,
            tags={},
            attributes={},
            source=source,
            created_at=d.created_at or m.utcnow(),
        )
        session.add(secret)
        outcome = "added"
    before = {k: getattr(secret, k) for k in _COMPARED}
    # The store is the source of truth for what it knows; what it does not say (no owner
    # tag, no rotation rule) keeps whatever a person set in the inventory.
    secret.tags = dict(d.tags)
    secret.attributes = dict(d.attributes)
    secret.status = d.status
    if d.account is not None:
        secret.account = d.account
    for key in ("owner", "team", "contact", "created_at", "last_rotated_at", "last_used_at"):
        value = getattr(d, key)
        if value is not None:
            setattr(secret, key, value)
    if d.max_age_seconds and not (secret.max_age_seconds or secret.schedule):
        secret.max_age_seconds = d.max_age_seconds
    if outcome == "added" or d.kind != "generic":
        secret.kind = d.kind
    apply_policy(secret)
    session.flush()
    after = {k: getattr(secret, k) for k in _COMPARED}
    if outcome != "added" and after != before:
        outcome = "updated"
        if after["owner"] != before["owner"]:
            propagate_owner(session, secret.id, secret.owner)
    _sync_versions(session, secret, d.versions, policy)
    return secret, outcome


def _sync_versions(
    session: Session,
    secret: m.Secret,
    versions: Iterable[DiscoveredVersion],
    policy: LeakPolicy | None = None,
) -> None:
    existing = {
        v.identifier: v
        for v in session.scalars(
            sa.select(m.SecretVersion).where(m.SecretVersion.secret_id == secret.id)
        )
    }
    new_fps: list[str] = []
    with_fields: list[tuple[m.SecretVersion, Mapping[str, str]]] = []
    rows: list[tuple[m.SecretVersion, DiscoveredVersion]] = []
    for dv in versions:
        row = existing.get(dv.identifier)
        if row is None:
            row = m.SecretVersion(
                secret_id=secret.id,
                identifier=dv.identifier,
                created_at=dv.created_at or m.utcnow(),
            )
            session.add(row)
        row.stage = dv.stage
        row.retired_at = dv.retired_at
        if dv.fingerprint and row.fingerprint != dv.fingerprint:
            row.fingerprint = dv.fingerprint
            new_fps.append(dv.fingerprint)
        if dv.identifier_fingerprint and row.identifier_fingerprint != dv.identifier_fingerprint:
            row.identifier_fingerprint = dv.identifier_fingerprint
            new_fps.append(dv.identifier_fingerprint)
        if dv.fields:
            with_fields.append((row, dv.fields))
        rows.append((row, dv))
    session.flush()
    by_version: dict[int, list[str]] = {}
    for row, fields in with_fields:
        added = record_fields(session, secret.id, row.id, fields)
        new_fps.extend(added)
        by_version.setdefault(row.id, []).extend(added)
    for row, dv in rows:
        by_version.setdefault(row.id, []).extend(
            fp for fp in (dv.fingerprint, dv.identifier_fingerprint) if fp
        )
    link_findings_to_secret(session, secret, sorted(set(new_fps)))
    # findings recorded before these values were known: their version, and a leak if current
    fresh = set(new_fps)
    link_versions(
        session,
        secret.id,
        {vid: [fp for fp in fps if fp in fresh] for vid, fps in by_version.items()},
        default_actor(),
        policy,
    )


def import_discovered(
    db: Database, scan: Scan, *, actor: str | None = None, leak_policy: LeakPolicy | None = None
) -> DiscoveryResult:
    """Write one discovery run in one transaction (see the module docstring). A found value
    an earlier finding had marks a leak, audited with ``leak_policy`` (the command's rotatable
    plugins; None: the secret's own policy, else alert)."""
    inv = Inventory(db, actor)
    source = f"discover:{scan.store}"
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    names: list[str] = []
    missing = 0
    with db.session() as session:
        seen: set[str] = set()
        for d in scan.items:
            secret, outcome = _upsert(session, d, source, leak_policy)
            seen.add(d.reference)
            counts[outcome] += 1
            names.append(secret.name)
            if outcome != "unchanged":
                inv.append_audit(
                    session,
                    inv.actor,
                    f"secret.discover.{outcome}",
                    secret.name,
                    secret_id=secret.id,
                    detail={"store": d.store, "reference": d.reference},
                )
        if scan.complete:
            q = sa.select(m.Secret).where(
                m.Secret.store == scan.store,
                m.Secret.source == source,
                m.Secret.status != m.SecretStatus.MISSING,
                m.Secret.account == scan.account
                if scan.account is not None
                else m.Secret.account.is_(None),
            )
            for secret in session.scalars(q):
                ref = secret.reference or ""
                if ref in seen or (scan.scope and not ref.startswith(scan.scope)):
                    continue
                secret.status = m.SecretStatus.MISSING
                missing += 1
                inv.append_audit(
                    session, inv.actor, "secret.discover.missing", secret.name, secret_id=secret.id
                )
        inv.append_audit(
            session,
            inv.actor,
            f"discover.{scan.store}",
            scan.scope or scan.store,
            "ok" if not scan.warnings else "partial",
            detail={**counts, "missing": missing, "warnings": len(scan.warnings)},
        )
    return DiscoveryResult(
        scan.store,
        counts["added"],
        counts["updated"],
        counts["unchanged"],
        missing,
        tuple(scan.warnings),
        tuple(names),
    )


def value_fingerprints(
    value: str | Mapping[str, Any], fingerprint: Callable[[str], str]
) -> tuple[str | None, dict[str, str]]:
    """Keyed fingerprints of a value read from a store: of the whole value, and of each of
    its fields (``secret_fields``). A JSON object / KV map has a field per non-empty string
    item (:func:`keyward.core.secretfields.field_fingerprints`: not one that cannot be a secret
    by its shape), and its whole fingerprint is the one rotation records (sorted, compact JSON, when
    every item is a string); any other string is the one field ``value``. The value is not
    kept."""
    import json

    data: Any = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            plain = fingerprint(value)
            return plain, ({PLAIN_FIELD: plain} if can_be_secret(PLAIN_FIELD, value) else {})
    fields = field_fingerprints(data, fingerprint)
    whole: str | None
    if data and all(isinstance(v, str) for v in data.values()):
        whole = fingerprint(json.dumps(dict(data), sort_keys=True, separators=(",", ":")))
    elif isinstance(value, str):
        whole = fingerprint(value)
    else:
        whole = None
    return whole, fields
