"""``keyward inventory report``: what is overdue, how old things are, who owns what, and
which posture breaches the secrets have.

Every figure is one aggregate query (GROUP BY over indexed columns, age buckets as a CASE over
precomputed thresholds), so the report stays fast at 100,000 secrets and 1,000,000 findings.

Posture: :func:`breach_counts` is the one place the report asks how many secrets have each
:class:`Breach`; every renderer (text, JSON, CSV, HTML) shows what it returns. It reads the
posture :mod:`keyward.inventory.posture` stored (``secret_breaches``): all eight breaches,
counted in one GROUP BY, so the report stays one pass over the secrets and one over the
findings plus that count.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.models import Breach
from keyward.inventory.posture import stored_counts
from keyward.inventory.records import SecretRecord
from keyward.inventory.service import secret_record

# (label, lower bound in days); a secret falls in the last bucket whose bound it reaches.
AGE_BUCKETS: tuple[tuple[str, int], ...] = (
    ("< 30 days", 0),
    ("30-90 days", 30),
    ("90-180 days", 90),
    ("180-365 days", 180),
    ("1-2 years", 365),
    ("> 2 years", 730),
)
NO_OWNER = "(none)"


@dataclass(frozen=True, slots=True)
class BreachCount:
    breach: Breach
    secrets: int  # secrets with it, in the stored posture


def breach_counts(session: Session, now: datetime | None = None) -> tuple[BreachCount, ...]:
    """How many secrets have each breach, one entry per :class:`Breach` in its order, from the
    stored posture (``secret_breaches``, one GROUP BY on its breach index): as of the last
    refresh (after discovery, ``scan --record``, a rotation, a daemon tick, or
    ``inventory posture`` / ``inventory report --refresh``). ``now`` is not used: the posture
    was computed at its refresh."""
    counts = stored_counts(session)
    return tuple(BreachCount(b, counts[b]) for b in Breach)


@dataclass(frozen=True, slots=True)
class GroupRow:
    key: str
    secrets: int
    overdue: int
    open_findings: int


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: datetime
    secrets: int
    overdue_count: int
    overdue: tuple[SecretRecord, ...]  # most overdue first, at most `limit`
    no_policy: int
    age_histogram: tuple[tuple[str, int], ...]
    by_owner: tuple[GroupRow, ...]
    by_team: tuple[GroupRow, ...]
    findings: dict[str, int]
    breaches: tuple[BreachCount, ...] = ()  # from breach_counts()

    def to_dict(self) -> dict[str, Any]:
        now = self.generated_at
        return {
            "generated_at": now.isoformat(),
            "secrets": self.secrets,
            "overdue_count": self.overdue_count,
            "no_policy": self.no_policy,
            "overdue": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "owner": s.owner,
                    "team": s.team,
                    "age_days": s.age_seconds(now) // 86400,
                    "due": s.rotation_due_at.isoformat() if s.rotation_due_at else None,
                    "overdue_days": (now - s.rotation_due_at).days if s.rotation_due_at else None,
                }
                for s in self.overdue
            ],
            "age_histogram": [{"bucket": b, "secrets": n} for b, n in self.age_histogram],
            "by_owner": [_group(g) for g in self.by_owner],
            "by_team": [_group(g) for g in self.by_team],
            "findings": dict(self.findings),
            "breaches": {b.breach.value: b.secrets for b in self.breaches},
        }


def _group(g: GroupRow) -> dict[str, Any]:
    return {
        "key": g.key,
        "secrets": g.secrets,
        "overdue": g.overdue,
        "open_findings": g.open_findings,
    }


def build_report(db: Database, now: datetime | None = None, limit: int = 50) -> Report:
    now = now or m.utcnow()
    s = m.Secret
    overdue_flag = sa.case((s.rotation_due_at < now, 1), else_=0)
    base = sa.func.coalesce(s.last_rotated_at, s.created_at)
    bucket = sa.case(
        *[
            (base <= now - timedelta(days=days), i)
            for i, (_, days) in reversed(list(enumerate(AGE_BUCKETS)))
            if days
        ],
        else_=0,
    ).label("bucket")
    nopolicy_flag = sa.case((s.rotation_due_at.is_(None), 1), else_=0)
    f = m.Finding
    owners: dict[str | None, list[int]] = {}  # owner -> [secrets, overdue]
    teams: dict[str | None, list[int]] = {}
    counts = [0] * len(AGE_BUCKETS)
    total = overdue_count = no_policy = 0
    with db.session() as session:
        # One pass over the secrets: every figure is a sum over these groups.
        grouped = session.execute(
            sa.select(
                s.owner, s.team, bucket, overdue_flag, nopolicy_flag, sa.func.count()
            ).group_by(s.owner, s.team, bucket, overdue_flag, nopolicy_flag)
        )
        for owner, team, b, late, nopol, n in grouped:
            n, late = int(n), int(late)
            total += n
            overdue_count += n * late
            no_policy += n * int(nopol)
            counts[int(b)] += n
            for table, key in ((owners, owner), (teams, team)):
                row = table.setdefault(key, [0, 0])
                row[0] += n
                row[1] += n * late
        overdue = tuple(
            secret_record(x)
            for x in session.scalars(
                sa.select(s)
                .where(s.rotation_due_at < now)
                .order_by(s.rotation_due_at, s.name)
                .limit(limit)
            )
        )
        # One pass over the findings, on the covering index (state, owner).
        open_by_owner: dict[str | None, int] = {}
        states: dict[str, int] = {}
        for state, owner, n in session.execute(
            sa.select(f.state, f.owner, sa.func.count()).group_by(f.state, f.owner)
        ):
            value = m.FindingState(state).value
            states[value] = states.get(value, 0) + int(n)
            if value == m.FindingState.OPEN.value:
                open_by_owner[owner] = int(n)
        breaches = breach_counts(session, now)
    histogram = tuple((label, counts[i]) for i, (label, _) in enumerate(AGE_BUCKETS))
    by_owner = sorted(
        (
            GroupRow(
                k or NO_OWNER,
                owners.get(k, (0, 0))[0],
                owners.get(k, (0, 0))[1],
                open_by_owner.get(k, 0),
            )
            for k in set(owners) | set(open_by_owner)
        ),
        key=lambda g: (-g.overdue, -g.open_findings, -g.secrets, g.key),
    )
    by_team = sorted(
        (GroupRow(k or NO_OWNER, n, o, 0) for k, (n, o) in teams.items()),
        key=lambda g: (-g.overdue, -g.secrets, g.key),
    )
    return Report(
        generated_at=now,
        secrets=int(total),
        overdue_count=int(overdue_count),
        overdue=overdue,
        no_policy=int(no_policy),
        age_histogram=histogram,
        by_owner=tuple(by_owner),
        by_team=tuple(by_team),
        findings={st.value: states.get(st.value, 0) for st in m.FindingState},
        breaches=breaches,
    )


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)


CSV_COLUMNS = ("section", "key", "secrets", "overdue", "open_findings", "owner", "team", "days")


def render_csv(report: Report) -> str:
    """One table: a ``section`` column says what each row is (summary, age, owner, team,
    overdue)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerow(["summary", "secrets", report.secrets, report.overdue_count, "", "", "", ""])
    for state, n in report.findings.items():
        w.writerow(["findings", state, "", "", n, "", "", ""])
    for label, n in report.age_histogram:
        w.writerow(["age", label, n, "", "", "", "", ""])
    for g in report.by_owner:
        w.writerow(["owner", g.key, g.secrets, g.overdue, g.open_findings, "", "", ""])
    for g in report.by_team:
        w.writerow(["team", g.key, g.secrets, g.overdue, "", "", "", ""])
    for b in report.breaches:
        w.writerow(["breach", b.breach.value, b.secrets, *[""] * 5])
    now = report.generated_at
    for s in report.overdue:
        days = (now - s.rotation_due_at).days if s.rotation_due_at else ""
        w.writerow(["overdue", s.name, "", "", "", s.owner or "", s.team or "", days])
    return out.getvalue()


def render_text(report: Report, file: Any, *, color: bool | None = None) -> None:
    """Tables for people; names, owners and teams are shown literally (never as markup)."""
    from rich.table import Table
    from rich.text import Text

    from keyward.core.textout import make_console, plain

    con = make_console(file, color=color)
    f = report.findings
    con.print(
        f"[bold]{report.secrets}[/] {'secret' if report.secrets == 1 else 'secrets'}, "
        f"[bold red]{report.overdue_count}[/] overdue, "
        f"{report.no_policy} without a rotation policy; findings: {f.get('open', 0)} open, "
        f"{f.get('ignored', 0)} ignored, {f.get('resolved', 0)} resolved, "
        f"{f.get('remediated', 0)} remediated"
    )
    if report.overdue:
        t = Table(title=f"Overdue (most overdue first, {len(report.overdue)} shown)")
        for col in ("secret", "kind", "owner", "team", "age (days)", "overdue (days)"):
            t.add_column(col)
        now = report.generated_at
        for s in report.overdue:
            days = (now - s.rotation_due_at).days if s.rotation_due_at else 0
            t.add_row(
                *map(plain, (s.name, s.kind, s.owner, s.team)),
                str(s.age_seconds(now) // 86400),
                str(days),
            )
        con.print(t)
    if report.breaches:
        line = "breaches: " + ", ".join(f"{b.secrets} {b.breach.value}" for b in report.breaches)
        con.print(line)
    hist = Table(title="Age since last rotation")
    hist.add_column("age")
    hist.add_column("secrets", justify="right")
    hist.add_column("")
    peak = max((n for _, n in report.age_histogram), default=0) or 1
    for label, n in report.age_histogram:
        hist.add_row(label, str(n), "#" * max(0, round(30 * n / peak)))
    con.print(hist)
    for title, rows, with_findings in (
        ("By owner", report.by_owner, True),
        ("By team", report.by_team, False),
    ):
        t = Table(title=title)
        t.add_column(title.split()[-1])
        t.add_column("secrets", justify="right")
        t.add_column("overdue", justify="right")
        if with_findings:
            t.add_column("open findings", justify="right")
        for g in rows[:50]:
            cells: list[Text | str] = [plain(g.key), str(g.secrets), str(g.overdue)]
            if with_findings:
                cells.append(str(g.open_findings))
            t.add_row(*cells)
        con.print(t)
