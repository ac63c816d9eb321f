"""Close the loop: per-field fingerprints, leaks, remediated findings, discovered dependents,
posture breaches.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

* ``secret_fields``: the keyed fingerprint of each field of a version (an AWS key pair's two
  halves, a database password), so a value in a function's environment or a scan links to the
  secret *and* field it is. Rows written before this revision have none; rotation and
  ``discover --fingerprint-values`` add them.
* ``secret_versions.leaked_at``: when a finding first matched the version (a leak).
* ``secrets.on_leak``: rotate / alert / ignore (NULL: the configured default).
* ``dependents.origin`` (manual / discovered), ``status`` (active / missing),
  ``last_seen_at``: discovery keeps what was typed by hand and never drops, only marks, what
  it no longer sees. Existing rows were typed by hand: ``manual``.
* ``findings``: state ``remediated`` (with ``remediated_at`` and the rotation's id) and the
  ``version_id`` it matched.
* ``secret_breaches``: each secret's posture breaches, recomputed by the posture pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FINDING_STATES_OLD = "state IN ('open', 'ignored', 'resolved')"
_FINDING_STATES = "state IN ('open', 'ignored', 'resolved', 'remediated')"
_BREACHES = (
    "breach IN ('leaked', 'reused', 'duplicated', 'long-lived', 'no-owner', 'no-policy', "
    "'unused', 'cross-environment')"
)


def upgrade() -> None:
    op.create_table(
        "secret_fields",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_secret_fields_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["secret_versions.id"],
            name=op.f("fk_secret_fields_version_id_secret_versions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_fields")),
        sa.UniqueConstraint("version_id", "field", name=op.f("uq_secret_fields_version_id_field")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_secret_fields_fingerprint"), "secret_fields", ["fingerprint"], unique=False
    )
    op.create_index(
        op.f("ix_secret_fields_secret_id"), "secret_fields", ["secret_id"], unique=False
    )
    op.create_table(
        "secret_breaches",
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("breach", sa.String(length=32), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.CheckConstraint(_BREACHES, name=op.f("ck_secret_breaches_breach")),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_secret_breaches_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", "breach", name=op.f("pk_secret_breaches")),
    )  # fmt: skip
    op.create_index(op.f("ix_secret_breaches_breach"), "secret_breaches", ["breach"], unique=False)
    with op.batch_alter_table("secret_versions") as batch:
        batch.add_column(sa.Column("leaked_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(
            "ix_secret_versions_leaked_at",
            ["leaked_at"],
            unique=False,
            sqlite_where=sa.text("leaked_at IS NOT NULL"),
            postgresql_where=sa.text("leaked_at IS NOT NULL"),
        )
    # No CHECK on secrets.on_leak: SQLite can add one only by rebuilding the table, and
    # dropping the old `secrets` table would cascade-delete every version, dependent and
    # rotation. The column's type (StrEnumType) refuses a bad value in Python.
    with op.batch_alter_table("secrets") as batch:
        batch.add_column(sa.Column("on_leak", sa.String(length=16), nullable=True))
    with op.batch_alter_table("dependents") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(length=16), server_default="manual", nullable=False)
        )
        batch.add_column(
            sa.Column("status", sa.String(length=16), server_default="active", nullable=False)
        )
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint("origin", "origin IN ('manual', 'discovered')")
        batch.create_check_constraint("status", "status IN ('active', 'missing')")
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("version_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("remediated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("remediated_rotation_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_findings_version_id_secret_versions"),
            "secret_versions",
            ["version_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.drop_constraint(op.f("ck_findings_state"), type_="check")
        batch.create_check_constraint("state", _FINDING_STATES)


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text("UPDATE findings SET state = 'resolved' WHERE state = 'remediated'"))
    with op.batch_alter_table("findings") as batch:
        batch.drop_constraint(op.f("ck_findings_state"), type_="check")
        batch.create_check_constraint("state", _FINDING_STATES_OLD)
        batch.drop_constraint(op.f("fk_findings_version_id_secret_versions"), type_="foreignkey")
        batch.drop_column("remediated_rotation_id")
        batch.drop_column("remediated_at")
        batch.drop_column("version_id")
    with op.batch_alter_table("dependents") as batch:
        batch.drop_constraint(op.f("ck_dependents_status"), type_="check")
        batch.drop_constraint(op.f("ck_dependents_origin"), type_="check")
        batch.drop_column("last_seen_at")
        batch.drop_column("status")
        batch.drop_column("origin")
    with op.batch_alter_table("secrets") as batch:
        batch.drop_column("on_leak")
    with op.batch_alter_table("secret_versions") as batch:
        batch.drop_index("ix_secret_versions_leaked_at")
        batch.drop_column("leaked_at")
    op.drop_table("secret_breaches")
    op.drop_table("secret_fields")
