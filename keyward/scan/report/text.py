"""Text report for people: findings grouped by file, coloured when the output is a terminal."""

from __future__ import annotations

from itertools import groupby
from typing import IO

from keyward.scan.model import Finding, Severity
from keyward.scan.result import ScanResult

_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def _group(f: Finding) -> str:
    loc = f.location
    if loc.resource and loc.path:  # IaC / manifests: the file, then the function or resource
        return f"{loc.path}  {loc.resource}"
    return loc.resource or loc.path or ("environment" if loc.variable else loc.kind.value)


def render_text(
    result: ScanResult,
    out: IO[str],
    *,
    reveal: bool = False,
    color: bool | None = None,
) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(
        file=out,
        force_terminal=color,
        no_color=color is False,
        highlight=False,
        soft_wrap=True,
        width=200 if not out.isatty() else None,
    )
    findings = result.reported
    for group, items in groupby(findings, key=_group):
        console.print(f"[bold]{escape(group)}[/bold]")
        for f in items:
            loc = f.location
            where = f"{loc.line}:{loc.column}" if loc.line else ""
            if loc.variable:
                where = f"{where} ${loc.variable}".strip()
            if loc.commit:
                where += f" commit {loc.commit[:12]}"
                if loc.author:
                    where += f" by {loc.author}"
                if f.still_present is False:
                    where += " (no longer in HEAD)"
            value = f.secret if reveal else f.preview
            pair = ""
            if f.companion_preview:
                pair = f" + {f.companion if reveal else f.companion_preview}"
            if f.companion_location is not None and f.companion_location.line:
                cl = f.companion_location
                pair += (
                    f" (line {cl.line}:{cl.column})"
                    if cl.path == loc.path
                    else (f" ({cl.path}:{cl.line})" if cl.path else f" (line {cl.line})")
                )
            verified = f" [{f.verification.value}]" if f.verification else ""
            console.print(
                f"  {escape(where):<14} [{_STYLE[f.severity]}]{f.severity.value:<8}[/] "
                f"{escape(f.rule_id)}  {escape(value + pair)}{escape(verified)}"
                f"  [dim]{f.confidence.value} confidence[/dim]"
            )
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    st = result.stats
    summary = (
        f"{len(findings)} finding{'s' if len(findings) != 1 else ''}"
        f" in {st.files} file{'s' if st.files != 1 else ''}"
        if st.files or not st.chunks
        else f"{len(findings)} finding{'s' if len(findings) != 1 else ''} in {st.chunks} items"
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
        extra.append(f"{st.skipped} skipped (--verbose lists them)")
    if extra:
        summary += f" ({', '.join(extra)})"
    summary += f", {st.bytes / 1e6:.1f} MB in {st.seconds:.2f}s"
    console.print(f"[bold]{summary}[/bold]" if findings else summary)
