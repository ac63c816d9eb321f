"""Values that flow through a scan. Frozen, slotted, and careful with raw secrets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


class Confidence(StrEnum):
    """How sure keyward is that a finding is a real credential (see
    :mod:`keyward.scan.confidence`): ``high`` a provider format with a checksum or verified
    structure, ``medium`` a provider format without one (or a strong generic match), ``low``
    a generic match that looks like a sample (tests, docs, passphrases, encoded text)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _CONFIDENCE_RANK[self]

    def at_least(self, threshold: Confidence) -> bool:
        return self.rank >= threshold.rank


_CONFIDENCE_RANK = {Confidence.HIGH: 2, Confidence.MEDIUM: 1, Confidence.LOW: 0}


class SourceKind(StrEnum):
    FILE = "file"
    GIT = "git"
    STAGED = "staged"
    ENV = "env"
    IAC = "iac"
    LAMBDA = "lambda"


class Verification(StrEnum):
    LIVE = "live"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was found. Which fields are set depends on :attr:`kind`."""

    kind: SourceKind = SourceKind.FILE
    path: str | None = None  # display path (relative to the scanned root) or None
    line: int = 0  # 1-based; 0 when the source has no lines
    column: int = 0  # 1-based
    end_line: int = 0
    commit: str | None = None
    author: str | None = None
    date: str | None = None
    variable: str | None = None  # environment variable name
    resource: str | None = None  # Lambda function ARN, IaC resource / function name
    region: str | None = None
    account: str | None = None  # the AWS account id of a live resource

    def at(self, line: int, column: int, end_line: int | None = None) -> Location:
        return replace(self, line=line, column=column, end_line=end_line or line)

    def display(self) -> str:
        """Human-readable location, e.g. ``src/app.py:12:5`` or ``env:API_TOKEN``."""
        parts: list[str] = []
        if self.resource:
            parts.append(self.resource)
        if self.path:
            p = self.path
            if self.line:
                p += f":{self.line}"
                if self.column:
                    p += f":{self.column}"
            parts.append(p)
        if self.variable:
            parts.append(f"${self.variable}")
        if self.commit:
            parts.append(f"@{self.commit[:12]}")
        return " ".join(parts) or self.kind.value


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of text to scan and where it came from.

    ``first_line`` is the line number of the chunk's first line in its source. ``line_map``,
    when given, maps the chunk's 0-based line index to the real line number (for sources that
    scan selected lines, like added lines of a diff).
    """

    text: str = field(repr=False)  # may hold secrets: never in a repr or a traceback
    location: Location
    first_line: int = 1
    line_map: tuple[int, ...] | None = None
    # The raw bytes are kept only when they equal text.encode() (saves re-encoding)
    data: bytes | None = field(default=None, repr=False, compare=False)

    def source_line(self, index: int) -> int:
        if self.line_map is not None and 0 <= index < len(self.line_map):
            return self.line_map[index]
        return self.first_line + index


@dataclass(frozen=True, slots=True)
class Finding:
    """One secret found. The raw value is kept in memory only (never repr'd or serialised)."""

    rule_id: str
    severity: Severity
    location: Location
    preview: str
    fingerprint: str
    description: str = ""
    secret: str = field(default="", repr=False, compare=False)
    companion: str | None = field(default=None, repr=False, compare=False)
    companion_preview: str | None = None
    # where the companion of a pair was found (its own line and column), when it was matched
    companion_location: Location | None = None
    confidence: Confidence = Confidence.MEDIUM
    verification: Verification | None = None
    suppressed_by: str | None = None  # "inline", "baseline" when suppressed
    introduced: str | None = None  # git: commit that introduced it
    still_present: bool | None = None  # git: whether it is still present at HEAD

    def sort_key(self) -> tuple[str, str, str, int, int, str, str]:
        """File first, then function / resource within it (groups of the text report stay
        together even when two files declare a function of the same name)."""
        loc = self.location
        return (
            loc.kind.value,
            loc.path or loc.resource or loc.variable or "",
            loc.resource or "",
            loc.line,
            loc.column,
            loc.variable or "",
            self.rule_id,
        )

    def with_(self, **changes: object) -> Finding:
        return replace(self, **changes)  # type: ignore[arg-type]
