"""Findings carry their confidence (high / medium / low).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Rows recorded before this revision get ``medium``: every finding was reported then, and
medium is the default threshold, so a later scan still resolves them when they are gone. A
scan resolves only findings at or above its own ``--min-confidence`` (it did not look for the
others), so ``scan --record --min-confidence low`` followed by a default scan leaves the low
ones open.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.add_column(
            sa.Column("confidence", sa.String(length=16), nullable=False, server_default="medium")
        )
        batch.create_check_constraint(
            op.f("ck_findings_confidence"), "confidence IN ('high', 'medium', 'low')"
        )


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_constraint(op.f("ck_findings_confidence"), type_="check")
        batch.drop_column("confidence")
