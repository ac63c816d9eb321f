"""Self-contained HTML pages for reports (``scan --format html``, ``inventory report --format
html``): one file, readable offline, that loads nothing.

* Every user-supplied string goes through :func:`esc` (``html.escape`` with quotes), so a path
  like ``<img src=x onerror=…>.py`` is text.
* The page's Content-Security-Policy allows nothing from anywhere (``default-src 'none'``)
  except its own inline style and script, named by their SHA-256: no request can leave the
  page, not even one an injected tag would make.
* Charts are inline SVG with their numbers written beside the bars (:func:`bar_chart`), so they
  read the same printed, without scripts, and to a screen reader.

Only the standard library: the renderers that use it stay cheap to import.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence

STYLE = """
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de;
  --critical: #8b0000; --high: #cf222e; --medium: #bf8700; --low: #0969da; --info: #57606a;
  --bar: #0969da; --bar-alert: #cf222e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  margin: 0 auto; max-width: 1200px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
h3 { font-size: 14px; margin: 18px 0 6px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; overflow-wrap: anywhere; }
.meta, .muted { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 4px 0 12px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; }
th { font-weight: 600; background: #f6f8fa; }
table.counts { width: auto; } table.counts th, table.counts td { min-width: 110px; }
table.findings { table-layout: fixed; }
table.findings col.c-line { width: 80px; } table.findings col.c-sev { width: 90px; }
table.findings col.c-conf { width: 100px; } table.findings col.c-rule { width: 24%; }
table.findings col.c-preview { width: 20%; } table.findings col.c-fp { width: 120px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.sev { font-weight: 600; }
.sev-critical { color: var(--critical); } .sev-high { color: var(--high); }
.sev-medium { color: var(--medium); } .sev-low { color: var(--low); }
.sev-info { color: var(--info); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card .value { font-size: 22px; font-weight: 600; }
fieldset { border: 1px solid var(--line); border-radius: 6px; margin: 8px 12px 8px 0;
  display: inline-block; }
label { margin-right: 10px; white-space: nowrap; }
.chart { margin: 4px 0 12px; }
.chart text { font: 12px system-ui, sans-serif; fill: var(--fg); }
.chart .bar { fill: var(--bar); } .chart .alert { fill: var(--bar-alert); }
.chart .none { fill: var(--muted); font-style: italic; }
[hidden] { display: none !important; }
@media print { #filters { display: none !important; } }
"""


def esc(value: object) -> str:
    """Text (or an attribute value) for HTML: nothing in it is markup."""
    return html.escape("" if value is None else str(value), quote=True)


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def page(title: str, body: str, *, script: str = "") -> str:
    """A whole HTML document; ``body`` must already be escaped where it holds user data."""
    policy = [
        "default-src 'none'",
        f"style-src '{_sha256(STYLE)}'",
        "img-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
    if script:
        policy.append(f"script-src '{_sha256(script)}'")
    script_tag = f"<script>{script}</script>\n" if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{"; ".join(policy)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n{script_tag}</body>\n</html>\n"
    )


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def bar_chart(
    rows: Sequence[tuple[str, int | None]],
    *,
    title: str,
    chart_id: str,
    alert: bool = False,
    missing: str = "not computed yet",
) -> str:
    """A horizontal bar chart as inline SVG: one row per ``(label, value)``, the value written
    beside its bar (``None``: ``missing`` instead of a bar). Labels longer than the label column
    are shortened, with the whole label in the row's ``<title>`` tooltip."""
    label_w, bar_w, row_h, num_w = 210, 380, 24, 150
    width = label_w + bar_w + num_w
    height = max(1, len(rows)) * row_h + 6
    peak = max((v for _, v in rows if v), default=0) or 1
    parts = [
        f'<svg class="chart" id="{esc(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{esc(title)}</title>",
    ]
    for i, (label, value) in enumerate(rows):
        y = i * row_h
        parts.append(f'<g class="row" data-label="{esc(label)}">')
        parts.append(f"<title>{esc(label)}: {esc('-' if value is None else value)}</title>")
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{esc(_short(label))}</text>'
        )
        if value is None:
            parts.append(f'<text class="none" x="{label_w}" y="{y + 16}">{esc(missing)}</text>')
        else:
            w = round(bar_w * value / peak) if value else 0
            if value and w < 2:
                w = 2
            cls = "bar alert" if alert and value else "bar"
            parts.append(
                f'<rect class="{cls}" x="{label_w}" y="{y + 5}" width="{w}" height="14" rx="2"/>'
            )
            parts.append(
                f'<text class="num" x="{label_w + w + 6}" y="{y + 16}" '
                f'data-value="{value}">{value}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
