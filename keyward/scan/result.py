"""What a scan produced: findings, what was skipped, warnings and counts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from keyward.scan.model import Confidence, Finding
from keyward.scan.sources.base import Skipped


@dataclass(slots=True)
class ScanStats:
    files: int = 0
    bytes: int = 0
    chunks: int = 0
    skipped: int = 0
    findings: int = 0
    suppressed_inline: int = 0
    suppressed_baseline: int = 0
    below_confidence: int = 0  # unsuppressed findings under the scan's --min-confidence
    seconds: float = 0.0
    engine: str = ""
    rules: int = 0
    jobs: int = 1
    # git history only (not in the report's stats)
    commits: int = 0
    binary_blobs: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "chunks": self.chunks,
            "skipped": self.skipped,
            "findings": self.findings,
            "suppressed_inline": self.suppressed_inline,
            "suppressed_baseline": self.suppressed_baseline,
            "below_confidence": self.below_confidence,
            "seconds": round(self.seconds, 3),
            "engine": self.engine,
            "rules": self.rules,
            "jobs": self.jobs,
        }


_ADDED_UP = ("files", "bytes", "chunks", "seconds", "commits", "binary_blobs")


@dataclass(slots=True)
class ScanResult:
    findings: list[Finding] = field(default_factory=list)  # every finding, suppressed or not
    skipped: list[Skipped] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    warnings: list[str] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)  # the scanned paths, as given
    # the work tree's top level of a history or staged scan (baselines of staged scans
    # name files relative to their own directory, found from here)
    repository: Path | None = None
    # a staged scan: the paths whose staged changes were read (from the top level)
    staged_changes: frozenset[str] | None = None
    # findings under this confidence are kept (``findings``) but not reported
    min_confidence: Confidence = Confidence.LOW

    def extend(self, other: ScanResult) -> ScanResult:
        """Add another source's result (e.g. git history or environment) to this one."""
        self.findings.extend(other.findings)
        self.skipped.extend(other.skipped)
        self.warnings.extend(other.warnings)
        for name in _ADDED_UP:
            setattr(self.stats, name, getattr(self.stats, name) + getattr(other.stats, name))
        self.stats.engine = self.stats.engine or other.stats.engine
        self.stats.rules = self.stats.rules or other.stats.rules
        self.stats.jobs = max(self.stats.jobs, other.stats.jobs)
        self.repository = self.repository or other.repository
        if other.staged_changes is not None:
            self.staged_changes = (self.staged_changes or frozenset()) | other.staged_changes
        self.min_confidence = max(self.min_confidence, other.min_confidence, key=lambda c: c.rank)
        self._order()
        return self

    def _order(self) -> None:
        """The stable output order (the same whatever the job count), and the counts."""
        self.findings.sort(key=Finding.sort_key)
        self.skipped.sort(key=_skipped_key)
        self.recount()

    def recount(self) -> None:
        """Count findings by suppression again (after a baseline or verification changed
        them)."""
        self.stats.findings = len(self.reported)
        self.stats.suppressed_inline = sum(1 for f in self.findings if f.suppressed_by == "inline")
        self.stats.suppressed_baseline = sum(
            1 for f in self.findings if f.suppressed_by == "baseline"
        )
        self.stats.below_confidence = sum(
            1
            for f in self.findings
            if f.suppressed_by is None and not f.confidence.at_least(self.min_confidence)
        )
        self.stats.skipped = len(self.skipped)

    @property
    def reported(self) -> list[Finding]:
        """The unsuppressed findings at or above ``min_confidence``, in output order."""
        threshold = self.min_confidence
        return [
            f for f in self.findings if f.suppressed_by is None and f.confidence.at_least(threshold)
        ]

    @property
    def confident(self) -> list[Finding]:
        """Every finding at or above ``min_confidence``, suppressed or not (what a scan
        records in the inventory)."""
        return [f for f in self.findings if f.confidence.at_least(self.min_confidence)]

    def finish(self, started: float) -> ScanResult:
        """Sort into the stable output order and count; record the time since ``started``."""
        self._order()
        self.stats.seconds = time.perf_counter() - started
        return self


def _skipped_key(s: Skipped) -> tuple[str, str]:
    return (s.what, s.reason)
