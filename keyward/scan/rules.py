"""Rules are data: ``keyward/rules/*.toml`` plus the user's own files.

Schema of one rule (``[[rules]]`` table)::

    id = "github-pat-classic"            # kebab-case, stable forever
    description = "GitHub personal access token (classic)"
    severity = "high"                     # critical | high | medium | low | info
    regex = '''(?P<secret>ghp_[A-Za-z0-9]{36})'''   # Python syntax, named group `secret`
    keywords = ["ghp_"]                   # lower-case; a chunk must contain one (prefilter)
    entropy = 3.0                         # optional minimum Shannon entropy of the secret
    validator = "github-crc32"            # optional, see keyward.scan.validators
    priority = 50                         # optional; overlapping matches keep the higher one
    generic = false                       # optional; generic rules get placeholder filters
    enabled = true                        # a user file may disable a built-in rule by id
    allowlist = { regexes = ['...'], paths = ['**/*.lock'] }
    pair = { rule = "aws-secret-access-key", lines = 5 }   # optional: report two as one
    examples = { positive = ['...'], negative = ['...'] }
    confidence = "high"                   # optional: high | medium | low (else derived)

A finding's confidence starts from its rule (``confidence`` when given; else ``high`` for a
rule with a checksum or structure validator, ``medium`` otherwise) and is lowered by what the
finding's context shows (:mod:`keyward.scan.confidence`). Rules tagged ``password`` hold
values people choose (URL and connection-string passwords): their values are judged like
generic passwords.

A **context rule** (the long tail of APIs whose keys have no prefix) gives the value's shape
instead of a regex; its keywords are the provider's names, matched as words of the key, and
the assignment grammar is shared by the family (see :mod:`keyward.scan.context`)::

    id = "ipstack-access-key"
    description = "ipstack API access key (in context)"
    severity = "medium"
    keywords = ["ipstack"]                # `_` also matches `-`, `.` and nothing
    shape = "hex32"                       # or a list; hexN HEXN alnumN lowerN upperN digitsN
                                          # base64N base64urlN (N or N-M), uuid, '[a-z0-9]{40}',
                                          # { alphabet = "a-z0-9", length = [30, 40] }
    prefix = ""                           # optional literal the value starts with
    key_words = ["secret"]                # optional: the key must contain one of these
    tags = ["ipstack"]
    examples = { positive = ['...'], negative = ['...'] }

Context rules default to priority 40 (42 with ``key_words``): above generic rules, below
provider formats with a prefix.

Regexes are compiled with ``re.ASCII``; they are also fed to hyperscan in prefilter mode, so
they should stay within what it accepts (no back-references) for the fast path to apply.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from keyward.core.errors import RuleError
from keyward.core.lazyre import lazy
from keyward.scan.context import Context, ShapeError, display_regex, parse_shape
from keyward.scan.model import Confidence, Severity
from keyward.scan.validators import VALIDATORS

if TYPE_CHECKING:
    from keyward.scan.plan import MatchPlan

RULE_ID = lazy(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_KNOWN_KEYS = {
    "id", "description", "severity", "regex", "keywords", "entropy", "validator", "priority",
    "generic", "enabled", "allowlist", "pair", "examples", "tags", "multiline", "shape",
    "prefix", "key_words", "confidence",
}  # fmt: skip
_CONTEXT_ONLY = ("shape", "prefix", "key_words")
CONTEXT_PRIORITY = 40


class RuleFamily(StrEnum):
    """What kind of evidence a rule's match is (see :mod:`keyward.scan.confidence`)."""

    PROVIDER = "provider"  # a provider's own format (prefix, length, alphabet, structure)
    CONTEXT = "context"  # a provider's keywords near a value of a declared shape
    GENERIC = "generic"  # a secret-like key with a value of no known format


@dataclass(frozen=True, slots=True)
class Pair:
    rule: str
    lines: int = 5


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    severity: Severity
    regex: str
    keywords: tuple[str, ...] = ()
    entropy: float = 0.0
    validator: str | None = None
    priority: int = 50
    generic: bool = False
    allow_regexes: tuple[str, ...] = ()
    allow_paths: tuple[str, ...] = ()
    pair: Pair | None = None
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    source: str = ""
    context: Context | None = None  # a context rule: keywords near a value of a shape
    confidence: Confidence | None = None  # declared by the rule; None: derived
    _compiled: list[re.Pattern[str]] = field(default_factory=list, repr=False, compare=False)
    _allow: list[re.Pattern[str]] = field(default_factory=list, repr=False, compare=False)

    @property
    def pattern(self) -> re.Pattern[str]:
        if not self._compiled:
            self._compiled.append(re.compile(self.regex, re.ASCII))
        return self._compiled[0]

    @property
    def allow_patterns(self) -> list[re.Pattern[str]]:
        if self.allow_regexes and not self._allow:
            self._allow.extend(re.compile(r, re.ASCII) for r in self.allow_regexes)
        return self._allow

    @property
    def family(self) -> RuleFamily:
        if self.generic:
            return RuleFamily.GENERIC
        return RuleFamily.PROVIDER if self.context is None else RuleFamily.CONTEXT

    def path_allowed(self, path: str | None) -> bool:
        """True when this rule is switched off for ``path`` by its allowlist."""
        if not path or not self.allow_paths:
            return False
        from fnmatch import fnmatchcase

        return any(fnmatchcase(path, g) or fnmatchcase("/" + path, g) for g in self.allow_paths)


class LazyRules(Sequence[Rule]):
    """Rules of the rule cache, each built from its row the first time it is asked for (a
    pre-commit hook runs a few of ~850). Equal to the tuple of the same rules."""

    __slots__ = ("_build", "_built", "_ids", "_rows")

    def __init__(self, rows: Sequence[Any], ids: Sequence[str], build: Any) -> None:
        self._rows = rows
        self._ids = tuple(ids)
        self._build = build  # row -> Rule
        self._built: list[Rule | None] = [None] * len(rows)
        if len(self._ids) != len(rows):
            raise ValueError("rule ids and rows do not line up")

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Rule: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Rule]: ...

    def __getitem__(self, index: int | slice) -> Rule | Sequence[Rule]:
        if isinstance(index, slice):
            return tuple(self)[index]
        rule = self._built[index]
        if rule is None:
            rule = self._built[index] = self._build(self._rows[index])
        return rule

    def __iter__(self) -> Iterator[Rule]:
        for i in range(len(self._rows)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyRules | tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"LazyRules({len(self)} rules)"

    @property
    def ids(self) -> tuple[str, ...]:
        return self._ids


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules, sorted by id. ``plan``: what the engine derives from them, when the rule
    cache kept it (see :mod:`keyward.scan.plan`)."""

    rules: Sequence[Rule]
    plan: MatchPlan | None = field(default=None, compare=False, repr=False)

    def __iter__(self) -> Any:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}


def rule_ids(rules: Sequence[Rule]) -> Sequence[str]:
    """The ids of ``rules`` (without building lazily loaded rules)."""
    return rules.ids if isinstance(rules, LazyRules) else [r.id for r in rules]


RULES_DIR = Path(__file__).parent.parent / "rules"  # keyward/rules (as importlib.resources says)


def builtin_rule_files() -> list[Path]:
    return sorted(RULES_DIR / name for name in os.listdir(RULES_DIR) if name.endswith(".toml"))


def load_rules(extra_files: Sequence[Path] = (), *, builtin: bool = True) -> RuleSet:
    """Load the built-in rules, then each user file in order (later ids override earlier)."""
    merged: dict[str, Rule] = {}
    disabled: set[str] = set()
    shipped = builtin_rule_files() if builtin else []
    for path in [*shipped, *extra_files]:
        # Shipped rules are proven by the test suite; their regexes compile when first used.
        for rule, enabled in parse_rule_file(path, validate=path not in shipped):
            if enabled:
                merged[rule.id] = rule
                disabled.discard(rule.id)
            else:
                merged.pop(rule.id, None)
                disabled.add(rule.id)
    rules = tuple(sorted(merged.values(), key=lambda r: r.id))
    ids = {r.id for r in rules}
    for r in rules:
        if r.pair and r.pair.rule not in ids and r.pair.rule not in disabled:
            raise RuleError(f"Rule {r.id} in {r.source} pairs with unknown rule {r.pair.rule}")
    return RuleSet(rules)


def parse_rule_file(path: Path, *, validate: bool = True) -> list[tuple[Rule, bool]]:
    """The rules of one file. ``validate=False`` (keyward's own files) skips compiling each
    regex to check it, which the test suite does for them: a regex is then compiled the first
    time its rule can match."""
    import tomllib

    from keyward.core.userfiles import RULE_FILE_LIMIT, read_user_text

    text = read_user_text(path, "rule file", limit=RULE_FILE_LIMIT, error=RuleError)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"The rule file {path} is not valid TOML ({exc})") from None
    except RecursionError:
        raise RuleError(f"The rule file {path} is nested too deeply to hold rules") from None
    tables = doc.get("rules")
    if not isinstance(tables, list) or not tables:
        raise RuleError(
            f"The rule file {path} has no rules",
            hint="Define each rule in a [[rules]] table",
        )
    out: list[tuple[Rule, bool]] = []
    seen: set[str] = set()
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise RuleError(f"Entry {i + 1} of rules in {path} is not a table")
        rule, enabled = _parse_rule(table, path, i, validate)
        if rule.id in seen:
            raise RuleError(f"Rule {rule.id} is defined twice in {path}")
        seen.add(rule.id)
        out.append((rule, enabled))
    return out


def _parse_rule(
    t: Mapping[str, Any], path: Path, index: int, validate: bool = True
) -> tuple[Rule, bool]:
    rid = t.get("id")
    if not isinstance(rid, str) or not RULE_ID.match(rid):
        raise RuleError(
            f"Rule {index + 1} in {path} has no valid id ({rid!r})",
            hint="Ids are kebab-case, e.g. acme-api-key",
        )

    def bad(problem: str) -> RuleError:
        return RuleError(f"Rule {rid} in {path}: {problem}")

    unknown = set(t) - _KNOWN_KEYS
    if unknown:
        raise bad(f"unknown key(s) {', '.join(sorted(unknown))}")
    enabled = t.get("enabled", True)
    if not isinstance(enabled, bool):
        raise bad("enabled must be true or false")
    if not enabled and set(t) <= {"id", "enabled"}:
        # A bare `enabled = false` disables a rule of that id from an earlier file.
        return Rule(rid, "", Severity.INFO, r"(?P<secret>\A\Z)", source=str(path)), False
    keywords = _strings(t.get("keywords", []), bad, "keywords")
    if any(k != k.lower() or not k for k in keywords):
        raise bad("keywords must be non-empty and lower-case")
    context: Context | None = None
    compiled: re.Pattern[str] | None = None
    if "shape" in t:
        context, keywords = _parse_context(t, keywords, bad)
        regex = display_regex(keywords, context)
    else:
        present = [k for k in _CONTEXT_ONLY if k in t]
        if present:
            raise bad(f"{present[0]} belongs to a context rule, which needs a shape")
        given = t.get("regex")
        if not isinstance(given, str) or not given:
            raise bad("regex is missing (or give a shape for a context rule)")
        regex = given
        if validate:
            compiled = _validated(regex, bad)
    sev = t.get("severity", "medium")
    try:
        severity = Severity(sev)
    except ValueError:
        raise bad(
            f"severity {sev!r} is not one of {', '.join(s.value for s in Severity)}"
        ) from None
    entropy = t.get("entropy", 0.0)
    if not isinstance(entropy, int | float) or not 0 <= entropy <= 8:
        raise bad("entropy must be a number from 0 to 8")
    validator = t.get("validator")
    if validator is not None and validator not in VALIDATORS:
        raise bad(f"unknown validator {validator!r} (known: {', '.join(sorted(VALIDATORS))})")
    allow = t.get("allowlist", {})
    if not isinstance(allow, dict):
        raise bad("allowlist must be a table")
    allow_regexes = _strings(allow.get("regexes", []), bad, "allowlist.regexes")
    for ar in allow_regexes:
        try:
            re.compile(ar, re.ASCII)
        except re.error as exc:
            raise bad(f"invalid allowlist regex {ar!r} ({exc})") from None
        if validate:
            _check_backtracking(ar, bad, f"allowlist regex {ar!r}")
    allow_paths = _strings(allow.get("paths", []), bad, "allowlist.paths")
    pair = None
    if "pair" in t:
        p = t["pair"]
        lines = p.get("lines", 5) if isinstance(p, dict) else None
        if (
            not isinstance(p, dict)
            or not isinstance(p.get("rule"), str)
            or not isinstance(lines, int)
            or isinstance(lines, bool)
            or lines < 0
        ):
            raise bad('pair must be a table with a rule id, e.g. { rule = "x", lines = 5 }')
        pair = Pair(p["rule"], lines)
    examples = t.get("examples", {})
    if not isinstance(examples, dict):
        raise bad("examples must be a table with positive and negative lists")
    default_priority = 50
    if context is not None:
        default_priority = CONTEXT_PRIORITY + (2 if context.key_words else 0)
    priority = t.get("priority", default_priority)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise bad("priority must be an integer")
    generic = t.get("generic", False)
    if not isinstance(generic, bool):
        raise bad("generic must be true or false")
    if generic and context is not None:
        raise bad("a context rule (with a shape) cannot be generic")
    description = t.get("description", "")
    if not isinstance(description, str) or not description:
        raise bad("description is missing")
    declared = t.get("confidence")
    confidence = None
    if declared is not None:
        try:
            confidence = Confidence(declared)
        except ValueError:
            raise bad(
                f"confidence {declared!r} is not one of {', '.join(c.value for c in Confidence)}"
            ) from None
    rule = Rule(
        id=rid,
        description=description,
        severity=severity,
        regex=regex,
        keywords=keywords,
        entropy=float(entropy),
        validator=validator,
        priority=priority,
        generic=generic,
        allow_regexes=allow_regexes,
        allow_paths=allow_paths,
        pair=pair,
        positive=_strings(examples.get("positive", []), bad, "examples.positive"),
        negative=_strings(examples.get("negative", []), bad, "examples.negative"),
        tags=_strings(t.get("tags", []), bad, "tags"),
        source=str(path),
        context=context,
        confidence=confidence,
    )
    if compiled is not None:
        rule._compiled.append(compiled)
    return rule, enabled


def _validated(regex: str, bad: Any) -> re.Pattern[str]:
    try:
        compiled = re.compile(regex, re.ASCII)
    except re.error as exc:
        raise bad(f"invalid regex ({exc})") from None
    if re.search(r"(?<!\\)\{,\d", regex):
        # Python reads {,N} as {0,N}; hyperscan (PCRE) reads it as literal text.
        raise bad("write {0,N} instead of {,N} (other regex engines read {,N} literally)")
    if "secret" not in compiled.groupindex:
        raise bad("the regex has no named group 'secret' (write (?P<secret>...))")
    if compiled.match(""):
        raise bad("the regex matches the empty string")
    _check_backtracking(regex, bad, "regex")
    return compiled


def _check_backtracking(regex: str, bad: Any, what: str) -> None:
    """Refuse a user regex that can take exponential time (Python's re cannot be stopped)."""
    from keyward.scan.regexsafety import backtracking_risk

    why = backtracking_risk(regex)
    if why is not None:
        raise bad(
            f"its {what} can take exponential time on text it does not match ({why}); "
            "rewrite that part so each character can be matched only one way, e.g. a+ for (a+)+"
        )


_KEYWORD_SEPARATORS = ("-", ".", "")
_CONTEXT_KEYWORD = lazy(r"[a-z0-9][a-z0-9_.\-]*")


def _parse_context(
    t: Mapping[str, Any], keywords: tuple[str, ...], bad: Any
) -> tuple[Context, tuple[str, ...]]:
    """The shape, prefix and key words of a context rule, and its keywords with the
    separator variants of each ``_`` (``open_weather`` also matches ``open-weather``,
    ``open.weather`` and ``openweather``)."""
    if "regex" in t:
        raise bad("a context rule has a shape instead of a regex; give one or the other")
    raw = t["shape"]
    specs = raw if isinstance(raw, list) and raw else [raw]
    try:
        shapes = tuple(dict.fromkeys(parse_shape(s) for s in specs))
    except ShapeError as exc:
        raise bad(str(exc)) from None
    prefix = t.get("prefix", "")
    if not isinstance(prefix, str):
        raise bad("prefix must be a string")
    words = _strings(t.get("key_words", []), bad, "key_words")
    if any(w != w.lower() or not w.isalnum() for w in words):
        raise bad("key_words must be lower-case words (letters and digits)")
    if not keywords:
        raise bad("a context rule needs keywords: the provider's names in the key")
    if any(len(k) < 3 or not _CONTEXT_KEYWORD.fullmatch(k) for k in keywords):
        raise bad("context keywords are words of 3 or more letters, digits, '_', '.' or '-'")
    expanded: list[str] = []
    for k in keywords:
        expanded.append(k)
        if "_" in k:
            expanded.extend(k.replace("_", sep) for sep in _KEYWORD_SEPARATORS)
    return Context(shapes, prefix, words), tuple(dict.fromkeys(expanded))


def _strings(value: object, bad: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(f"{name} must be a list of strings")
    return tuple(value)


def iter_examples(rules: Iterable[Rule]) -> Iterable[tuple[Rule, str, bool]]:
    for r in rules:
        for ex in r.positive:
            yield r, ex, True
        for ex in r.negative:
            yield r, ex, False
