"""Catastrophic backtracking in a user's regex, found before the regex is used.

Python's ``re`` backtracks, and cannot be stopped once a match starts: a rule such as
``(?P<secret>(a+)+$)`` takes seconds per extra character on ``aaaa...!`` (``rules check``
and ``--engine re`` hung on a 29-byte line). A rule file named by the user is therefore checked
for the two shapes behind exponential backtracking, on the parsed regex:

* a repeat of a body that is itself one repeat, everything else in the body optional:
  ``(a+)+``, ``(a*)*``, ``(\\w+\\s?)+``, ``(?:x?y+)*``: each run of text splits into
  iterations in exponentially many ways;
* a repeat of alternatives that can match the same text: ``(a|aa)+``, ``(\\w|\\d)+``.

Only unbounded repeats (or more than 32 times) count: a bounded one limits the blow-up.
Possessive repeats and atomic groups never backtrack and are left alone. This is a heuristic
in the way of safe-regex and regexploit: it finds the common shapes, not every one.
"""

from __future__ import annotations

# re's parser is private (re._parser since Python 3.11, sre_parse before); it is the only
# parser of Python's own regex dialect, so keyward reads its tree rather than writing another.
import re._parser as _sre  # type: ignore[import-not-found]
from collections.abc import Sequence
from re import _constants as _c  # type: ignore[attr-defined,unused-ignore]
from typing import Any

MAXREPEAT: int = _c.MAXREPEAT
_LARGE = 32  # a repeat allowed more times than this counts as unbounded
_ALL = frozenset(range(128))
_DIGIT = frozenset(range(48, 58))
_WORD = frozenset([*range(48, 58), *range(65, 91), *range(97, 123), 95])
_SPACE = frozenset([9, 10, 11, 12, 13, 32])
_CATEGORY = {
    _c.CATEGORY_DIGIT: _DIGIT,
    _c.CATEGORY_NOT_DIGIT: _ALL - _DIGIT,
    _c.CATEGORY_WORD: _WORD,
    _c.CATEGORY_NOT_WORD: _ALL - _WORD,
    _c.CATEGORY_SPACE: _SPACE,
    _c.CATEGORY_NOT_SPACE: _ALL - _SPACE,
}
_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT)

Node = tuple[Any, Any]


def backtracking_risk(regex: str) -> str | None:
    """Why ``regex`` can take exponential time, naming the part, or None when it looks safe
    (also None when it does not parse: compiling it reports that)."""
    try:
        tree = _sre.parse(regex)
    except Exception:  # re.error and its kin: the caller compiles it and says why
        return None
    return _walk(list(tree), regex)


def _walk(seq: Sequence[Node], regex: str) -> str | None:
    for op, av in seq:
        if op in _REPEATS:
            _, hi, sub = av
            if hi == MAXREPEAT or hi > _LARGE:
                why = _ambiguous(list(sub))
                if why is not None:
                    return why
            found = _walk(list(sub), regex)
        elif op is _c.SUBPATTERN:
            found = _walk(list(av[-1]), regex)
        elif op is _c.BRANCH:
            found = next((w for b in av[1] if (w := _walk(list(b), regex)) is not None), None)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            found = _walk(list(av[1]), regex)
        else:  # literals, classes, anchors; atomic groups and possessive repeats are safe
            found = None
        if found is not None:
            return found
    return None


def _flat(seq: Sequence[Node]) -> list[Node]:
    """The items of a sequence, with plain groups opened up."""
    out: list[Node] = []
    for op, av in seq:
        if op is _c.SUBPATTERN:
            out.extend(_flat(list(av[-1])))
        else:
            out.append((op, av))
    return out


def _ambiguous(body: Sequence[Node]) -> str | None:
    """Why a repeated ``body`` splits one text into iterations in many ways, or None."""
    items = _flat(body)
    unbounded = [
        i
        for i, (op, av) in enumerate(items)
        if op in _REPEATS and (av[1] == MAXREPEAT or av[1] > _LARGE)
    ]
    for i in unbounded:
        if all(_nullable(node) for k, node in enumerate(items) if k != i):
            return "a repeated group whose body is itself a repeat, such as (a+)+"
    shapes = _expansions(items)
    if shapes is not None:
        for short in shapes:
            for long in shapes:
                if len(long) > len(short) > 0 and _repeats_into(short, long):
                    return (
                        "a repeated group whose alternatives match the same text in more than "
                        "one way, such as (a|aa)+"
                    )
    return None


_MAX_SHAPES = 32


def _expansions(items: Sequence[Node]) -> list[list[frozenset[int]]] | None:
    """Every fixed sequence of character sets ``items`` can match (alternatives and optional
    parts expanded), or None when that is not a short list."""
    shapes: list[list[frozenset[int]]] = [[]]
    for node in items:
        op, av = node
        options: list[list[frozenset[int]]]
        chars = _charset(node)
        if chars is not None:
            options = [[chars]]
        elif op is _c.BRANCH:
            options = []
            for branch in av[1]:
                sub = _expansions(_flat(list(branch)))
                if sub is None:
                    return None
                options.extend(sub)
        elif op in _REPEATS and av[1] <= 2:
            sub = _expansions(_flat(list(av[2])))
            if sub is None:
                return None
            options = ([[]] if av[0] == 0 else []) + list(sub)
            if av[1] == 2:
                options += [x + y for x in sub for y in sub]
        elif op is _c.AT:
            options = [[]]
        else:
            return None
        shapes = [s + o for s in shapes for o in options]
        if len(shapes) > _MAX_SHAPES:
            return None
    return shapes


def _repeats_into(short: list[frozenset[int]], long: list[frozenset[int]]) -> bool:
    """Whether ``long`` can also be matched as ``short`` repeated (two ways to split it)."""
    if len(long) % len(short):
        return False
    return all(long[k] & short[k % len(short)] for k in range(len(long)))


def _nullable(node: Node) -> bool:
    op, av = node
    if op in _REPEATS or op is _c.POSSESSIVE_REPEAT:
        return bool(av[0] == 0) or all(_nullable(n) for n in av[2])
    if op is _c.SUBPATTERN:
        return all(_nullable(n) for n in av[-1])
    if op is _c.BRANCH:
        return any(all(_nullable(n) for n in b) for b in av[1])
    return op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT)


def _charset(node: Node) -> frozenset[int] | None:
    """The ASCII characters one single-character item matches, None for anything else."""
    op, av = node
    if op is _c.LITERAL:
        return frozenset([av]) if av < 128 else frozenset()
    if op is _c.NOT_LITERAL:
        return _ALL - {av}
    if op is _c.ANY:
        return _ALL
    if op is _c.IN:
        chars: set[int] = set()
        negate = False
        for kind, arg in av:
            if kind is _c.NEGATE:
                negate = True
            elif kind is _c.LITERAL:
                chars.add(arg)
            elif kind is _c.RANGE:
                chars.update(range(arg[0], min(arg[1], 127) + 1))
            elif kind is _c.CATEGORY:
                chars.update(_CATEGORY.get(arg, _ALL))
            else:
                return None
        found = frozenset(c for c in chars if c < 128)
        return _ALL - found if negate else found
    return None
