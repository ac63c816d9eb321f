"""The engine: hyperscan and re agree; the hyperscan database is compiled once and cached."""

from __future__ import annotations

import random
import string
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scanutil import KEY, engine_for, kw_token, make_ruleset, write_rules

from keyward.core.errors import ConfigError
from keyward.core.redaction import Fingerprinter
from keyward.scan import engine as engine_mod
from keyward.scan.engine import Engine, hyperscan_available
from keyward.scan.model import Chunk, Location
from keyward.scan.rules import load_rules

needs_hs = pytest.mark.skipif(not hyperscan_available(), reason="hyperscan not installed")

NOISE = [
    "déjà vu — naïve café ✓ 日本語のテキスト",
    "def f(x):\n    return x * 2  # 😀 emoji",
    "password = os.environ['DB_PASSWORD']",
    "url = 'https://example.com/path?q=1'",
    "Ωμέγα κείμενο, кириллица, עברית",
    "",
]


def corpus(seed: int, examples: list[str]) -> list[str]:
    """Documents mixing every rule example (positive and negative) with non-ASCII noise."""
    rnd = random.Random(seed)
    docs = []
    for i in range(0, len(examples), 7):
        parts: list[str] = []
        for ex in examples[i : i + 7]:
            parts.extend(rnd.sample(NOISE, 2))
            parts.append(ex if rnd.random() < 0.5 else f"  {rnd.choice(NOISE[:2])} {ex} ;")
        docs.append("\n".join(parts))
    docs.append("\n".join(examples))  # everything in one chunk
    return docs


def findings_of(engine: Engine, docs: list[str]) -> list[tuple[object, ...]]:
    out = []
    for i, doc in enumerate(docs):
        data = doc.encode("utf-8")
        for f in engine.scan(Chunk(doc, Location(path=f"doc{i}.txt"), data=data)):
            loc = f.location
            out.append((loc.path, loc.line, loc.column, loc.end_line, f.rule_id, f.fingerprint,
                        f.suppressed_by, f.companion_preview))  # fmt: skip
    return out


@needs_hs
def test_hyperscan_and_re_find_identical_findings_over_every_rule_example() -> None:
    rules = load_rules()
    examples = [ex for r in rules for ex in (*r.positive, *r.negative)]
    docs = [*corpus(1, examples), "\n".join(reversed(examples))]
    re_findings = findings_of(engine_for(rules, "re"), docs)
    hs_findings = findings_of(engine_for(rules, "hyperscan"), docs)
    assert len(re_findings) >= len([r for r in rules if r.positive])
    assert hs_findings == re_findings


@needs_hs
def test_engines_agree_on_multiline_keys_and_non_ascii_positions(tmp_path: Path) -> None:
    rules = make_ruleset(tmp_path)
    block = rules.by_id()["kw-test-block"].positive[0]
    docs = [
        f"ünïcode ✓ {kw_token(1)}\n{block}\n日本 {kw_token(2)} 😀 {kw_token(3)}",
        block.replace("\n", "\r\n"),
        "x" * 10_000 + " " + kw_token(4),
    ]
    re_findings = findings_of(engine_for(rules, "re"), docs)
    assert [r[4] for r in re_findings] == [
        "kw-test-token", "kw-test-block", "kw-test-token", "kw-test-token", "kw-test-block",
        "kw-test-token",
    ]  # fmt: skip
    assert re_findings[2][1:3] == (6, 4)  # line 6, column counted in characters
    assert findings_of(engine_for(rules, "hyperscan"), docs) == re_findings


BOTH = [
    f"a = '{kw_token(5)}'\n" + "-----BEGIN KWT KEY-----\n" + "QUJD" * 12 + "\n-----END KWT KEY-----"
]


@needs_hs
def test_second_engine_loads_the_hyperscan_databases_from_the_cache(tmp_path: Path) -> None:
    rules = make_ruleset(tmp_path)
    first = engine_for(rules, "hyperscan", tmp_path / "cache")
    first_found = findings_of(first, BOTH)  # compiles what the scan needs
    assert [f[4] for f in first_found] == ["kw-test-token", "kw-test-block"]
    assert first.matcher.compiled == 2  # type: ignore[attr-defined]  # keywords + rule union
    second = engine_for(rules, "hyperscan", tmp_path / "cache")
    assert findings_of(second, BOTH) == first_found
    assert second.matcher.from_cache is True  # type: ignore[attr-defined]
    assert second.matcher.loaded == 2  # type: ignore[attr-defined]
    files = first.matcher.cache_files  # type: ignore[attr-defined]
    assert sorted((tmp_path / "cache").iterdir()) == sorted(files)


@needs_hs
def test_the_rule_union_is_built_only_when_a_keyword_occurs(tmp_path: Path) -> None:
    engine = engine_for(make_ruleset(tmp_path), "hyperscan", tmp_path / "cache")
    assert findings_of(engine, ["nothing to see here"]) == []
    assert engine.matcher.compiled == 1  # type: ignore[attr-defined]  # the keyword database
    engine.matcher.prepare()  # type: ignore[attr-defined]
    assert engine.matcher.compiled == 2  # type: ignore[attr-defined]


@needs_hs
@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[: len(b) // 2] + bytes(x ^ 0xFF for x in b[len(b) // 2 :]),  # bit rot
        lambda b: b"garbage",
        lambda b: b"",
    ],
    ids=["truncated", "corrupt-body", "garbage", "empty"],
)
def test_a_corrupt_cache_file_is_ignored_and_rebuilt(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    rules = make_ruleset(tmp_path)
    first = engine_for(rules, "hyperscan", tmp_path / "cache")
    expected = findings_of(first, BOTH)
    for cache_file in first.matcher.cache_files:  # type: ignore[attr-defined]
        cache_file.write_bytes(damage(cache_file.read_bytes()))
    rebuilt = engine_for(rules, "hyperscan", tmp_path / "cache")
    assert findings_of(rebuilt, BOTH) == expected != []
    assert rebuilt.matcher.compiled == 2  # type: ignore[attr-defined]
    again = engine_for(rules, "hyperscan", tmp_path / "cache")
    assert findings_of(again, BOTH) == expected
    assert again.matcher.from_cache  # type: ignore[attr-defined]


@needs_hs
def test_a_changed_rule_compiles_only_itself(tmp_path: Path) -> None:
    from dataclasses import replace

    rules = make_ruleset(tmp_path)
    findings_of(engine_for(rules, "hyperscan", tmp_path / "cache"), BOTH)
    before = set((tmp_path / "cache").iterdir())
    block, token = rules.by_id()["kw-test-block"], rules.by_id()["kw-test-token"]
    changed = replace(token, regex=token.regex.replace("{32}", "{30,32}"), _compiled=[])
    again = engine_for(type(rules)((block, changed)), "hyperscan", tmp_path / "cache")
    findings_of(again, BOTH)
    assert again.matcher.compiled == 1  # type: ignore[attr-defined]
    assert len(set((tmp_path / "cache").iterdir()) - before) == 1


def test_asking_for_hyperscan_without_it_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_mod, "hyperscan_available", lambda: False)
    with pytest.raises(ConfigError, match="hyperscan is not installed"):
        Engine(make_ruleset(tmp_path), Fingerprinter(KEY), backend="hyperscan")
    assert Engine(make_ruleset(tmp_path), Fingerprinter(KEY)).backend == "re"


def test_inline_allow_comments_suppress(tmp_path: Path) -> None:
    rules = make_ruleset(tmp_path)
    doc = "\n".join(
        [
            f"a = '{kw_token(1)}'  # keyward: allow",
            f"b = '{kw_token(2)}'  # pragma: allowlist secret",
            "# pragma: allowlist nextline secret",
            f"c = '{kw_token(3)}'",
            f"d = '{kw_token(4)}'",
        ]
    )
    found = engine_for(rules).scan(Chunk(doc, Location(path="x")))
    assert [(f.location.line, f.suppressed_by) for f in found] == [
        (1, "inline"),
        (2, "inline"),
        (4, "inline"),
        (5, None),
    ]


def test_reprs_never_show_the_raw_value(tmp_path: Path) -> None:
    token = kw_token(9)
    chunk = Chunk(f"k = '{token}'", Location(path="x"), data=f"k = '{token}'".encode())
    (finding,) = engine_for(make_ruleset(tmp_path)).scan(chunk)
    assert finding.secret == token
    for obj in (chunk, finding, finding.location):
        assert token not in repr(obj)
        assert token[4:20] not in repr(obj)
    assert token not in str([chunk, finding])


def test_thousands_of_paired_keys_each_pair_with_their_neighbour() -> None:
    """AWS key ids pair with the nearest secret key; a dump of many keys stays linear."""
    rnd = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "/+"
    lines = []
    for _ in range(2000):
        key_id = "AKIA" + "".join(rnd.choice(string.ascii_uppercase + "234567") for _ in range(16))
        secret = "".join(rnd.choice(alphabet) for _ in range(40))
        lines += [f"aws_access_key_id = {key_id}", f"aws_secret_access_key = {secret}", ""]
    engine = engine_for(load_rules(), "re")
    found = engine.scan(Chunk("\n".join(lines), Location(path="keys.ini")))
    ids = [f for f in found if f.rule_id == "aws-access-key-id"]
    assert len(ids) == 2000
    assert all(f.companion_preview for f in ids)
    assert not [f for f in found if f.rule_id == "aws-secret-access-key"]  # all consumed
    assert [f.location.line for f in ids] == list(range(1, 6000, 3))


COMPANION_RULES = """
[[rules]]
id = "kw-test-client-secret"
description = "Test client secret"
regex = '''client_secret=(?P<secret>[a-f0-9]{40})'''
keywords = ["client_secret"]
pair = { rule = "kw-test-client-id", lines = 3 }

[[rules]]
id = "kw-test-client-id"
description = "Test client id"
severity = "info"
regex = '''client_id=(?P<secret>Ci[A-Za-z0-9]{14})'''
keywords = ["client_id"]
tags = ["companion"]
"""


@pytest.mark.parametrize("backend", ["re", "hyperscan"] if hyperscan_available() else ["re"])
def test_a_companion_rule_is_reported_only_with_the_secret_it_names(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "companion.toml"
    path.write_text(COMPANION_RULES, encoding="utf-8")
    rules = load_rules([path], builtin=False)
    engine = engine_for(rules, backend)  # type: ignore[arg-type]
    secret, client_id = "3f9a0c6e1b27d84f5a9e0c3b7d61f2a48e5c9b07", "Ci4Jq8ZpW2xLk7Vn"

    def scan(text: str) -> list[tuple[str, str | None]]:
        found = engine.scan(Chunk(text, Location(path="app.env")))
        return [(f.rule_id, f.companion) for f in found]

    both = f"client_id={client_id}\nclient_secret={secret}\n"
    assert scan(both) == [("kw-test-client-secret", client_id)]
    assert scan(f"client_id={client_id}\n") == []  # an identifier alone is no finding
    assert scan(f"client_secret={secret}\n") == [("kw-test-client-secret", None)]
    far = f"client_id={client_id}\n\n\n\n\nclient_secret={secret}\n"
    assert scan(far) == [("kw-test-client-secret", None)]
    # Without a rule that pairs with it, a companion-tagged rule is an ordinary rule.
    alone = type(rules)(tuple(r for r in rules.rules if r.id == "kw-test-client-id"))
    found = engine_for(alone, backend).scan(Chunk(f"client_id={client_id}", Location(path="x")))  # type: ignore[arg-type]
    assert [f.rule_id for f in found] == ["kw-test-client-id"]


KEYWORDLESS_RULES = """
[[rules]]
id = "kw-test-structured"
description = "Test token recognised by its structure alone"
regex = '''\\b(?P<secret>QZ[0-9]{4}-[A-Za-z]{6}-[0-9]{4}Q)\\b'''
"""


@needs_hs
def test_a_keywordless_rule_is_found_with_and_without_other_candidates(tmp_path: Path) -> None:
    """Chunks where only keyword-less rules are candidates take the small union of those rules;
    chunks where a keyword names another rule take the full union. Both find the same values,
    and so does re."""
    extra = tmp_path / "keywordless.toml"
    extra.write_text(KEYWORDLESS_RULES, encoding="utf-8")
    rules = load_rules([write_rules(tmp_path), extra], builtin=False)
    value, token = "QZ2718-kXpLmQ-3141Q", kw_token(3)
    texts = {
        "alone": f"ref = {value}\n",
        "with a keyword": f"ref = {value}\nt = '{token}'\n",
        "absent": "ref = QZ2718-kXpLmQ-314\n",
    }
    for backend in ("hyperscan", "re"):
        engine = engine_for(rules, backend, tmp_path / "hs")  # type: ignore[arg-type]
        found = {
            name: sorted(f.rule_id for f in engine.scan(Chunk(text, Location(path="a.txt"))))
            for name, text in texts.items()
        }
        assert found == {
            "alone": ["kw-test-structured"],
            "with a keyword": ["kw-test-structured", "kw-test-token"],
            "absent": [],
        }, backend
    assert any(f.name.startswith("hs-a-") for f in (tmp_path / "hs").iterdir())


@needs_hs
def test_a_rule_hyperscan_rejects_still_matches_through_its_keywords(tmp_path: Path) -> None:
    """The union fails to compile (hyperscan refuses the inline (?a) flag); that rule alone
    falls back to re after its keywords, and both engines still agree."""
    from dataclasses import replace

    rules = make_ruleset(tmp_path)
    token = rules.by_id()["kw-test-token"]
    backref = replace(
        token,
        id="kw-test-backref",
        regex=r"(?a)['\"](?P<secret>kwb_[A-Za-z0-9]{32})['\"]",
        keywords=("kwb_",),
        _compiled=[],
    )
    ruleset = type(rules)((*rules.rules, backref))
    value = "kwb_" + "".join(random.Random(3).choices(string.ascii_letters, k=32))
    docs = [f"x = '{value}'\n" + BOTH[0]]
    hs_engine = engine_for(ruleset, "hyperscan", tmp_path / "cache")
    found = findings_of(hs_engine, docs)
    assert "kw-test-backref" in [f[4] for f in found]
    assert hs_engine.matcher.unaccelerated == [2]  # type: ignore[attr-defined]
    assert found == findings_of(engine_for(ruleset, "re"), docs)


@needs_hs
def test_engines_agree_on_keywords_in_non_ascii_text() -> None:
    """Keyword matching is ASCII-caseless in both engines: a Kelvin sign (U+212A, which
    str.lower() turns into "k") does not make "Key" of "\u212aey", and generic keyword starts
    found in UTF-8 bytes land on the right characters after multi-byte text."""
    rules = load_rules()
    docs = [
        "naïve café ✓ 日本語\npassword = 'Zq8#rT2!mW9x'\n\u212aey = 'Xv7Lp2Qr9Ws4Tn6Ym1Zk3B'\n",
        "ünïcödé — api_key: 'q7Vx2Lm9Rt4Wz8Pn3Ks6Yb1Hc5Jd0'  # 😀\nsecret=\"Ab3Cd5Ef7Gh9Ij1Kl\"",
    ]
    re_found = findings_of(Engine(rules, Fingerprinter(KEY), backend="re"), docs)
    hs_found = findings_of(Engine(rules, Fingerprinter(KEY), backend="hyperscan"), docs)
    assert hs_found == re_found
    assert {f[4] for f in re_found} >= {"generic-password", "generic-api-key"}
    assert all(f[1] != 3 or f[4] != "generic-secret" for f in re_found)  # no "\u212aey" hit


def _naive_candidates(rules: list[object], lowered: str) -> list[int]:
    return sorted(
        i
        for i, r in enumerate(rules)
        if not r.keywords or any(k in lowered for k in r.keywords)  # type: ignore[attr-defined]
    )


def test_re_prefilter_names_exactly_the_rules_whose_keywords_occur(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token-and-trie prefilter of the re engine names the same rules as searching every
    keyword in the lower-cased text: keywords inside longer words, keywords that are
    prefixes of each other, keywords with separators (``api-key``, ``://``) or spaces and
    quotes (``begin rsa private key``, ``module "``), non-ASCII text, and the same chunk seen
    again after the token memory was cleared."""
    rules = list(load_rules().rules)
    keywords = sorted({k for r in rules for k in r.keywords})
    rnd = random.Random(13)
    pieces = [*keywords, *NOISE, "x", "-", ".", " ", "=", '"', "'", "\n", "É", "ß"]
    docs = [
        "".join(rnd.choice(pieces) + rnd.choice(["", " ", "_", "-", "é"]) for _ in range(60))
        for _ in range(150)
    ]
    docs += [d.upper() for d in docs[:30]]
    docs += ["-----BEGIN RSA PRIVATE KEY-----", 'module "vpc" {', "AWS_Secret-Access_KEY"]
    monkeypatch.setattr(engine_mod, "_MEMO_SIZE", 200)  # clear the memory many times over
    matcher = engine_mod.KeywordMatcher(rules)
    for _ in range(2):  # the second round is answered from remembered tokens
        for doc in docs:
            lowered = engine_mod._Lazy(doc)
            got = list(matcher.candidates(Chunk(doc, Location(path="d")), lowered))
            assert got == _naive_candidates(rules, lowered.get()), doc


@pytest.mark.parametrize(
    ("regex", "longest"),
    [
        (r"\b(?P<secret>[a-z2-7]{52})\b", 0),  # a class repeat: no literal at all
        (r"\b(?P<secret>[0-9]/[0-9]{16}(?:/[0-9]{16})?:[A-Za-z0-9]{32})\b", 1),
        (r"\b(?P<secret>ghp_[A-Za-z0-9]{36})\b", 4),
        (r"(?i:plaid[\w.-]{0,20}?secret)", 6),
        (r"\b(?:https?|ftps?)://", 4),  # "http": the "s" after it is optional
    ],
)
def test_longest_literal_reads_what_hyperscan_can_anchor_on(regex: str, longest: int) -> None:
    assert engine_mod._longest_literal(regex) == longest


@needs_hs
def test_rules_without_a_literal_get_their_own_database_and_still_match(tmp_path: Path) -> None:
    rules = load_rules()
    engine = Engine(rules, Fingerprinter(KEY), backend="hyperscan", cache_dir=tmp_path)
    matcher = engine.matcher
    assert isinstance(matcher, engine_mod.HyperscanMatcher)
    isolated = {rules.rules[i].id for i in matcher._isolated}
    assert "azure-devops-pat-legacy" in isolated and "github-pat-classic" not in isolated
    union = matcher._provider_union()
    assert union is not None and not isolated & {rules.rules[i].id for i in union[2]}
