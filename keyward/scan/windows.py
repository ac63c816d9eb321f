"""Provider regexes run only around the literals they require, with the whole-chunk result.

Python's ``re`` skips ahead only to a pattern's literal prefix; a regex that starts with
``\\b``, an alternation or a class (``\\b(?:https?|ftps?|...)://``, ``(?:^|[^\\w-])ion_...``)
is tried at every position of the chunk. Most such regexes still *require* a literal: every
match contains one of a few strings (``://``, ``ion_``, ``server``/``data source``/``addr``,
``MD``/``MT``/...``Oz``). :class:`Windows` reads those strings and the regex's widths from
its parse tree, finds where the strings occur (``str.find`` runs in C at memory speed), and
searches the regex only where a match containing them can start.

The result is exactly ``pattern.finditer(text)``, by construction:

* every match contains a required string and is at most ``width`` long, so it starts within
  ``width`` characters before an occurrence's end, and not after its start: no other start
  is tried, and none can match;
* ``pattern.search(text, pos, endpos)`` sees the text before ``pos`` (lookbehinds, ``\\b``,
  ``^``) as a whole-chunk search does, and ``endpos`` lies past everything a match starting
  in the window can examine (its width, the widths of its lookaheads and one character that
  ``\\b`` or ``$`` peeks at), so a match found there is the one the whole-chunk search finds
  at that start, and no earlier start in the window matches in either;
* searches go left to right and resume at the end of the previous match, as ``finditer``
  does (regexes that can match the empty string are searched whole).

Regexes with no usable literal, an unbounded width, or Unicode matching run over the whole
chunk; a regex that requires a long run of one character class (``\\b[a-z2-7]{52}\\b``) is
searched only in chunks that hold such a run, found with ``str.translate``.
"""

from __future__ import annotations

import re

# re's private parser (as keyward.scan.regexsafety reads it): the tree of Python's own dialect
import re._parser as sre_p  # type: ignore[import-not-found]
from collections.abc import Callable, Sequence
from re import _constants as sre_c  # type: ignore[attr-defined,unused-ignore]
from typing import Any

_MAX_SET = 64  # at most this many required strings per regex
_MIN_LITERAL = 2  # shorter required strings are too common to bound windows with
_MIN_RUN = 16  # a required class run at least this long is checked for before searching
_MAX_WIDTH = 4096  # wider regexes (or unbounded ones) are searched whole
_COVERAGE = 0.5  # windows covering more of the chunk than this: search it whole

# A required string and whether it is matched caselessly (then it is lower-case and looked
# for in the ASCII-lower-cased text).
Literal = tuple[str, bool]


def _chars_of_class(items: Sequence[Any], caseless: bool) -> set[str] | None:
    """The characters an ``IN`` class matches, when it is a small ASCII set (else None)."""
    chars: set[str] = set()
    for op, av in items:
        if op is sre_c.LITERAL:
            chars.add(chr(av))
        elif op is sre_c.RANGE and av[1] - av[0] < 16:
            chars.update(chr(c) for c in range(av[0], av[1] + 1))
        else:  # NEGATE, CATEGORY, wide ranges
            return None
    if not all(c.isascii() for c in chars):
        return None
    if caseless:
        chars = {c.lower() for c in chars}
    return chars if len(chars) <= 16 else None


def _best(candidates: list[frozenset[Literal]]) -> frozenset[Literal] | None:
    """The most selective set: the longest shortest string, then the fewest strings."""
    best: frozenset[Literal] | None = None
    best_key: tuple[int, int] = (0, 0)
    for cand in candidates:
        if not cand:
            continue
        key = (min(len(s) for s, _ in cand), -len(cand))
        if best is None or key > best_key:
            best, best_key = cand, key
    return best


def _required(items: Sequence[Any], caseless: bool) -> frozenset[Literal] | None:
    """A set of strings one of which every match of the sequence ``items`` contains (in the
    text it consumes), or None when none was found."""
    candidates: list[frozenset[Literal]] = []
    run: set[str] = {""}

    def close() -> None:
        nonlocal run
        if run != {""}:
            candidates.append(frozenset((s, caseless) for s in run))
        run = {""}

    def extend(chars: set[str]) -> None:
        nonlocal run
        grown = {s + c for s in run for c in chars}
        if len(grown) > _MAX_SET:
            close()
            grown = set(chars)
        run = grown

    for op, av in items:
        if op is sre_c.LITERAL:
            c = chr(av)
            if not c.isascii():
                close()
                continue
            extend({c.lower() if caseless else c})
        elif op is sre_c.IN:
            chars = _chars_of_class(av, caseless)
            if chars is None:
                close()
            else:
                extend(chars)
        elif op in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):
            continue  # zero-width: the strings on either side stay adjacent
        else:
            close()
            if op is sre_c.SUBPATTERN:
                _group, add, remove, body = av
                inner = caseless
                if add & sre_c.SRE_FLAG_IGNORECASE:
                    inner = True
                if remove & sre_c.SRE_FLAG_IGNORECASE:
                    inner = False
                sub = _required(body, inner)
                if sub is not None:
                    candidates.append(sub)
            elif op is sre_c.BRANCH:
                union: set[Literal] = set()
                for alt in av[1]:
                    sub = _required(alt, caseless)
                    if sub is None:
                        union.clear()
                        break
                    union |= sub
                if union and len(union) <= _MAX_SET:
                    candidates.append(frozenset(union))
            elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
                low, _high, body = av
                if low >= 1:
                    sub = _required(body, caseless)
                    if sub is not None:
                        candidates.append(sub)
            elif op is sre_c.ATOMIC_GROUP:
                sub = _required(av, caseless)
                if sub is not None:
                    candidates.append(sub)
    close()
    return _best(candidates)


def _minimal(found: frozenset[Literal]) -> tuple[Literal, ...]:
    """The strings without those that contain another one (where one occurs, so does the
    other): fewer occurrences to look for, the same windows."""
    out: list[Literal] = []
    for s, caseless in sorted(found, key=lambda x: len(x[0])):
        if not any((t in s if c == caseless else c and t in s.lower()) for t, c in out):
            out.append((s, caseless))
    return tuple(out)


def _lookahead_width(items: Sequence[Any]) -> int:
    """The summed maximum widths of every lookahead in the tree (what a match may examine
    past its end), or a huge number when one is unbounded."""
    total = 0
    for op, av in items:
        if op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            direction, body = av
            if direction == 1:
                total += body.getwidth()[1]
            total += _lookahead_width(body)
        elif op is sre_c.SUBPATTERN:
            total += _lookahead_width(av[3])
        elif op is sre_c.BRANCH:
            total += sum(_lookahead_width(alt) for alt in av[1])
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
            total += _lookahead_width(av[2])
        elif op is sre_c.ATOMIC_GROUP:
            total += _lookahead_width(av)
        elif op is sre_c.GROUPREF_EXISTS:
            total += _lookahead_width(av[1]) + (_lookahead_width(av[2]) if av[2] else 0)
    return total


def _class_run(items: Sequence[Any], caseless: bool) -> tuple[str, int] | None:
    """A run of at least ``_MIN_RUN`` characters of one ASCII class that every match of
    ``items`` holds: ``(characters, length)`` of the longest such run, or None."""
    best: tuple[str, int] | None = None
    for op, av in items:
        if op in (sre_c.MAX_REPEAT, sre_c.POSSESSIVE_REPEAT, sre_c.MIN_REPEAT):
            low, _high, body = av
            if low >= _MIN_RUN and len(body) == 1 and body[0][0] is sre_c.IN:
                chars = _wide_class(body[0][1], caseless)
                if chars is not None and (best is None or low > best[1]):
                    best = (chars, low)
        elif op is sre_c.SUBPATTERN:
            _group, add, remove, body = av
            inner = (caseless or bool(add & sre_c.SRE_FLAG_IGNORECASE)) and not (
                remove & sre_c.SRE_FLAG_IGNORECASE
            )
            sub = _class_run(body, inner)
            if sub is not None and (best is None or sub[1] > best[1]):
                best = sub
    return best


def _wide_class(items: Sequence[Any], caseless: bool) -> str | None:
    """The ASCII characters of a class of literals and ranges (no categories, no negation)."""
    chars: set[str] = set()
    for op, av in items:
        if op is sre_c.LITERAL:
            chars.add(chr(av))
        elif op is sre_c.RANGE:
            chars.update(chr(c) for c in range(av[0], av[1] + 1))
        else:
            return None
    if not all(c.isascii() for c in chars):
        return None
    if caseless:
        chars |= {c.upper() for c in chars} | {c.lower() for c in chars}
    return "".join(sorted(chars))


class Window:
    """How one regex is searched: around its required strings, or whole."""

    __slots__ = ("_pattern", "_reach", "_run", "_searches", "_width", "literals")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self._pattern = pattern
        self.literals: tuple[Literal, ...] = ()
        self._width = self._reach = 0
        self._run: tuple[bytes, bytes] | None = None  # translate table, needle
        self._searches: list[_Finder] = []
        if pattern.flags & re.UNICODE or not pattern.flags & re.ASCII:
            return
        try:
            tree = sre_p.parse(pattern.pattern, pattern.flags)
            low, high = tree.getwidth()
            ahead = _lookahead_width(tree)
        except (re.error, RecursionError, TypeError, ValueError):  # pragma: no cover
            return
        caseless = bool(tree.state.flags & sre_c.SRE_FLAG_IGNORECASE)
        run = _class_run(tree, caseless)
        if run is not None:
            chars, length = run
            # a class of ASCII characters (re.ASCII): in UTF-8, the same run of bytes
            table = bytes(97 if chr(c) in chars else 32 for c in range(256))
            self._run = (table, b"a" * length)
        if low == 0 or high + ahead > _MAX_WIDTH:
            return
        found = _required(tree, caseless)
        if found is None or min(len(s) for s, _ in found) < _MIN_LITERAL:
            return
        self.literals = _minimal(found)
        self._width = high
        self._reach = high + ahead + 1
        for caseless_set in (True, False):
            strings = [s for s, c in self.literals if c == caseless_set]
            if strings:
                self._searches.append(_finder(strings, caseless_set))

    def finditer(
        self, text: str, lowered: Callable[[], str], data: Callable[[], bytes] | None = None
    ) -> Sequence[re.Match[str]]:
        """Exactly ``list(pattern.finditer(text))``. ``lowered``: the text lower-cased in
        ASCII; ``data``: its UTF-8 bytes (both computed once per chunk by the caller)."""
        pattern = self._pattern
        if data is None:
            data = _Bytes(text).get
        if not self._searches:
            if self._run is not None:
                table, needle = self._run
                if needle not in data().translate(table):
                    return []
            return list(pattern.finditer(text))
        width = self._width
        starts: list[tuple[int, int]] = []  # (first, last) start of a match per occurrence
        for find in self._searches:
            for at, length in find(text, lowered, data):
                # a match holding this occurrence starts at most ``width`` before its end;
                # starts up to its last character also cover the occurrences overlapping it
                # (which a search of the alternation skips)
                starts.append((max(0, at + length - width), at + length - 1))
        if not starts:
            return []
        starts.sort()
        n = len(text)
        merged: list[list[int]] = []
        covered = 0
        for a, b in starts:
            if merged and a <= merged[-1][1] + 1:
                if b > merged[-1][1]:
                    covered += b - merged[-1][1]
                    merged[-1][1] = b
            else:
                merged.append([a, b])
                covered += b - a + 1
        if covered > n * _COVERAGE:
            return list(pattern.finditer(text))
        out: list[re.Match[str]] = []
        search = pattern.search
        reach = self._reach
        pos = 0
        for a, b in merged:
            p = max(a, pos)
            end = min(n, b + reach)
            while p <= b:
                m = search(text, p, end)
                if m is None or m.start() > b:
                    break
                out.append(m)
                pos = p = m.end()  # never empty: the regex's minimum width is positive
        return out


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class _Bytes:
    """A text's UTF-8 bytes, encoded at most once."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str) -> None:
        self._text = text
        self._value: bytes | None = None

    def get(self) -> bytes:
        if self._value is None:
            self._value = _utf8(self._text)
        return self._value


# (text, its ASCII-lower-cased form, its UTF-8 bytes) -> (offset, length) of each occurrence
_Finder = Callable[[str, Callable[[], str], Callable[[], bytes]], list[tuple[int, int]]]


def _finder(strings: Sequence[str], caseless: bool) -> _Finder:
    """Where any of ``strings`` occurs in a text (in its lower-cased form when caseless)."""
    product = _product_finder(strings, caseless)
    if product is not None:
        return product
    if len(strings) == 1:
        needle = strings[0]
        size = len(needle)

        def find_one(
            text: str, lowered: Callable[[], str], data: Callable[[], bytes]
        ) -> list[tuple[int, int]]:
            where = lowered() if caseless else text
            out = []
            i = where.find(needle)
            while i >= 0:
                out.append((i, size))
                i = where.find(needle, i + 1)
            return out

        return find_one
    # no string holds another (see _minimal), so an occurrence the search skips because it
    # overlaps one found ends after it: its window lies inside the found one's
    alternation = re.compile("|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True)))

    def find_any(
        text: str, lowered: Callable[[], str], data: Callable[[], bytes]
    ) -> list[tuple[int, int]]:
        where = lowered() if caseless else text
        return [(m.start(), m.end() - m.start()) for m in alternation.finditer(where)]

    return find_any


def _product_finder(strings: Sequence[str], caseless: bool) -> _Finder | None:
    """For strings that are every combination of a few disjoint character sets
    (``[MNO][DTjz]``): each set's characters become one digit with ``bytes.translate`` and
    the digits are found with ``bytes.find``, in C (``re`` tried each position in Python's
    regex machine, as slowly as the rule's own regex)."""
    size = len(strings[0])
    if len(strings) < 2 or any(len(s) != size for s in strings):
        return None
    sets = [{s[j] for s in strings} for j in range(size)]
    product = 1
    for chars in sets:
        product *= len(chars)
    if product != len(set(strings)) or sum(map(len, sets)) != len(set().union(*sets)):
        return None  # not a whole product, or a character in two positions
    table = bytearray(b" " * 256)
    for j, chars in enumerate(sets):
        for c in chars:
            table[ord(c)] = 48 + j
            if caseless:  # lower-case strings: both cases of the text's letters
                table[ord(c.upper())] = 48 + j
    translate = bytes(table)
    needle = bytes(range(48, 48 + size))

    def find_product(
        text: str, lowered: Callable[[], str], data: Callable[[], bytes]
    ) -> list[tuple[int, int]]:
        digits = data().translate(translate)
        offsets = []
        i = digits.find(needle)
        while i >= 0:
            offsets.append(i)
            i = digits.find(needle, i + 1)
        if offsets and not text.isascii():  # byte offsets (at ASCII characters) to characters
            raw = data()
            chars = prev = 0
            for k, b in enumerate(offsets):
                chars += len(raw[prev:b].decode("utf-8", "surrogatepass"))
                prev = b
                offsets[k] = chars
        return [(i, size) for i in offsets]

    return find_product
