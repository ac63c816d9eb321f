"""Leaks: a finding whose value is a secret's *current* version makes the secret leaked.

* :func:`mark_leaks` runs in ``scan --record``'s transaction, after the findings went in: the
  versions its open findings matched get ``leaked_at`` (the first time only: one
  ``UPDATE ... WHERE leaked_at IS NULL RETURNING``, so two recorders racing on the same leak
  report it once). A value in the environment of a Lambda function that a keyward rotation
  itself wrote it into (a version the rotation made, a function that is a dependent of its
  secret) is where keyward put it, not a leak: otherwise every rotation of a secret held by
  value would leak its new value to the next scan. A newly leaked *current* version is a
  :class:`Leak`: an audit event
  ``leak.detected`` (finding ids, where they are, the policy; never a value) and, from the
  command, a webhook. A matched older version is history: its ``leaked_at`` is set, nothing
  else happens.
* The secret's ``on_leak`` policy (:func:`effective_on_leak`): its own, else ``[rotation]
  on_leak``, else ``rotate`` when keyward can rotate it (a rotator for its kind and a store
  plugin for its store) and ``alert`` otherwise. With ``rotate`` the secret is due at once:
  the daemon claims leaked secrets before age-based work (see
  :meth:`keyward.inventory.rotations.RotationRepository.claim_leaked`).
* :func:`remediate_version` runs when a rotation retires the leaked version: the findings of
  that version (and of the rows discovery keeps for its fields, ``<identifier>#<field>``)
  become ``remediated`` with the rotation's id and time, and those rows leave the current
  stage. Recording never reopens a remediated finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.inventory import models as m
from keyward.inventory.fields import current_stage, is_current_stage

IN_CHUNK = 500
WHERE_LIMIT = 20  # findings named in one leak event (the count says how many in all)


@dataclass(frozen=True, slots=True)
class LeakPolicy:
    """What decides a secret's ``on_leak`` when it has none of its own: ``[rotation]
    on_leak`` (``default``), else whether keyward can rotate it (a rotator among
    ``rotators`` for its kind and a store plugin among ``stores`` for its store)."""

    default: m.OnLeak | None = None
    rotators: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()

    def can_rotate(self, kind: str, store: str | None) -> bool:
        return kind in self.rotators and store is not None and store in self.stores

    def effective(self, own: m.OnLeak | None, kind: str, store: str | None) -> m.OnLeak:
        return effective_on_leak(own, kind, store, self)


def effective_on_leak(
    own: m.OnLeak | None, kind: str, store: str | None, policy: LeakPolicy
) -> m.OnLeak:
    if own is not None:
        return m.OnLeak(own)
    if policy.default is not None:
        return policy.default
    return m.OnLeak.ROTATE if policy.can_rotate(kind, store) else m.OnLeak.ALERT


def cannot_rotate(kind: str, store: str | None, policy: LeakPolicy) -> str | None:
    """Why keyward cannot rotate a secret of this kind and store (one clause), or None."""
    if kind not in policy.rotators:
        return f"no rotator for its kind {kind!r} is installed"
    if store is None:
        return "it has no store to rotate it in"
    if store not in policy.stores:
        return f"no secret store plugin for its store {store!r} is installed"
    return None


@dataclass(frozen=True, slots=True)
class Leak:
    """A secret whose current version a scan just found (reported once, the first time)."""

    secret_id: int
    secret: str
    kind: str
    store: str | None
    version_id: int
    first_seen: datetime
    on_leak: m.OnLeak
    findings: tuple[int, ...]
    where: tuple[dict[str, Any], ...]
    # why the policy `rotate` cannot be carried out (no rotator, no store), else None
    problem: str | None = None

    @property
    def action(self) -> str:
        """What happens now: ``rotate`` (due at once), ``alert`` or ``ignore``; ``alert``
        when ``rotate`` cannot be carried out."""
        if self.on_leak is m.OnLeak.ROTATE and self.problem:
            return m.OnLeak.ALERT.value
        return self.on_leak.value

    def sentence(self) -> str:
        """One sentence for the person who ran the scan."""
        n = len(self.findings)
        base = (
            f"{self.secret!r} leaked: its current version is in {n} finding"
            f"{'' if n == 1 else 's'} ({', '.join(f'#{i}' for i in self.findings[:5])}"
            f"{', ...' if n > 5 else ''})"
        )
        match self.on_leak:
            case m.OnLeak.ROTATE if self.problem:
                return (
                    f"{base}, and its policy is to rotate it, but keyward cannot: "
                    f"{self.problem}; rotate it by hand, or install what it needs"
                )
            case m.OnLeak.ROTATE:
                return (
                    f"{base}; it is due for rotation now (keyward daemon, or keyward "
                    "rotate --leaked)"
                )
            case m.OnLeak.ALERT:
                return (
                    f"{base}; its policy is to alert only: keyward rotate {self.secret} rotates it"
                )
            case m.OnLeak.IGNORE:
                return f"{base}; its policy is to ignore leaks"
        raise AssertionError(self.on_leak)  # pragma: no cover

    def detail(self) -> dict[str, Any]:
        """The audit event's and the webhook's detail (ids and places; never a value)."""
        doc: dict[str, Any] = {
            "version_id": self.version_id,
            "first_seen": self.first_seen.isoformat(),
            "on_leak": self.on_leak.value,
            "action": self.action,
            "findings": list(self.findings),
            "where": [dict(w) for w in self.where],
        }
        if self.problem:
            doc["problem"] = self.problem
        return doc


@dataclass(slots=True)
class _Found:
    ids: list[int] = field(default_factory=list)
    where: list[dict[str, Any]] = field(default_factory=list)


def _where(row: Any) -> dict[str, Any]:
    doc = {
        "finding": int(row.id),
        "target": row.target,
        "source": row.source,
        "path": row.path,
        "line": int(row.line or 0) or None,
        "commit": row.commit,
        "variable": row.variable,
        "resource": row.resource,
        "region": row.region,
        "account": row.account,
    }
    return {k: v for k, v in doc.items() if v is not None}


_WHERE_COLUMNS = (
    m.Finding.id, m.Finding.version_id, m.Finding.target, m.Finding.source, m.Finding.path,
    m.Finding.line, m.Finding.commit, m.Finding.variable, m.Finding.resource,
    m.Finding.region, m.Finding.account,
)  # fmt: skip


def _chunks(items: Sequence[int], size: int = IN_CHUNK) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def function_name(target: str | None) -> str:
    """A Lambda function's name from its name or ARN (``...:function:NAME[:qualifier]``)."""
    text = target or ""
    if ":function:" in text:
        text = text.split(":function:", 1)[1]
    return text.split(":", 1)[0]


def _placed_by_keyward(session: Session, version_ids: Sequence[int]) -> dict[int, set[str]]:
    """version id -> the Lambda functions a keyward rotation wrote it into: versions a
    rotation made (finished or retiring), and the functions that are ``aws-lambda``
    dependents of its secret. The value in their environment is where keyward put it, not a
    leak."""
    r, d = m.Rotation, m.Dependent
    out: dict[int, set[str]] = {}
    for chunk in _chunks(list(version_ids)):
        q = (
            sa.select(r.new_version_id, d.target)
            .join(d, d.secret_id == r.secret_id)
            .where(
                r.new_version_id.in_(list(chunk)),
                r.state.in_(["retiring", "finished"]),
                d.kind == "aws-lambda",
            )
        )
        for vid, target in session.execute(q):
            if vid is not None:
                out.setdefault(int(vid), set()).add(function_name(target))
    return out


def _placed(row: Any, placed: dict[int, set[str]]) -> bool:
    """The finding is a variable of a function keyward itself updated with this value."""
    functions = placed.get(int(row.version_id))
    return bool(
        functions
        and row.source == "lambda"
        and row.variable
        and function_name(row.resource) in functions
    )


def mark_leaks(
    session: Session,
    target: str | None,
    version_ids: Iterable[int],
    now: datetime,
    policy: LeakPolicy,
    actor: str,
) -> list[Leak]:
    """After recording ``target``'s findings: the versions among ``version_ids`` that its open
    findings matched are leaked from now (``leaked_at``, set once). Returns the newly leaked
    current versions as :class:`Leak` s, each audited ``leak.detected``."""
    wanted = sorted(set(version_ids))
    if not wanted:
        return []
    f = m.Finding
    found: dict[int, _Found] = {}
    placed = _placed_by_keyward(session, wanted)
    for chunk in _chunks(wanted):
        q = (
            sa.select(*_WHERE_COLUMNS)
            .where(
                sa.true() if target is None else f.target == target,
                f.version_id.in_(list(chunk)),
                f.state == m.FindingState.OPEN,
            )
            .order_by(f.id)
        )
        for row in session.execute(q):
            if _placed(row, placed):
                continue
            entry = found.setdefault(int(row.version_id), _Found())
            entry.ids.append(int(row.id))
            if len(entry.where) < WHERE_LIMIT:
                entry.where.append(_where(row))
    if not found:
        return []
    v, s = m.SecretVersion, m.Secret
    newly: list[tuple[int, Any]] = []
    for chunk in _chunks(sorted(found)):
        newly.extend(
            session.execute(
                sa.update(v)
                .where(v.id.in_(list(chunk)), v.leaked_at.is_(None))
                .values(leaked_at=now)
                .returning(v.id, v.stage)
                .execution_options(synchronize_session=False)
            ).all()
        )
    current = sorted(int(vid) for vid, stage in newly if is_current_stage(stage))
    if not current:
        return []
    leaks: list[Leak] = []
    rows = session.execute(
        sa.select(v.id, s.id, s.name, s.kind, s.store, s.on_leak)
        .join(s, s.id == v.secret_id)
        .where(v.id.in_(current))
        .order_by(s.name, v.id)
    ).all()
    from keyward.inventory.service import Inventory

    for vid, sid, name, kind, store, own in rows:
        on_leak = policy.effective(own, kind, store)
        problem = cannot_rotate(kind, store, policy) if on_leak is m.OnLeak.ROTATE else None
        entry = found[int(vid)]
        leak = Leak(
            secret_id=int(sid),
            secret=str(name),
            kind=str(kind),
            store=store,
            version_id=int(vid),
            first_seen=now,
            on_leak=on_leak,
            findings=tuple(entry.ids),
            where=tuple(entry.where),
            problem=problem,
        )
        Inventory.append_audit(
            session,
            actor,
            "leak.detected",
            leak.secret,
            "refused" if problem else "ok",
            secret_id=leak.secret_id,
            detail=leak.detail(),
        )
        leaks.append(leak)
    return leaks


def link_versions(
    session: Session,
    secret_id: int,
    fingerprints: Mapping[int, Iterable[str]],
    actor: str,
    policy: LeakPolicy | None = None,
) -> list[Leak]:
    """Versions recorded after the scan that found them (discovery): the secret's findings of
    each version's values (``fingerprints``: version id -> its value's, identifier's and
    fields' fingerprints) get that version, and a current one they make leaked is marked and
    audited as ``scan --record`` would (the daemon then acts on it)."""
    f = m.Finding
    linked: list[int] = []
    for vid, fps in fingerprints.items():
        wanted = sorted({fp for fp in fps if fp})
        if not wanted:
            continue
        done = session.execute(
            sa.update(f)
            .where(
                f.secret_id == secret_id,
                f.version_id.is_(None),
                f.state != m.FindingState.REMEDIATED,
                sa.or_(f.fingerprint.in_(wanted), f.companion_fingerprint.in_(wanted)),
            )
            .values(version_id=vid)
            .returning(f.id)
            .execution_options(synchronize_session=False)
        ).all()
        if done:
            linked.append(vid)
    if not linked:
        return []
    return mark_leaks(session, None, linked, m.utcnow(), policy or LeakPolicy(), actor)


def leak_event(leak: Leak, actor: str) -> dict[str, Any]:
    """The webhook payload of a leak (as the audit event's detail; never a value)."""
    return {
        "event": "leak.detected",
        "secret": leak.secret,
        "kind": leak.kind,
        "store": leak.store,
        "actor": actor,
        "at": leak.first_seen.isoformat(),
        **leak.detail(),
    }


def version_family(session: Session, version_id: int) -> list[int]:
    """The version and the rows discovery keeps for its fields (``<identifier>#<field>``) of
    the same secret: together, one value the secret had."""
    v = m.SecretVersion
    row = session.execute(sa.select(v.secret_id, v.identifier).where(v.id == version_id)).first()
    if row is None:
        return []
    ids = [version_id]
    sid, identifier = row
    if identifier and "#" not in identifier:
        ids += [
            int(i)
            for i in session.scalars(
                sa.select(v.id).where(
                    v.secret_id == sid,
                    v.identifier.startswith(f"{identifier}#", autoescape=True),
                )
            )
        ]
    return ids


def remediate_version(
    session: Session, version_id: int, rotation_id: int, now: datetime
) -> list[int]:
    """The version ``version_id`` was revoked by rotation ``rotation_id``: its findings (and
    those of its family, :func:`version_family`) not remediated yet become ``remediated``,
    and the family's rows leave the current stage. Returns the finding ids remediated."""
    family = version_family(session, version_id)
    if not family:
        return []
    f, v = m.Finding, m.SecretVersion
    session.execute(
        sa.update(v)
        .where(v.id.in_(family), v.id != version_id, current_stage(v.stage))
        .values(stage="retired", retired_at=sa.func.coalesce(v.retired_at, now))
        .execution_options(synchronize_session=False)
    )
    done = session.execute(
        sa.update(f)
        .where(f.version_id.in_(family), f.state != m.FindingState.REMEDIATED)
        .values(
            state=m.FindingState.REMEDIATED,
            remediated_at=now,
            remediated_rotation_id=rotation_id,
            state_reason=f"revoked by rotation {rotation_id}",
        )
        .returning(f.id)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(int(i) for (i,) in done)


# ------------------------------------------------------------ leaked secrets now
def policy_is(on_leak: str, default: str | None) -> Any:
    """SQL: a secret's ``on_leak`` in effect is ``on_leak`` (its own, else ``default``; no
    default: rotate, for the secrets the caller has already narrowed to rotatable ones)."""
    own = m.Secret.on_leak
    falls_back = (default or m.OnLeak.ROTATE.value) == on_leak
    return sa.or_(
        own == m.OnLeak(on_leak), sa.and_(own.is_(None), sa.true() if falls_back else sa.false())
    )


def leaked_secret_ids() -> Any:
    """A select of the ids of secrets with a leaked current version (on the partial index of
    ``leaked_at``: a few rows, whatever the size of the inventory)."""
    v = m.SecretVersion
    return sa.select(v.secret_id).where(v.leaked_at.is_not(None), current_stage(v.stage))


def findings_of(session: Session, version_ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
    """version id -> the ids of its open findings."""
    out: dict[int, list[int]] = {}
    f = m.Finding
    for chunk in _chunks(sorted(set(version_ids))):
        q = (
            sa.select(f.version_id, f.id)
            .where(f.version_id.in_(list(chunk)), f.state == m.FindingState.OPEN)
            .order_by(f.id)
        )
        for vid, fid in session.execute(q):
            if vid is not None:
                out.setdefault(int(vid), []).append(int(fid))
    return {k: tuple(v) for k, v in out.items()}


@dataclass(frozen=True, slots=True)
class LeakedSecret:
    """A secret leaked now (its current version found by a scan), for `rotate --leaked`."""

    secret_id: int
    secret: str
    kind: str
    store: str | None
    version_id: int
    leaked_at: datetime
    findings: tuple[int, ...]
    on_leak: m.OnLeak
    problem: str | None  # why keyward cannot rotate it, if it cannot

    def to_dict(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "kind": self.kind,
            "store": self.store,
            "version_id": self.version_id,
            "leaked_at": self.leaked_at.isoformat(),
            "findings": list(self.findings),
            "on_leak": self.on_leak.value,
            "problem": self.problem,
        }


def leaked_secrets(
    session: Session,
    policy: LeakPolicy,
    secret_ids: Iterable[int] | None = None,
    *,
    where: Any = None,
    with_findings: bool = True,
) -> list[LeakedSecret]:
    """Every secret whose current version leaked (or those of ``secret_ids``, or those
    ``where`` selects), oldest leak first, with its findings (unless not ``with_findings``)
    and its policy in effect."""
    v, s = m.SecretVersion, m.Secret
    q = (
        sa.select(v.id, v.leaked_at, s.id, s.name, s.kind, s.store, s.on_leak)
        .join(s, s.id == v.secret_id)
        .where(v.leaked_at.is_not(None), current_stage(v.stage))
        .order_by(v.leaked_at, s.name)
    )
    if where is not None:
        q = q.where(where)
    if secret_ids is not None:
        q = q.where(s.id.in_(list(secret_ids)))
    rows = session.execute(q).all()
    seen: set[int] = set()
    found = findings_of(session, [int(r[0]) for r in rows]) if with_findings else {}
    out: list[LeakedSecret] = []
    for vid, leaked_at, sid, name, kind, store, own in rows:
        if sid in seen:  # two current rows of one secret (an older keyward's): one leak
            continue
        seen.add(sid)
        on_leak = policy.effective(own, kind, store)
        out.append(
            LeakedSecret(
                secret_id=int(sid),
                secret=str(name),
                kind=str(kind),
                store=store,
                version_id=int(vid),
                leaked_at=leaked_at or m.utcnow(),
                findings=found.get(int(vid), ()),
                on_leak=on_leak,
                problem=cannot_rotate(kind, store, policy),
            )
        )
    return out
