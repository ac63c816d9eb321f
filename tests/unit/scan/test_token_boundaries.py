"""Exact length and alphabet: a provider token is never reported by a part of a longer token.

For every provider rule (generic rules have their own filters), each positive example's
finding is taken; then more of the token's own alphabet is put right after it (a value too
long for a fixed-length format, or simply a longer token) and a letter right before it (the
token inside a longer word). The rule may then report the longer token, or nothing, but never
the original value: a format of fixed length must not match a longer token by its prefix.
"""

from __future__ import annotations

import pytest
from scanutil import KEY

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine
from keyward.scan.model import Chunk, Location
from keyward.scan.rules import Rule, load_rules

RULES = load_rules()
ENGINE = Engine(RULES, Fingerprinter(KEY), backend="re")


def _findings(rule: Rule, text: str) -> list[str]:
    return [
        f.secret
        for f in ENGINE.scan(Chunk(text, Location(path="src/app.py")))
        if f.rule_id == rule.id
    ]


def _cases() -> list[tuple[Rule, str, str]]:
    cases = []
    for rule in RULES:
        if rule.generic:
            continue
        for example in rule.positive:
            cases.extend(
                (rule, example, secret)
                for secret in _findings(rule, example)
                if "\n" not in secret and secret in example
            )
    return cases


CASES = _cases()


def test_every_provider_rule_with_examples_is_covered() -> None:
    covered = {rule.id for rule, _, _ in CASES}
    providers = {r.id for r in RULES if not r.generic and r.positive}
    assert len(covered) >= 0.9 * len(providers)


@pytest.mark.parametrize(
    ("rule", "example", "secret"), CASES, ids=[f"{r.id}-{i}" for i, (r, _, _) in enumerate(CASES)]
)
def test_a_longer_token_is_not_reported_by_its_prefix(
    rule: Rule, example: str, secret: str
) -> None:
    at = example.index(secret)
    end = at + len(secret)
    if secret[-1].isalnum():
        longer = example[:end] + secret[-1] * 3 + example[end:]
        assert secret not in _findings(rule, longer)
    if secret[0].isalnum() and (at == 0 or not example[at - 1].isalnum()):
        inside = example[:at] + "q" + example[at:]
        assert secret not in _findings(rule, inside)


def _word_keyword_cases() -> list[tuple[Rule, str, str]]:
    cases = []
    for rule in RULES:
        words = [k for k in rule.keywords if len(k) >= 3 and k.isalpha()]
        if rule.generic or rule.context is not None or not words:
            continue
        for example in rule.positive:
            found = set(_findings(rule, example))
            for m in rule.pattern.finditer(example):
                # the keyword is the regex's own context before the secret (not only the
                # prefilter of a format that stands alone, like re_... or key-...)
                context = example[m.start() : m.start("secret")].lower()
                if m.group("secret") in found and any(k in context for k in words):
                    cases.append((rule, example, m.group("secret")))
    return cases


WORD_CASES = _word_keyword_cases()


def test_keyword_cases_cover_the_rules_named_after_providers() -> None:
    assert len({r.id for r, _, _ in WORD_CASES}) >= 60


@pytest.mark.parametrize(
    ("rule", "example", "secret"),
    WORD_CASES,
    ids=[f"{r.id}-{i}" for i, (r, _, _) in enumerate(WORD_CASES)],
)
def test_a_provider_name_inside_a_longer_word_does_not_fire(
    rule: Rule, example: str, secret: str
) -> None:
    """``rookTable`` holds ``okta``: the provider name inside another word is not that
    provider's context."""
    at = example.index(secret)
    head, tail = example[:at], example[at:]
    for k in (k for k in rule.keywords if len(k) >= 3 and k.isalpha()):
        low = head.lower()
        out, i = [], 0
        while (j := low.find(k, i)) >= 0:
            out.append(head[i:j] + "ro" + k)  # the keyword, lower-case, inside a longer word
            i = j + len(k)
        head = "".join(out) + head[i:]
    assert secret not in _findings(rule, head + tail)
