"""Posture: what is wrong with each secret, computed from fingerprints and metadata.

:func:`refresh_posture` computes every :class:`~keyward.inventory.models.Breach` of every live
secret (status ``active`` or ``inactive``; a retired or missing secret has none) and stores
them in ``secret_breaches``: a breach that persists keeps its ``since``, a new one is added,
one that no longer holds is deleted. ``detail`` says why (the other secrets, the functions,
the environments, the dates), never a value nor a fingerprint.

The pass is a handful of set-based queries, whatever the number of secrets: one over
``secrets`` for the metadata breaches, one for leaked current versions, one for the current
values two or more secrets share (a GROUP BY on the indexed fingerprint columns), one for
open findings of a current value, one over dependents; then the stored rows are read once
and only the differences are written.

The breaches (``docs/inventory.md#posture`` says the same for people):

* **leaked** -- its current version was found in code, history, an environment or a function
  configuration: the version's ``leaked_at`` is set, or an *open* finding linked to the
  secret has the fingerprint of one of its current values (an ignored finding does not count).
* **duplicated** -- another live secret's current version holds one of the same values (the
  whole value, a secret-bearing field such as ``password`` or ``secret_access_key``, or an
  access key id). Two inventoried secrets always differ in store or reference, so this is
  "the same value in two stores or two paths". Fields that are not secret (``username``,
  ``host``, ``port``, ``engine``...) never count.
* **reused** -- one value serves unrelated parties: a duplicate belongs to *another owner or
  team* (both known and different), or the secret's active dependents are functions of two or
  more *applications* (their ``application``/``app``/``service`` attribute, which
  ``dependents add --application`` sets) or *owners*
  (``owner``/``team`` attribute). So a reused-by-copy secret is always duplicated too:
  duplicated alone is a copy within one owner (a migration leftover, a second path),
  reused is one credential shared by several parties.
* **long-lived** -- past its policy's due time, or, without a policy, not rotated (else not
  created) for :data:`LONG_LIVED_DAYS`.
* **no-owner** -- no owner.
* **no-policy** -- neither a maximum age nor a schedule.
* **unused** -- its store or IAM reports a last use (``last_used_at``) older than
  ``[inventory] unused_days`` (default 90). A secret whose last use is unknown is never
  unused: nothing says so.
* **cross-environment** -- its active dependents (by value or by reference: both let the
  function use the credential) are functions whose ``environment`` (or ``env``) attribute
  names two or more environments (compared case-insensitively).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.core.secretfields import secret_bearing, sql_secret_bearing
from keyward.inventory import models as m
from keyward.inventory.fields import current_stage
from keyward.inventory.models import Breach

if TYPE_CHECKING:
    from keyward.core.config import Config
    from keyward.inventory.db import Database

# A secret with no rotation policy is long-lived once it is older than this.
LONG_LIVED_DAYS = 365
DEFAULT_UNUSED_DAYS = 90
# The statuses posture looks at: a retired secret is history, a missing one is gone from its
# store (neither serves anything).
LIVE = (m.SecretStatus.ACTIVE, m.SecretStatus.INACTIVE)
# At most this many names (secrets, functions) in one breach's detail; the count is complete.
DETAIL_NAMES = 10
IN_CHUNK = 500

# Dependent attributes naming a function's application, owner and environment.
_APP_KEYS = ("application", "app", "service")
_OWNER_KEYS = ("owner", "team")
_ENV_KEYS = ("environment", "env")


def secret_field(name: str) -> bool:
    """Whether a field of that name holds a secret (``username``, ``host`` do not): the one
    definition, :func:`keyward.core.secretfields.secret_bearing`."""
    return secret_bearing(name)


@dataclass(frozen=True, slots=True)
class PostureSettings:
    unused_days: int = DEFAULT_UNUSED_DAYS
    long_lived_days: int = LONG_LIVED_DAYS

    @classmethod
    def from_config(cls, config: Config | None) -> PostureSettings:
        """``[inventory] unused_days`` (a whole number of days, at least 1)."""
        if config is None:
            return cls()
        days = config.number(
            "inventory", "unused_days", DEFAULT_UNUSED_DAYS, minimum=1, maximum=36500, whole=True
        )
        return cls(unused_days=int(days))


@dataclass(frozen=True, slots=True)
class PostureSummary:
    """What one refresh changed, and how many secrets have each breach now."""

    added: int
    removed: int
    updated: int
    counts: Mapping[Breach, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "updated": self.updated,
            "breaches": {b.value: self.counts.get(b, 0) for b in Breach},
            "seconds": round(self.seconds, 3),
        }


@dataclass(slots=True)
class _Found:
    """A breach found: its detail, and when it began -- ``at``, or ``start`` (a raw timestamp)
    plus ``after`` (never later than ``at``), worked out only for a breach new to the stored
    posture."""

    at: datetime
    detail: dict[str, Any]
    start: Any = None
    after: timedelta | None = None

    def since(self) -> datetime:
        if self.start is None or self.after is None:
            return self.at
        return min(_when(self.start) + self.after, self.at)


Computed = dict[tuple[int, Breach], _Found]


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def _names(items: Iterable[str]) -> list[str]:
    return sorted(set(items))[:DETAIL_NAMES]


def _live() -> sa.ColumnElement[bool]:
    return m.Secret.status.in_(list(LIVE))


# ------------------------------------------------------------------- the pass
LEAKED = frozenset({Breach.LEAKED})  # what a scan's findings can change
# what a secret's own columns tell (refreshed for one secret after `inventory add/update`)
METADATA = frozenset({Breach.LONG_LIVED, Breach.NO_OWNER, Breach.NO_POLICY, Breach.UNUSED})


def compute_posture(
    session: Session,
    now: datetime,
    settings: PostureSettings,
    only: Collection[Breach] | None = None,
    secret_ids: Collection[int] | None = None,
) -> Computed:
    """Every breach of every live secret: (secret id, breach) -> since, detail. ``only``:
    just these breaches (the queries the others need are not run); ``secret_ids``: just these
    secrets, for the breaches their own columns tell (:data:`METADATA`) only."""
    wanted = frozenset(Breach) if only is None else frozenset(only)
    if secret_ids is not None and not wanted <= METADATA:
        raise ValueError("a posture refresh of some secrets covers only METADATA breaches")
    found: Computed = {}
    conn = session.connection()  # Core rows: no ORM processing per row
    if wanted & METADATA:
        _metadata(conn, now, settings, found, secret_ids)
    current = _current_values()
    if Breach.LEAKED in wanted:
        _leaked(conn, now, current, found)
    if wanted & {Breach.DUPLICATED, Breach.REUSED}:
        _shared(conn, now, current, found)
    if wanted & {Breach.CROSS_ENVIRONMENT, Breach.REUSED}:
        _dependents(conn, now, found)
    if only is not None:
        found = {key: f for key, f in found.items() if key[1] in wanted}
    return found


def _when(raw: Any) -> datetime:
    """A timestamp read raw (no per-row type processing): SQLite's naive UTC text, or the
    aware datetime PostgreSQL's driver gives."""
    if isinstance(raw, datetime):
        return raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)


def _raw(column: Any) -> Any:
    return sa.type_coerce(column, sa.String)


def _metadata(
    conn: sa.Connection,
    now: datetime,
    settings: PostureSettings,
    out: Computed,
    secret_ids: Collection[int] | None = None,
) -> None:
    """long-lived, no-owner, no-policy, unused: one pass over the secrets that have any, the
    conditions evaluated by the database (flags), timestamps read raw and turned into a
    ``since`` only for a breach new to the stored posture. Details hold the policy and the
    thresholds, which change only when they do (the dates are the secret's own columns)."""
    s = m.Secret
    base = sa.func.coalesce(s.last_rotated_at, s.created_at)
    limit = now - timedelta(days=settings.long_lived_days)
    unused_before = now - timedelta(days=settings.unused_days)
    no_policy = sa.and_(s.max_age_seconds.is_(None), s.schedule.is_(None))
    long_lived = sa.or_(
        s.rotation_due_at < now, sa.and_(s.rotation_due_at.is_(None), no_policy, base <= limit)
    )
    no_owner = sa.or_(s.owner.is_(None), sa.func.trim(s.owner) == "")
    unused = s.last_used_at < unused_before

    def flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.case((condition, 1), else_=0)

    rows = conn.execute(
        sa.select(
            s.id,
            flag(long_lived),
            flag(no_owner),
            flag(unused),
            s.team,
            s.max_age_seconds,
            s.schedule,
            _raw(s.rotation_due_at),
            _raw(base),
            _raw(s.last_used_at),
        ).where(
            _live(),
            sa.or_(long_lived, no_owner, no_policy, unused),
            *([s.id.in_(list(secret_ids))] if secret_ids is not None else []),
        )
    )
    empty: dict[str, Any] = {}
    limit_detail = {"limit_days": settings.long_lived_days}
    unused_detail = {"unused_days": settings.unused_days}
    policies: dict[tuple[int | None, str | None], dict[str, Any]] = {}
    teams: dict[str, dict[str, Any]] = {}
    lived = timedelta(days=settings.long_lived_days)
    idle = timedelta(days=settings.unused_days)
    for sid, ll, no, un, team, max_age, schedule, due, last, used in rows:
        policy = max_age is not None or schedule is not None
        if ll:
            if due is not None and policy:
                detail = policies.get((max_age, schedule))
                if detail is None:
                    detail = policies[max_age, schedule] = {
                        k: v
                        for k, v in (
                            ("max_age_days", round(max_age / 86400, 2) if max_age else None),
                            ("schedule", schedule),
                        )
                        if v is not None
                    }
                out[sid, Breach.LONG_LIVED] = _Found(now, detail, due, timedelta(0))
            else:
                out[sid, Breach.LONG_LIVED] = _Found(now, limit_detail, last, lived)
        if no:
            detail = teams.setdefault(team, {"team": team}) if team else empty
            out[sid, Breach.NO_OWNER] = _Found(now, detail)
        if not policy:
            out[sid, Breach.NO_POLICY] = _Found(now, empty)
        if un:
            out[sid, Breach.UNUSED] = _Found(now, unused_detail, used, idle)


def _current_values() -> sa.CTE:
    """(secret_id, fp, named) of every current value: the version's own fingerprint (named by
    its identifier), its access key id's (``#access_key_id``), and each field's from
    ``secret_fields`` (``#FIELD``). Whether the secret is live is asked where it is joined
    (UNION ALL and no join here: the GROUP BY over it is the pass's biggest query)."""
    v, f = m.SecretVersion, m.SecretField
    current = current_stage(v.stage)
    whole = sa.select(v.secret_id, v.fingerprint.label("fp"), v.identifier.label("named")).where(
        current, v.fingerprint.is_not(None)
    )
    key_id = sa.select(
        v.secret_id,
        v.identifier_fingerprint.label("fp"),
        sa.literal("#access_key_id", sa.String).label("named"),
    ).where(current, v.identifier_fingerprint.is_not(None))
    fields = (
        sa.select(
            f.secret_id,
            f.fingerprint.label("fp"),
            (sa.literal("#", sa.String) + f.field).label("named"),
        )
        .join(v, v.id == f.version_id)
        .where(current, sql_secret_bearing(f.field))  # a shared host is no shared secret
    )
    # read twice (the shared values, then their holders): computed once
    return sa.union_all(whole, key_id, fields).cte("current_values").prefix_with("MATERIALIZED")


def _field_of(label: str | None) -> str:
    """The field a current value's label names: ``#password`` -> password; a version
    identifier ``VERSION#password`` (discovery's per-field rows) -> password; else ``value``."""
    if label and "#" in label:
        return label.rsplit("#", 1)[1]
    return "value"


def _leaked(conn: sa.Connection, now: datetime, current: sa.CTE, out: Computed) -> None:
    """A current version with ``leaked_at`` (set by ``keyward.inventory.leaks`` when a scan
    records a finding of it, or discovery learns a value a finding already had): the one
    definition the daemon and ``rotate --leaked`` act on too. Its open findings are counted;
    a copy keyward itself wrote into a dependent function is not a leak there either."""
    v, s, f = m.SecretVersion, m.Secret, m.Finding
    leaked: dict[int, dict[str, Any]] = {}
    since: dict[int, datetime] = {}
    versions: dict[int, int] = {}  # leaked current version id -> its secret
    rows = conn.execute(
        sa.select(v.id, v.secret_id, v.identifier, v.leaked_at)
        .join(s, s.id == v.secret_id)
        .where(v.leaked_at.is_not(None), current_stage(v.stage), _live())
    )
    for vid, sid, identifier, at in rows:
        assert at is not None  # the query asked for it
        versions[int(vid)] = int(sid)
        doc = leaked.setdefault(sid, {"versions": [], "open_findings": 0})
        if identifier:
            doc["versions"].append(identifier)
        since[sid] = min(since.get(sid, at), at)
    ids = sorted(versions)
    for i in range(0, len(ids), 500):
        counted = conn.execute(
            sa.select(f.version_id, sa.func.count(f.id))
            .where(f.version_id.in_(ids[i : i + 500]), f.state == m.FindingState.OPEN)
            .group_by(f.version_id)
        )
        for version_id, count in counted:
            leaked[versions[int(version_id or 0)]]["open_findings"] += int(count)
    for sid, doc in leaked.items():
        doc["versions"] = _names(doc["versions"])
        out[sid, Breach.LEAKED] = _Found(min(since.get(sid, now), now), doc)


@dataclass(slots=True)
class _Holder:
    name: str
    store: str | None
    owner: str | None
    team: str | None


def _shared(conn: sa.Connection, now: datetime, current: sa.CTE, out: Computed) -> None:
    """duplicated, and reused by copies of other owners: the current values two or more
    secrets hold (GROUP BY fingerprint), then who holds them."""
    c, s = current.c, m.Secret
    shared = (
        sa.select(c.fp)
        .group_by(c.fp)
        .having(sa.func.count(sa.distinct(c.secret_id)) > 1)
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(c.fp, c.secret_id, c.named, s.name, s.store, s.owner, s.team)
        .join(s, s.id == c.secret_id)
        .where(c.fp.in_(shared), _live())
    )
    holders: dict[int, _Holder] = {}
    by_value: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for fp, sid, label, name, store, owner, team in rows:
        fld = _field_of(label)
        if not secret_field(fld):
            continue
        holders[sid] = _Holder(name, store, owner, team)
        by_value[fp][sid].add(fld)
    others: dict[int, set[int]] = defaultdict(set)
    fields: dict[int, set[str]] = defaultdict(set)
    for held in by_value.values():
        if len(held) < 2:
            continue
        for sid, flds in held.items():
            others[sid].update(x for x in held if x != sid)
            fields[sid].update(flds)
    for sid, other_ids in others.items():
        me = holders[sid]
        copies = [holders[o] for o in other_ids]
        out[sid, Breach.DUPLICATED] = _Found(
            now,
            {
                "secrets": _names(h.name for h in copies),
                "copies": len(copies),
                "stores": sorted({h.store or "-" for h in [me, *copies]}),
                "fields": sorted(fields[sid]),
            },
        )
        strangers = [h for h in copies if _other_party(me, h)]
        if strangers:
            parties = {p for h in strangers for p in (h.owner, h.team) if p}
            out[sid, Breach.REUSED] = _Found(
                now,
                {
                    "secrets": _names(h.name for h in strangers),
                    "owners": _names(parties),
                },
            )


def _other_party(a: _Holder, b: _Holder) -> bool:
    """Whether two holders of a value answer to different people (both known)."""
    if a.owner and b.owner and a.owner.strip().lower() != b.owner.strip().lower():
        return True
    return bool(a.team and b.team and a.team.strip().lower() != b.team.strip().lower())


def _label(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` a dependent's attributes have, trimmed and lower-cased."""
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return None


def _dependents(conn: sa.Connection, now: datetime, out: Computed) -> None:
    """cross-environment, and reused by functions of several applications or owners. The
    attributes are read as JSON text and decoded here: cheaper than asking the database for
    seven JSON paths of every row (and the same on both databases)."""
    d, s = m.Dependent, m.Secret
    rows = conn.execute(
        sa.select(d.secret_id, d.target, sa.cast(d.attributes, sa.Text))
        .join(s, s.id == d.secret_id)
        .where(d.status == m.DependentStatus.ACTIVE, _live())
    )
    per: dict[int, dict[str, dict[str, set[str]]]] = defaultdict(
        lambda: {"env": defaultdict(set), "app": defaultdict(set), "owner": defaultdict(set)}
    )
    for sid, target, text in rows:
        try:
            attributes = json.loads(text) if text else {}
        except ValueError:
            continue
        if not isinstance(attributes, dict):
            continue
        for kind, keys in (("env", _ENV_KEYS), ("app", _APP_KEYS), ("owner", _OWNER_KEYS)):
            label = _label(attributes, keys)
            if label:
                per[sid][kind][label].add(target)
    for sid, labels in per.items():
        envs = labels["env"]
        if len(envs) > 1:
            out[sid, Breach.CROSS_ENVIRONMENT] = _Found(
                now, {"environments": {e: _functions(fns) for e, fns in sorted(envs.items())}}
            )
        apps, owners = labels["app"], labels["owner"]
        if len(apps) > 1 or len(owners) > 1:
            detail: dict[str, Any] = {}
            if len(apps) > 1:
                detail["applications"] = {a: _functions(fns) for a, fns in sorted(apps.items())}
            if len(owners) > 1:
                detail["function_owners"] = {
                    o: _functions(fns) for o, fns in sorted(owners.items())
                }
            known = out.get((sid, Breach.REUSED))
            if known is not None:  # also shared with another owner's copy
                known.detail.update(detail)
            else:
                out[sid, Breach.REUSED] = _Found(now, detail)


def _functions(targets: Iterable[str]) -> list[str]:
    return _names(_function_name(t) for t in targets)


def _function_name(target: str) -> str:
    """A Lambda ARN's function name (with its qualifier); any other target as it is."""
    parts = target.split(":")
    if target.startswith("arn:") and len(parts) >= 7 and parts[5] == "function":
        return ":".join(parts[6:])
    return target


# ------------------------------------------------------------------ storing
def _chunks(items: list[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def refresh_posture(
    session: Session,
    now: datetime | None = None,
    settings: PostureSettings | None = None,
    *,
    only: Collection[Breach] | None = None,
    secret_ids: Collection[int] | None = None,
) -> PostureSummary:
    """Recompute the posture and store it in ``session``'s transaction (idempotent: a breach
    that persists keeps its ``since``; only differences are written). ``only``: refresh just
    these breaches (``scan --record`` changes nothing but *leaked*); ``secret_ids``: just
    these secrets' :data:`METADATA` breaches. The summary's counts are of what was
    refreshed."""
    started = time.perf_counter()
    now = now or m.utcnow()
    found = compute_posture(session, now, settings or PostureSettings(), only, secret_ids)
    t = m.SecretBreach
    table = t.__table__
    assert isinstance(table, sa.Table)
    # The stored rows, read raw: the breach as text, the detail as the JSON text written (no
    # enum or JSON decoding per row); a computed detail is serialised once per distinct dict
    # (the metadata breaches share a few).
    texts: dict[int, str] = {}

    def text(detail: dict[str, Any]) -> str:
        known = texts.get(id(detail))
        if known is None:
            known = texts[id(detail)] = json.dumps(detail)
        return known

    existing: dict[tuple[int, Breach], str] = {}
    by_value = {b.value: b for b in Breach}
    stored_rows = sa.select(t.secret_id, _raw(t.breach), sa.cast(t.detail, sa.Text))
    if only is not None:
        stored_rows = stored_rows.where(t.breach.in_([b.value for b in only]))
    if secret_ids is not None:
        stored_rows = stored_rows.where(t.secret_id.in_(list(secret_ids)))
    for sid, b, stored in session.connection().execute(stored_rows):
        existing[sid, by_value[b]] = stored
    gone = [key for key in existing if key not in found]
    # Rows are written in key order: two refreshes at once (replicas, a discovery next to the
    # daemon) lock them in the same order instead of deadlocking.
    new = [
        {"secret_id": sid, "breach": b.value, "since": f.since(), "detail": f.detail}
        for (sid, b), f in found.items()
        if (sid, b) not in existing
    ]
    new.sort(key=lambda row: (row["secret_id"], row["breach"]))
    changed = [
        {"k_secret_id": sid, "k_breach": b.value, "detail": f.detail}
        for (sid, b), f in found.items()
        if (sid, b) in existing and existing[sid, b] != text(f.detail)
    ]
    changed.sort(key=lambda row: (row["k_secret_id"], row["k_breach"]))
    by_breach: dict[Breach, list[int]] = defaultdict(list)
    for sid, b in gone:
        by_breach[b].append(sid)
    for b, ids in by_breach.items():
        for chunk in _chunks(sorted(ids)):
            session.execute(sa.delete(t).where(t.breach == b, t.secret_id.in_(chunk)))
    if new:
        # ON CONFLICT DO NOTHING: a replica refreshing at the same time inserted it first
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(table).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).on_conflict_do_nothing()
        for chunk in _chunks(new, 5000):
            session.execute(stmt, chunk)
    if changed:
        c = table.c
        session.execute(
            sa.update(table)
            .where(c.secret_id == sa.bindparam("k_secret_id"))
            .where(c.breach == sa.bindparam("k_breach"))
            .values(detail=sa.bindparam("detail", type_=sa.JSON())),
            changed,
        )
    counts: dict[Breach, int] = dict.fromkeys(Breach if only is None else only, 0)
    for _, b in found:
        counts[b] += 1
    return PostureSummary(
        added=len(new),
        removed=len(gone),
        updated=len(changed),
        counts=counts,
        seconds=time.perf_counter() - started,
    )


def refresh(
    db: Database,
    now: datetime | None = None,
    settings: PostureSettings | None = None,
    *,
    only: Collection[Breach] | None = None,
    secret_ids: Collection[int] | None = None,
) -> PostureSummary:
    """:func:`refresh_posture` in a transaction of its own."""
    with db.session() as session:
        return refresh_posture(session, now, settings, only=only, secret_ids=secret_ids)


def refresh_for(
    db: Database,
    config: Config | None,
    *,
    only: Collection[Breach] | None = None,
    secret_ids: Collection[int] | None = None,
) -> PostureSummary:
    """The hook after discovery, ``scan --record``, rotations and changes by hand:
    :func:`refresh` with the settings of ``config`` (``[inventory] unused_days``)."""
    return refresh(
        db, settings=PostureSettings.from_config(config), only=only, secret_ids=secret_ids
    )


# ------------------------------------------------------------------ reading
def stored_counts(session: Session) -> dict[Breach, int]:
    """How many secrets have each breach, from the stored posture (one GROUP BY on the
    breach index)."""
    t = m.SecretBreach
    counts = dict.fromkeys(Breach, 0)
    for b, n in session.execute(sa.select(t.breach, sa.func.count()).group_by(t.breach)):
        counts[Breach(b)] = int(n)
    return counts


def breaches_of(session: Session, secret_ids: Iterable[int]) -> dict[int, list[str]]:
    """secret id -> its breach names (in :class:`Breach` order)."""
    order = {b: i for i, b in enumerate(Breach)}
    out: dict[int, list[Breach]] = defaultdict(list)
    t = m.SecretBreach
    for chunk in _chunks(sorted(set(secret_ids))):
        for sid, b in session.execute(
            sa.select(t.secret_id, t.breach).where(t.secret_id.in_(chunk))
        ):
            out[sid].append(Breach(b))
    return {sid: [b.value for b in sorted(bs, key=order.__getitem__)] for sid, bs in out.items()}


def parse_breaches(values: Iterable[str]) -> tuple[Breach, ...]:
    """``--breach`` values (repeatable, each may be a comma list) as breaches; an unknown
    name is a ConfigError naming the choices."""
    from keyward.core.errors import ConfigError

    out: list[Breach] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower().replace("_", "-")
            if not name:
                continue
            try:
                b = Breach(name)
            except ValueError:
                raise ConfigError(
                    f"--breach {part.strip()!r} is not a posture breach",
                    hint=f"Use one of: {', '.join(b.value for b in Breach)}",
                ) from None
            if b not in out:
                out.append(b)
    return tuple(out)
