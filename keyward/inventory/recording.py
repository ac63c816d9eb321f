"""``keyward scan --record``: store a scan's findings, keyed fingerprints only.

* A finding's identity is (scan target, rule, fingerprint, where: source kind, path, variable,
  resource, region). Line numbers are not part of it, so editing above a secret does not make
  it a new finding; a re-scan updates ``last_seen_at``, the line and the preview.
* After a full scan of a target, its open findings that were not seen become ``resolved``; a
  resolved finding seen again is reopened; an ``ignored`` finding stays ignored.
* Findings suppressed in the scan (inline allow comment, baseline) are recorded as ignored.
* A finding whose fingerprint (or paired value's fingerprint) matches a known secret version
  or access key id is linked to that secret and takes its owner; otherwise its owner is the
  CODEOWNERS entry of the file, else the ``git blame`` author of the line.

Rows go in with one ``INSERT ... ON CONFLICT (identity) DO UPDATE`` executed for many rows at
a time (executemany), never one ORM object per finding.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from keyward.core.redaction import Fingerprinter
from keyward.core.secretfields import sql_secret_bearing
from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.fields import fields_by_fingerprint, is_current_stage
from keyward.inventory.leaks import Leak, LeakPolicy, mark_leaks
from keyward.inventory.ownership import OwnershipResolver, author_email
from keyward.inventory.service import Inventory
from keyward.scan.model import Confidence

if TYPE_CHECKING:
    from keyward.core.config import Config
    from keyward.scan.model import Finding

BATCH = 5000
IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RecordSummary:
    target: str
    recorded: int
    new: int
    resolved: int
    linked: int
    seconds: float
    ignored: int = 0  # of ``recorded``: suppressed in the scan (inline allow, baseline)
    # secrets whose current version this recording found for the first time
    leaks: tuple[Leak, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "recorded": self.recorded,
            "ignored": self.ignored,
            "new": self.new,
            "resolved": self.resolved,
            "linked": self.linked,
            "leaked": [leak.secret for leak in self.leaks],
            "seconds": round(self.seconds, 3),
        }


def scan_target(roots: Sequence[Path]) -> str:
    """The default target of a path scan: its absolute roots."""
    paths = sorted({str(p.resolve()) for p in roots}) or [str(Path.cwd())]
    return "files:" + ",".join(paths)


def default_target(
    roots: Sequence[Path],
    *,
    git_repo: Path | None = None,
    env: bool = False,
    aws_lambda: bool = False,
) -> str:
    """Name what a scan covered: ``files:/abs``, ``git:/abs/repo``, ``env:host``,
    ``aws-lambda``, joined by ``+`` when several sources ran together."""
    import socket

    parts: list[str] = []
    if roots:
        parts.append(scan_target(roots))
    if git_repo is not None:
        parts.append(f"git:{git_repo.resolve()}")
    if env:
        parts.append(f"env:{socket.gethostname()}")
    if aws_lambda:
        parts.append("aws-lambda")
    return "+".join(parts) or scan_target([Path.cwd()])


def finding_identity(target: str, f: Finding) -> str:
    loc = f.location
    parts = (
        target,
        f.rule_id,
        f.fingerprint,
        loc.kind.value,
        loc.path or "",
        loc.variable or "",
        loc.resource or "",
        loc.region or "",
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Link(NamedTuple):
    """What a finding's fingerprint matched: a secret, its owner, and the version."""

    secret_id: int
    owner: str | None
    version_id: int | None
    current: bool


def _better(old: _Link | None, new: _Link) -> bool:
    """Several versions may hold a value (the same value kept by two secrets, or rows an
    older keyward wrote): the current one wins, then the newest."""
    if old is None:
        return True
    if new.current != old.current:
        return new.current
    return (new.version_id or 0) > (old.version_id or 0)


def _known_versions(session: sa.orm.Session, fingerprints: set[str]) -> dict[str, _Link]:
    """fingerprint -> the secret version (or a field of one: ``secret_fields``) or access key
    id it is, with the secret's owner; a current version first."""
    found: dict[str, _Link] = {}
    v, s = m.SecretVersion, m.Secret

    def add(key: str, link: _Link) -> None:
        if key in fingerprints and _better(found.get(key), link):
            found[key] = link

    cols = sa.select(
        v.fingerprint, v.identifier_fingerprint, v.secret_id, s.owner, v.id, v.stage
    ).join(s, s.id == v.secret_id)
    versions = int(session.scalar(sa.select(sa.func.count()).select_from(v)) or 0)
    if versions <= max(len(fingerprints), 10_000):  # cheaper to read them all once
        queries = [
            cols.where(sa.or_(v.fingerprint.is_not(None), v.identifier_fingerprint.is_not(None)))
        ]
    else:
        queries = [
            cols.where(sa.or_(v.fingerprint.in_(chunk), v.identifier_fingerprint.in_(chunk)))
            for chunk in _chunks(sorted(fingerprints), IN_CHUNK)
        ]
    for vq in queries:
        for fp, ifp, sid, owner, vid, stage in session.execute(vq):
            link = _Link(sid, owner, vid, is_current_stage(stage))
            for key in (fp, ifp):
                if key is not None:
                    add(key, link)
    # a field of a version (the new secret key a rotation made, a discovered password)
    fld = m.SecretField
    fields = int(session.scalar(sa.select(sa.func.count()).select_from(fld)) or 0)
    if fields <= max(len(fingerprints), 10_000):  # one read of them all beats IN lists
        every = (
            sa.select(fld.fingerprint, fld.secret_id, s.owner, fld.version_id, v.stage)
            .join(v, v.id == fld.version_id)
            .join(s, s.id == fld.secret_id)
            .where(sql_secret_bearing(fld.field))
        )
        for ffp, sid, owner, vid, stage in session.execute(every):
            add(ffp, _Link(sid, owner, vid, is_current_stage(stage)))
        return found
    for ffp, matches in fields_by_fingerprint(session, fingerprints).items():
        for fm in matches:
            add(ffp, _Link(fm.secret_id, fm.owner, fm.version_id, fm.current))
    return found


def _remediated(
    session: sa.orm.Session, version_ids: set[int]
) -> dict[int, tuple[int | None, datetime | None]]:
    """version id -> (rotation, time) that remediated its findings, for versions already
    revoked: a new finding of a revoked value is remediated from the start."""
    out: dict[int, tuple[int | None, datetime | None]] = {}
    f = m.Finding
    for chunk in _chunks(sorted(version_ids), IN_CHUNK):
        q = (
            sa.select(f.version_id, f.remediated_rotation_id, f.remediated_at)
            .where(f.version_id.in_(list(chunk)), f.state == m.FindingState.REMEDIATED)
            .order_by(f.id)
        )
        for vid, rid, at in session.execute(q):
            if vid is not None:
                out.setdefault(int(vid), (rid, at))
    return out


def _upsert(dialect: str) -> Any:
    table = m.Finding.__table__
    assert isinstance(table, sa.Table)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        stmt: Any = postgresql.insert(table)
    else:
        from sqlalchemy.dialects import sqlite

        stmt = sqlite.insert(table)
    ex = stmt.excluded
    c = table.c
    resolved = m.FindingState.RESOLVED.value
    ignored = m.FindingState.IGNORED.value
    remediated = m.FindingState.REMEDIATED.value
    return stmt.on_conflict_do_update(
        index_elements=[c.identity],
        set_={
            "last_seen_at": ex.last_seen_at,
            "line": ex.line,
            "column": ex.column,
            "commit": ex.commit,
            "preview": ex.preview,
            "severity": ex.severity,
            "confidence": ex.confidence,
            "companion_fingerprint": sa.func.coalesce(
                ex.companion_fingerprint, c.companion_fingerprint
            ),
            "code_owner": sa.func.coalesce(ex.code_owner, c.code_owner),
            "author": sa.func.coalesce(ex.author, c.author),
            "secret_id": sa.func.coalesce(c.secret_id, ex.secret_id),
            "owner": sa.case(
                (c.secret_id.is_not(None), c.owner),
                else_=sa.func.coalesce(ex.owner, c.owner),
            ),
            # remediated stays remediated (its value was revoked: finding it again reopens
            # nothing); resolved and seen again -> reopened; suppressed now -> ignored; else
            # unchanged
            "state": sa.case(
                (c.state == remediated, c.state),
                (sa.or_(c.state == resolved, ex.state == ignored), ex.state),
                else_=c.state,
            ),
            "state_reason": sa.case(
                (sa.or_(c.state == ignored, c.state == remediated), c.state_reason),
                else_=ex.state_reason,
            ),
            "resolved_at": sa.case((c.state == resolved, None), else_=c.resolved_at),
            "version_id": sa.case(
                (c.state == remediated, c.version_id),
                else_=sa.func.coalesce(ex.version_id, c.version_id),
            ),
        },
    )


COLUMNS = (
    "identity",
    "target",
    "rule_id",
    "severity",
    "confidence",
    "source",
    "path",
    "line",
    "column",
    "commit",
    "author",
    "variable",
    "resource",
    "region",
    "account",
    "preview",
    "fingerprint",
    "companion_fingerprint",
    "first_seen_at",
    "last_seen_at",
    "resolved_at",
    "state",
    "state_reason",
    "secret_id",
    "code_owner",
    "owner",
    "version_id",
    "remediated_at",
    "remediated_rotation_id",
)


def _bulk_upsert(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert-or-update many findings with the driver's fastest path.

    PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT ... ON CONFLICT.
    SQLite: the compiled upsert through the driver's executemany. Both bypass per-row
    SQLAlchemy type processing (values are prepared here), which dominated the cost.
    """
    if not rows:
        return
    table = m.Finding.__table__
    assert isinstance(table, sa.Table)
    if conn.dialect.name == "postgresql":
        cols = ", ".join(f'"{c}"' for c in COLUMNS)
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE keyward_findings_in ON COMMIT DROP AS "
            f"SELECT {cols} FROM findings WITH NO DATA"
        )
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            with cur.copy(f"COPY keyward_findings_in ({cols}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(tuple(r[c] for c in COLUMNS))
        staged = sa.table("keyward_findings_in", *(sa.column(c) for c in COLUMNS))
        stmt = _upsert("postgresql").from_select(
            list(COLUMNS), sa.select(*(staged.c[c] for c in COLUMNS))
        )
        conn.execute(stmt)
        conn.exec_driver_sql("DROP TABLE keyward_findings_in")
        return
    compiled = (
        _upsert("sqlite")
        .values({c: sa.bindparam(c) for c in COLUMNS})
        .compile(dialect=conn.dialect)
    )
    order = list(compiled.positiontup or [])
    fixed = dict(compiled.params)
    stamps: dict[datetime, str] = {}  # rows share a few timestamps: format each once

    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            text = stamps.get(v)
            if text is None:
                # the text format SQLAlchemy's SQLite DateTime uses (naive UTC)
                text = stamps[v] = v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return text
        return v

    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for batch in _chunks(rows, BATCH):
            cursor.executemany(
                compiled.string,
                [tuple(value(r[k]) if k in r else fixed[k] for k in order) for r in batch],
            )
    finally:
        cursor.close()


def record_findings(
    db: Database,
    findings: Iterable[Finding],
    target: str,
    *,
    full: bool = True,
    fingerprinter: Fingerprinter | None = None,
    roots: Sequence[Path] = (),
    ownership: OwnershipResolver | None = None,
    git_repo: Path | None = None,
    actor: str | None = None,
    min_confidence: Confidence | None = None,
    leak_policy: LeakPolicy | None = None,
) -> RecordSummary:
    """Upsert ``findings`` under ``target``; with ``full``, resolve the ones not seen.

    ``min_confidence``: the scan reported only findings at or above it, so only recorded
    findings at or above it can be resolved (the scan did not look for the others).
    A finding of a secret's current version makes it leaked (:mod:`keyward.inventory.leaks`,
    decided with ``leak_policy``); the summary's ``leaks`` are the new ones."""
    started = time.perf_counter()
    now = m.utcnow()
    by_identity: dict[str, Finding] = {}
    for f in findings:
        by_identity.setdefault(finding_identity(target, f), f)
    t = m.Finding
    with db.session() as session:  # short read: which findings are already known
        existing = set(session.scalars(sa.select(t.identity).where(t.target == target)))
    new_ones = {i: f for i, f in by_identity.items() if i not in existing}
    # CODEOWNERS / git blame only for new findings: known ones keep their recorded owner
    owners = _code_owners(new_ones, roots, ownership, git_repo) if ownership else {}

    companions: dict[str, str] = {}
    if fingerprinter is not None:
        for ident, f in by_identity.items():
            if f.companion:
                companions[ident] = fingerprinter.fingerprint(f.companion)

    inv = Inventory(db, actor)
    with db.session() as session:
        wanted = {f.fingerprint for f in by_identity.values()} | set(companions.values())
        known = _known_versions(session, wanted)
        revoked = _remediated(
            session, {k.version_id for k in known.values() if k.version_id and not k.current}
        )
        rows = [
            _row(ident, f, target, now, companions.get(ident), owners.get(ident), known, revoked)
            for ident, f in by_identity.items()
        ]
        linked = sum(1 for r in rows if r["secret_id"] is not None)
        rows.sort(key=lambda r: r["identity"])  # key order: the unique index fills in sequence
        conn = session.connection()
        _bulk_upsert(conn, rows)
        resolved = 0
        if full:
            looked_for = [
                c.value for c in Confidence if min_confidence is None or c.at_least(min_confidence)
            ]
            result = conn.execute(
                sa.update(t)
                .where(
                    t.target == target,
                    t.state == m.FindingState.OPEN,
                    t.last_seen_at < now,
                    t.confidence.in_(looked_for),
                )
                .values(state=m.FindingState.RESOLVED, resolved_at=now)
            )
            resolved = int(getattr(result, "rowcount", 0) or 0)
        leaks = mark_leaks(
            session,
            target[:1024],
            {r["version_id"] for r in rows if r["version_id"] is not None},
            now,
            leak_policy or LeakPolicy(),
            inv.actor,
        )
        new = len(new_ones)
        ignored = sum(1 for f in by_identity.values() if f.suppressed_by)
        summary = RecordSummary(
            target,
            len(rows),
            new,
            resolved,
            linked,
            time.perf_counter() - started,
            ignored,
            tuple(leaks),
        )
        inv.append_audit(
            session,
            inv.actor,
            "scan.record",
            target,
            detail={k: v for k, v in summary.to_dict().items() if k != "target"},
        )
    return replace(summary, seconds=time.perf_counter() - started)


def _row(
    ident: str,
    f: Finding,
    target: str,
    now: datetime,
    companion_fp: str | None,
    owner_author: tuple[str | None, str | None] | None,
    known: dict[str, _Link],
    revoked: dict[int, tuple[int | None, datetime | None]],
) -> dict[str, Any]:
    loc = f.location
    link = known.get(f.fingerprint) or (known.get(companion_fp) if companion_fp else None)
    code_owner, author = owner_author or (None, None)
    state = m.FindingState.IGNORED.value if f.suppressed_by else m.FindingState.OPEN.value
    reason = f"suppressed ({f.suppressed_by})" if f.suppressed_by else None
    remedy = revoked.get(link.version_id) if link and link.version_id else None
    if remedy is not None:  # a value already revoked: nothing to do about it
        state, reason = m.FindingState.REMEDIATED.value, f"revoked by rotation {remedy[0]}"
    author = author or author_email(loc.author)
    return {
        "identity": ident,
        "target": target[:1024],
        "rule_id": f.rule_id,
        "severity": f.severity.value,
        "confidence": f.confidence.value,
        "source": loc.kind.value,
        "path": loc.path,
        "line": loc.line,
        "column": loc.column,
        "commit": loc.commit,
        "author": author,
        "variable": loc.variable,
        "resource": loc.resource,
        "region": loc.region,
        "account": loc.account,
        "preview": f.preview[:64],
        "fingerprint": f.fingerprint,
        "companion_fingerprint": companion_fp,
        "first_seen_at": now,
        "last_seen_at": now,
        "resolved_at": None,
        "state": state,
        "state_reason": reason,
        "secret_id": link.secret_id if link else None,
        "code_owner": code_owner,
        "owner": (link.owner if link and link.owner else None) or code_owner,
        "version_id": link.version_id if link else None,
        "remediated_at": remedy[1] if remedy else None,
        "remediated_rotation_id": remedy[0] if remedy else None,
    }


def _code_owners(
    by_identity: dict[str, Finding],
    roots: Sequence[Path],
    resolver: OwnershipResolver,
    git_repo: Path | None = None,
) -> dict[str, tuple[str | None, str | None]]:
    """identity -> (code owner, author).

    Files on disk: CODEOWNERS, else ``git blame`` of the line (one blame per file). Findings
    from git history or staged changes: CODEOWNERS of the repository, else the commit author.
    """
    from keyward.scan.model import SourceKind

    per_file: dict[str, set[int]] = {}
    for f in by_identity.values():
        if f.location.kind is SourceKind.FILE and f.location.path:
            per_file.setdefault(f.location.path, set()).add(f.location.line)
    resolved: dict[str, dict[int, tuple[str | None, str | None]]] = {}
    if per_file:
        from keyward.scan.sources.files import display_to_path

        for display, lines in per_file.items():
            path = display_to_path(list(roots) or [Path(".")], display)
            resolved[display] = resolver.resolve(path, sorted(lines))
    top = resolver.repo_of(git_repo / ".keyward-probe") if git_repo is not None else None
    codeowners = resolver.codeowners(top) if top is not None else None
    out: dict[str, tuple[str | None, str | None]] = {}
    for ident, f in by_identity.items():
        loc = f.location
        if loc.kind is SourceKind.FILE:
            hit = resolved.get(loc.path or "", {}).get(loc.line)
            if hit is not None:
                out[ident] = hit
        elif loc.kind in (SourceKind.GIT, SourceKind.STAGED) and loc.path:
            author = author_email(loc.author)
            owner = " ".join(codeowners.owners(loc.path)) if codeowners else ""
            out[ident] = (owner or author, author)
    return out


def record_scan_result(
    config: Config,
    findings: Iterable[Finding],
    *,
    roots: Sequence[Path],
    target: str | None,
    fingerprint_key: bytes,
    database_url: str | None = None,
    full: bool = True,
    blame: bool = True,
    git_repo: Path | None = None,
    min_confidence: Confidence | None = None,
    leak_policy: LeakPolicy | None = None,
) -> RecordSummary:
    """What ``keyward scan --record`` calls: open (and migrate) the inventory and record."""
    from keyward.inventory.db import open_database
    from keyward.inventory.posture import LEAKED, refresh_for

    db = open_database(config, database_url)
    try:
        summary = record_findings(
            db,
            findings,
            target or default_target(roots),
            full=full,
            fingerprinter=Fingerprinter(fingerprint_key),
            roots=roots,
            ownership=OwnershipResolver(blame=blame),
            git_repo=git_repo,
            min_confidence=min_confidence,
            leak_policy=leak_policy,
        )
        refresh_for(db, config, only=LEAKED)  # findings change nothing else
        return summary
    finally:
        db.close()
