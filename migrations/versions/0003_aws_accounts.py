"""Secrets, dependents and findings carry the AWS account they belong to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

``account`` is the 12-digit AWS account id; rotation acts in the secret's account (with the
role ``[aws.accounts]`` names for it). Rows written before this revision get it from their
ARN where they have one (a Secrets Manager or SSM secret's reference, an IAM key's user ARN,
a Lambda finding's resource, a dependent's target); the others stay NULL, which means
keyward's own account, as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")


def _account(text: object) -> str | None:
    found = _ARN.match(text) if isinstance(text, str) else None
    return found.group(1) if found else None


def _backfill(table: str, column: str) -> None:
    """Set ``account`` from ``column`` (an ARN) in Python: one portable path for SQLite and
    PostgreSQL (no regex functions in SQLite)."""
    conn = op.get_bind()
    t = sa.table(table, sa.column("id"), sa.column(column), sa.column("account"))
    rows = conn.execute(sa.select(t.c.id, t.c[column]).where(t.c[column].like("arn:%"))).all()
    for rid, text in rows:
        account = _account(text)
        if account is not None:
            conn.execute(sa.update(t).where(t.c.id == rid).values(account=account))


def upgrade() -> None:
    with op.batch_alter_table("secrets") as batch:
        batch.add_column(sa.Column("account", sa.String(length=32), nullable=True))
        batch.create_index(op.f("ix_secrets_account"), ["account"], unique=False)
    with op.batch_alter_table("dependents") as batch:
        batch.add_column(sa.Column("account", sa.String(length=32), nullable=True))
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("account", sa.String(length=32), nullable=True))
        batch.create_index(
            "ix_findings_account",
            ["account"],
            unique=False,
            sqlite_where=sa.text("account IS NOT NULL"),
            postgresql_where=sa.text("account IS NOT NULL"),
        )
    _backfill("secrets", "reference")
    _backfill("dependents", "target")
    _backfill("findings", "resource")
    # IAM access keys: the reference is the key id; the user's ARN is in the attributes
    conn = op.get_bind()
    secrets = sa.table(
        "secrets", sa.column("id"), sa.column("store"), sa.column("attributes", sa.JSON),
        sa.column("account"),
    )  # fmt: skip
    rows = conn.execute(
        sa.select(secrets.c.id, secrets.c.attributes).where(
            secrets.c.store == "aws-iam", secrets.c.account.is_(None)
        )
    ).all()
    for rid, attributes in rows:
        account = _account((attributes or {}).get("user_arn"))
        if account is not None:
            conn.execute(sa.update(secrets).where(secrets.c.id == rid).values(account=account))


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_index("ix_findings_account")
        batch.drop_column("account")
    with op.batch_alter_table("dependents") as batch:
        batch.drop_column("account")
    with op.batch_alter_table("secrets") as batch:
        batch.drop_index(op.f("ix_secrets_account"))
        batch.drop_column("account")
