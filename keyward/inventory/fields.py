"""Per-field fingerprints of secret versions (``secret_fields``): writing them, and the one
lookup from a value's keyed fingerprint to the secret, version and field it is.

A version's fields are the string fields of its value: each field of a JSON object / KV map
(``access_key_id``, ``secret_access_key``, ``password``...), ``value`` for a plain string.
Rotation writes them for every version it records, ``discover --fingerprint-values`` for the
current version of existing secrets, ``discover aws-iam`` the ``access_key_id`` of each key.

Not every field is a secret: a database secret's ``host``, ``port``, ``dbname``, ``engine``,
``username`` describe it (:mod:`keyward.core.secretfields` says which, and which values cannot
be a secret by their shape: those are not recorded at all). :func:`fields_by_fingerprint`
answers "which secret is this value?" from the fields that carry secret material, for
dependents discovery, finding links, adoption and posture alike; :func:`current_stage` says in
SQL which versions are current, whatever store wrote the stage (``current``, Secrets Manager's
``AWSCURRENT``, SSM's ``current,label``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.core.secretfields import secret_bearing, sql_secret_bearing
from keyward.inventory import models as m

# rows per IN (...) list: well under SQLite's and PostgreSQL's parameter limits
IN_CHUNK = 500
PLAIN_FIELD = "value"  # the one field of a plain string secret


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """A value's fingerprint is the field ``field`` of version ``version_id`` (``stage``,
    ``current`` when it is the secret's current version) of the secret ``secret``."""

    fingerprint: str
    secret_id: int
    secret: str
    version_id: int
    field: str
    stage: str | None
    current: bool
    kind: str
    store: str | None
    account: str | None
    owner: str | None


def current_stage(column: Any) -> Any:
    """SQL: the stage ``column`` of a version is its secret's current one (``current``,
    ``current,LABEL`` from SSM discovery, or any stage list naming ``AWSCURRENT``)."""
    return sa.or_(
        column == "current",
        column.startswith("current,", autoescape=True),
        column.contains("AWSCURRENT", autoescape=True),
    )


def is_current_stage(stage: str | None) -> bool:
    """:func:`current_stage` in Python."""
    if not stage:
        return False
    return stage == "current" or stage.startswith("current,") or "AWSCURRENT" in stage


def _chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def fields_by_fingerprint(
    session: Session,
    fingerprints: Iterable[str],
    *,
    current_only: bool = False,
    descriptive: bool = False,
) -> dict[str, tuple[FieldMatch, ...]]:
    """fingerprint -> every (secret, version, field, stage) whose field has it, newest version
    first; ``current_only``: only current versions. Only fields that carry secret material
    (:func:`keyward.core.secretfields.secret_bearing`) unless ``descriptive`` (then the caller
    binds by :func:`keyward.core.secretfields.binds`). Fingerprints nobody has are left out."""
    wanted = sorted({fp for fp in fingerprints if fp})
    found: dict[str, list[FieldMatch]] = {}
    f, v, s = m.SecretField, m.SecretVersion, m.Secret
    cols = (f.fingerprint, f.secret_id, s.name, f.version_id, f.field, v.stage, s.kind)
    base = (
        sa.select(*cols, s.store, s.account, s.owner)
        .join(v, v.id == f.version_id)
        .join(s, s.id == f.secret_id)
    )
    if current_only:
        base = base.where(current_stage(v.stage))
    if not descriptive:
        base = base.where(sql_secret_bearing(f.field))
    for chunk in _chunks(wanted):
        q = base.where(f.fingerprint.in_(list(chunk))).order_by(f.version_id.desc(), f.id)
        for fp, sid, name, vid, field, stage, kind, store, account, owner in session.execute(q):
            found.setdefault(fp, []).append(
                FieldMatch(
                    fingerprint=fp,
                    secret_id=int(sid),
                    secret=str(name),
                    version_id=int(vid),
                    field=str(field),
                    stage=stage,
                    current=is_current_stage(stage),
                    kind=str(kind),
                    store=store,
                    account=account,
                    owner=owner,
                )
            )
    return {k: tuple(v_) for k, v_ in found.items()}


def record_fields(
    session: Session, secret_id: int, version_id: int, fields: Mapping[str, str]
) -> list[str]:
    """Add the field fingerprints ``fields`` (field -> fingerprint) of a version, in
    ``session``'s transaction; a field the version has already keeps its row (a version's
    value never changes). Returns the fingerprints added of the fields that carry secret
    material: what findings link by (a finding of the host is no leak)."""
    if not fields:
        return []
    c = m.SecretField
    have = set(
        session.scalars(
            sa.select(c.field).where(c.version_id == version_id, c.field.in_(list(fields)))
        )
    )
    added = {name: fp for name, fp in sorted(fields.items()) if name not in have and fp}
    if added:
        session.execute(
            sa.insert(c),
            [
                {"version_id": version_id, "secret_id": secret_id, "field": k, "fingerprint": v}
                for k, v in added.items()
            ],
        )
    return [fp for name, fp in added.items() if secret_bearing(name)]


def version_fields(session: Session, version_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """version id -> {field: fingerprint} of those versions."""
    ids = sorted(set(version_ids))
    out: dict[int, dict[str, str]] = {}
    if not ids:
        return out
    c = m.SecretField
    for i in range(0, len(ids), IN_CHUNK):
        q = sa.select(c.version_id, c.field, c.fingerprint).where(
            c.version_id.in_(ids[i : i + IN_CHUNK])
        )
        for vid, name, fp in session.execute(q):
            out.setdefault(int(vid), {})[str(name)] = str(fp)
    return out
