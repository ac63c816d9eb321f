"""Render a scan result: text (people), JSON, SARIF 2.1.0 (code scanning), CSV, HTML (one
self-contained page)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import IO, Any, assert_never

from keyward import __version__
from keyward.scan.model import Confidence, Finding, Location, Severity, SourceKind
from keyward.scan.result import ScanResult
from keyward.scan.rules import Rule


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    CSV = "csv"
    HTML = "html"


JSON_SCHEMA_VERSION = "1"


def finding_dict(f: Finding, *, reveal: bool = False) -> dict[str, Any]:
    """The JSON form of a finding. Never contains the raw value unless ``reveal``.

    Always ``rule, severity, confidence, path, line, column, preview, fingerprint``; findings
    from other sources than files add only the context they have (commit, variable, resource,
    ...); a paired finding adds its companion's preview and ``companion_location`` (its own
    path, line and column, or variable).
    """
    loc = f.location
    doc: dict[str, Any] = {
        "rule": f.rule_id,
        "severity": f.severity.value,
        "confidence": f.confidence.value,
        "path": loc.path,
        "line": loc.line,
        "column": loc.column,
        "preview": f.preview,
        "fingerprint": f.fingerprint,
    }
    extra = {
        "source": loc.kind.value if loc.kind is not SourceKind.FILE else None,
        "commit": loc.commit,
        "author": loc.author,
        "date": loc.date,
        "variable": loc.variable,
        "resource": loc.resource,
        "region": loc.region,
        "account": loc.account,
        "companion_preview": f.companion_preview,
        "verification": f.verification.value if f.verification else None,
        "still_present": f.still_present,
    }
    doc.update({k: v for k, v in extra.items() if v is not None})
    if f.companion_location is not None:
        doc["companion_location"] = _location_dict(f.companion_location)
    if reveal:
        doc["secret"] = f.secret
        if f.companion:
            doc["companion_secret"] = f.companion
    return doc


def _location_dict(loc: Location) -> dict[str, Any]:
    """Where a companion was found: only the fields its source has."""
    doc: dict[str, Any] = {
        "path": loc.path,
        "line": loc.line or None,
        "column": loc.column or None,
        "variable": loc.variable,
        "resource": loc.resource,
        "commit": loc.commit,
    }
    return {k: v for k, v in doc.items() if v is not None}


def render(
    result: ScanResult,
    fmt: OutputFormat,
    out: IO[str],
    *,
    rules: Sequence[Rule] = (),
    reveal: bool = False,
    color: bool | None = None,
    verbose: bool = False,
) -> None:
    """Write ``result`` to ``out``; only the text format uses ``color`` and ``verbose``. HTML
    never reveals."""
    if fmt is OutputFormat.TEXT:
        from keyward.scan.report.text import render_text

        render_text(result, out, reveal=reveal, color=color, verbose=verbose)
    elif fmt is OutputFormat.JSON:
        render_json(result, out, reveal=reveal)
    elif fmt is OutputFormat.SARIF:
        render_sarif(result, out, rules, reveal=reveal)
    elif fmt is OutputFormat.CSV:
        render_csv(result, out, reveal=reveal)
    elif fmt is OutputFormat.HTML:
        from keyward.scan.report.html import render_html

        if reveal:  # the CLI refuses --reveal first; a report file never holds a raw value
            raise ValueError("the HTML report carries redacted previews only")
        render_html(result, out)
    else:
        assert_never(fmt)


def render_json(result: ScanResult, out: IO[str], *, reveal: bool = False) -> None:
    doc = {
        "version": __version__,
        "findings": [finding_dict(f, reveal=reveal) for f in result.reported],
        "stats": result.stats.as_dict(),
    }
    if result.warnings:  # a region or an account that was skipped
        doc["warnings"] = list(result.warnings)
    json.dump(doc, out, indent=2, ensure_ascii=False)
    out.write("\n")


CSV_FIELDS = (
    "rule", "severity", "confidence", "path", "line", "column", "preview", "fingerprint",
    "source", "variable", "resource", "region", "commit", "verification", "companion_line",
    "companion_column", "account",
)  # fmt: skip


def render_csv(result: ScanResult, out: IO[str], *, reveal: bool = False) -> None:
    fields = [*CSV_FIELDS, "secret", "companion_secret"] if reveal else list(CSV_FIELDS)
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for f in result.reported:
        row = finding_dict(f, reveal=reveal)
        companion = row.pop("companion_location", {})
        row["companion_line"] = companion.get("line")
        row["companion_column"] = companion.get("column")
        writer.writerow(row)


_SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}


# SARIF result.rank (0-100, higher is more likely a true positive) and the rule's precision
# (GitHub code scanning's property) by confidence; a low-confidence result is at most a note.
_SARIF_RANK = {Confidence.HIGH: 90.0, Confidence.MEDIUM: 60.0, Confidence.LOW: 20.0}
_SARIF_PRECISION = {Confidence.HIGH: "very-high", Confidence.MEDIUM: "high", Confidence.LOW: "low"}


def _sarif_level(f: Finding) -> str:
    level = _SARIF_LEVEL[f.severity]
    return "note" if f.confidence is Confidence.LOW else level


SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)


def sarif_doc(result: ScanResult, rules: Iterable[Rule], *, reveal: bool = False) -> dict[str, Any]:
    """A SARIF 2.1.0 log as GitHub code scanning reads it: every rule in
    ``tool.driver.rules``, one result per finding with a physical location and region, and the
    keyed fingerprint in ``partialFingerprints``. Paths are relative to ``%SRCROOT%``, the
    scanned directory."""
    findings = result.reported
    used = {f.rule_id for f in findings}
    known = {r.id: r for r in rules}
    rule_ids = sorted(used | set(known)) if known else sorted(used)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    sarif_rules = []
    for rid in rule_ids:
        r = known.get(rid)
        sev = r.severity if r else next(f.severity for f in findings if f.rule_id == rid)
        # A rule outside the TOML set (detect-secrets plugins, Lambda posture): the finding's
        # own description.
        desc = (
            r.description
            if r
            else next((f.description for f in findings if f.rule_id == rid and f.description), rid)
        )
        sarif_rules.append(
            {
                "id": rid,
                "name": "".join(p.capitalize() for p in rid.split("-")),
                "shortDescription": {"text": desc},
                "fullDescription": {"text": f"{desc} found in source."},
                "help": {
                    "text": f"{desc}. Revoke and rotate the credential, then remove it from the "
                    "source (and its history). If it is a false positive, add "
                    "'keyward: allow' on the line or record it in the baseline.",
                },
                "defaultConfiguration": {"level": _SARIF_LEVEL[sev]},
                "properties": {
                    "tags": ["security", "secret"],
                    "security-severity": _SECURITY_SEVERITY[sev],
                    "precision": _SARIF_PRECISION[_rule_confidence(r, rid, findings)],
                },
            }
        )
    results = []
    for f in findings:
        loc = f.location
        message = f"{f.description or f.rule_id}: {f.preview}"
        if loc.variable:
            message += f" in variable {loc.variable}"
        res: dict[str, Any] = {
            "ruleId": f.rule_id,
            "ruleIndex": index[f.rule_id],
            "level": _sarif_level(f),
            "rank": _SARIF_RANK[f.confidence],
            "message": {"text": message},
            "locations": [{"physicalLocation": _physical_location(loc)}],
            "partialFingerprints": {"keyward/v1": f.fingerprint},
        }
        if f.companion_location is not None:
            companion = f.companion_location
            text = f"paired value {f.companion_preview or ''}".rstrip()
            if companion.variable:
                text += f" in variable {companion.variable}"
            res["relatedLocations"] = [
                {
                    "id": 1,
                    "physicalLocation": _physical_location(companion),
                    "message": {"text": text},
                }
            ]
        props: dict[str, Any] = {"confidence": f.confidence.value}
        if f.verification:
            props["verification"] = f.verification.value
        if loc.commit:
            props["commit"] = loc.commit
        if reveal:
            props["secret"] = f.secret
            if f.companion:
                props["companion_secret"] = f.companion
        res["properties"] = props
        results.append(res)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "keyward",
                "version": __version__,
                "informationUri": "https://keyward.readthedocs.io",
                "rules": sarif_rules,
            }
        },
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    if len(result.roots) == 1 and result.roots[0].exists():
        root = result.roots[0]
        # a file root is shown by its own name: its directory is the base
        base = root.resolve() if root.is_dir() else root.absolute().parent.resolve()
        run["originalUriBaseIds"] = {"%SRCROOT%": {"uri": base.as_uri().rstrip("/") + "/"}}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _rule_confidence(rule: Rule | None, rid: str, findings: Sequence[Finding]) -> Confidence:
    """A rule's confidence for its SARIF precision: from the rule data, else its findings'."""
    if rule is not None:
        from keyward.scan.confidence import rule_confidence

        return rule_confidence(rule)
    return max(
        (f.confidence for f in findings if f.rule_id == rid),
        key=lambda c: c.rank,
        default=Confidence.MEDIUM,
    )


def _physical_location(loc: Location) -> dict[str, Any]:
    artifact_location = _artifact_location(
        loc.path or loc.resource or (f"env:{loc.variable}" if loc.variable else "")
    )
    region: dict[str, Any] = {"startLine": max(loc.line, 1)}
    if loc.column:
        region["startColumn"] = loc.column
    if loc.end_line and loc.end_line >= region["startLine"]:
        region["endLine"] = loc.end_line
    return {"artifactLocation": artifact_location, "region": region}


def _artifact_location(name: str) -> dict[str, str]:
    """A SARIF artifact location: a percent-encoded URI relative to ``%SRCROOT%``, or an
    absolute ``file:`` URI for an absolute path."""
    from pathlib import PurePosixPath
    from urllib.parse import quote

    if name.startswith("/"):
        return {"uri": PurePosixPath(name).as_uri()}
    return {"uri": quote(name, safe="/:@!$&'()*+,;=-._~"), "uriBaseId": "%SRCROOT%"}


def render_sarif(
    result: ScanResult, out: IO[str], rules: Iterable[Rule], *, reveal: bool = False
) -> None:
    json.dump(sarif_doc(result, rules, reveal=reveal), out, indent=2, ensure_ascii=False)
    out.write("\n")


def to_string(result: ScanResult, fmt: OutputFormat, **kw: Any) -> str:
    buf = io.StringIO()
    render(result, fmt, buf, **kw)
    return buf.getvalue()
