"""Text report for people: findings grouped by file, in aligned columns, coloured only when
the output is a terminal (and ``NO_COLOR`` is unset). Every user-supplied string (paths,
variable names, authors, rule ids from user rule files) is shown literally, never read as
markup (:mod:`keyward.core.textout`).

Paths are shown as grep and ripgrep print them: relative to the current directory, starting
with the path given on the command line (``keyward scan flask-3.0.3`` prints
``flask-3.0.3/docs/config.rst``); see :func:`shown_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import IO, TYPE_CHECKING

from keyward.core.text import plural
from keyward.core.textout import make_console, plain
from keyward.scan.model import Finding, Location, Severity, SourceKind
from keyward.scan.result import ScanResult

if TYPE_CHECKING:
    from rich.text import Text

_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
# Kinds whose paths are display paths of the file walk (relative to the scanned root).
_WALKED = frozenset({SourceKind.FILE, SourceKind.IAC})
_GAP = "  "


def shown_path(roots: Sequence[Path], loc: Location) -> str | None:
    """The path of a finding of a file scan as the user typed it: ``root/display`` for one
    directory root (``display`` for ``.``), the root itself for one file root (and its
    archive members: ``dist/x.whl!pkg/conf.py``); other paths unchanged."""
    path = loc.path
    if path is None or loc.kind not in _WALKED or len(roots) != 1:
        return path
    root = roots[0]
    given = root.as_posix()
    if root.is_dir():
        return path if given == "." else f"{given.rstrip('/')}/{path}"
    name = root.name
    if path == name or path.startswith(name + "!"):
        return given + path[len(name) :]
    return path


def _author_name(author: str | None) -> str:
    """``Name <mail>`` -> ``Name``: the e-mail stays in JSON, SARIF and CSV."""
    if not author:
        return ""
    name, _, _ = author.partition(" <")
    return name.strip() or author


def _history(f: Finding) -> str:
    """Where in git history: commit, author, and whether the value is still at HEAD."""
    loc = f.location
    if not loc.commit:
        return ""
    text = f"commit {loc.commit[:12]}"
    author = _author_name(loc.author)
    if author:
        text += f" by {author}"
    if f.still_present is True:
        text += ", still present at HEAD"
    elif f.still_present is False:
        text += ", no longer in HEAD"
    return text


def _where(f: Finding) -> str:
    loc = f.location
    where = f"{loc.line}:{loc.column}" if loc.line else ""
    if loc.variable:
        where = f"{where} ${loc.variable}".strip()
    return where


def _value(f: Finding, reveal: bool) -> str:
    loc = f.location
    value = f.secret if reveal else f.preview
    if f.companion_preview:
        value += f" + {f.companion if reveal else f.companion_preview}"
    cl = f.companion_location
    if cl is not None and cl.line:
        if cl.path == loc.path:
            value += f" (line {cl.line}:{cl.column})"
        else:
            value += f" ({cl.path}:{cl.line})" if cl.path else f" (line {cl.line})"
    return value


def _row(f: Finding, reveal: bool) -> list[tuple[str, str]]:
    """The cells of one finding's line: (text, style). The last cells have no fixed width."""
    verified = f"[{f.verification.value}]" if f.verification else ""
    return [
        (_where(f), ""),
        (f.severity.value, _STYLE[f.severity]),
        (f.rule_id, ""),
        (_value(f, reveal), ""),
        (f"{f.confidence.value} confidence", "dim"),
        (verified, "bold"),
        (_history(f), "dim"),
    ]


_ALIGNED = 5  # the first cells are padded to a common width; the rest follow


def _line(cells: list[tuple[str, str]], widths: list[int]) -> Text:
    from rich.cells import cell_len
    from rich.text import Text

    line = Text(_GAP)
    shown = [(i, c) for i, c in enumerate(cells) if c[0] or i < _ALIGNED]
    for n, (i, (text, style)) in enumerate(shown):
        line.append_text(plain(text, style))
        last = n == len(shown) - 1
        if not last:
            pad = widths[i] - cell_len(text) if i < _ALIGNED else 0
            line.append(" " * max(0, pad) + _GAP)
    line.rstrip()
    return line


def _group(f: Finding, roots: Sequence[Path]) -> str:
    loc = f.location
    path = shown_path(roots, loc)
    if loc.resource and path:  # IaC / manifests: the file, then the function or resource
        return f"{path}  {loc.resource}"
    return loc.resource or path or ("environment" if loc.variable else loc.kind.value)


def render_text(
    result: ScanResult,
    out: IO[str],
    *,
    reveal: bool = False,
    color: bool | None = None,
    verbose: bool = False,
) -> None:
    """``verbose``: the skipped files were listed on stderr, so the summary does not offer to."""
    from rich.cells import cell_len

    console = make_console(out, color=color, soft_wrap=True)
    findings = result.reported
    roots = result.roots
    rows = [_row(f, reveal) for f in findings]
    widths = [max((cell_len(r[i][0]) for r in rows), default=0) for i in range(_ALIGNED)]
    index = 0
    for group, items in groupby(findings, key=lambda f: _group(f, roots)):
        console.print(plain(group, "bold"))
        for _ in items:
            console.print(_line(rows[index], widths))
            index += 1
    for w in result.warnings:
        console.print(plain("warning: ", "yellow") + plain(w))
    st = result.stats
    summary = f"{plural(len(findings), 'finding')} in " + (
        plural(st.files, "file") if st.files or not st.chunks else plural(st.chunks, "item")
    )
    extra = []
    if st.suppressed_inline:
        extra.append(f"{st.suppressed_inline} allowed inline")
    if st.suppressed_baseline:
        extra.append(f"{st.suppressed_baseline} in baseline")
    if st.below_confidence:
        extra.append(
            f"{st.below_confidence} below {result.min_confidence.value} confidence "
            "(--min-confidence low shows them)"
        )
    if st.skipped:
        extra.append(f"{st.skipped} skipped" + ("" if verbose else " (--verbose lists them)"))
    if extra:
        summary += f" ({', '.join(extra)})"
    summary += f", {st.bytes / 1e6:.1f} MB in {st.seconds:.2f}s"
    console.print(plain(summary, "bold" if findings else ""))
