"""The scan report as one self-contained HTML file (``keyward scan --format html``).

Findings are grouped by file (as in the text report, paths as given on the command line),
with their counts by severity and confidence. The findings tables are plain HTML: the whole
report reads with scripts disabled, printed, or offline. A small inline script adds filters
by severity and confidence that update the counts. Only redacted previews are ever written:
the renderer has no way to reveal a value (``--reveal`` is refused with this format).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from itertools import groupby
from typing import IO

from keyward import __version__
from keyward.core.htmlout import esc, page
from keyward.scan.model import Confidence, Finding, Severity
from keyward.scan.report.text import shown_path
from keyward.scan.result import ScanResult

SCRIPT = """
(function () {
  "use strict";
  var form = document.getElementById("filters");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.finding"));
  var files = Array.prototype.slice.call(document.querySelectorAll("section.file"));
  function checked(name) {
    var on = {};
    form.querySelectorAll("input[name=" + name + "]").forEach(function (box) {
      on[box.value] = box.checked;
    });
    return on;
  }
  function apply() {
    var sev = checked("severity"), conf = checked("confidence"), shown = 0;
    rows.forEach(function (row) {
      var visible = sev[row.dataset.severity] && conf[row.dataset.confidence];
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    files.forEach(function (file) {
      var n = file.querySelectorAll("tr.finding:not([hidden])").length;
      file.hidden = n === 0;
      file.querySelector(".file-count").textContent = String(n);
    });
    document.getElementById("shown").textContent = String(shown);
  }
  form.addEventListener("change", apply);
  form.hidden = false;
  apply();
})();
"""


_COLUMNS = (
    '<colgroup><col class="c-line"><col class="c-sev"><col class="c-conf"><col class="c-rule">'
    '<col class="c-preview"><col class="c-details"><col class="c-fp"></colgroup>'
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _details(f: Finding) -> str:
    loc = f.location
    parts: list[str] = []
    if loc.variable:
        parts.append(f"variable <code>{esc(loc.variable)}</code>")
    if loc.resource and loc.path:
        parts.append(f"in <code>{esc(loc.resource)}</code>")
    if f.companion_preview:
        parts.append(f"paired with <code>{esc(f.companion_preview)}</code>")
    if loc.commit:
        text = f"commit <code>{esc(loc.commit[:12])}</code>"
        author = (loc.author or "").partition(" <")[0].strip()
        if author:
            text += f" by {esc(author)}"
        if loc.date:
            text += f" on {esc(loc.date[:10])}"
        if f.still_present is True:
            text += ", still present at HEAD"
        elif f.still_present is False:
            text += ", no longer in HEAD"
        parts.append(text)
    if f.verification:
        parts.append(f"verified: <strong>{esc(f.verification.value)}</strong>")
    return "; ".join(parts)


def _group(f: Finding, result: ScanResult) -> str:
    loc = f.location
    path = shown_path(result.roots, loc)
    return path or loc.resource or ("environment" if loc.variable else loc.kind.value)


def _row(f: Finding) -> str:
    loc = f.location
    where = f"{loc.line}:{loc.column}" if loc.line else ""
    sev, conf = f.severity.value, f.confidence.value
    return (
        f'<tr class="finding" data-severity="{sev}" data-confidence="{conf}">'
        f'<td class="num mono">{esc(where)}</td>'
        f'<td class="sev sev-{sev}">{sev}</td>'
        f"<td>{conf}</td>"
        f'<td><code title="{esc(f.description)}">{esc(f.rule_id)}</code></td>'
        f"<td><code>{esc(f.preview)}</code></td>"
        f"<td>{_details(f)}</td>"
        f'<td class="mono muted">{esc(f.fingerprint[:12])}</td></tr>'
    )


def _filters(findings: list[Finding]) -> str:
    """The filter form (shown by the script; without scripts every finding is listed)."""
    by_sev = Counter(f.severity.value for f in findings)
    by_conf = Counter(f.confidence.value for f in findings)
    boxes = []
    for name, values, counts in (
        ("severity", [s.value for s in Severity], by_sev),
        ("confidence", [c.value for c in Confidence], by_conf),
    ):
        labels = "".join(
            f'<label><input type="checkbox" name="{name}" value="{v}" checked> '
            f'{v} <span class="muted">({counts.get(v, 0)})</span></label>'
            for v in values
        )
        boxes.append(f"<fieldset><legend>{name.capitalize()}</legend>{labels}</fieldset>")
    total = len(findings)
    return (
        f'<form id="filters" hidden>{"".join(boxes)}'
        f'<p><strong id="shown">{total}</strong> of {total} findings shown</p></form>'
    )


def _summary(result: ScanResult, findings: list[Finding]) -> str:
    st = result.stats
    by_sev = Counter(f.severity for f in findings)
    by_conf = Counter(f.confidence for f in findings)
    files = len({_group(f, result) for f in findings})
    cards = [
        ("findings", f'<span id="total">{len(findings)}</span>'),
        ("files with findings", str(files)),
        ("files scanned", str(st.files)),
        ("skipped", str(st.skipped)),
    ]
    head = "".join(
        f'<div class="card"><div class="value">{value}</div><div class="muted">{esc(label)}'
        "</div></div>"
        for label, value in cards
    )
    sev_cells = "".join(
        f'<td class="num sev sev-{s.value}" data-severity="{s.value}">{by_sev.get(s, 0)}</td>'
        for s in Severity
    )
    conf_cells = "".join(
        f'<td class="num" data-confidence="{c.value}">{by_conf.get(c, 0)}</td>' for c in Confidence
    )
    suppressed = []
    if st.suppressed_inline:
        suppressed.append(f"{st.suppressed_inline} allowed inline")
    if st.suppressed_baseline:
        suppressed.append(f"{st.suppressed_baseline} in the baseline")
    if st.below_confidence:
        suppressed.append(
            f"{st.below_confidence} below {result.min_confidence.value} confidence (not listed)"
        )
    note = f'<p class="muted">Not reported: {esc(", ".join(suppressed))}.</p>' if suppressed else ""
    return (
        f'<section id="summary"><div class="cards">{head}</div>'
        '<table class="counts" id="by-severity"><thead><tr>'
        + "".join(f'<th class="num">{s.value}</th>' for s in Severity)
        + f"</tr></thead><tbody><tr>{sev_cells}</tr></tbody></table>"
        '<table class="counts" id="by-confidence"><thead><tr>'
        + "".join(f'<th class="num">{c.value} confidence</th>' for c in Confidence)
        + f"</tr></thead><tbody><tr>{conf_cells}</tr></tbody></table>{note}</section>"
    )


def render_html(result: ScanResult, out: IO[str], *, generated: datetime | None = None) -> None:
    """Write the report; previews only (there is no ``reveal`` here on purpose)."""
    findings = result.reported
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    scanned = ", ".join(p.as_posix() for p in result.roots) or (
        str(result.repository) if result.repository else ""
    )
    body = [
        "<header><h1>keyward scan report</h1>",
        f'<p class="meta">{esc(scanned) + " · " if scanned else ""}'
        f"keyward {esc(__version__)} · {esc(when)} · "
        f"{esc(_plural(result.stats.files, 'file'))}, {result.stats.bytes / 1e6:.1f} MB</p>",
        "</header>",
        _summary(result, findings),
    ]
    body.extend(f'<p class="sev-high">warning: {esc(w)}</p>' for w in result.warnings)
    if not findings:
        body.append('<p id="no-findings">No findings.</p>')
    else:
        body.append(_filters(findings))
        body.append('<main id="findings">')
        for group, items in groupby(findings, key=lambda f: _group(f, result)):
            rows = [_row(f) for f in items]
            body.append(
                f'<section class="file" data-path="{esc(group)}"><h2><code>{esc(group)}</code> '
                f'<span class="muted">(<span class="file-count">{len(rows)}</span>)</span></h2>'
                '<table class="findings">'
                + _COLUMNS
                + '<thead><tr><th class="num">line</th><th>severity</th>'
                "<th>confidence</th><th>rule</th><th>preview</th><th>details</th>"
                "<th>fingerprint</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
                "</section>"
            )
        body.append("</main>")
    out.write(page("keyward scan report", "\n".join(body), script=SCRIPT if findings else ""))
