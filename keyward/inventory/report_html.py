"""``keyward inventory report --format html``: the report as one self-contained page.

Charts are inline SVG with the numbers beside the bars (:func:`keyward.core.htmlout.bar_chart`):
the age histogram, overdue secrets by team and by owner, and the posture breaches (from
:attr:`Report.breaches`, filled by :func:`keyward.inventory.report.breach_counts` from the
stored posture). The page has no script and loads nothing; names,
owners and teams are escaped. The inventory holds no secret value, and neither does this page
(not even a fingerprint).
"""

from __future__ import annotations

from keyward import __version__
from keyward.core.htmlout import bar_chart, esc, page
from keyward.inventory.report import GroupRow, Report

_BREACH_LABELS = {"no-owner": "no owner", "no-policy": "no rotation policy"}
# Rows in a by-team / by-owner chart (the most overdue first); the rest are counted below it.
MAX_GROUPS = 25


def _card(label: str, value: int, element_id: str) -> str:
    return (
        f'<div class="card"><div class="value" id="{element_id}">{value}</div>'
        f'<div class="muted">{esc(label)}</div></div>'
    )


def _overdue_chart(rows: tuple[GroupRow, ...], who: str) -> str:
    late = [g for g in rows if g.overdue]
    if not late:
        return f'<p class="muted" id="overdue-by-{who}-none">No overdue secrets.</p>'
    late.sort(key=lambda g: (-g.overdue, g.key))
    chart = bar_chart(
        [(g.key, g.overdue) for g in late[:MAX_GROUPS]],
        title=f"Overdue secrets by {who}",
        chart_id=f"overdue-by-{who}",
        alert=True,
    )
    rest = len(late) - MAX_GROUPS
    more = f'<p class="muted">and {rest} more {who}s with overdue secrets</p>' if rest > 0 else ""
    return chart + more


def render_html(report: Report) -> str:
    now = report.generated_at
    f = report.findings
    cards = "".join(
        (
            _card("secrets", report.secrets, "secrets"),
            _card("overdue", report.overdue_count, "overdue-count"),
            _card("without a rotation policy", report.no_policy, "no-policy"),
            _card("open findings", f.get("open", 0), "open-findings"),
            _card("remediated findings", f.get("remediated", 0), "remediated-findings"),
        )
    )
    body = [
        "<header><h1>keyward inventory report</h1>",
        f'<p class="meta">keyward {esc(__version__)} · {esc(now.strftime("%Y-%m-%d %H:%M UTC"))}'
        f" · findings: {f.get('open', 0)} open, {f.get('ignored', 0)} ignored, "
        f"{f.get('resolved', 0)} resolved, {f.get('remediated', 0)} remediated</p></header>",
        f'<section id="summary"><div class="cards">{cards}</div></section>',
        '<section id="breaches"><h2>Posture breaches</h2>',
        '<p class="muted">Secrets with each breach.</p>',
        bar_chart(
            [
                (_BREACH_LABELS.get(b.breach.value, b.breach.value), b.secrets)
                for b in report.breaches
            ],
            title="Secrets by posture breach",
            chart_id="breach-chart",
            alert=True,
        ),
        "</section>",
        '<section id="age"><h2>Age since last rotation</h2>',
        bar_chart(report.age_histogram, title="Secrets by age", chart_id="age-histogram"),
        "</section>",
        '<section id="overdue-groups"><h2>Overdue by team</h2>',
        _overdue_chart(report.by_team, "team"),
        "<h2>Overdue by owner</h2>",
        _overdue_chart(report.by_owner, "owner"),
        "</section>",
    ]
    if report.overdue:
        rows = []
        for s in report.overdue:
            days = (now - s.rotation_due_at).days if s.rotation_due_at else 0
            rows.append(
                f"<tr><td><code>{esc(s.name)}</code></td><td>{esc(s.kind)}</td>"
                f"<td>{esc(s.owner or '')}</td><td>{esc(s.team or '')}</td>"
                f'<td class="num">{s.age_seconds(now) // 86400}</td>'
                f'<td class="num">{days}</td></tr>'
            )
        body.append(
            f'<section id="overdue"><h2>Overdue secrets ({len(report.overdue)} most overdue of '
            f"{report.overdue_count})</h2><table><thead><tr><th>secret</th><th>kind</th>"
            '<th>owner</th><th>team</th><th class="num">age (days)</th>'
            '<th class="num">overdue (days)</th></tr></thead><tbody>'
            + "".join(rows)
            + "</tbody></table></section>"
        )
    return page("keyward inventory report", "\n".join(body))
