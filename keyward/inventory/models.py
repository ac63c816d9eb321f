"""The inventory schema: SQLAlchemy 2 typed models.

Conventions:

* Every timestamp is UTC and timezone-aware in Python (:class:`UTCDateTime`), whatever the
  database stores (SQLite has no time zones: it stores naive UTC text, which sorts correctly).
* Enumerated columns store the enum's string value (:class:`StrEnumType`) and are guarded by
  a named CHECK constraint, so a bad value is refused by the database, not only by Python.
* No column ever holds a raw secret value: values are remembered as keyed HMAC-SHA256
  fingerprints (``keyward.core.redaction.Fingerprinter``) and displayed as redacted previews.
* The migration in ``migrations/versions`` must equal these models (a test runs Alembic's
  autogenerate comparison), so any change here needs a new migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from keyward.rotation.ports import in_flight_sql

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    Values are converted to UTC on the way in; on SQLite they are stored naive (UTC) so that
    text comparison orders them correctly, and made aware again on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class StrEnumType(sa.types.TypeDecorator[Any]):
    """Stores a :class:`StrEnum` member as its value in a VARCHAR."""

    impl = sa.String(16)
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int = 16) -> None:
        super().__init__()
        self.impl = sa.String(length)  # the class-level impl would ignore the length
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return self.enum(value)


def _check_in(column: str, enum: type[StrEnum]) -> str:
    values = ", ".join(f"'{m.value}'" for m in enum)
    return f"{column} IN ({values})"


class SecretStatus(StrEnum):
    ACTIVE = "active"  # in use
    INACTIVE = "inactive"  # exists but disabled (e.g. an IAM key marked Inactive)
    RETIRED = "retired"  # kept for history, no longer used
    MISSING = "missing"  # discovery no longer finds it in its store


class FindingState(StrEnum):
    OPEN = "open"
    IGNORED = "ignored"
    RESOLVED = "resolved"  # a later full scan of its target no longer found it
    # the leaked version was revoked by a rotation (remediated_rotation_id, remediated_at);
    # finding the old value again later reopens nothing
    REMEDIATED = "remediated"


class OnLeak(StrEnum):
    """What a leak of a secret's current version sets off (``on_leak``)."""

    ROTATE = "rotate"  # due at once, ahead of age-based work; the leaked value revoked at once
    ALERT = "alert"  # webhook and audit event only
    IGNORE = "ignore"


class DependentOrigin(StrEnum):
    MANUAL = "manual"  # `dependents add`: kept by discovery, never marked missing by it
    DISCOVERED = "discovered"  # found by `discover aws-lambda` / `scan --aws-lambda --record`


class DependentStatus(StrEnum):
    ACTIVE = "active"
    # discovery no longer finds the function or the variable: never rotated into, kept
    MISSING = "missing"


class Breach(StrEnum):
    """What a security team looks for in each secret (the posture of the inventory)."""

    LEAKED = "leaked"  # a current version was found in code, history, env or config
    REUSED = "reused"  # the same value serves two secrets or unrelated functions
    DUPLICATED = "duplicated"  # the same value in two stores or two paths
    LONG_LIVED = "long-lived"  # older than its policy, or than a year without one
    NO_OWNER = "no-owner"
    NO_POLICY = "no-policy"  # neither a maximum age nor a schedule
    UNUSED = "unused"  # not used for a long time, where the store says
    CROSS_ENVIRONMENT = "cross-environment"  # one value in functions of different environments


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}  # noqa: RUF012


class Secret(Base):
    """A credential keyward knows about, wherever it lives."""

    __tablename__ = "secrets"
    __table_args__ = (
        # Discovery is idempotent by (store, reference): the same Secrets Manager ARN, Vault
        # path or IAM key id is updated, never inserted twice. NULLs (manual entries without a
        # store) are distinct, so they do not collide.
        sa.UniqueConstraint("store", "reference"),
        sa.CheckConstraint(_check_in("status", SecretStatus), name="status"),
        sa.CheckConstraint("max_age_seconds IS NULL OR max_age_seconds > 0", name="max_age"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    store: Mapped[str | None] = mapped_column(sa.String(64))
    reference: Mapped[str | None] = mapped_column(sa.String(1024))
    # The AWS account it lives in (12 digits; from its ARN when discovered): rotation acts
    # there, with the role of [aws.accounts] for that id. NULL: keyward's own account.
    # Indexed: `inventory list --account`.
    account: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    # Who answers for it. Indexed: the report groups by owner and team, and `inventory list
    # --owner` filters on it.
    owner: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    team: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    contact: Mapped[str | None] = mapped_column(sa.String(255))
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Store-specific facts (rotation settings, IAM key status...), never a value.
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[SecretStatus] = mapped_column(
        StrEnumType(SecretStatus), default=SecretStatus.ACTIVE
    )
    source: Mapped[str] = mapped_column(sa.String(64), default="manual")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_rotated_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # Policy: a maximum age and/or a cron schedule ("0 3 * * 1").
    max_age_seconds: Mapped[int | None]
    schedule: Mapped[str | None] = mapped_column(sa.String(128))
    # When the policy next requires a rotation, recomputed from the policy and the last
    # rotation whenever either changes (see keyward.inventory.policy). Indexed: "overdue" is
    # `rotation_due_at < now`, a range scan instead of date arithmetic over every row.
    rotation_due_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Per-secret leak policy; NULL: the configured default (rotate when the secret has a
    # rotator, else alert). No CHECK constraint (see migration 0004); the type refuses others.
    on_leak: Mapped[OnLeak | None] = mapped_column(StrEnumType(OnLeak))

    versions: Mapped[list[SecretVersion]] = relationship(
        back_populates="secret", cascade="all, delete-orphan", passive_deletes=True
    )
    dependents: Mapped[list[Dependent]] = relationship(
        back_populates="secret", cascade="all, delete-orphan", passive_deletes=True
    )


class SecretVersion(Base):
    """One value a secret has had, remembered by keyed fingerprint only."""

    __tablename__ = "secret_versions"
    __table_args__ = (
        sa.UniqueConstraint("secret_id", "identifier"),
        sa.Index(
            "ix_secret_versions_leaked_at",
            "leaked_at",
            sqlite_where=sa.text("leaked_at IS NOT NULL"),
            postgresql_where=sa.text("leaked_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_id: Mapped[int] = mapped_column(
        sa.ForeignKey("secrets.id", ondelete="CASCADE"), index=True
    )
    # HMAC-SHA256 of the value. Indexed: linking a finding looks its fingerprint up here.
    fingerprint: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # A public identifier of this version (AWS access key id, Secrets Manager VersionId,
    # Vault KV version number) and its fingerprint, so a leaked access key id found by a
    # scan links to the inventoried key. Indexed for the same lookup.
    identifier: Mapped[str | None] = mapped_column(sa.String(255))
    identifier_fingerprint: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    stage: Mapped[str | None] = mapped_column(sa.String(32))  # current, pending, previous...
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]

    # When a finding first matched this version's value (a leak). A leak of the *current*
    # version makes the secret leaked (its on_leak policy applies); of an older one, history.
    # Indexed (partial): the daemon looks for leaked current versions every tick.
    leaked_at: Mapped[datetime | None]

    secret: Mapped[Secret] = relationship(back_populates="versions")
    fields: Mapped[list[SecretField]] = relationship(
        back_populates="version", cascade="all, delete-orphan", passive_deletes=True
    )


class SecretField(Base):
    """The keyed fingerprint of one field of a version (``access_key_id``,
    ``secret_access_key``, ``password``; ``value`` for a plain string), so a value found in
    a function's environment or a scan links back to the secret and field it came from."""

    __tablename__ = "secret_fields"
    __table_args__ = (sa.UniqueConstraint("version_id", "field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("secret_versions.id", ondelete="CASCADE"))
    # Denormalised from the version: fingerprint lookups answer (secret, field) in one index.
    secret_id: Mapped[int] = mapped_column(
        sa.ForeignKey("secrets.id", ondelete="CASCADE"), index=True
    )
    field: Mapped[str] = mapped_column(sa.String(255))
    # Indexed: dependents discovery, finding links and posture look values up by it.
    fingerprint: Mapped[str] = mapped_column(sa.String(64), index=True)

    version: Mapped[SecretVersion] = relationship(back_populates="fields")


class Dependent(Base):
    """Something that holds a secret and must be updated when it rotates."""

    __tablename__ = "dependents"
    __table_args__ = (
        sa.UniqueConstraint("secret_id", "kind", "target", "variable"),
        sa.CheckConstraint(_check_in("origin", DependentOrigin), name="origin"),
        sa.CheckConstraint(_check_in("status", DependentStatus), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_id: Mapped[int] = mapped_column(
        sa.ForeignKey("secrets.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(64))  # a keyward.dependents plugin: aws-lambda
    target: Mapped[str] = mapped_column(sa.String(1024))  # e.g. Lambda function ARN
    variable: Mapped[str | None] = mapped_column(sa.String(255))
    region: Mapped[str | None] = mapped_column(sa.String(64))
    # The AWS account of the target (from its ARN); NULL: the secret's account.
    account: Mapped[str | None] = mapped_column(sa.String(32))
    # field, mode ("reference"; default value), alias: how the target depends on the secret
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    origin: Mapped[DependentOrigin] = mapped_column(
        StrEnumType(DependentOrigin), default=DependentOrigin.MANUAL, server_default="manual"
    )
    status: Mapped[DependentStatus] = mapped_column(
        StrEnumType(DependentStatus), default=DependentStatus.ACTIVE, server_default="active"
    )
    # when discovery last saw the target hold it (NULL: never, e.g. added by hand)
    last_seen_at: Mapped[datetime | None]

    secret: Mapped[Secret] = relationship(back_populates="dependents")


class Finding(Base):
    """A secret a scan found, tracked across scans of the same target."""

    __tablename__ = "findings"
    __table_args__ = (
        sa.CheckConstraint(_check_in("state", FindingState), name="state"),
        # the scan's Confidence values (keyward.scan.model)
        sa.CheckConstraint("confidence IN ('high', 'medium', 'low')", name="confidence"),
        # `findings list --state open --owner X` and the report's open findings per owner:
        # an equality prefix on both, and a covering index for the GROUP BY.
        sa.Index("ix_findings_state_owner", "state", "owner"),
        # After a full scan: open findings of this target not seen since it started become
        # resolved (`target = ? AND state = 'open' AND last_seen_at < ?`).
        sa.Index("ix_findings_target_state_last_seen_at", "target", "state", "last_seen_at"),
        # Mostly NULL columns: partial indexes hold only the rows that have a value, which
        # keeps bulk recording cheap (about a third of its time went into NULL entries).
        sa.Index(
            "ix_findings_companion_fingerprint",
            "companion_fingerprint",
            sqlite_where=sa.text("companion_fingerprint IS NOT NULL"),
            postgresql_where=sa.text("companion_fingerprint IS NOT NULL"),
        ),
        sa.Index(
            "ix_findings_secret_id",
            "secret_id",
            sqlite_where=sa.text("secret_id IS NOT NULL"),
            postgresql_where=sa.text("secret_id IS NOT NULL"),
        ),
        sa.Index(
            "ix_findings_account",
            "account",
            sqlite_where=sa.text("account IS NOT NULL"),
            postgresql_where=sa.text("account IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 over (target, rule, fingerprint, where). Unique: the upsert key of recording,
    # so a re-scan updates the same row (line numbers may move; identity does not).
    identity: Mapped[str] = mapped_column(sa.String(64), unique=True)
    target: Mapped[str] = mapped_column(sa.String(1024))
    rule_id: Mapped[str] = mapped_column(sa.String(128))
    severity: Mapped[str] = mapped_column(sa.String(16))
    # high / medium / low (keyward.scan.model.Confidence); a scan resolves only findings at or
    # above its --min-confidence
    confidence: Mapped[str] = mapped_column(
        sa.String(16), default="medium", server_default="medium"
    )
    source: Mapped[str] = mapped_column(sa.String(16))  # file, git, env, iac, lambda...
    path: Mapped[str | None] = mapped_column(sa.String(2048))
    line: Mapped[int] = mapped_column(default=0)
    column: Mapped[int] = mapped_column(default=0)
    commit: Mapped[str | None] = mapped_column(sa.String(64))
    author: Mapped[str | None] = mapped_column(sa.String(255))
    variable: Mapped[str | None] = mapped_column(sa.String(255))
    resource: Mapped[str | None] = mapped_column(sa.String(1024))
    region: Mapped[str | None] = mapped_column(sa.String(64))
    account: Mapped[str | None] = mapped_column(sa.String(32))  # AWS account of a live resource
    preview: Mapped[str] = mapped_column(sa.String(64))  # redacted, never the value
    # HMAC-SHA256 of the value (and of a paired value, e.g. the secret key next to an access
    # key id). Indexed: a new secret version links to the findings that leaked it.
    fingerprint: Mapped[str] = mapped_column(sa.String(64), index=True)
    companion_fingerprint: Mapped[str | None] = mapped_column(sa.String(64))
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    state: Mapped[FindingState] = mapped_column(
        StrEnumType(FindingState), default=FindingState.OPEN
    )
    state_reason: Mapped[str | None] = mapped_column(sa.String(512))
    # Indexed: a secret's findings (show, owner changes) and the ON DELETE SET NULL.
    secret_id: Mapped[int | None] = mapped_column(sa.ForeignKey("secrets.id", ondelete="SET NULL"))
    code_owner: Mapped[str | None] = mapped_column(sa.String(255))  # CODEOWNERS or git blame
    # Effective owner: the linked secret's owner, else the code owner. Kept in step by the
    # service whenever either changes, so the owner filter needs no join.
    owner: Mapped[str | None] = mapped_column(sa.String(255))
    # The version of the linked secret whose value (or a field of it) this finding is.
    version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("secret_versions.id", ondelete="SET NULL")
    )
    # Remediated: the rotation that revoked the leaked version, and when (a plain id, like
    # the audit log's: history outlives the rotation row).
    remediated_at: Mapped[datetime | None]
    remediated_rotation_id: Mapped[int | None]


class SecretBreach(Base):
    """One posture breach a secret has now (computed by ``keyward.inventory.posture``)."""

    __tablename__ = "secret_breaches"
    __table_args__ = (sa.CheckConstraint(_check_in("breach", Breach), name="breach"),)

    secret_id: Mapped[int] = mapped_column(
        sa.ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True
    )
    # Part of the key; `inventory list --breach NAME` and the report group on it.
    breach: Mapped[Breach] = mapped_column(StrEnumType(Breach, 32), primary_key=True, index=True)
    since: Mapped[datetime] = mapped_column(default=utcnow)
    # what makes it a breach (the other secrets, functions, environments...), never a value
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuditEvent(Base):
    """Append-only history. Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).

    ``secret_id`` and ``rotation_id`` are plain columns, not foreign keys: removing a secret
    must not rewrite (or be blocked by) its history.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed: the audit log is read newest first and by time range.
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(sa.String(255))
    action: Mapped[str] = mapped_column(sa.String(64))
    subject: Mapped[str] = mapped_column(sa.String(1024))
    outcome: Mapped[str] = mapped_column(sa.String(16))  # ok, failed, denied...
    # Indexed: a secret's history (`inventory show`, rotation post-mortems).
    secret_id: Mapped[int | None] = mapped_column(index=True)
    rotation_id: Mapped[int | None]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Rotation(Base):
    """One run of the rotation state machine for one secret (written through
    :class:`keyward.inventory.rotations.RotationRepository`). ``state`` and ``step`` hold
    :class:`keyward.rotation.ports.RotationState` and ``Step`` values."""

    __tablename__ = "rotations"
    __table_args__ = (
        # At most one rotation in flight per secret, enforced by the database on SQLite and
        # PostgreSQL alike (both support partial indexes): a second `rotate` of the same
        # secret fails on insert, whatever the code above it does.
        sa.Index(
            "uq_rotations_in_flight",
            "secret_id",
            unique=True,
            sqlite_where=sa.text(in_flight_sql()),
            postgresql_where=sa.text(in_flight_sql()),
        ),
        # The scheduler and `rotations list` look for unfinished rotations by state.
        sa.Index("ix_rotations_state_updated_at", "state", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed: a secret's rotation history.
    secret_id: Mapped[int] = mapped_column(
        sa.ForeignKey("secrets.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(sa.String(32))
    step: Mapped[str | None] = mapped_column(sa.String(32))
    actor: Mapped[str] = mapped_column(sa.String(255))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    old_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("secret_versions.id", ondelete="SET NULL")
    )
    new_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("secret_versions.id", ondelete="SET NULL")
    )
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    steps: Mapped[list[RotationStep]] = relationship(
        back_populates="rotation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="RotationStep.id",
    )


class RotationStep(Base):
    __tablename__ = "rotation_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed: a rotation's steps are always read together.
    rotation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("rotations.id", ondelete="CASCADE"), index=True
    )
    step: Mapped[str] = mapped_column(sa.String(32))
    state: Mapped[str] = mapped_column(sa.String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    rotation: Mapped[Rotation] = relationship(back_populates="steps")


class Lease(Base):
    """A named, expiring claim (e.g. "rotate:<secret>") held by one worker at a time."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    secret_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("secrets.id", ondelete="CASCADE"), index=True
    )
    holder: Mapped[str] = mapped_column(sa.String(255))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Indexed: expired leases are found and taken over by range.
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SchemaInfo(Base):
    """Key/value facts about the schema, e.g. which keyward version last migrated it."""

    __tablename__ = "keyward_schema"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(255))
