"""The detection engine: all rules compiled once, run over chunks, validated into findings.

Two matchers decide which rules *can* match a chunk:

* :class:`HyperscanMatcher` compiles every rule regex into one hyperscan database in prefilter
  mode (a superset of what Python's ``re`` matches, no start-of-match tracking, one report per
  rule per chunk). Throughput does not fall as rules are added.
* :class:`KeywordMatcher` is the pure-Python fallback: a rule can match when one of its keywords
  occurs in the lower-cased chunk.

Then, for the rules that fired, Python ``re`` finds exact spans and the ``secret`` group, and the
same validation pipeline runs for both matchers (keywords, entropy, checksum, allowlists,
placeholders), so both engines produce identical findings.
"""

from __future__ import annotations

import hashlib
import logging
import os
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from keyward.core.redaction import Fingerprinter, redact
from keyward.scan import filters
from keyward.scan.entropy import shannon
from keyward.scan.model import Chunk, Finding
from keyward.scan.rules import Rule, RuleSet
from keyward.scan.validators import VALIDATORS

log = logging.getLogger(__name__)

Backend = Literal["auto", "hyperscan", "re"]

INLINE_ALLOW = ("keyward: allow", "keyward:allow", "pragma: allowlist secret")
INLINE_ALLOW_NEXT = "pragma: allowlist nextline secret"


class Matcher(Protocol):
    name: str

    def candidates(self, chunk: Chunk, lowered: _Lazy) -> Iterable[int]:
        """Indexes of rules that may match the chunk."""
        ...


class _Lazy:
    """The lower-cased chunk text, computed at most once and only when needed."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str) -> None:
        self._text = text
        self._value: str | None = None

    def get(self) -> str:
        if self._value is None:
            self._value = self._text.lower()
        return self._value


class KeywordMatcher:
    name = "re"

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._by_keyword: dict[str, list[int]] = {}
        self._always: list[int] = []
        for i, r in enumerate(rules):
            if not r.keywords:
                self._always.append(i)
            for k in r.keywords:
                self._by_keyword.setdefault(k, []).append(i)

    def candidates(self, chunk: Chunk, lowered: _Lazy) -> Iterable[int]:
        text = lowered.get()
        hits = set(self._always)
        for k, idx in self._by_keyword.items():
            if k in text:
                hits.update(idx)
        return sorted(hits)


class HyperscanMatcher:
    name = "hyperscan"

    def __init__(self, rules: Sequence[Rule], cache: Path | None = None) -> None:
        import hyperscan as hs

        self._hs = hs
        flags_all = (
            hs.HS_FLAG_PREFILTER | hs.HS_FLAG_SINGLEMATCH | hs.HS_FLAG_UTF8 | hs.HS_FLAG_ALLOWEMPTY
        )
        patterns: list[bytes] = []
        ids: list[int] = []
        self.unaccelerated: list[int] = []
        for i, r in enumerate(rules):
            expr = r.regex.encode("utf-8")
            if _hs_accepts(hs, expr, flags_all):
                patterns.append(expr)
                ids.append(i)
            else:
                self.unaccelerated.append(i)
        self._fallback = KeywordMatcher([rules[i] for i in self.unaccelerated])
        self._db = _load_or_compile(hs, patterns, ids, flags_all, cache)
        self._scratch = hs.Scratch(self._db) if self._db is not None else None
        self._hits: set[int] = set()
        # Keep a reference to the bound callback for the lifetime of the matcher.
        self._callback = self._on_match

    def _on_match(self, rule_index: int, start: int, end: int, flags: int, ctx: Any) -> None:
        self._hits.add(rule_index)

    def candidates(self, chunk: Chunk, lowered: _Lazy) -> Iterable[int]:
        hits: set[int] = set()
        if self._db is not None:
            data = chunk.data if chunk.data is not None else chunk.text.encode("utf-8", "replace")
            self._hits = hits
            self._db.scan(data, match_event_handler=self._callback, scratch=self._scratch)
        if self.unaccelerated:
            hits.update(self.unaccelerated[j] for j in self._fallback.candidates(chunk, lowered))
        return sorted(hits)


def _hs_accepts(hs: Any, expr: bytes, flags: int) -> bool:
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    try:
        db.compile(expressions=[expr], ids=[0], elements=1, flags=[flags])
    except hs.error:
        return False
    return True


def _load_or_compile(
    hs: Any, patterns: list[bytes], ids: list[int], flags: int, cache: Path | None
) -> Any:
    if not patterns:
        return None
    h = hashlib.sha256(f"{hs.__version__}|{flags}".encode())
    for i, p in zip(ids, patterns, strict=True):
        h.update(f"{i}:".encode() + p + b"\0")
    cache_file = cache / f"hs-{h.hexdigest()[:32]}.db" if cache else None
    if cache_file is not None:
        try:
            return hs.loadb(cache_file.read_bytes(), hs.HS_MODE_BLOCK)
        except FileNotFoundError:
            pass
        except (OSError, hs.error) as exc:
            log.debug("ignoring unusable hyperscan cache %s: %s", cache_file, exc)
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=patterns, ids=ids, elements=len(patterns), flags=[flags] * len(ids))
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(hs.dumpb(db))
            tmp.replace(cache_file)
        except OSError as exc:
            log.debug("cannot cache hyperscan database at %s: %s", cache_file, exc)
    return db


def hyperscan_available() -> bool:
    try:
        import hyperscan  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(slots=True)
class _Match:
    rule: Rule
    start: int  # secret span in chunk text
    end: int
    secret: str


class Engine:
    """Runs a :class:`RuleSet` over chunks and yields validated findings."""

    def __init__(
        self,
        rules: RuleSet,
        fingerprinter: Fingerprinter,
        *,
        backend: Backend = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        self.rules = rules.rules
        self._fp = fingerprinter
        self._index = {r.id: r for r in self.rules}
        if backend == "auto":
            backend = "hyperscan" if hyperscan_available() else "re"
        self.matcher: Matcher
        if backend == "hyperscan":
            self.matcher = HyperscanMatcher(self.rules, cache_dir)
        else:
            self.matcher = KeywordMatcher(self.rules)
        self.backend: str = self.matcher.name

    def scan(self, chunk: Chunk) -> list[Finding]:
        """All findings in the chunk; inline-allowed ones carry ``suppressed_by="inline"``."""
        text = chunk.text
        if not text:
            return []
        lowered = _Lazy(text)
        path = chunk.location.path
        matches: list[_Match] = []
        for i in self.matcher.candidates(chunk, lowered):
            rule = self.rules[i]
            if rule.keywords:
                low = lowered.get()
                if not any(k in low for k in rule.keywords):
                    continue
            if rule.path_allowed(path):
                continue
            matches.extend(self._rule_matches(rule, text))
        if not matches:
            return []
        matches = _resolve_overlaps(matches)
        lines = _LineIndex(text)
        findings = [self._finding(chunk, m, lines) for m in matches]
        findings = self._pair(findings, matches)
        return findings

    def _rule_matches(self, rule: Rule, text: str) -> Iterable[_Match]:
        validator = VALIDATORS[rule.validator] if rule.validator else None
        for m in rule.pattern.finditer(text):
            secret = m.group("secret")
            if not secret:
                continue
            if rule.entropy and shannon(secret) < rule.entropy:
                continue
            if validator is not None and not validator(secret):
                continue
            if any(a.search(secret) for a in rule.allow_patterns):
                continue
            if rule.generic:
                line_start = text.rfind("\n", 0, m.start("secret")) + 1
                line_end = text.find("\n", m.end("secret"))
                line = text[line_start : line_end if line_end >= 0 else len(text)]
                if filters.generic_reject(secret, line, None) is not None:
                    continue
            elif filters.is_placeholder(secret):
                continue
            yield _Match(rule, m.start("secret"), m.end("secret"), secret)

    def _finding(self, chunk: Chunk, m: _Match, lines: _LineIndex) -> Finding:
        line_idx, column = lines.position(m.start)
        end_idx, _ = lines.position(max(m.end - 1, m.start))
        loc = chunk.location.at(chunk.source_line(line_idx), column + 1, chunk.source_line(end_idx))
        suppressed = None
        if lines.allowed(line_idx) or (end_idx != line_idx and lines.allowed(end_idx)):
            suppressed = "inline"
        return Finding(
            rule_id=m.rule.id,
            severity=m.rule.severity,
            location=loc,
            preview=redact(m.secret),
            fingerprint=self._fp.fingerprint(m.secret),
            description=m.rule.description,
            secret=m.secret,
            suppressed_by=suppressed,
        )

    def _pair(self, findings: list[Finding], matches: list[_Match]) -> list[Finding]:
        """Merge findings whose rule pairs with another (e.g. AWS key id + secret key)."""
        if not any(m.rule.pair for m in matches):
            return findings
        used: set[int] = set()
        out: list[Finding] = list(findings)
        for i, m in enumerate(matches):
            pair = m.rule.pair
            if pair is None:
                continue
            best: int | None = None
            for j, other in enumerate(matches):
                if j in used or other.rule.id != pair.rule:
                    continue
                dist = abs(findings[j].location.line - findings[i].location.line)
                if dist <= pair.lines and (
                    best is None
                    or dist < abs(findings[best].location.line - findings[i].location.line)
                ):
                    best = j
            if best is not None:
                used.add(best)
                out[i] = findings[i].with_(
                    companion=matches[best].secret,
                    companion_preview=findings[best].preview,
                    severity=max(
                        findings[i].severity, findings[best].severity, key=lambda s: s.rank
                    ),
                )
        return [f for k, f in enumerate(out) if k not in used]


def _resolve_overlaps(matches: list[_Match]) -> list[_Match]:
    """Where spans overlap, keep the most specific rule (priority, then longer, then id)."""
    matches.sort(key=lambda m: (m.start, -m.end, -m.rule.priority, m.rule.id))
    kept: list[_Match] = []
    for m in matches:
        clash = next((k for k in kept if m.start < k.end and k.start < m.end), None)
        if clash is None:
            kept.append(m)
            continue
        if (m.rule.priority, m.end - m.start) > (clash.rule.priority, clash.end - clash.start):
            kept[kept.index(clash)] = m
    kept.sort(key=lambda m: (m.start, m.rule.id))
    return kept


class _LineIndex:
    """Offsets of line starts, built once per chunk that has matches."""

    __slots__ = ("_starts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        starts = [0]
        find = text.find
        pos = find("\n")
        while pos >= 0:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        self._starts = starts

    def position(self, offset: int) -> tuple[int, int]:
        idx = bisect_right(self._starts, offset) - 1
        return idx, offset - self._starts[idx]

    def line(self, idx: int) -> str:
        if idx < 0 or idx >= len(self._starts):
            return ""
        start = self._starts[idx]
        end = self._starts[idx + 1] - 1 if idx + 1 < len(self._starts) else len(self._text)
        return self._text[start:end]

    def allowed(self, idx: int) -> bool:
        line = self.line(idx)
        if any(tag in line for tag in INLINE_ALLOW):
            return True
        return INLINE_ALLOW_NEXT in self.line(idx - 1)
