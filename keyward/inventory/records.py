"""Frozen records the inventory hands out (ORM rows never leave ``keyward.inventory``).

:func:`record_of` is the one mapper from a row to a record: each field is read from the
row's attribute of the same name.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar, cast

R = TypeVar("R")


_FIELDS: dict[type[Any], tuple[tuple[str, bool], ...]] = {}


def _fields_of(cls: type[Any]) -> tuple[tuple[str, bool], ...]:
    """(name, is a JSON document) of each field of the dataclass ``cls`` (remembered)."""
    known = _FIELDS.get(cls)
    if known is None:
        found: tuple[Field[Any], ...] = fields(cls)
        known = _FIELDS[cls] = tuple((f.name, str(f.type).startswith("dict[")) for f in found)
    return known


def record_of(cls: type[R], row: object, **given: Any) -> R:
    """The record ``cls`` (a frozen dataclass) of an ORM row, or of a result row whose
    columns are labelled with the field names. ``given`` fields are not read from the row;
    enums become their values, JSON documents a copy (an empty one for NULL)."""
    values: dict[str, Any] = {}
    for name, document in _fields_of(cast(type[Any], cls)):
        if name in given:
            values[name] = given[name]
            continue
        value = getattr(row, name)
        if isinstance(value, Enum):
            value = value.value
        elif document:
            value = dict(value or {})
        values[name] = value
    return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, _AsDict):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _AsDict:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SecretRecord(_AsDict):
    id: int
    name: str
    kind: str
    store: str | None
    reference: str | None
    account: str | None  # AWS account id; None: keyward's own
    owner: str | None
    team: str | None
    contact: str | None
    tags: dict[str, Any]
    attributes: dict[str, Any]
    description: str | None
    status: str
    source: str
    created_at: datetime
    last_rotated_at: datetime | None
    last_used_at: datetime | None
    max_age_seconds: int | None
    schedule: str | None
    rotation_due_at: datetime | None
    updated_at: datetime
    # its own leak policy (rotate, alert, ignore); None: the configured default
    on_leak: str | None = None

    def age_seconds(self, now: datetime) -> int:
        return max(0, int((now - (self.last_rotated_at or self.created_at)).total_seconds()))

    def overdue(self, now: datetime) -> bool:
        return self.rotation_due_at is not None and self.rotation_due_at < now


@dataclass(frozen=True, slots=True)
class VersionRecord(_AsDict):
    id: int
    secret_id: int
    fingerprint: str | None
    identifier: str | None
    stage: str | None
    created_at: datetime
    retired_at: datetime | None
    # field -> keyed fingerprint (``secret_fields``): what dependents and findings match
    fields: dict[str, str] = field(default_factory=dict)
    leaked_at: datetime | None = None  # when a finding first matched it


@dataclass(frozen=True, slots=True)
class DependentRecord(_AsDict):
    id: int
    secret: str
    kind: str
    target: str
    variable: str | None
    region: str | None
    created_at: datetime
    account: str | None = None  # None: the secret's account
    # what rotation reads: ``field`` (the secret field the variable holds), ``mode``
    # ("reference"), ``alias``; discovery adds the function's ``environment`` tag
    attributes: dict[str, Any] = field(default_factory=dict)
    origin: str = "manual"  # manual (`dependents add`) | discovered
    status: str = "active"  # active | missing (discovery no longer sees it: never rotated)
    last_seen_at: datetime | None = None  # when discovery last saw it


@dataclass(frozen=True, slots=True)
class FindingRecord(_AsDict):
    id: int
    target: str
    rule_id: str
    severity: str
    confidence: str
    source: str
    path: str | None
    line: int
    commit: str | None
    variable: str | None
    resource: str | None
    region: str | None
    preview: str
    fingerprint: str
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    state: str
    state_reason: str | None
    secret: str | None
    owner: str | None
    code_owner: str | None
    author: str | None
    account: str | None = None
    version_id: int | None = None  # the secret version its value is
    remediated_at: datetime | None = None  # its value revoked by rotation ...
    remediated_rotation_id: int | None = None

    def where(self) -> str:
        parts: list[str] = []
        if self.resource:
            parts.append(self.resource)
        if self.path:
            parts.append(f"{self.path}:{self.line}" if self.line else self.path)
        if self.variable:
            parts.append(f"${self.variable}")
        if self.commit:
            parts.append(f"@{self.commit[:12]}")
        return " ".join(parts) or self.source


@dataclass(frozen=True, slots=True)
class AuditRecord(_AsDict):
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    outcome: str
    secret_id: int | None
    rotation_id: int | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BreachRecord(_AsDict):
    """One posture breach a secret has (``keyward.inventory.posture``): since when, and why
    (other secrets, functions, environments, dates; never a value)."""

    breach: str
    since: datetime
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SecretDetail(_AsDict):
    secret: SecretRecord
    versions: tuple[VersionRecord, ...]
    dependents: tuple[DependentRecord, ...]
    open_findings: int
    findings: tuple[FindingRecord, ...]
    audit: tuple[AuditRecord, ...]
    breaches: tuple[BreachRecord, ...] = ()  # in Breach order
