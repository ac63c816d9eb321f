"""Baselines in detect-secrets' JSON format (``.secrets.baseline``).

An entry suppresses a finding when the file, the secret's SHA-1 (``hashed_secret``, the one
unkeyed hash we compute, and only for this format) and the type match. Line numbers are kept
for people but never used for matching, so moved lines cause no churn. Entries written by
detect-secrets itself carry its own type names ("AWS Access Key", "Secret Keyword", ...); those
match by file and hash alone, so a team's existing baseline keeps working.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyward import __version__
from keyward.core.errors import BaselineError
from keyward.core.redaction import sha1_hex
from keyward.scan.model import Finding, Location, SourceKind

if TYPE_CHECKING:
    from keyward.scan.result import ScanResult
    from keyward.scan.rules import Rule

_FORMAT_VERSION = "1.5.0"  # the detect-secrets baseline format version we write

LocationKey = Callable[[Location], str]
_WALKED = frozenset({SourceKind.FILE, SourceKind.IAC})  # kinds whose paths come from FileWalker


def location_key(loc: Location) -> str:
    """The baseline ``filename`` of a location (a path, or a stable name for non-files)."""
    if loc.path:
        return loc.path
    if loc.resource:
        return f"{loc.resource}#{loc.variable}" if loc.variable else loc.resource
    if loc.variable:
        return f"env:{loc.variable}"
    return loc.kind.value


def file_key(roots: Sequence[Path], base_dir: Path, repository: Path | None = None) -> LocationKey:
    """Baseline filenames for a scan of ``roots``: file paths relative to ``base_dir`` (the
    baseline's directory, as detect-secrets writes them when run there), in POSIX form. IaC
    findings come from the same files (their paths are display paths too). Staged changes
    name files relative to ``repository``'s top level, and are keyed the same way."""
    base = os.path.abspath(base_dir)
    top = os.path.abspath(repository) if repository is not None else None

    def key(loc: Location) -> str:
        if loc.kind in _WALKED and loc.path and roots:
            from keyward.scan.sources.files import display_to_path

            path = os.path.abspath(display_to_path(roots, loc.path))
            return Path(os.path.relpath(path, base)).as_posix()
        if loc.kind is SourceKind.STAGED and top is not None:
            full = os.path.join(top, loc.path or "")
            return Path(os.path.relpath(full, base)).as_posix()
        return location_key(loc)

    return key


def apply_baseline(result: ScanResult, baseline: Path | Baseline, rules: Sequence[Rule]) -> None:
    """Mark the result's findings held in the baseline as suppressed, and count again.

    ``baseline`` is a file, or one loaded before the scan (so a bad one fails at once)."""
    from keyward.scan.rules import rule_ids

    loaded = load_baseline(baseline) if isinstance(baseline, Path) else baseline
    where = loaded.path.parent if loaded.path is not None else Path(".")
    loaded.apply(
        result.findings,
        rule_ids(rules),
        key=file_key(result.roots, where, result.repository),
    )
    result.recount()


@dataclass(frozen=True, slots=True)
class BaselineEntry:
    type: str
    filename: str
    hashed_secret: str
    line_number: int | None = None
    is_verified: bool = False
    is_secret: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.type,
            "filename": self.filename,
            "hashed_secret": self.hashed_secret,
            "is_verified": self.is_verified,
        }
        if self.line_number is not None:
            doc["line_number"] = self.line_number
        if self.is_secret is not None:
            doc["is_secret"] = self.is_secret
        return doc


@dataclass(slots=True)
class Baseline:
    entries: list[BaselineEntry] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # other top-level keys, kept on update
    path: Path | None = None
    _index: dict[tuple[str, str], set[str]] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for e in self.entries:
            self._index.setdefault((e.filename, e.hashed_secret), set()).add(e.type)

    def suppresses(
        self,
        finding: Finding,
        keyward_types: Iterable[str] | None = None,
        key: LocationKey = location_key,
    ) -> bool:
        types = self._index.get((key(finding.location), sha1_hex(finding.secret)))
        if not types:
            return False
        if finding.rule_id in types:
            return True
        # detect-secrets' own type names are foreign to keyward: file + hash decide.
        if keyward_types is None:
            return True
        known = keyward_types if isinstance(keyward_types, Set) else set(keyward_types)
        return not types <= known

    def apply(
        self, findings: list[Finding], keyward_types: Iterable[str], key: LocationKey = location_key
    ) -> int:
        """Mark baseline-held findings as suppressed in place; return how many."""
        known = set(keyward_types)
        n = 0
        for i, f in enumerate(findings):
            if f.suppressed_by is None and self.suppresses(f, known, key):
                findings[i] = f.with_(suppressed_by="baseline")
                n += 1
        return n


def load_baseline(path: Path) -> Baseline:
    from keyward.core.userfiles import BASELINE_LIMIT, read_user_text

    text = read_user_text(
        path,
        "baseline",
        limit=BASELINE_LIMIT,
        error=BaselineError,
        missing_hint="Create one with 'keyward baseline create'",
    )
    try:
        doc = json.loads(text)
    except RecursionError:
        raise BaselineError(
            f"The baseline {path} is nested too deeply to be a detect-secrets baseline",
            hint="Recreate it with 'keyward baseline create'",
        ) from None
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"The baseline {path} is not valid JSON (line {exc.lineno}, column {exc.colno}); "
            "it may be truncated",
            hint="Restore it from version control or recreate it with 'keyward baseline create'",
        ) from None
    return parse_baseline(doc, path)


def parse_baseline(doc: object, path: Path | None = None) -> Baseline:
    where = f"The baseline {path}" if path else "The baseline"
    hint = "Expected a detect-secrets baseline with a 'results' object"
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        raise BaselineError(f"{where} is not a detect-secrets baseline", hint=hint)
    entries: list[BaselineEntry] = []
    for filename, items in doc["results"].items():
        if not isinstance(items, list):
            raise BaselineError(f"{where} has a malformed entry for {filename}", hint=hint)
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("hashed_secret"), str):
                raise BaselineError(
                    f"{where} has an entry for {filename} without a hashed_secret", hint=hint
                )
            line = item.get("line_number")
            entries.append(
                BaselineEntry(
                    type=str(item.get("type", "")),
                    filename=str(item.get("filename", filename)),
                    hashed_secret=item["hashed_secret"],
                    line_number=line if isinstance(line, int) else None,
                    is_verified=bool(item.get("is_verified", False)),
                    is_secret=item.get("is_secret")
                    if isinstance(item.get("is_secret"), bool)
                    else None,
                )
            )
    raw = {k: v for k, v in doc.items() if k != "results"}
    return Baseline(entries, raw, path)


def build_baseline(
    findings: Iterable[Finding],
    previous: Baseline | None = None,
    key: LocationKey = location_key,
) -> dict[str, Any]:
    """A baseline document for ``findings``; audit flags of entries still present are kept."""
    old: Mapping[tuple[str, str, str], BaselineEntry] = {}
    by_file_hash: dict[tuple[str, str], BaselineEntry] = {}
    if previous is not None:
        old = {(e.filename, e.hashed_secret, e.type): e for e in previous.entries}
        for e in previous.entries:
            by_file_hash.setdefault((e.filename, e.hashed_secret), e)
    results: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, str, str]] = set()
    for f in findings:
        if f.suppressed_by == "inline":
            continue
        k = (key(f.location), sha1_hex(f.secret), f.rule_id)
        prior = old.get(k)
        if prior is None and previous is not None:
            # a detect-secrets entry for the same file and secret keeps its own type
            prior = by_file_hash.get(k[:2])
            if prior is not None:
                k = (prior.filename, prior.hashed_secret, prior.type)
        if k in seen:
            continue
        seen.add(k)
        entry = BaselineEntry(
            type=k[2],
            filename=k[0],
            hashed_secret=k[1],
            line_number=f.location.line or None,
            is_verified=prior.is_verified if prior else False,
            is_secret=prior.is_secret if prior else None,
        )
        results.setdefault(k[0], []).append(entry.as_dict())
    for items in results.values():
        items.sort(key=lambda d: (d.get("line_number") or 0, d["hashed_secret"], d["type"]))
    doc: dict[str, Any] = {"version": _FORMAT_VERSION}
    if previous is not None:
        doc.update({k: v for k, v in previous.raw.items() if k not in {"version"}})
    doc.setdefault("plugins_used", [{"name": "keyward", "version": __version__}])
    doc.setdefault("filters_used", [])
    doc["results"] = dict(sorted(results.items()))
    from datetime import UTC, datetime

    doc["generated_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return doc


def write_baseline(path: Path, doc: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BaselineError(f"Cannot write the baseline {path}: {exc.strerror}") from None
