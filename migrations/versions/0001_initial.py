"""Initial inventory schema, including the tables the rotation engine uses.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Everything keyward needs at first release is in this one revision (secrets, versions,
dependents, findings, audit events, rotations, rotation steps, leases), so later features
add migrations on top instead of racing each other for "0002".

Why each index exists (1,000,000 findings and 100,000 secrets is the design point; see
docs/benchmarks.md):

secrets
  uq_secrets_name                       `inventory show NAME`, names are unique.
  uq_secrets_store_reference            discovery upserts by (store, reference): idempotent.
  ix_secrets_owner, ix_secrets_team     `inventory list --owner/--team`, report GROUP BY.
  ix_secrets_rotation_due_at            overdue = `rotation_due_at < now`: a range scan, and
                                        the scheduler's "what is due next" query.
secret_versions
  ix_secret_versions_secret_id          a secret's versions (and the FK's ON DELETE CASCADE).
  ix_secret_versions_fingerprint        linking: does a finding's fingerprint match a version?
  ix_secret_versions_identifier_fingerprint  same, for access key ids.
dependents
  ix_dependents_secret_id               a secret's dependents (every rotation reads them).
findings
  uq_findings_identity                  the upsert key of `scan --record` (ON CONFLICT).
  ix_findings_state_owner               `findings list --state open --owner X` and the
                                        report's open findings per owner (covering index).
  ix_findings_target_state_last_seen_at resolving after a full scan: open findings of the
                                        target not seen since the scan started.
  ix_findings_fingerprint, ix_findings_companion_fingerprint (partial: NOT NULL)
                                        a newly inventoried version links to its leaks.
  ix_findings_secret_id (partial: NOT NULL)
                                        a secret's findings; owner changes; ON DELETE SET NULL.
                                        Partial because most findings are unlinked and have
                                        no paired value: NULL entries cost bulk recording
                                        about a third of its time and are never looked up.
audit_events
  ix_audit_events_at                    newest first / time ranges.
  ix_audit_events_secret_id             a secret's history.
rotations
  uq_rotations_in_flight (partial, unique)  at most one unfinished rotation per secret,
                                        enforced by the database on SQLite and PostgreSQL.
  ix_rotations_secret_id                a secret's rotation history.
  ix_rotations_state_updated_at         unfinished / stale rotations for resume.
rotation_steps
  ix_rotation_steps_rotation_id         a rotation's steps.
leases
  ix_leases_expires_at                  expired leases to take over.
  ix_leases_secret_id                   the FK's ON DELETE CASCADE.

audit_events is append-only: triggers refuse UPDATE and DELETE (SQLite and PostgreSQL) and
TRUNCATE (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types: a migration must not change when the models do.
TS = sa.DateTime(timezone=True)
IN_FLIGHT = "state NOT IN ('finished', 'rolled_back', 'failed')"

APPEND_ONLY_MESSAGE = "audit_events is append-only"


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=1024), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("secret_id", sa.Integer(), nullable=True),
        sa.Column("rotation_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"], unique=False)
    op.create_index(op.f("ix_audit_events_secret_id"), "audit_events", ["secret_id"], unique=False)

    op.create_table(
        "keyward_schema",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_keyward_schema")),
    )
    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=True),
        sa.Column("reference", sa.String(length=1024), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("team", sa.String(length=255), nullable=True),
        sa.Column("contact", sa.String(length=255), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_rotated_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("max_age_seconds", sa.Integer(), nullable=True),
        sa.Column("schedule", sa.String(length=128), nullable=True),
        sa.Column("rotation_due_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'inactive', 'retired', 'missing')", name=op.f("ck_secrets_status")
        ),
        sa.CheckConstraint(
            "max_age_seconds IS NULL OR max_age_seconds > 0", name=op.f("ck_secrets_max_age")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("name", name=op.f("uq_secrets_name")),
        sa.UniqueConstraint("store", "reference", name=op.f("uq_secrets_store_reference")),
    )
    op.create_index(op.f("ix_secrets_owner"), "secrets", ["owner"], unique=False)
    op.create_index(
        op.f("ix_secrets_rotation_due_at"), "secrets", ["rotation_due_at"], unique=False
    )
    op.create_index(op.f("ix_secrets_team"), "secrets", ["team"], unique=False)

    op.create_table(
        "dependents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=1024), nullable=False),
        sa.Column("variable", sa.String(length=255), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_dependents_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dependents")),
        sa.UniqueConstraint(
            "secret_id",
            "kind",
            "target",
            "variable",
            name=op.f("uq_dependents_secret_id_kind_target_variable"),
        ),
    )
    op.create_index(op.f("ix_dependents_secret_id"), "dependents", ["secret_id"], unique=False)

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identity", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=1024), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=2048), nullable=True),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("column", sa.Integer(), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("author", sa.String(length=255), nullable=True),
        sa.Column("variable", sa.String(length=255), nullable=True),
        sa.Column("resource", sa.String(length=1024), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("preview", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("companion_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.String(length=512), nullable=True),
        sa.Column("secret_id", sa.Integer(), nullable=True),
        sa.Column("code_owner", sa.String(length=255), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'ignored', 'resolved')", name=op.f("ck_findings_state")
        ),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_findings_secret_id_secrets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
        sa.UniqueConstraint("identity", name=op.f("uq_findings_identity")),
    )
    op.create_index(op.f("ix_findings_fingerprint"), "findings", ["fingerprint"], unique=False)
    # Mostly NULL: partial, so recording does not pay for an index entry per unlinked row.
    for column in ("companion_fingerprint", "secret_id"):
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_findings_{column}",
            "findings",
            [column],
            unique=False,
            sqlite_where=where,
            postgresql_where=where,
        )
    op.create_index("ix_findings_state_owner", "findings", ["state", "owner"], unique=False)
    op.create_index(
        "ix_findings_target_state_last_seen_at",
        "findings",
        ["target", "state", "last_seen_at"],
        unique=False,
    )

    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("secret_id", sa.Integer(), nullable=True),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_leases_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_index(op.f("ix_leases_expires_at"), "leases", ["expires_at"], unique=False)
    op.create_index(op.f("ix_leases_secret_id"), "leases", ["secret_id"], unique=False)

    op.create_table(
        "secret_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("identifier", sa.String(length=255), nullable=True),
        sa.Column("identifier_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("retired_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_secret_versions_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_versions")),
        sa.UniqueConstraint(
            "secret_id", "identifier", name=op.f("uq_secret_versions_secret_id_identifier")
        ),
    )
    op.create_index(
        op.f("ix_secret_versions_fingerprint"), "secret_versions", ["fingerprint"], unique=False
    )
    op.create_index(
        op.f("ix_secret_versions_identifier_fingerprint"),
        "secret_versions",
        ["identifier_fingerprint"],
        unique=False,
    )
    op.create_index(
        op.f("ix_secret_versions_secret_id"), "secret_versions", ["secret_id"], unique=False
    )

    op.create_table(
        "rotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("old_version_id", sa.Integer(), nullable=True),
        sa.Column("new_version_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["new_version_id"],
            ["secret_versions.id"],
            name=op.f("fk_rotations_new_version_id_secret_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["old_version_id"],
            ["secret_versions.id"],
            name=op.f("fk_rotations_old_version_id_secret_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_rotations_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rotations")),
    )
    op.create_index(op.f("ix_rotations_secret_id"), "rotations", ["secret_id"], unique=False)
    op.create_index(
        "ix_rotations_state_updated_at", "rotations", ["state", "updated_at"], unique=False
    )
    op.create_index(
        "uq_rotations_in_flight",
        "rotations",
        ["secret_id"],
        unique=True,
        sqlite_where=sa.text(IN_FLIGHT),
        postgresql_where=sa.text(IN_FLIGHT),
    )

    op.create_table(
        "rotation_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rotation_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rotation_id"],
            ["rotations.id"],
            name=op.f("fk_rotation_steps_rotation_id_rotations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rotation_steps")),
    )
    op.create_index(
        op.f("ix_rotation_steps_rotation_id"), "rotation_steps", ["rotation_id"], unique=False
    )
    _append_only_audit()


def _append_only_audit() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION keyward_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION keyward_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION keyward_audit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} ON audit_events "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )


def downgrade() -> None:
    # Dropping a table drops its indexes and triggers.
    for table in (
        "rotation_steps",
        "rotations",
        "leases",
        "secret_versions",
        "findings",
        "dependents",
        "secrets",
        "keyward_schema",
        "audit_events",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS keyward_audit_append_only()")
