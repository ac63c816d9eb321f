"""How sure keyward is that a match is a real credential: :class:`Confidence` per finding.

A finding's confidence starts from its rule and is lowered by what the match's context shows:

* **From the rule** (rule data only): the rule's declared ``confidence`` when it has one;
  else ``high`` for a rule with a validator (a checksum or a decoded structure proves the
  format: GitHub's CRC-32, a PEM key's DER body), ``medium`` for every other rule.
* **Known public values** (``keyward/data/known-examples.toml``, each with its source: AWS
  documentation keys, the AWS SigV4 test suite, jwt.io's demo token, Firebase SDK sample keys,
  Stripe's documentation keys) are not findings at all, whatever the rule. Formats that are
  public by design (a Mapbox ``pk.`` token, a Stripe publishable key) are not findings of the
  generic rules.
* **Generic rules** (a secret-like name with a value of no known format) and rules tagged
  ``password`` (URL and connection-string passwords, which people choose) are ``low`` when the
  value looks like a sample rather than a credential:

  - it was chosen by a person: words, names, keyboard runs, years and leetspeak make up most
    of it, by zxcvbn's frequency lists and model (``superS3cret``, ``AnotherStrongPass!``);
  - its base64 decodes to plain text (``TGludXggdmVyc2lvbi...`` is "Linux version ...");
  - it holds a run of ten or more digits among non-hex letters (an id with a timestamp,
    ``XqJIt1342112125076``; a random token of letters and digits almost never has one);
  - it is on an interactive-session line (``>>>``, ``...``, ``In [1]:``, ``$``): an example;
  - it is in a directory of recorded or canned test data (``fixtures/``, ``responses/``,
    ``cassettes/``, ``testdata/``, ``snapshots/``, ``mocks/``): captured API responses hold
    idempotency tokens, hashes and ids under secret-like names;
  - it is in a test, fixture, documentation or example path (see :func:`is_sample_path`) and
    is guessable: fewer than 10^10 guesses (a random value of ten characters or more needs
    more).

  - in a test file, the same value is on a line the test asserts with (``assert url ==
    "https://deploy:...@host"``): a test vector, and so is every other copy of it there.

  A random value under a secret-like name stays ``medium`` in a test file too: tests are where
  real credentials get pasted.

Provider formats without a validator and context rules (a provider's keywords near a value of
its declared shape) stay ``medium`` anywhere: their format is the evidence.
Everything here runs only on a rule's match, never on a whole file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, assert_never
from urllib.parse import unquote

from keyward.core.errors import RuleError
from keyward.core.lazyre import lazy
from keyward.scan.model import Confidence
from keyward.scan.rules import Rule, RuleFamily

PASSWORD_TAG = "password"  # a rule whose values people choose (judged like passwords)
KNOWN_EXAMPLES = "known-examples.toml"
DATA_DIR = Path(__file__).parent.parent / "data"  # keyward/data


# ------------------------------------------------------------------ known public values
@dataclass(frozen=True, slots=True)
class KnownValues:
    """Published example values (by value or SHA-256) and public-by-design prefixes."""

    values: frozenset[str] = frozenset()
    digests: frozenset[str] = frozenset()
    public_prefixes: tuple[str, ...] = ()

    def known(self, value: str) -> bool:
        if value in self.values:
            return True
        return bool(self.digests) and hashlib.sha256(value.encode()).hexdigest() in self.digests

    def public(self, value: str) -> bool:
        return value.startswith(self.public_prefixes)


def parse_known_values(doc: Mapping[str, Any], where: str) -> KnownValues:
    """The entries of a known-examples document; every entry must name its source."""
    values: set[str] = set()
    digests: set[str] = set()
    prefixes: list[str] = []
    unknown = set(doc) - {"examples", "public"}
    if unknown:
        raise RuleError(f"{where}: unknown table(s) {', '.join(sorted(unknown))}")
    for i, entry in enumerate(doc.get("examples", [])):
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
            raise RuleError(f"{where}: example {i + 1} needs a source")
        value, digest = entry.get("value"), entry.get("sha256")
        if isinstance(value, str) and value and digest is None:
            values.add(value)
        elif isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) and value is None:
            digests.add(digest)
        else:
            raise RuleError(f"{where}: example {i + 1} needs a value or a sha256 (not both)")
    for i, entry in enumerate(doc.get("public", [])):
        prefix = entry.get("prefix") if isinstance(entry, dict) else None
        if (
            not isinstance(prefix, str)
            or len(prefix) < 3
            or not isinstance(entry.get("source"), str)
        ):
            raise RuleError(f"{where}: public format {i + 1} needs a prefix and a source")
        prefixes.append(prefix)
    return KnownValues(frozenset(values), frozenset(digests), tuple(prefixes))


_KNOWN: list[KnownValues] = []  # keyward's own list, once read (or taken from the rule cache)


def known_values() -> KnownValues:
    """keyward's own list, read once per process, the first time a match needs it."""
    if not _KNOWN:
        import tomllib

        text = known_values_file().read_text(encoding="utf-8")
        _KNOWN.append(parse_known_values(tomllib.loads(text), KNOWN_EXAMPLES))
    return _KNOWN[0]


def known_values_file() -> Path:
    return DATA_DIR / KNOWN_EXAMPLES


def remember_known_values(values: KnownValues) -> None:
    """Take keyward's own list as the rule cache kept it (read from :func:`known_values_file`
    when the cache was written, and keyed by that file), instead of parsing it again."""
    if not _KNOWN:
        _KNOWN.append(values)


# ------------------------------------------------------------------ where a value is
_SAMPLE_DIRS = frozenset(
    {
        "test", "tests", "testing", "testdata", "test-data", "test_data", "testsuite",
        "test-suite", "spec", "specs", "__tests__", "__test__", "fixture", "fixtures",
        "mock", "mocks", "__mocks__", "cassettes", "snapshots", "__snapshots__", "doc",
        "docs", "documentation", "example", "examples", "sample", "samples", "demo", "demos",
        "e2e", "tutorial", "tutorials",
    }
)  # fmt: skip
_SAMPLE_DIR = lazy(
    r"(?:unit|integration|functional|acceptance|system|e2e)[-_]?tests?|tests?[-_]\w+", re.I
)
_SAMPLE_FILE = lazy(
    r"""(?ix)
    ^(?:test_|tests?\.|conftest\.py$)      # test_x.py, test.js, conftest.py
    | [._-](?:test|tests|spec|e2e)\.\w+$   # x_test.go, x.test.ts, x.spec.js
    | (?:Tests?|Spec)\.(?:java|kt|scala|groovy|cs|swift|php|m)$
    | \.(?:md|markdown|rst|adoc|ipynb)$    # documentation and notebooks
    """
)


# Directories of recorded or canned data (API responses, VCR cassettes, snapshots, mocks): a
# value there was captured or made up for a test, not configured.
_FIXTURE_DIRS = frozenset(
    {
        "fixture", "fixtures", "response", "responses", "cassettes", "recordings", "testdata",
        "test-data", "test_data", "snapshots", "__snapshots__", "mock", "mocks", "__mocks__",
    }
)  # fmt: skip


def is_fixture_path(path: str | None) -> bool:
    """A path under a directory of recorded or canned test data."""
    if not path:
        return False
    parts = path.replace("\\", "/").lower().split("/")[:-1]
    return not _FIXTURE_DIRS.isdisjoint(parts)


def is_sample_path(path: str | None) -> bool:
    """A path under tests, fixtures, documentation or examples, or a test / doc file."""
    if not path:
        return False
    parts = path.replace("\\", "/").split("/")
    for part in parts[:-1]:
        low = part.lower()
        if low in _SAMPLE_DIRS or _SAMPLE_DIR.fullmatch(low):
            return True
    return _SAMPLE_FILE.search(parts[-1]) is not None


# ------------------------------------------------------------------ what a value looks like
_BASE64 = lazy(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_CREDENTIAL_TEXT = lazy(r"(?i)private_key|password|secret|token|-----BEGIN")


def decodes_to_text(value: str) -> bool:
    """The value is base64 (standard or URL-safe) of plain text: printable, with spaces (a
    sentence, a log line, a small JSON document), and no credential inside. A random key
    decodes to bytes that are almost never all printable."""
    if not _BASE64.fullmatch(value):
        return False
    body = value.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return False
    if len(text) < 12 or " " not in text:
        return False
    if not all(c.isprintable() or c in "\t\r\n" for c in text):
        return False
    return _CREDENTIAL_TEXT.search(text) is None


_DIGIT_RUN = lazy(r"\d{10,}")
_NON_HEX_LETTER = lazy(r"[g-zG-Z]")


_SEGMENT = lazy(r"[-_./:+]")


def has_id_digits(value: str) -> bool:
    """A run of ten or more digits in a part of the value (between separators) that has
    letters beyond hex: an id or a timestamp (``XqJIt1342112125076``). In a random
    32-character base62 token such a run has a probability near 10^-7; hex parts are left
    alone (digit runs are common in them: ``vault-held-<uuid hex>``)."""
    return any(
        _DIGIT_RUN.search(part) is not None and _NON_HEX_LETTER.search(part) is not None
        for part in _SEGMENT.split(value)
    )


_PROMPT = lazy(r"^[ \t]*(?:>>>|\.\.\.|In \[\d{1,4}\]:|\$|PS>|[A-Za-z]:\\[^>]{0,60}>)[ \t]")


def on_prompt_line(line: str) -> bool:
    """The line is part of an interactive session shown in text (a doctest, a shell)."""
    return _PROMPT.match(line) is not None


@dataclass(frozen=True, slots=True)
class Guessability:
    """How guessable a value is: log10 of the guesses it needs, and the share of it made of
    dictionary words, names, sequences, keyboard runs and years."""

    log10_guesses: float
    patterned: float
    length: int

    hex_only: bool = False

    @property
    def chosen_by_person(self) -> bool:
        """Mostly words and patterns, or far fewer guesses than a random value of its length
        (10 per random character; random values of any alphabet score at least 0.9 of that in
        99% of cases)."""
        if self.hex_only and self.length >= 16:
            return False  # hashes and keys: hex words (cafe, dead) occur by chance
        return self.patterned >= 0.5 or self.log10_guesses < 0.85 * self.length


_MAX_JUDGED = 64  # longer values are judged by their start
_MIN_WORD, _MAX_WORD = 4, 16
_STRONG = 0.6  # log10 guesses per character at most, for a pattern to count as chosen
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s"})  # fmt: skip
_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiop", "asdfghjkl", "zxcvbnm",
              "!@#$%^&*()")  # fmt: skip


class WordRanks:
    """word -> its best rank, looked up in groups by a word's first three letters, each group
    parsed the first time one of its words is looked up (a value needs a few dozen groups).

    The cache file is text: a header line, then one line per group, ``key word:rank ...``
    (the lists' words are ASCII, without spaces, colons or line breaks)."""

    __slots__ = ("_groups", "_parsed")
    HEADER = "keyward word ranks 1"

    def __init__(self, groups: Mapping[str, str]) -> None:
        self._groups = groups  # first three letters -> "word:rank word:rank ..."
        self._parsed: dict[str, dict[str, int]] = {}

    def get(self, word: str) -> int | None:
        key = word[:3]
        group = self._parsed.get(key)
        if group is None:
            raw = self._groups.get(key, "")
            group = self._parsed[key] = {
                w: int(r) for w, _, r in (e.rpartition(":") for e in raw.split(" ")) if w
            }
        return group.get(word)

    @classmethod
    def text_of(cls, ranks: Mapping[str, int]) -> str:
        groups: dict[str, list[str]] = {}
        for word, rank in ranks.items():
            groups.setdefault(word[:3], []).append(f"{word}:{rank}")
        return "\n".join([cls.HEADER, *(f"{k} {' '.join(v)}" for k, v in groups.items())])

    @classmethod
    def from_text(cls, text: str) -> WordRanks:
        lines = text.split("\n")
        if lines[0] != cls.HEADER:
            raise ValueError("not a word ranks file")
        groups = {}
        for line in lines[1:]:
            key, _, rest = line.partition(" ")
            if len(key) != 3 or not rest:
                raise ValueError("a damaged word ranks file")
            groups[key] = rest
        return cls(groups)


@cache
def _ranked_words() -> WordRanks | dict[str, int]:
    """zxcvbn's frequency lists (English words, names, surnames, TV and film words, common
    passwords) as one lookup: word -> its best rank. Built once per process, when the first
    generic value needs judging, and kept in the cache directory (importing and ranking the
    lists took ~50 ms, reading them back a few)."""
    cached = _ranks_file()
    if cached is not None:
        try:
            return WordRanks.from_text(cached.read_text(encoding="ascii"))
        except (OSError, ValueError):
            pass
    ranks = _build_ranks()
    if cached is not None:
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(WordRanks.text_of(ranks), encoding="ascii")
            tmp.replace(cached)
        except (OSError, ValueError):  # ValueError: a word the file cannot hold
            with contextlib.suppress(OSError):
                tmp.unlink()
    return ranks


def _build_ranks() -> dict[str, int]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    ranks: dict[str, int] = {}
    for words in FREQUENCY_LISTS.values():
        for rank, word in enumerate(words, 1):
            if _MIN_WORD <= len(word) <= _MAX_WORD and ranks.get(word, rank + 1) > rank:
                ranks[word] = rank
    return ranks


def _ranks_file() -> Path | None:
    """The cache file of the word ranks, named after zxcvbn's lists file (path, size, time)
    and the word lengths kept; None when zxcvbn or the cache directory cannot be found."""
    import importlib.util

    from keyward.core.config import cache_dir

    try:
        spec = importlib.util.find_spec("zxcvbn")
        if spec is None or spec.origin is None:
            return None
        lists = os.path.join(os.path.dirname(spec.origin), "frequency_lists.py")
        st = os.stat(lists)
        where = cache_dir() / "words"
    except (OSError, ValueError, ImportError):
        return None
    key = f"{lists}|{st.st_size}|{st.st_mtime_ns}|{_MIN_WORD}|{_MAX_WORD}|1".encode()
    return where / f"ranks-{hashlib.sha256(key).hexdigest()[:32]}.txt"


def warm_word_ranks() -> None:
    """Build the word ranks now (a parent does, before it forks workers that share them)."""
    _ranked_words()


def _sequence_runs(low: str) -> list[tuple[int, int]]:
    """Runs of 4 or more characters that step through the alphabet, the digits or a keyboard
    row in one direction (``abcd``, ``4321``, ``qwer``, ``!@#$``)."""
    runs: list[tuple[int, int]] = []
    for seq in _SEQUENCES:
        where = {c: k for k, c in enumerate(seq)}
        start, step = 0, 0
        for k in range(1, len(low) + 1):
            d = (
                where[low[k]] - where[low[k - 1]]
                if k < len(low) and low[k] in where and low[k - 1] in where
                else 0
            )
            if d in (1, -1) and (step in (0, d) or k - start == 1):
                step = d
                continue
            if k - start >= 4:
                runs.append((start, k))
            start, step = k, 0
    return runs


def guessability(value: str) -> Guessability:
    """zxcvbn's model, computed fast: the fewest guesses over ways to split the value into
    dictionary words (also reversed and in leetspeak, with a cost for capitals), runs of a
    sequence or a keyboard row, years, and random characters (10 guesses each, as zxcvbn's
    brute-force estimate counts them). zxcvbn's own matcher takes tens of milliseconds per
    value; this takes a fraction of one, so a file with thousands of candidates stays fast."""
    v = value[:_MAX_JUDGED]
    n = len(v)
    low = v.lower()
    if n >= 16 and all(c in "0123456789abcdef" for c in low):
        return Guessability(float(n), 0.0, n, True)  # hex: machine-made, judged as random
    words = _ranked_words()
    leet = low.translate(_LEET)
    edges: list[list[tuple[int, float]]] = [[] for _ in range(n)]  # start -> (end, cost)
    for i in range(n):
        if not (leet[i].isalpha() or low[i].isdigit()):
            continue
        for j in range(i + _MIN_WORD, min(n, i + _MAX_WORD) + 1):
            plain, subst = low[i:j], leet[i:j]
            rank = words.get(plain) or words.get(plain[::-1])
            cost = math.log10(rank) if rank else math.inf
            if subst != plain and (alt := words.get(subst)):
                cost = min(cost, math.log10(alt) + 0.5)
            if cost < math.inf:
                token = v[i:j]
                if not token.islower():
                    cost += 0.3 if token[0].isupper() and token[1:].islower() else 1.0
                edges[i].append((j, cost))
        if i + 4 <= n and low[i : i + 4].isdigit() and 1900 <= int(low[i : i + 4]) <= 2039:
            edges[i].append((i + 4, 2.1))  # a year
    for i, j in _sequence_runs(low):
        edges[i].append((j, math.log10(26 * (j - i))))
    best = [0.0] + [math.inf] * n  # log10 guesses of v[:i]
    covered = [0] * (n + 1)  # characters of v[:i] inside a pattern, on the best path
    for i in range(n):
        if best[i] + 1.0 < best[i + 1]:  # one random character
            best[i + 1], covered[i + 1] = best[i] + 1.0, covered[i]
        for j, cost in edges[i]:
            if best[i] + cost < best[j]:
                # a pattern counts as chosen when it saves much over random characters (a
                # rare name of 5 letters in a random string barely does)
                strong = cost <= _STRONG * (j - i)
                best[j], covered[j] = best[i] + cost, covered[i] + (j - i if strong else 0)
    hex_only = all(c in "0123456789abcdef" for c in low)
    return Guessability(best[n], covered[n] / n if n else 0.0, n, hex_only)


_ASSERTION = lazy(
    r"^[ \t]*(?:assert\b|assert_\w+\(|(?:self|t|this)\.assert\w*\(|Assert\.\w+\(|expect\()"
    r"|\bassert(?:Equals?|That|_equal|_eq)\b|\.to(?:Be|Equal|StrictEqual)\(|\bshould\s*==",
)


def asserts_on(line: str) -> bool:
    """The line is a test's assertion (``assert``, ``assertEqual``, ``expect(...).toBe``)."""
    return _ASSERTION.search(line) is not None


# ------------------------------------------------------------------ the assessment
def judged_by_value(rule: Rule) -> bool:
    """Whether the rule's values are judged by how they look (generic rules, and rules of
    values people choose): a provider format is its own evidence."""
    family = rule.family
    if family is RuleFamily.GENERIC:
        return True
    if family is RuleFamily.PROVIDER:
        return PASSWORD_TAG in rule.tags
    if family is RuleFamily.CONTEXT:
        return False  # the value has the rule's declared shape
    assert_never(family)


def rule_confidence(rule: Rule) -> Confidence:
    """The confidence the rule alone gives: declared, else by its validator."""
    if rule.confidence is not None:
        return rule.confidence
    return Confidence.HIGH if rule.validator else Confidence.MEDIUM


def assess(rule: Rule, secret: str) -> Confidence | None:
    """The confidence the rule gives this value, or None when the value is a known public
    value (no finding). Generic values and chosen passwords are judged further by
    :func:`judge` once overlaps are resolved (only the matches that are kept pay for it)."""
    known = known_values()
    if known.known(secret):
        return None
    family = rule.family
    if family is RuleFamily.PROVIDER:
        return rule_confidence(rule)
    if family is RuleFamily.CONTEXT or family is RuleFamily.GENERIC:
        return None if known.public(secret) else rule_confidence(rule)
    assert_never(family)


def judge(rule: Rule, base: Confidence, secret: str, path: str | None, line: str) -> Confidence:
    """A value-judged rule's match (:func:`judged_by_value`): low when the value looks like
    a sample. ``line`` is the value's line (or a window of it), ``path`` the display path."""
    if base is Confidence.LOW or not judged_by_value(rule):
        return base
    value = unquote(secret) if PASSWORD_TAG in rule.tags else secret  # kx%40jj5 is kx@jj5
    return base if low_reason(value, path, line) is None else Confidence.LOW


def low_reason(value: str, path: str | None, line: str) -> str | None:
    """Why a generic value looks like a sample (cheapest checks first), or None."""
    if decodes_to_text(value):
        return "encoded-text"
    if has_id_digits(value):
        return "id-digits"
    if on_prompt_line(line):
        return "interactive-example"
    if is_fixture_path(path):
        return "fixture-data"
    g = guessability(value)
    if g.chosen_by_person:
        return "chosen-by-person"
    if g.log10_guesses < 10 and is_sample_path(path):
        return "guessable-in-sample"
    return None
