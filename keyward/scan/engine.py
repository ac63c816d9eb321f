"""The detection engine: all rules compiled once, run over chunks, validated into findings.

Two matchers decide which rules *can* match a chunk:

* :class:`HyperscanMatcher`: one pass of a database of every rule's keywords (caseless
  literals) names the rules whose keywords occur; one pass of a union database of every
  provider rule's regex (prefilter mode: a superset of what Python's ``re`` matches, no
  start-of-match tracking, one report per rule) confirms which provider rules can match.
  Generic rules skip the confirmation and get their keywords' start offsets from a third,
  occurrence-reporting pass. Context rules (:mod:`keyward.scan.context`) skip it too: their
  keywords are rare provider names, whose positions Python finds in the chunks where the
  keyword pass saw them, so hundreds of them add literals to the keyword database and
  nothing to the union. Throughput does not fall as provider rules are added.
* :class:`KeywordMatcher` is the pure-Python fallback: a rule can match when one of its
  keywords occurs in the lower-cased chunk.

Then Python ``re`` finds exact spans and the ``secret`` group (generic and context rules only
at their keywords' starts), and the same validation pipeline runs for both matchers (entropy,
checksum, allowlists, placeholders, generic filters), so both engines produce identical
findings (a test holds them to it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal, Protocol

from keyward.core.errors import ConfigError
from keyward.core.lazylog import logger
from keyward.core.lazyre import lazy
from keyward.core.redaction import Fingerprinter, redact
from keyward.scan import context, filters
from keyward.scan.confidence import (
    asserts_on,
    assess,
    is_sample_path,
    judge,
    judged_by_value,
    warm_word_ranks,
)
from keyward.scan.entropy import shannon
from keyward.scan.model import Chunk, Confidence, Finding
from keyward.scan.plan import COMPANION_TAG, MatchPlan
from keyward.scan.plan import longest_literal as _longest_literal  # noqa: F401  (tests)
from keyward.scan.rules import Rule, RuleSet
from keyward.scan.validators import VALIDATORS
from keyward.scan.windows import Window

log = logger(__name__)

Backend = Literal["auto", "hyperscan", "re"]

INLINE_ALLOW = ("keyward: allow", "keyward:allow", "pragma: allowlist secret")
INLINE_ALLOW_NEXT = "pragma: allowlist nextline secret"
__all__ = ["COMPANION_TAG", "Engine", "MatchPlan", "line_allows"]
_LINE_WINDOW = 240  # context around a generic rule's value handed to filters.generic_reject


class Matcher(Protocol):
    name: str

    def candidates(self, chunk: Chunk, lowered: _Lazy) -> Iterable[int]:
        """Indexes of rules that may match the chunk."""
        ...

    def keyword_starts(self, chunk: Chunk, keywords: Sequence[str]) -> set[int] | None:
        """Offsets in ``chunk.text`` where one of ``keywords`` starts (ASCII-caseless), or
        None when this matcher cannot tell cheaply (the caller then finds them itself)."""
        ...

    def context_keyword_spans(self, chunk: Chunk, keywords: Sequence[str]) -> dict[int, int] | None:
        """Where one of a context rule's ``keywords`` starts in ``chunk.text`` and the length
        of the longest one starting there, or None when the caller must find them itself."""
        ...


class _Lazy:
    """The lower-cased chunk text, and its UTF-8 bytes, each computed at most once and only
    when needed."""

    __slots__ = ("_data", "_text", "_value")

    def __init__(self, text: str) -> None:
        self._text = text
        self._value: str | None = None
        self._data: bytes | None = None

    def data(self) -> bytes:
        """The text in UTF-8 (lone surrogates kept)."""
        if self._data is None:
            self._data = _utf8(self._text)
        return self._data

    def get(self) -> str:
        """Lower-cased in ASCII only (as hyperscan's caseless matching is), so offsets in it
        are offsets in the text and both engines agree on every keyword occurrence."""
        if self._value is None:
            text = self._text
            self._value = (
                text.lower()
                if text.isascii()
                else self.data().lower().decode("utf-8", "surrogatepass")
            )
        return self._value


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _to_char_offsets(data: bytes, starts: dict[str, set[int]]) -> dict[str, set[int]]:
    """Map byte offsets (all at ASCII characters) in UTF-8 ``data`` to character offsets."""
    offsets = sorted({b for found in starts.values() for b in found})
    mapping: dict[int, int] = {}
    prev_byte = prev_char = 0
    for b in offsets:
        prev_char += len(data[prev_byte:b].decode("utf-8", "surrogatepass"))
        prev_byte = b
        mapping[b] = prev_char
    return {k: {mapping[b] for b in found} for k, found in starts.items()}


# Characters that make up keywords, except space, quotes and "=" (which would make whole lines
# one token): a keyword made only of these lies inside one maximal run of them.
_TOKEN = lazy(r"[a-z0-9_.\-+/:$~]+")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-+/:$~")
_MEMO_TOKEN = 64  # longer tokens (base64 blobs, long paths) are rarely seen twice
_MEMO_SIZE = 250_000  # distinct tokens remembered per process before starting over
# UTF-8 bytes to tokens: ASCII letters lower-cased, token characters kept, all else a space
# (non-ASCII bytes too: keywords are ASCII), so ``bytes.split`` cuts the tokens in C
_TOKEN_TABLE = bytes(
    (c | 0x20 if 65 <= c <= 90 else c) if c < 128 and chr(c).lower() in _TOKEN_CHARS else 32
    for c in range(256)
)


def _plus_one(n: int) -> int:
    return n + 1


def _trie_pattern(words: Iterable[str]) -> str:
    """An alternation of ``words`` as a trie, longest first: at any position it matches the
    longest word that starts there (``re`` tries a greedy ``(?:...)?`` before skipping it)."""
    root: dict[str, Any] = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(root)


class KeywordMatcher:
    """The pure-Python prefilter: a rule can match when one of its keywords occurs in the
    lower-cased chunk (exactly what hyperscan's caseless keyword pass says).

    Searching each of ~1,400 keywords in every chunk cost a hundred times what hyperscan
    does. Instead, the chunk is cut once (in C) into its distinct *tokens*, the maximal runs
    of the characters keywords are made of, and a keyword of only those characters occurs
    exactly when it occurs inside a token. Which keywords each token holds is found once per
    distinct token with one trie regex (every start position, the longest word there, and the
    shorter words it begins with) and remembered, so code that repeats its identifiers costs a
    dictionary lookup per distinct token. The few keywords with other characters (``begin rsa
    private key``, ``module "``) are searched in the chunk only when each of their runs of
    token characters occurs somewhere.
    """

    name = "re"

    def __init__(self, rules: Sequence[Rule], plan: MatchPlan | None = None) -> None:
        plan = plan if plan is not None else MatchPlan.of(rules)
        self._always: list[int] = list(plan.always)
        # Words looked for inside tokens: every token-character keyword, and the runs of
        # token characters of every other keyword (a necessary condition for it).
        words: set[str] = set()
        self._rules_of: dict[str, tuple[int, ...]] = {}
        self._others: list[tuple[str, frozenset[str], tuple[int, ...]]] = []
        for k, idx in zip(plan.keywords, plan.keyword_rules, strict=True):
            if _TOKEN_CHARS.issuperset(k):
                words.add(k)
                self._rules_of[k] = tuple(idx)
            else:
                runs = frozenset(_TOKEN.findall(k))
                words.update(runs)
                self._others.append((k, runs, tuple(idx)))
        # the longest word at a position (searched from each found word's start + 1: every
        # word start, and re skips ahead to the words' first characters, which a lookahead
        # at every position did not)
        self._words_at = re.compile(_trie_pattern(words).encode("ascii")) if words else None
        # the words that are prefixes of each word (itself included): all words starting
        # where the trie found the longest one
        self._prefixes = {
            w.encode("ascii"): tuple(w[:n] for n in range(1, len(w) + 1) if w[:n] in words)
            for w in words
        }
        self._seen: set[bytes] = set()  # tokens whose words are known (bounded: see below)
        self._holding: dict[bytes, set[str]] = {}  # those of them that hold a word
        self._holders: set[bytes] = set()  # the same tokens, as a set (C intersections)

    def candidates(self, chunk: Chunk, lowered: _Lazy) -> Iterable[int]:
        hits = set(self._always)
        found: set[str] = set()
        if self._words_at is not None:
            # the chunk's distinct tokens, lower-cased (ASCII), cut in C
            tokens = set(lowered.data().translate(_TOKEN_TABLE).split())
            seen, holding, holders = self._seen, self._holding, self._holders
            # set operations run in C: Python loops only over word holders and the words the
            # trie finds in the new tokens
            for token in tokens & holders:
                found.update(holding[token])
            new = tokens.difference(seen)
            if new:
                batch = list(new)
                # one search of all new tokens, one per line (no word spans a line break)
                ends = list(accumulate(map(_plus_one, map(len, batch))))
                prefixes = self._prefixes
                held: dict[int, set[str]] = {}
                blob = b"\n".join(batch)
                search = self._words_at.search
                m = search(blob)
                while m is not None:
                    at = m.start()
                    t = bisect_right(ends, at)
                    words = held.get(t)
                    if words is None:
                        words = held[t] = set()
                    words.update(prefixes[m.group()])
                    m = search(blob, at + 1)
                for words in held.values():
                    found.update(words)
                if len(seen) + len(new) > _MEMO_SIZE:
                    seen.clear()
                    holding.clear()
                    holders.clear()
                if max(map(len, batch)) <= _MEMO_TOKEN:
                    seen.update(batch)
                else:
                    seen.update(t for t in batch if len(t) <= _MEMO_TOKEN)
                for t, words in held.items():
                    token = batch[t]
                    if len(token) <= _MEMO_TOKEN:
                        holding[token] = words
                        holders.add(token)
        rules_of = self._rules_of
        for w in found:
            idx = rules_of.get(w)
            if idx is not None:
                hits.update(idx)
        if self._others:
            text = lowered.get()
            for k, runs, idx in self._others:
                if runs <= found and k in text:
                    hits.update(idx)
        return sorted(hits)

    def keyword_starts(self, chunk: Chunk, keywords: Sequence[str]) -> set[int] | None:
        return None

    def context_keyword_spans(self, chunk: Chunk, keywords: Sequence[str]) -> dict[int, int] | None:
        return None


class HyperscanMatcher:
    """Hyperscan decides which rules can match a chunk, in at most two passes over its bytes.

    1. One database of every rule's keywords (caseless literals) names the rules whose keywords
       occur, exactly like the keyword prefilter but in a single pass.
    2. If a provider (non-generic) rule is among them, one union database of every provider
       rule's regex, compiled in prefilter mode (a superset of what ``re`` matches, no
       start-of-match tracking, one report per rule), confirms which of them can match. When the
       only candidates are provider rules without keywords (candidates in every chunk), a small
       union of just those rules does it instead.

    Generic rules skip the second pass: they are tried only at their keywords' positions
    (``filters.generic_matches``), which is what their keywords already established; their
    large keyword-in-context patterns are also what made a union of *all* rules take minutes
    and gigabytes to compile, while the provider union compiles in about a second. Both
    databases are built the first time they are needed and cached on disk, keyed by a hash of
    the hyperscan version, the flags and the patterns; a cache file that is unreadable,
    truncated or corrupt is ignored and rebuilt. A regex hyperscan rejects (found by compiling
    rules one by one, only when the union fails) runs through ``re`` after the keyword pass.
    """

    name = "hyperscan"

    def __init__(
        self,
        rules: Sequence[Rule],
        cache: Path | None = None,
        plan: MatchPlan | None = None,
        *,
        short: bool = False,
    ) -> None:
        import hyperscan as hs

        self._hs = hs
        self._cache = cache
        self.loaded = 0  # databases read from the cache by this matcher
        self.compiled = 0  # databases compiled by this matcher
        self.cache_files: list[Path] = []
        self._regex_flags = (
            hs.HS_FLAG_PREFILTER | hs.HS_FLAG_SINGLEMATCH | hs.HS_FLAG_UTF8 | hs.HS_FLAG_ALLOWEMPTY
        )
        self._rules = rules
        plan = plan if plan is not None else MatchPlan.of(rules)
        # the cache file names the plan brings, when they are for this hyperscan
        self._db_files = plan.db_files if plan.hs_version == _hs_version(hs) else {}
        self._always: list[int] = list(plan.always)
        self._generic = plan.generic
        # Rules tried only at their keywords' positions, never in the provider union.
        self._anchored = plan.anchored
        keywords = plan.keywords
        self._keyword_rules = plan.keyword_rules
        self._keyword_db: Any = None
        self._keyword_scratch: Any = None
        if keywords:
            self._keyword_db = self._database(
                lambda: _literals(keywords), hs.HS_FLAG_CASELESS | hs.HS_FLAG_SINGLEMATCH, "k"
            )
            self._keyword_scratch = hs.Scratch(self._keyword_db)
        # Every occurrence of the generic rules' keywords, for ASCII chunks (built lazily).
        self._generic_keywords = plan.generic_keywords
        self._generic_keyword_set = frozenset(self._generic_keywords)
        self._generic_kw: Any = _UNSET
        self._starts_chunk: Chunk | None = None
        self._starts: dict[str, set[int]] = {}
        self._on_generic_keyword = self._generic_keyword_hit
        # Every occurrence of the context rules' keywords, scanned only for chunks where a
        # context rule is a candidate (built lazily).
        self._context_keywords = plan.context_keywords
        self._context_kw: Any = _UNSET
        self._context_chunk: Chunk | None = None
        self._context_starts: dict[str, list[int]] = {}
        self._on_context_keyword = self._context_keyword_hit
        # The provider union: (database, scratch, rule index of each pattern id), built lazily.
        self._union: Any = _UNSET
        # A short process (the pre-commit hook) matching a few small chunks: while the union
        # is not loaded, a small chunk with few provider candidates is left to ``re`` alone,
        # as the ``re`` engine does (loading the union costs more than those few regexes).
        self._short = short
        # Provider rules without keywords (a format distinctive by its structure alone) are
        # candidates in every chunk; where no keyword named another provider rule, a union of
        # just them confirms them, so those chunks skip the full provider union.
        self._keywordless = plan.keywordless
        self._keywordless_union: Any = _UNSET
        # Provider rules with keywords but no literal of 3 characters (``\\b[a-z2-7]{52}\\b``)
        # would make hyperscan check the whole union at every position: each gets a database
        # of its own, scanned only in chunks where its keywords occur.
        self._isolated = plan.isolated
        self._isolated_dbs: dict[int, Any] = {}
        self._rejected: frozenset[int] = frozenset()
        self._hits: set[int] = set()
        # Keep references to the bound callbacks for the lifetime of the matcher.
        self._on_keyword = self._keyword_hit
        self._on_rule = self._rule_hit

    @property
    def from_cache(self) -> bool:
        """True when every database this matcher used so far came from the cache."""
        return self.compiled == 0

    @property
    def unaccelerated(self) -> list[int]:
        """Provider rules hyperscan rejected (known once the union was first needed)."""
        return sorted(self._rejected | {i for i, db in self._isolated_dbs.items() if db is None})

    def _isolated_db(self, i: int) -> Any:
        """The database of one isolated rule: (database, scratch), or None when rejected."""
        if i not in self._isolated_dbs:
            db = self._database(
                lambda: [_prefilter_pattern(self._rules[i].regex)], self._regex_flags, "i", f"i{i}"
            )
            self._isolated_dbs[i] = None if db is None else (db, self._hs.Scratch(db))
        return self._isolated_dbs[i]

    def prepare(self) -> None:
        """Load or compile every database now (to warm the cache, or once in a parent process
        before it forks workers, which then share them instead of each building its own)."""
        self._provider_union()
        self._keywordless_only_union()
        for i in self._isolated:
            self._isolated_db(i)
        self._generic_keyword_db()
        self._context_keyword_db()

    def _generic_keyword_db(self) -> Any:
        if self._generic_kw is _UNSET:
            hs = self._hs
            words = self._generic_keywords
            db = (
                self._database(lambda: _literals(words), hs.HS_FLAG_CASELESS, "g")
                if words
                else None
            )
            self._generic_kw = None if db is None else (db, hs.Scratch(db))
        return self._generic_kw

    def _context_keyword_db(self) -> Any:
        if self._context_kw is _UNSET:
            hs = self._hs
            words = self._context_keywords
            db = (
                self._database(lambda: _literals(words), hs.HS_FLAG_CASELESS, "c")
                if words
                else None
            )
            self._context_kw = None if db is None else (db, hs.Scratch(db))
        return self._context_kw

    def _keywordless_only_union(self) -> Any:
        if self._keywordless_union is _UNSET:
            ids = sorted(self._keywordless)
            db = None
            if ids:
                db = self._database(
                    lambda: [_prefilter_pattern(self._rules[i].regex) for i in ids],
                    self._regex_flags,
                    "a",
                )
            self._keywordless_union = None if db is None else (db, self._hs.Scratch(db), ids)
        return self._keywordless_union

    def _provider_union(self) -> Any:
        if self._union is _UNSET:
            hs = self._hs
            ids = [
                i
                for i in range(len(self._rules))
                if i not in self._anchored and i not in self._isolated
            ]
            db = None
            if ids:
                first = ids
                db = self._database(
                    lambda: [_prefilter_pattern(self._rules[i].regex) for i in first],
                    self._regex_flags,
                    "u",
                )
            if db is None and ids:
                # Some rule is rejected: find which, one by one, and build the union without it.
                accepted = [i for i in ids if self._single_accepted(i)]
                self._rejected = frozenset(set(ids) - set(accepted))
                for i in sorted(self._rejected):
                    log.debug(
                        "hyperscan rejects rule %s; it runs through re after its keywords",
                        self._rules[i].id,
                    )
                ids = accepted
                if ids:
                    db = self._database(
                        lambda: [_prefilter_pattern(self._rules[i].regex) for i in accepted],
                        self._regex_flags,
                        "u",
                        None,  # not the union the plan names
                    )
            self._union = None if db is None else (db, hs.Scratch(db), ids)
        return self._union

    def _confirm_with_re(self, rest: set[int], data: bytes) -> bool:
        """Whether to leave ``rest`` to ``re`` without the union (see ``short``)."""
        return (
            self._short
            and self._union is _UNSET
            and len(rest) <= _FEW_CANDIDATES
            and len(data) <= _SMALL_CHUNK
        )

    def _single_accepted(self, i: int) -> bool:
        db = self._database(
            lambda: [_prefilter_pattern(self._rules[i].regex)], self._regex_flags, "r"
        )
        return db is not None

    def _database(
        self, patterns: Callable[[], list[bytes]], flags: int, kind: str, name: str | None = ""
    ) -> Any:
        """The database of ``patterns`` (made only when needed) from the cache, else compiled
        (and cached). ``name``: its key in the plan's ``db_files`` (default: ``kind``)."""
        hs = self._hs
        cache_file = None
        made: list[bytes] | None = None
        if self._cache is not None:
            file_name = self._db_files.get(kind if name == "" else name or "")
            if file_name is None:
                made = patterns()
                file_name = db_file_name(hs, kind, flags, made)
            cache_file = self._cache / file_name
            self.cache_files.append(cache_file)
            loaded = _load_cache(hs, cache_file)
            if loaded is not None:
                self.loaded += 1
                return loaded[0]
        self.compiled += 1
        if made is None:
            made = patterns()
        try:
            db = _build(hs, made, list(range(len(made))), flags)
        except hs.error:
            db = None
        if cache_file is not None:
            _store_cache(hs, cache_file, db)
        return db

    def _keyword_hit(self, kw: int, start: int, end: int, flags: int, ctx: Any) -> None:
        self._hits.update(self._keyword_rules[kw])

    def _rule_hit(self, pattern: int, start: int, end: int, flags: int, ctx: Any) -> None:
        self._hits.add(pattern)

    def _generic_keyword_hit(self, kw: int, start: int, end: int, flags: int, ctx: Any) -> None:
        keyword = self._generic_keywords[kw]
        self._starts[keyword].add(end - len(keyword))

    def _context_keyword_hit(self, kw: int, start: int, end: int, flags: int, ctx: Any) -> None:
        keyword = self._context_keywords[kw]
        self._context_starts.setdefault(keyword, []).append(end - len(keyword))

    def context_keyword_spans(self, chunk: Chunk, keywords: Sequence[str]) -> dict[int, int] | None:
        """Every context keyword's starts in one hyperscan pass per chunk (caseless ASCII, as
        the lower-cased search of the ``re`` engine finds them), then this rule's."""
        if not self._context_keywords:
            return None
        built = self._context_keyword_db()
        if built is None:
            return None
        if self._context_chunk is not chunk:
            text = chunk.text
            data = chunk.data if chunk.data is not None else _utf8(text)
            self._context_starts = {}
            db, scratch = built
            db.scan(data, match_event_handler=self._on_context_keyword, scratch=scratch)
            if len(data) != len(text):
                mapped = _to_char_offsets(
                    data, {k: set(v) for k, v in self._context_starts.items()}
                )
                self._context_starts = {k: sorted(v) for k, v in mapped.items()}
            self._context_chunk = chunk
        spans: dict[int, int] = {}
        for k in keywords:
            n = len(k)
            for p in self._context_starts.get(k, ()):
                if n > spans.get(p, 0):
                    spans[p] = n
        return spans

    def keyword_starts(self, chunk: Chunk, keywords: Sequence[str]) -> set[int] | None:
        """All starts of the generic keywords in one pass. Hyperscan's caseless literals
        match ASCII case only, as ``_Lazy`` lowers only ASCII, so both engines find the same
        starts; for non-ASCII text the byte offsets are converted to character offsets."""
        if not self._generic_keywords or not self._generic_keyword_set.issuperset(keywords):
            return None
        built = self._generic_keyword_db()
        if built is None:
            return None
        if self._starts_chunk is not chunk:
            text = chunk.text
            data = chunk.data if chunk.data is not None else _utf8(text)
            self._starts = {k: set() for k in self._generic_keywords}
            db, scratch = built
            db.scan(data, match_event_handler=self._on_generic_keyword, scratch=scratch)
            if len(data) != len(text):
                self._starts = _to_char_offsets(data, self._starts)
            self._starts_chunk = chunk
        out: set[int] = set()
        for k in keywords:
            out |= self._starts[k]
        return out

    def candidates(self, chunk: Chunk, lowered: _Lazy) -> Iterable[int]:
        data = chunk.data if chunk.data is not None else chunk.text.encode("utf-8", "replace")
        hits: set[int] = set(self._always)
        if self._keyword_db is not None:
            self._hits = hits
            self._keyword_db.scan(
                data, match_event_handler=self._on_keyword, scratch=self._keyword_scratch
            )
        out = [i for i in hits if i in self._anchored]
        provider = hits.difference(self._anchored)
        if provider:
            isolated = provider & self._isolated
            rest = provider - isolated if isolated else provider
            confirmed: set[int] = set()
            if rest:
                union = None
                if rest <= self._keywordless:
                    union = self._keywordless_only_union()  # None: hyperscan rejects one
                if union is None and not self._confirm_with_re(rest, data):
                    union = self._provider_union()
                if union is None and self._union is _UNSET:
                    confirmed = rest  # re decides
                elif union is not None:
                    db, scratch, ids = union
                    self._hits = confirmed
                    db.scan(data, match_event_handler=self._on_rule, scratch=scratch)
                    confirmed = {ids[p] for p in confirmed}
            for i in isolated:
                single = self._isolated_db(i)
                if single is None:  # rejected by hyperscan: re decides
                    confirmed.add(i)
                    continue
                found: set[int] = set()
                self._hits = found
                single[0].scan(data, match_event_handler=self._on_rule, scratch=single[1])
                if found:
                    confirmed.add(i)
            out.extend(i for i in provider if i in confirmed or i in self._rejected)
        out.sort()
        return out


_UNSET: Any = object()
_FEW_CANDIDATES = 8  # a short process leaves this many provider candidates to re...
_SMALL_CHUNK = 64 * 1024  # ...in a chunk of at most this many bytes, until the union is loaded


def _literals(keywords: Sequence[str]) -> list[bytes]:
    """Keywords as hyperscan literals (every byte escaped)."""
    return [b"".join(b"\\x%02x" % c for c in k.encode("utf-8")) for k in keywords]


def _hs_version(hs: Any) -> str:
    return str(getattr(hs, "__version__", "?"))


def db_file_name(hs: Any, kind: str, flags: int, patterns: Sequence[bytes]) -> str:
    """The cache file name of a database: a hash of the hyperscan version, flags, patterns."""
    h = hashlib.sha256(f"{_CACHE_MAGIC!r}|{_hs_version(hs)}|{flags}".encode())
    for p in patterns:
        h.update(p + b"\0")
    return f"hs-{kind}-{h.hexdigest()[:32]}.db"


def plan_db_files(rules: Sequence[Rule], plan: MatchPlan) -> MatchPlan:
    """``plan`` with the cache file names of every database the hyperscan matcher may load
    (when hyperscan is installed), so a process that reads the plan need not derive them."""
    try:
        import hyperscan as hs
    except ImportError:
        return plan
    regex = hs.HS_FLAG_PREFILTER | hs.HS_FLAG_SINGLEMATCH | hs.HS_FLAG_UTF8 | hs.HS_FLAG_ALLOWEMPTY
    files: dict[str, str] = {}

    def name(key: str, kind: str, flags: int, patterns: list[bytes]) -> None:
        files[key] = db_file_name(hs, kind, flags, patterns)

    if plan.keywords:
        name("k", "k", hs.HS_FLAG_CASELESS | hs.HS_FLAG_SINGLEMATCH, _literals(plan.keywords))
    if plan.generic_keywords:
        name("g", "g", hs.HS_FLAG_CASELESS, _literals(plan.generic_keywords))
    if plan.context_keywords:
        name("c", "c", hs.HS_FLAG_CASELESS, _literals(plan.context_keywords))
    if plan.keywordless:
        ids = sorted(plan.keywordless)
        name("a", "a", regex, [_prefilter_pattern(rules[i].regex) for i in ids])
    union = [i for i in range(len(rules)) if i not in plan.anchored and i not in plan.isolated]
    if union:
        name("u", "u", regex, [_prefilter_pattern(rules[i].regex) for i in union])
    for i in sorted(plan.isolated):
        name(f"i{i}", "i", regex, [_prefilter_pattern(rules[i].regex)])
    return plan.with_db_files(files, _hs_version(hs))


_BOUNDED_REPEAT = lazy(r"(?<!\\)\{(\d+),(\d+)\}")
_LONGEST_BOUND = 64


def _prefilter_pattern(regex: str) -> bytes:
    """A rule's regex for the provider unions: long bounded repeats made open-ended.

    The unions only say which rules *can* match (Python's ``re`` then finds the real spans),
    so any pattern that matches at least what the regex matches will do. ``x{m,n}`` with a
    large ``n`` is what makes hyperscan's compile slow (a 200-character block of context, a
    token of up to 2,400 characters); ``x{m,}`` matches a superset, scans as fast, and cut
    the union's compile (the cost of a first run) by about a third.
    """

    def relax(m: re.Match[str]) -> str:
        low, high = int(m.group(1)), int(m.group(2))
        if high <= _LONGEST_BOUND:
            return m.group(0)
        return "*" if low == 0 else f"{{{low},}}"

    return _BOUNDED_REPEAT.sub(relax, regex).encode("utf-8")


_CACHE_MAGIC = b"KEYWARD-HS-2\n"


def _build(hs: Any, patterns: list[bytes], ids: list[int], flags: int) -> Any:
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=patterns, ids=ids, elements=len(patterns), flags=[flags] * len(ids))
    return db


def _load_cache(hs: Any, path: Path) -> tuple[Any] | None:
    """``(database,)`` from the cache (``(None,)`` for a pattern hyperscan rejects), or None
    when the file is missing or unusable."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        if not blob.startswith(_CACHE_MAGIC):
            raise ValueError("bad magic")
        header_end = blob.index(b"\n", len(_CACHE_MAGIC))
        header = json.loads(blob[len(_CACHE_MAGIC) : header_end])
        body = blob[header_end + 1 :]
        if hashlib.sha256(body).hexdigest() != header["sha256"]:
            raise ValueError("checksum mismatch")
        if header["rejected"]:
            return (None,)
        return (hs.loadb(body, hs.HS_MODE_BLOCK),)
    except (ValueError, KeyError, TypeError, hs.error) as exc:
        log.debug("ignoring unusable hyperscan cache %s (%s); rebuilding it", path, exc)
        return None


def _store_cache(hs: Any, path: Path, db: Any) -> None:
    body = hs.dumpb(db) if db is not None else b""
    header = json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "rejected": db is None})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(_CACHE_MAGIC + header.encode() + b"\n" + body)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # missing_ok covers ENOENT only, not ENOTDIR/EROFS
            tmp.unlink()
        log.debug("cannot cache a hyperscan database at %s: %s", path, exc.strerror)


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
    secret: str = field(repr=False)
    confidence: Confidence = Confidence.MEDIUM
    line: str = field(default="", repr=False)  # the value's line (judging needs it)


class Engine:
    """Runs a :class:`RuleSet` over chunks and yields validated findings."""

    def __init__(
        self,
        rules: RuleSet,
        fingerprinter: Fingerprinter,
        *,
        backend: Backend = "auto",
        cache_dir: Path | None = None,
        short: bool = False,
    ) -> None:
        """``short``: a process that matches a few small chunks and exits (the pre-commit
        hook); the hyperscan matcher then loads its largest database only when it pays."""
        self.rules = rules.rules
        # the rule set's plan (read with it from the rule cache), else computed here
        plan = rules.plan if rules.plan is not None else MatchPlan.of(self.rules)
        self.rule_ids = plan.ids
        self.generic_ids = plan.generic_ids
        self.companion_ids = plan.companion_ids  # see MatchPlan
        self._fp = fingerprinter
        if backend == "auto":
            backend = "hyperscan" if hyperscan_available() else "re"
        elif backend == "hyperscan" and not hyperscan_available():
            raise ConfigError(
                "The hyperscan engine was asked for but hyperscan is not installed",
                hint="Install it with 'pip install hyperscan' or use --engine re",
            )
        self.matcher: Matcher
        if backend == "hyperscan":
            self.matcher = HyperscanMatcher(self.rules, cache_dir, plan, short=short)
        else:
            self.matcher = KeywordMatcher(self.rules, plan)
        self.backend: str = self.matcher.name
        self._windows: dict[str, Window] = {}  # provider rule id -> how its regex is searched
        self._anchored = plan.anchored  # generic and context rules: not windowed

    def prepare(self) -> None:
        """Build now what the engine otherwise builds when first needed: every hyperscan
        database (or, for the re engine, every provider regex and its search windows), and the
        word ranks that judge generic values. A parent calls it before
        forking workers, so they share one copy instead of each building its own (on a first
        run, each worker compiled the provider union itself)."""
        prepare = getattr(self.matcher, "prepare", None)
        if prepare is not None:
            prepare()
        else:  # the re engine: every provider regex compiled and its windows read (~0.1 s)
            for i, rule in enumerate(self.rules):
                if i not in self._anchored and rule.id not in self._windows:
                    self._windows[rule.id] = Window(rule.pattern)
        if any(judged_by_value(r) for r in self.rules):
            warm_word_ranks()

    def scan(self, chunk: Chunk) -> list[Finding]:
        """All findings in the chunk; inline-allowed ones carry ``suppressed_by="inline"``."""
        text = chunk.text
        if not text:
            return []
        lowered = _Lazy(text)
        path = chunk.location.path
        matches: list[_Match] = []
        # Both matchers return only rules one of whose keywords occurs (or that have none):
        # the keyword prefilter by definition, hyperscan through its caseless keyword pass,
        # whose hits are a subset of ``k in text.lower()``.
        for i in self.matcher.candidates(chunk, lowered):
            rule = self.rules[i]
            if rule.path_allowed(path):
                continue
            matches.extend(self._rule_matches(rule, chunk, path, lowered))
        if not matches:
            return []
        matches = _resolve_overlaps(matches)
        for m in matches:  # only kept matches pay for judging their values
            if judged_by_value(m.rule):
                m.confidence = judge(m.rule, m.confidence, m.secret, path, m.line)
        lines = _LineIndex(text)
        if is_sample_path(path):
            _lower_test_vectors(matches, text)
        findings = [self._finding(chunk, m, lines) for m in matches]
        findings = self._pair(findings, matches)
        return findings

    def _rule_matches(
        self, rule: Rule, chunk: Chunk, path: str | None, lowered: _Lazy
    ) -> Iterable[_Match]:
        text = chunk.text
        validator = VALIDATORS[rule.validator] if rule.validator else None
        found: Iterable[re.Match[str]]
        if rule.generic:  # tried only where a keyword starts (see filters.generic_matches)
            starts = self.matcher.keyword_starts(chunk, rule.keywords)
            found = filters.generic_matches(
                rule.pattern,
                rule.keywords,
                text,
                lowered.get() if starts is None else text,
                starts,
            )
        elif rule.context is not None:  # also only where a keyword starts, as a word
            spans = self.matcher.context_keyword_spans(chunk, rule.keywords)
            found = context.finditer(
                rule.keywords, rule.context, text, lowered.get() if spans is None else text, spans
            )
        else:  # only around the literals the regex requires (exactly its finditer)
            window = self._windows.get(rule.id)
            if window is None:
                window = self._windows[rule.id] = Window(rule.pattern)
            found = window.finditer(text, lowered.get, lowered.data)
        for m in found:
            secret = m.group("secret")
            if not secret:
                continue
            if rule.entropy and shannon(secret) < rule.entropy:
                continue
            if validator is not None and not validator(secret):
                continue
            if any(a.search(secret) for a in rule.allow_patterns):
                continue
            # the value's line, at most _LINE_WINDOW characters either side (long lines)
            start, end = m.span("secret")
            lo, hi = max(0, start - _LINE_WINDOW), min(len(text), end + _LINE_WINDOW)
            line_start = max(text.rfind("\n", lo, start) + 1, lo)
            line_end = text.find("\n", end, hi)
            line = text[line_start : line_end if line_end >= 0 else hi]
            if rule.generic:
                # a value alone on its line (YAML block scalar, XML element) is judged with
                # the line before it, where its key is
                g_start = line_start
                if g_start > 0 and not text[g_start:start].strip():
                    lo_prev = max(0, g_start - 1 - _LINE_WINDOW)
                    g_start = text.rfind("\n", lo_prev, g_start - 1) + 1 or lo_prev
                g_line = text[g_start : line_end if line_end >= 0 else hi]
                if filters.generic_reject(secret, g_line, path, start - g_start) is not None:
                    continue
            elif (
                filters.is_placeholder(secret)
                or _part_of_longer_token(text, m, start, end)
                or (rule.context is None and _keyword_inside_word(text, m.start(), start, rule))
            ):
                continue
            elif rule.context is not None and not context.plausible(secret, rule.context):
                continue
            confidence = assess(rule, secret)
            if confidence is None:  # a known public example value
                continue
            yield _Match(rule, start, end, secret, confidence, line)

    def _finding(self, chunk: Chunk, m: _Match, lines: _LineIndex) -> Finding:
        line_idx, column = lines.position(m.start)
        last = max(m.end - 1, m.start)
        end_idx, _ = lines.position(last)
        loc = chunk.location.at(chunk.source_line(line_idx), column + 1, chunk.source_line(end_idx))
        suppressed = None
        if lines.allowed(m.start) or (end_idx != line_idx and lines.allowed(last)):
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
            confidence=m.confidence,
        )

    def _pair(self, findings: list[Finding], matches: list[_Match]) -> list[Finding]:
        """Merge findings whose rule pairs with another (e.g. AWS key id + secret key), and
        drop the unpaired findings of companion-only rules.

        Each finding of a pairing rule takes the nearest unused finding of its partner rule
        within ``pair.lines`` lines (the first one on a tie); partners are looked up by line
        with a binary search, so a file with thousands of keys stays linear.
        """
        companions = self.companion_ids
        if not any(m.rule.pair for m in matches):
            if companions:
                return [
                    f for f, m in zip(findings, matches, strict=True) if m.rule.id not in companions
                ]
            return findings
        by_rule: dict[str, tuple[list[int], list[int]]] = {}  # rule id -> (lines, indexes)
        for j, m in enumerate(matches):  # matches are sorted by offset, so lines ascend
            lines, idx = by_rule.setdefault(m.rule.id, ([], []))
            lines.append(findings[j].location.line)
            idx.append(j)
        used: set[int] = set()
        out: list[Finding] = list(findings)
        for i, m in enumerate(matches):
            pair = m.rule.pair
            if pair is None or i in used or pair.rule not in by_rule:
                continue
            line = findings[i].location.line
            lines, idx = by_rule[pair.rule]
            best: int | None = None
            best_dist = pair.lines + 1
            for k in range(bisect_left(lines, line - pair.lines), len(lines)):
                if lines[k] > line + pair.lines:
                    break
                j = idx[k]
                dist = abs(lines[k] - line)
                if j != i and j not in used and dist < best_dist:
                    best, best_dist = j, dist
            if best is not None:
                used.add(best)
                out[i] = findings[i].with_(
                    companion=matches[best].secret,
                    companion_preview=findings[best].preview,
                    companion_location=findings[best].location,
                    severity=max(
                        findings[i].severity, findings[best].severity, key=lambda s: s.rank
                    ),
                    confidence=max(
                        findings[i].confidence, findings[best].confidence, key=lambda c: c.rank
                    ),
                )
        return [
            f for k, f in enumerate(out) if k not in used and matches[k].rule.id not in companions
        ]


_BASE64_PUNCTUATION = "+/"
_TOKEN_PUNCTUATION = "-_"


def _continues(secret: str, char: str, body: str) -> bool:
    """Whether ``char`` next to ``secret`` would be more of the same token: a letter or digit
    next to a letter or digit, or punctuation the token's own body uses (``-``, ``_``, or
    base64's ``+`` and ``/``)."""
    if not char.isascii():
        return False
    if char.isalnum():
        return secret.isascii() and (secret[-1].isalnum() or secret[0].isalnum())
    return char in _TOKEN_PUNCTUATION + _BASE64_PUNCTUATION and char in body


def _part_of_longer_token(text: str, m: re.Match[str], start: int, end: int) -> bool:
    """A provider match that is only part of a longer token: exact lengths and alphabets.

    When the rule's regex ends with the secret (nothing after it was required) and the next
    character continues the token, the format's fixed length was exceeded: a 41-character
    value is not a 40-character key reported by its prefix (rules whose regex consumes a
    delimiter after the secret, ``\\b`` or a quote, never reach this). Likewise a secret the
    regex starts with, preceded by a letter or digit, sits inside a longer word
    (``xghp_...``); a regex with context before the secret states its own boundary there
    (``bot123:AA...`` is Telegram's URL form).
    """
    secret = text[start:end]
    body = secret[4:]  # punctuation after a prefix's own separator (glpat-, sk-, xoxb-)
    if m.end() == end and end < len(text) and _continues(secret[-1], text[end], body):
        return True
    before = text[start - 1] if start > 0 else ""
    return m.start() == start and secret[0].isalnum() and before.isascii() and before.isalnum()


def _lower_test_vectors(matches: list[_Match], text: str) -> None:
    """In a test file, a value the test asserts against (``assert x == "https://u:p@h"``) is
    a test vector: every match of that value in the chunk becomes low confidence (generic
    values and chosen passwords only; a provider format keeps its own evidence)."""
    asserted: set[str] = set()
    for m in matches:
        if judged_by_value(m.rule):
            start = text.rfind("\n", 0, m.start) + 1
            end = text.find("\n", m.end)
            if asserts_on(text[start : end if end >= 0 else len(text)]):
                asserted.add(m.secret)
    if asserted:
        for m in matches:
            if m.secret in asserted and judged_by_value(m.rule):
                m.confidence = Confidence.LOW


def _word_keywords(rule: Rule) -> tuple[str, ...]:
    """The rule's keywords that are words (letters only, 3 or more): provider names. A rule
    whose regex has a lookbehind states its own word boundaries (``(?<=-Dsonar)``)."""
    if "(?<" in rule.regex:
        return ()
    return tuple(k for k in rule.keywords if len(k) >= 3 and k.isalpha() and k.isascii())


def _starts_word(text: str, a: int) -> bool:
    """``text[a]`` starts a word: no letter before it, or a camel-case change (``myOkta``).
    The end is not judged: provider names start longer words by design (``postgresql``,
    ``rediss``, ``amqps``)."""
    before = text[a - 1] if a > 0 else ""
    return not before.isalpha() or (before.islower() and text[a].isupper())


def _keyword_inside_word(text: str, match_start: int, secret_start: int, rule: Rule) -> bool:
    """Word boundaries for provider names: when the regex's context before the secret holds
    the rule's provider-name keywords only inside longer words (``rookTable`` holds ``okta``),
    the match is not that provider's. Keywords that are part of the secret (``ghp_``), or that
    do not occur before it, are not judged."""
    words = _word_keywords(rule)
    if not words or secret_start <= match_start:
        return False
    region = text[match_start:secret_start]
    low = region.lower()
    seen = False
    for k in words:
        i = low.find(k)
        while i >= 0:
            seen = True
            if _starts_word(text, match_start + i):
                return False
            i = low.find(k, i + 1)
    return seen


def _resolve_overlaps(matches: list[_Match]) -> list[_Match]:
    """Where spans overlap, keep the most specific rule (priority, then longer, then id).

    Matches are taken in order of start; kept spans never overlap, so only the last kept span
    can overlap the next match (linear time, even for files with thousands of matches).
    """
    matches.sort(key=lambda m: (m.start, -m.end, -m.rule.priority, m.rule.id))
    kept: list[_Match] = []
    for m in matches:
        last = kept[-1] if kept else None
        if last is None or last.end <= m.start:
            kept.append(m)
        elif (m.rule.priority, m.end - m.start) > (last.rule.priority, last.end - last.start):
            kept[-1] = m
    kept.sort(key=lambda m: (m.start, m.rule.id))
    return kept


class _LineIndex:
    """Line numbers and columns of offsets in a chunk, computed on demand.

    Counting newlines up to an offset runs in C (``str.count``), from the previous offset
    when offsets come in ascending order (they do: matches are sorted), so a chunk with a
    few matches costs a few passes over its text instead of a Python loop over every line.
    """

    __slots__ = ("_last", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._last = (0, 0)  # (offset, number of newlines before it)

    def position(self, offset: int) -> tuple[int, int]:
        """``(0-based line index, 0-based column)`` of ``offset``."""
        last_offset, last_count = self._last
        if offset >= last_offset:
            count = last_count + self._text.count("\n", last_offset, offset)
        else:
            count = self._text.count("\n", 0, offset)
        self._last = (offset, count)
        return count, offset - (self._text.rfind("\n", 0, offset) + 1)

    def allowed(self, offset: int) -> bool:
        """Whether the line holding ``offset`` (or the line before it) allows a finding."""
        text = self._text
        start = text.rfind("\n", 0, offset) + 1
        end = text.find("\n", offset)
        line = text[start : end if end >= 0 else len(text)]
        previous = text[text.rfind("\n", 0, start - 1) + 1 : start - 1] if start else None
        return line_allows(line, previous)


def line_allows(line: str, previous: str | None) -> bool:
    """Whether an allow comment on ``line``, or a nextline allow on ``previous`` (the line
    before it, None at the start), suppresses a finding on ``line``."""
    if any(tag in line for tag in INLINE_ALLOW):
        return True
    return previous is not None and INLINE_ALLOW_NEXT in previous
