"""Context rules: provider keywords as words of a key, a value of exactly the declared shape."""

from __future__ import annotations

import json
import random
import string
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scanutil import engine_for

from keyward.core.errors import RuleError
from keyward.scan.checking import example_findings
from keyward.scan.context import Context, plausible, shape_of
from keyward.scan.engine import hyperscan_available
from keyward.scan.model import Chunk, Location
from keyward.scan.rulecache import load_rules_cached
from keyward.scan.rules import Rule, RuleSet, load_rules, parse_rule_file

BACKENDS = ["re", "hyperscan"] if hyperscan_available() else ["re"]

ACME = """
[[rules]]
id = "acme-api-key"
description = "Acme API key (in context)"
severity = "medium"
keywords = ["acme", "acme_corp"]
shape = "hex32"
tags = ["acme"]
examples.positive = ['ACME_API_KEY=3f9a1c7e5b2d4f608a9c1e3b5d7f9a2c']
examples.negative = ['ACME_API_KEY=3f9a1c7e5b2d4f608a9c1e3b5d7f9a2c0']

[[rules]]
id = "acme-api-secret"
description = "Acme API secret (in context)"
keywords = ["acme"]
shape = ["alnum40", "uuid"]
key_words = ["secret"]
examples.positive = ['acme_secret = "Zq8Kp3Wn7Lx2Rv5Tm9Yc4Hb6Jd1Fg0Qs3Ew8Ur2T"']
examples.negative = ['acme_key = "Zq8Kp3Wn7Lx2Rv5Tm9Yc4Hb6Jd1Fg0Qs3Ew8Ur2T"']
"""
H = "3f9a1c7e5b2d4f608a9c1e3b5d7f9a2c"
A40 = "Zq8Kp3Wn7Lx2Rv5Tm9Yc4Hb6Jd1Fg0Qs3Ew8Ur2T"


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rule]:
    path = tmp_path_factory.mktemp("rules") / "acme.toml"
    path.write_text(ACME)
    return load_rules([path], builtin=False).by_id()


FOUND = [
    f"ACME_TOKEN={H}",                                   # .env
    f'acme_api_token = "{H}"',                           # Python
    f'"acmeToken": "{H}",',                              # JSON
    f"ENV['ACME_TOKEN'] = '{H}'",                        # Ruby item assignment
    f'export ACME_API_KEY="{H}"',                        # shell
    f'myAcmeKey := "{H}"',                               # Go, camel case before the keyword
    f"ACMETOKEN={H}",                                    # credential word straight after
    f'AcmeClient(token="{H}")',                          # keyword argument
    f'new Acme("{H}")',                                  # positional argument
    f'acme = {{ token: "{H}" }}',                        # object literal
    f"acme:\n  api_token: {H}\n",                        # YAML, nested
    f'acme:\n  domain: x.acme.test\n  api_token: "{H}"\n',  # YAML, a sibling before
    f'[acme]\ntoken = "{H}"\n',                          # TOML / INI section
    f'<add key="AcmeToken" value="{H}"/>',               # .NET app settings
    f"<acmeToken>{H}</acmeToken>",                       # XML element
    f"x --acme-token {H}",                               # command-line flag
    f"# Acme API token: {H}",                            # prose with a colon
    f'curl -H "X-Acme-Key: {H}"',                        # header
    f'setenv("ACME_TOKEN", "{H}")',                      # (name, value) pair
    f'{{\\"acme_token\\": \\"{H}\\"}}',                  # JSON inside a string
    f"define('ACME_TOKEN', '{H}');",                     # PHP
    f":acme_token => '{H}'",                             # Ruby symbol
    f'acme_tokens = ["{H}"]',                            # list
    f'"acme":{{"token":"{H}"}}',                         # nested JSON
    f"OPEN-ACME-CORP-KEY={H}",                           # `_` in a keyword matches `-`
    f"acme.token={H}",                                   # .properties
]  # fmt: skip
NOT_FOUND = [
    f'rookTable = "{H}"'.replace("rook", "racme"),       # keyword inside an identifier
    f'acmeless = "{H}"',                                 # keyword starts a longer word
    f'acme_token = "{H}0"',                              # too long (quoted)
    f"acme_token = {H}0",                                # too long (unquoted)
    f"acme_token = {H}-v2",                              # goes on
    f'acme_token = "{H[:-1]}"',                          # too short
    f'acme_token = "{H.upper()}"',                       # wrong alphabet
    f'acme_client_id = "{H}"',                           # names something else
    f'acme_url = "{H}"',
    f'acme_sha = "{H}"',                                 # a hash
    f'acme_public_key = "{H}"',                          # a public value
    f'acme_token == "{H}"',                              # a comparison
    f'acme_token = "{H} is the token"',                  # prose in a string
    f"acme_token = {H}.{H}",                             # part of a dotted token
    f"acme:\n  url: {H}\n",                              # nested key names no credential
    f"acme:\n  foo: {H}\n",
    f"acme token {H}",                                   # a blank, but not a --flag
    'acme_token = "0123456789abcdef0123456789abcdef"',   # an alphabet written out
    'acme_token = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',   # placeholder
    f"https://api.acme.test/v1?token={H}",               # the keyword is a host name
]  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_shared_grammar_finds_keys_in_every_syntax(acme: dict[str, Rule], backend: str) -> None:
    rule = acme["acme-api-key"]
    missed = [ex for ex in FOUND if rule.id not in example_findings(rule, ex, backend=backend)]  # type: ignore[arg-type]
    assert missed == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_look_alikes_are_not_reported(acme: dict[str, Rule], backend: str) -> None:
    rule = acme["acme-api-key"]
    fired = [ex for ex in NOT_FOUND if rule.id in example_findings(rule, ex, backend=backend)]  # type: ignore[arg-type]
    assert fired == []


def test_the_secret_span_is_exactly_the_value(acme: dict[str, Rule]) -> None:
    engine = engine_for(load_rules_for(acme), "re")
    text = f'config = {{"acme_token": "{H}"}}'
    [finding] = engine.scan(Chunk(text, Location(path="a.json")))
    assert finding.secret == H
    assert finding.location.column == text.index(H) + 1


def load_rules_for(rules: dict[str, Rule]) -> RuleSet:
    return RuleSet(tuple(rules.values()))


def test_a_member_with_key_words_needs_one_and_wins_the_overlap(acme: dict[str, Rule]) -> None:
    secret = acme["acme-api-secret"]
    assert secret.priority > acme["acme-api-key"].priority
    assert example_findings(secret, f'acme_api_secret = "{A40}"') == [secret.id]
    assert example_findings(secret, f'acme_api_key = "{A40}"') == []
    uuid = "9b2f6c1e-4a7d-4e3b-8c5f-1d2e3f4a5b6c"
    assert example_findings(secret, f"ACME_SECRET={uuid}") == [secret.id]
    assert example_findings(secret, f"ACME_SECRET={uuid.upper()[:-1]}c") == []  # mixed case


def test_keywords_with_underscores_match_every_separator(acme: dict[str, Rule]) -> None:
    assert set(acme["acme-api-key"].keywords) == {
        "acme", "acme_corp", "acme-corp", "acme.corp", "acmecorp",
    }  # fmt: skip


def test_context_rules_stay_out_of_the_hyperscan_union(acme: dict[str, Rule]) -> None:
    if not hyperscan_available():
        pytest.skip("hyperscan not installed")
    engine = engine_for(load_rules_for(acme), "hyperscan")
    engine.scan(Chunk(f"ACME_TOKEN={H}", Location(path="a")))
    assert engine.matcher._provider_union() is None  # type: ignore[attr-defined]


def test_context_rules_survive_the_rule_cache(tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(ACME)
    first = load_rules_cached([path], tmp_path / "cache")
    second = load_rules_cached([path], tmp_path / "cache")
    assert second.rules == first.rules == load_rules([path]).rules
    assert second.by_id()["acme-api-secret"].context == Context(
        ("alnum40", "uuid"), "", ("secret",)
    )


@pytest.mark.parametrize(
    ("shape", "alphabet", "length"),
    [
        ("hex32", "0123456789abcdef", 32),
        ("HEX24", "0123456789ABCDEF", 24),
        ("alnum40", string.ascii_letters + string.digits, 40),
        ("lower20", string.ascii_lowercase + string.digits, 20),
        ("upper20", string.ascii_uppercase + string.digits, 20),
        ("digits16", string.digits, 16),
        ("base64url43", string.ascii_letters + string.digits + "_-", 43),
        ("base64_40", string.ascii_letters + string.digits + "+/", 40),
        ("[A-Z]{20}", string.ascii_uppercase, 20),
    ],
)
def test_random_values_of_a_shape_are_plausible(shape: str, alphabet: str, length: int) -> None:
    rng = random.Random(shape)
    ctx = Context((shape,))
    values = ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(2000)]
    rejected = [v for v in values if not plausible(v, ctx)]
    assert len(rejected) <= 0.005 * len(values), rejected[:5]


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("AbstractSingletonProxyFactoryBean1", "alnum34"),   # an identifier
        ("configurationmanagerfactory", "lower27"),
        ("deadbeefcafebabedeadbeefcafebabe", "hex32"),       # hex words, no digit
        ("12345678901234567890123456789012", "alnum32"),     # a number
        ("abcdefghijklmnopqrstuvwxyz012345", "alnum32"),     # the alphabet written out
        ("a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0", "hex32"),       # too little entropy
    ],
)  # fmt: skip
def test_values_that_are_not_random_are_not_plausible(value: str, shape: str) -> None:
    assert not plausible(value, Context((shape,)))


def test_shape_spellings() -> None:
    assert shape_of("alnum20-24").body == "[A-Za-z0-9]{20,24}"
    assert shape_of("base64url43").body == "[A-Za-z0-9_-]{43}"
    assert shape_of("base64_43").body == "[A-Za-z0-9+/]{43}={0,2}"
    assert shape_of("[a-z0-9_-]{30,40}").min_len == 30


BAD = """
[[rules]]
id = "acme-api-key"
description = "Acme API key"
keywords = ["acme"]
shape = "hex32"
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('shape = "hex32"', 'shape = "hexagon32"'), "unknown shape 'hexagon32'"),
        (('shape = "hex32"', 'shape = "hex2"'), "lengths must be from 4"),
        (('shape = "hex32"', 'shape = "[a-z]{50,40}"'), "min <= max"),
        (('shape = "hex32"', "shape = { alphabet = 'a-z' }"), "length is a number"),
        (('keywords = ["acme"]', 'keywords = ["ac"]'), "3 or more letters"),
        (('keywords = ["acme"]', "keywords = []"), "needs keywords"),
        (('shape = "hex32"', "shape = 'hex32'\nregex = '(?P<secret>x)'"), "instead of a regex"),
        (('shape = "hex32"', 'shape = "hex32"\ngeneric = true'), "cannot be generic"),
        (('shape = "hex32"', 'shape = "hex32"\nkey_words = ["Secret"]'), "lower-case words"),
        (('shape = "hex32"', "regex = '(?P<secret>x{4})'\nprefix = 'a'"), "needs a shape"),
    ],
)
def test_an_invalid_context_rule_is_refused_with_its_problem(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD.replace(*change))
    with pytest.raises(RuleError) as err:
        parse_rule_file(path)
    assert message in err.value.diagnostics()
    assert "acme-api-key" in err.value.diagnostics()


def test_an_explicit_alphabet_table_is_a_shape(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    table = 'shape = { alphabet = "a-z0-9_-", length = [30, 40] }'
    path.write_text(BAD.replace('shape = "hex32"', table))
    [(rule, _)] = parse_rule_file(path)
    assert rule.context is not None and rule.context.shapes == ("[a-z0-9_-]{30,40}",)
    assert example_findings(rule, "ACME_TOKEN=k3rz8qwl5pn2xv7mt4yh9cb6_dq1fg0sa3") == [rule.id]


def test_rules_list_shows_a_context_rules_shape(capsys: pytest.CaptureFixture[str]) -> None:
    from keyward.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["rules", "list", "--format", "json"])
    assert exc.value.code in (0, None)
    doc = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert doc["ipstack-access-key"]["shape"] == ["hex32"]
    assert "shape" not in doc["github-pat-classic"]


def test_both_engines_place_a_context_finding_after_non_ascii_text(acme: dict[str, Rule]) -> None:
    if not hyperscan_available():
        pytest.skip("hyperscan not installed")
    text = f"déjà vu ✓ 日本語\nnaïve = 1; ACME_TOKEN={H} # ✓\nbracme_token = '{H}'"
    found = []
    for backend in BACKENDS:
        engine = engine_for(load_rules_for(acme), backend)  # type: ignore[arg-type]
        chunk = Chunk(text, Location(path="a.env"), data=text.encode())
        found.append([(f.rule_id, f.location.line, f.location.column) for f in engine.scan(chunk)])
    assert found[0] == found[1] == [("acme-api-key", 2, text.split("\n")[1].index(H) + 1)]
