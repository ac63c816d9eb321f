"""Provider regexes searched around their required literals find exactly what a whole-chunk
search finds: every rule's examples, and random text built from them."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scanutil import engine_for

from keyward.scan import windows
from keyward.scan.engine import Engine, _Lazy
from keyward.scan.model import Chunk, Location
from keyward.scan.rules import load_rules
from keyward.scan.windows import Window

RULES = [r for r in load_rules() if not r.generic and r.context is None]
NOISE = ["", " ", "\n", "\t", "=", ":", "'", '"', "://", "@", "_", "-", ".", "/", "é", "日本", "ß"]


@pytest.fixture(autouse=True)
def _always_windowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short texts are mostly window: searched whole. Here windows are always used."""
    monkeypatch.setattr(windows, "_COVERAGE", 2.0)


def _both(pattern: re.Pattern[str], text: str) -> tuple[list[object], list[object]]:
    whole = [(m.span(), m.groups()) for m in pattern.finditer(text)]
    windowed = [(m.span(), m.groups()) for m in Window(pattern).finditer(text, _Lazy(text).get)]
    return windowed, whole


def _mangle(rnd: random.Random, text: str) -> str:
    """Cut, case-swapped, repeated or with a character changed: near misses and overlaps."""
    if not text:
        return text
    i = rnd.randrange(len(text))
    j = rnd.randrange(i, len(text) + 1)
    choice = rnd.randrange(6)
    if choice == 0:
        return text[i:j]
    if choice == 1:
        return text.swapcase()
    if choice == 2:
        return text[:j] + text[i:]  # a repeated middle: overlapping candidates
    if choice == 3:
        return text[:i] + rnd.choice("aZ09_-./+=\n ") + text[i + 1 :]
    if choice == 4:
        return text + text
    return text[:i]


def _random_texts(seed: int, examples: list[str], count: int) -> list[str]:
    rnd = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rnd.randint(1, 6)):
            ex = rnd.choice(examples)
            parts.append(ex if rnd.random() < 0.4 else _mangle(rnd, ex))
            parts.append(rnd.choice(NOISE))
        texts.append("".join(parts))
    return texts


ALL_EXAMPLES = [ex for r in RULES for ex in (*r.positive, *r.negative)]


@pytest.mark.parametrize("chunk", range(4))
def test_windowed_search_equals_whole_search_for_every_provider_rule(chunk: int) -> None:
    checked = 0
    for k, rule in enumerate(RULES):
        if k % 4 != chunk:
            continue
        own = [*rule.positive, *rule.negative]
        texts = [*own, "\n".join(own), *_random_texts(k, own, 25)]
        # other rules' examples around this rule's, and mixed into them
        rnd = random.Random(k)
        texts += _random_texts(k + 1, own + rnd.sample(ALL_EXAMPLES, 8), 10)
        for text in texts:
            windowed, whole = _both(rule.pattern, text)
            assert windowed == whole, (rule.id, text)
            checked += bool(whole)
    assert checked > 100  # the texts do hold matches


def test_required_literals_are_read_from_the_regex() -> None:
    by_id = {r.id: r for r in RULES}
    assert Window(by_id["basic-auth-url"].pattern).literals == (("://", False),)
    assert set(Window(by_id["ado-net-connection-string-password"].pattern).literals) == {
        ("addr", True),  # "address" holds it
        ("server", True),
        ("data source", True),
    }
    assert Window(by_id["ionic-personal-access-token"].pattern).literals == (("ion_", False),)
    # a class product: [MNO][DTjz], case-sensitive
    assert len(Window(by_id["discord-bot-token"].pattern).literals) == 12


@pytest.mark.parametrize(
    ("regex", "text"),
    [
        # lookbehind and \b before the window's first start, lookahead past its end
        (r"(?<![a-z])key_[0-9]{4}(?![0-9])", "xkey_1234 key_1234 key_12345 key_123"),
        (r"\bkey_[0-9]{4}\b", "akey_1234 key_1234_ key_1234"),
        (r"(?:^|[^a-z])key_[0-9]{2,4}(?:[^0-9]|$)", "key_12key_34 key_5678\nkey_99"),
        # matches that touch or would overlap: resumed at the previous match's end
        (r"ab?ab", "abababab aab abab"),
        (r"(?i:tok)[a-z]{0,3}", "TOKtoktok tOkabc"),
        # case-sensitive and caseless required strings in one regex
        (r"(?:AKIA|(?i:asia))[A-Z0-9]{4}", "AKIAABCD akiaABCD asiaABCD ASIAWXYZ"),
        # required strings that overlap: the search of their alternation skips "cde"
        (r"(?:abc|cde)[0-9]", "abcde1 xabcde2"),
        # a product of disjoint classes, found with bytes.translate (non-ASCII text too)
        (r"(?<![a-z])[MNO][DTjz][a-z]{3}", "é MDabc日NTxyz ODab xMTabc Ojzzz"),
        (r"(?i:[ab][xy])zz", "AXzz bYzz ayZZ éaxzz"),
        # can match the empty string: searched whole
        (r"x*", "xx yx"),
        # no literal: searched whole
        (r"[a-f0-9]{8}", "deadbeef 0123456789"),
    ],
)
def test_windowed_search_equals_whole_search_at_the_edges(regex: str, text: str) -> None:
    pattern = re.compile(regex, re.ASCII)
    for t in (text, text * 3, text.upper(), "é" + text):
        windowed, whole = _both(pattern, t)
        assert windowed == whole


def test_a_required_class_run_skips_chunks_without_one() -> None:
    pattern = re.compile(r"\b(?P<secret>[a-z2-7]{20})\b", re.ASCII)
    window = Window(pattern)
    run = "abcdefghijklmnopqrst"
    for text in ("no run here", f"x {run} y", f"é {run}", f"{run[:-1]}", f"{run}z"):
        windowed, whole = _both(pattern, text)
        assert windowed == whole
    assert window.finditer("short words only", lambda: "short words only") == []


def test_a_prepared_re_engine_has_every_provider_window_and_finds_the_same() -> None:
    """Engine.prepare (a parent before forking workers) reads every provider regex's windows
    once, so the workers share them; a prepared engine finds what a lazy one finds."""
    rules = load_rules()
    prepared, lazy = engine_for(rules, "re"), engine_for(rules, "re")
    prepared.prepare()
    assert set(prepared._windows) == {r.id for r in RULES}
    text = "\n".join(ALL_EXAMPLES)

    def found(engine: Engine) -> list[tuple[str, int, str]]:
        chunk = Chunk(text, Location(path="x.txt"))
        return [(f.rule_id, f.location.line, f.fingerprint) for f in engine.scan(chunk)]

    assert found(prepared) == found(lazy)
    assert len(found(lazy)) > 100
