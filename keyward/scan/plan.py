"""What the engine derives from a rule set before it matches anything: a :class:`MatchPlan`.

Which rules have no keywords, which are generic or context rules (tried only at their
keywords), which keyword names which rules, which provider rules get a hyperscan database of
their own, and the file names of the hyperscan databases in the cache. Computing it walks
every rule (and every provider regex, for its literals): about 10 ms for ~850 rules, at every
start. The rule cache (:mod:`keyward.scan.rulecache`) keeps it next to the rules, so a short
process (the pre-commit hook) reads it instead and builds only the rules a chunk can match.
The engine always matches through a plan, computed or read, so both give the same findings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol


class PlannedRule(Protocol):
    """What a plan reads of a rule (:class:`keyward.scan.rules.Rule`): a protocol, so this
    module does not import the rules module, whose rule set keeps a plan."""

    @property
    def id(self) -> str: ...
    @property
    def generic(self) -> Any: ...
    @property
    def keywords(self) -> Any: ...
    @property
    def context(self) -> Any: ...
    @property
    def pair(self) -> Any: ...
    @property
    def tags(self) -> Any: ...
    @property
    def regex(self) -> Any: ...


COMPANION_TAG = "companion"  # see MatchPlan.companion_ids
MIN_FACTOR = 3  # a provider regex whose longest literal is shorter gets its own database
_CLASS_ESCAPES = frozenset("bBdDsSwWAZ")


@dataclass(frozen=True, slots=True)
class MatchPlan:
    """Rule indexes and keywords as the matchers use them (see :mod:`keyward.scan.engine`).

    ``db_files``: the hyperscan cache file names of the databases (``k`` keywords, ``u`` the
    provider union, ``a`` the keywordless union, ``g`` / ``c`` generic / context keywords,
    ``i<N>`` rule N alone), valid for hyperscan ``hs_version``; empty when computed here
    (the matcher then names each database from its patterns when it first needs it).
    """

    ids: tuple[str, ...]
    generic_ids: frozenset[str]
    # Rules tagged "companion" (a GitHub OAuth client id, a Vault AppRole role_id) name the
    # account a secret belongs to but are no secret themselves: when a loaded rule pairs with
    # them, they are reported only as that rule's companion, never on their own.
    companion_ids: frozenset[str]
    always: tuple[int, ...]  # rules without keywords: candidates in every chunk
    generic: frozenset[int]
    anchored: frozenset[int]  # generic and context rules: tried only at their keywords
    keywords: tuple[str, ...]  # sorted
    keyword_rules: tuple[tuple[int, ...], ...]  # per keyword, the rules it names
    generic_keywords: tuple[str, ...]
    context_keywords: tuple[str, ...]
    keywordless: frozenset[int]  # provider rules without keywords
    isolated: frozenset[int]  # provider rules with keywords but no literal of MIN_FACTOR
    db_files: Mapping[str, str] = field(default_factory=dict)
    hs_version: str = ""

    @classmethod
    def of(cls, rules: Sequence[PlannedRule]) -> MatchPlan:
        generic = frozenset(i for i, r in enumerate(rules) if r.generic)
        anchored = generic | {i for i, r in enumerate(rules) if r.context}
        always = tuple(i for i, r in enumerate(rules) if not r.keywords)
        keywords = sorted({k for r in rules for k in r.keywords})
        index = {k: n for n, k in enumerate(keywords)}
        keyword_rules: list[list[int]] = [[] for _ in keywords]
        for i, r in enumerate(rules):
            for k in r.keywords:
                keyword_rules[index[k]].append(i)
        partners = {r.pair.rule for r in rules if r.pair}
        return cls(
            ids=tuple(r.id for r in rules),
            generic_ids=frozenset(r.id for r in rules if r.generic),
            companion_ids=frozenset(
                r.id for r in rules if COMPANION_TAG in r.tags and r.id in partners
            ),
            always=always,
            generic=generic,
            anchored=anchored,
            keywords=tuple(keywords),
            keyword_rules=tuple(tuple(v) for v in keyword_rules),
            generic_keywords=tuple(sorted({k for i in generic for k in rules[i].keywords})),
            context_keywords=tuple(sorted({k for r in rules if r.context for k in r.keywords})),
            keywordless=frozenset(i for i in always if i not in anchored),
            isolated=frozenset(
                i
                for i, r in enumerate(rules)
                if i not in anchored and r.keywords and longest_literal(r.regex) < MIN_FACTOR
            ),
        )

    def with_db_files(self, files: Mapping[str, str], hs_version: str) -> MatchPlan:
        return replace(self, db_files=dict(files), hs_version=hs_version)

    # ------------------------------------------------------------------ (de)serialising
    def to_doc(self) -> dict[str, Any]:
        """Plain data (lists, strings, ints) for the JSON rule cache."""
        doc: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif name == "keyword_rules":
                value = [list(v) for v in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif name == "db_files":
                value = dict(value)
            doc[name] = value
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> MatchPlan:
        """The plan :meth:`to_doc` wrote (KeyError, TypeError or ValueError when it is not)."""
        kwargs: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = doc[name]
            kind = _KINDS[name]
            if kind is frozenset:
                value = frozenset(value)
            elif name == "keyword_rules":
                value = tuple(tuple(v) for v in value)
            elif kind is tuple:
                value = tuple(value)
            elif kind is dict:
                value = {str(k): str(v) for k, v in value.items()}
            else:
                value = str(value)
            kwargs[name] = value
        plan = cls(**kwargs)
        if len(plan.keyword_rules) != len(plan.keywords):
            raise ValueError("keywords and their rules do not line up")
        return plan


_KINDS: dict[str, type] = {
    "ids": tuple, "generic_ids": frozenset, "companion_ids": frozenset, "always": tuple,
    "generic": frozenset, "anchored": frozenset, "keywords": tuple, "keyword_rules": tuple,
    "generic_keywords": tuple, "context_keywords": tuple, "keywordless": frozenset,
    "isolated": frozenset, "db_files": dict, "hs_version": str,
}  # fmt: skip
_FIELD_NAMES = tuple(_KINDS)


def longest_literal(regex: str) -> int:
    """The longest run of literal characters in ``regex`` (a rough reading, good enough to
    choose a database: character classes, group syntax and quantified characters break runs).

    Hyperscan finds a union's patterns by their literal factors; a pattern with none (a class
    repeat such as ``\\b[a-z2-7]{52}\\b``) is checked at every position and made the whole
    provider union scan at half its speed.
    """
    best = run = 0
    i, n = 0, len(regex)
    while i < n:
        c = regex[i]
        literal = False
        if c == "\\" and i + 1 < n:
            literal = regex[i + 1] not in _CLASS_ESCAPES and not regex[i + 1].isdigit()
            i += 2
        elif c == "[":  # a class: skip to its end
            i += 2 if regex[i + 1 : i + 2] in ("]", "^") else 1
            while i < n and regex[i] != "]":
                i += 2 if regex[i] == "\\" else 1
            i += 1
        elif c == "(":
            i += 1
            if regex[i : i + 1] == "?":  # group syntax up to its body
                while i < n and regex[i] not in ":>)=!":
                    i += 1
                if regex[i : i + 1] == "<" or (i + 1 < n and regex[i] == "<"):
                    i += 1
                i += 1
        elif c == "{":
            i = regex.find("}", i) + 1 or n
        else:
            literal = c not in ".^$|)?*+"
            i += 1
        if literal and regex[i : i + 1] not in ("?", "*", "{"):
            run += 1
            best = max(best, run)
        else:
            run = 0
    return best
