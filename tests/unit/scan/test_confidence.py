"""Confidence: from rule data (validator, family, declared) and the match's context (path,
value shape), and the known public example values that are never findings."""

from __future__ import annotations

import base64
import random
import string
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from scanutil import KEY, github_token

from keyward.core.errors import RuleError
from keyward.core.redaction import Fingerprinter
from keyward.scan import confidence as conf
from keyward.scan.engine import Engine
from keyward.scan.filters import is_placeholder
from keyward.scan.model import Chunk, Confidence, Location
from keyward.scan.rules import RuleSet, load_rules, parse_rule_file

ALNUM = string.ascii_letters + string.digits


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules()


@pytest.fixture(scope="module")
def engine(rules: RuleSet) -> Engine:
    return Engine(rules, Fingerprinter(KEY), backend="re")


def scan(engine: Engine, text: str, path: str = "src/app.py") -> list[tuple[str, Confidence]]:
    return [(f.rule_id, f.confidence) for f in engine.scan(Chunk(text, Location(path=path)))]


def random_value(seed: int, n: int = 24) -> str:
    rnd = random.Random(seed)
    while True:
        v = "".join(rnd.choice(ALNUM) for _ in range(n))
        if any(c.isdigit() for c in v) and any(c.isupper() for c in v):
            return v


# ------------------------------------------------------------------ from the rule
def test_a_checksum_validated_format_is_high_and_stays_high_in_a_test_file(engine: Engine) -> None:
    line = f'TOKEN = "{github_token(3)}"\n'
    assert scan(engine, line) == [("github-pat-classic", Confidence.HIGH)]
    assert scan(engine, line, "tests/fixtures/conf.py") == [("github-pat-classic", Confidence.HIGH)]


def test_a_provider_format_without_a_validator_is_medium_anywhere(engine: Engine) -> None:
    token = "sk_live_" + random_value(5, 99)
    assert scan(engine, f'STRIPE = "{token}"\n') == [("stripe-secret-key", Confidence.MEDIUM)]
    assert scan(engine, f'STRIPE = "{token}"\n', "docs/setup.md") == [
        ("stripe-secret-key", Confidence.MEDIUM)
    ]


def test_a_rule_may_declare_its_confidence(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        "[[rules]]\nid = 'acme-key'\ndescription = 'Acme'\nregex = '(?P<secret>acme_[a-z]{8})'\n"
        "keywords = ['acme_']\nconfidence = 'high'\n"
    )
    ((rule, _),) = parse_rule_file(path)
    assert conf.rule_confidence(rule) is Confidence.HIGH
    path.write_text(path.read_text().replace("'high'", "'certain'"))
    with pytest.raises(RuleError, match="confidence 'certain' is not one of high, medium, low"):
        parse_rule_file(path)


# ------------------------------------------------------------------ generic values in context
def test_a_random_generic_value_is_medium_in_code_and_in_tests(engine: Engine) -> None:
    value = random_value(11, 32)
    for path in ("app/settings.py", "tests/test_api.py", "docs/conf.py"):
        assert scan(engine, f'client_secret = "{value}"\n', path) == [
            ("generic-secret", Confidence.MEDIUM)
        ], path


@pytest.mark.parametrize(
    "value", ["superS3cret!", "AnotherStrongPass!", "iWishIWereCoolEnoughForRoot!", "Summer2024!!"]
)
def test_a_password_a_person_chose_is_low_anywhere(engine: Engine, value: str) -> None:
    assert scan(engine, f'db_password = "{value}"\n') == [("generic-password", Confidence.LOW)]


def test_a_short_guessable_password_is_low_only_in_tests_and_docs(engine: Engine) -> None:
    line = 'db_password = "kx@jj5/gQ"\n'  # random, but fewer than 10^10 guesses
    assert scan(engine, line, "app/db.py") == [("generic-password", Confidence.MEDIUM)]
    assert scan(engine, line, "doc/build/engines.rst") == [("generic-password", Confidence.LOW)]
    assert scan(engine, line, "pkg/tests/test_db.py") == [("generic-password", Confidence.LOW)]


def test_base64_of_plain_text_is_low(engine: Engine) -> None:
    text = base64.b64encode(b"you are not supposed to decode this!").decode()
    assert scan(engine, f'auth_token = "{text}"\n') == [("generic-secret", Confidence.LOW)]
    random_bytes = base64.b64encode(random.Random(2).randbytes(30)).decode()
    assert scan(engine, f'auth_token = "{random_bytes}"\n') == [
        ("generic-secret", Confidence.MEDIUM)
    ]


def test_an_id_with_a_timestamp_is_low(engine: Engine) -> None:
    assert scan(engine, 'api_token = "XqJItRw1342112125076"\n') == [
        ("generic-secret", Confidence.LOW)
    ]


def test_a_value_in_an_interactive_example_is_low(engine: Engine) -> None:
    value = random_value(4, 32)
    assert scan(engine, f'>>> s = Store(api_key="{value}")\n', "guide.txt") == [
        ("generic-api-key", Confidence.LOW)
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://scott:Sunflower2024@localhost/test", Confidence.LOW),  # words
        ("postgresql://app:Zr8pQ2vx7LmN4tWq@db.internal/orders", Confidence.MEDIUM),
    ],
)
def test_passwords_in_urls_are_judged_like_passwords(
    engine: Engine, url: str, expected: Confidence
) -> None:
    assert scan(engine, f'url = "{url}"\n', "lib/events.py") == [
        ("postgres-connection-url", expected)
    ]


@pytest.mark.parametrize(
    "path",
    ["tests/test_x.py", "pkg/test/x.py", "a/fixtures/b.json", "docs/a.txt", "README.md",
     "src/app.test.ts", "pkg/x_test.go", "Foo/BarTest.java", "integration-tests/a.yml",
     "examples/conf.ini", "doc/build/core/engines.rst"],
)  # fmt: skip
def test_sample_paths(path: str) -> None:
    assert conf.is_sample_path(path)


@pytest.mark.parametrize("path", ["src/app.py", "lib/latest/x.py", "contest/a.py", "testify.py"])
def test_ordinary_paths(path: str) -> None:
    assert not conf.is_sample_path(path)


def test_decoding_to_text_needs_printable_text_with_spaces() -> None:
    assert conf.decodes_to_text(base64.b64encode(b"Linux version 2.6.16-xenU (gcc)").decode())
    assert conf.decodes_to_text(base64.urlsafe_b64encode(b'{"foo": "bar", "n": 1}').decode())
    assert not conf.decodes_to_text(base64.b64encode(b"deploy:Zr8pQ2vx7LmN4t").decode())
    assert not conf.decodes_to_text(base64.b64encode(b"password is Zr8pQ2vx7LmN4t").decode())
    assert not conf.decodes_to_text(random_value(1, 40))


# ------------------------------------------------------------------ known public values
def _known_entries() -> list[dict[str, str]]:
    ref = resources.files("keyward") / "data" / conf.KNOWN_EXAMPLES
    doc = tomllib.loads(ref.read_text(encoding="utf-8"))
    return list(doc["examples"])


CONTEXTS = (
    "{v}\n",
    'token = "{v}"\n',
    "aws_access_key_id = {v}\naws_secret_access_key = {v}\n",
    'secret_key = "{v}"\n',
    "x-amz-security-token:{v}\n",
)


def _found(engine: Engine, value: str) -> bool:
    for ctx in CONTEXTS:
        for f in engine.scan(Chunk(ctx.format(v=value), Location(path="src/app.py"))):
            if f.secret == value:
                return True
    return False


def test_every_known_example_is_suppressed_and_the_list_is_what_suppresses_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = _known_entries()
    assert entries and all(e["source"].strip() for e in entries)
    values = [e["value"] for e in entries]
    assert [v for v in values if _found(engine, v)] == []
    monkeypatch.setattr(conf, "known_values", lambda: conf.KnownValues())
    unlisted = {v: _found(engine, v) for v in values}
    # without the list, each value is a finding, unless it also reads as a placeholder
    assert [v for v, hit in unlisted.items() if not hit and not is_placeholder(v)] == []
    assert sum(unlisted.values()) >= len(values) - 5


def test_known_examples_are_named_only_in_their_data_file() -> None:
    package = Path(conf.__file__).resolve().parent.parent
    data_file = package / "data" / conf.KNOWN_EXAMPLES
    values = [e["value"] for e in _known_entries() if len(e["value"]) >= 12]
    offenders = []
    for path in package.rglob("*"):
        if not path.is_file() or path == data_file or path.suffix not in (".py", ".toml"):
            continue
        text = path.read_text(encoding="utf-8")
        offenders.extend(f"{path.name}: {v[:8]}" for v in values if v in text)
    assert offenders == []


def test_a_value_listed_by_its_sha256_is_suppressed_too() -> None:
    import hashlib

    value = random_value(9, 40)
    known = conf.parse_known_values(
        {"examples": [{"sha256": hashlib.sha256(value.encode()).hexdigest(), "source": "x"}]},
        "test",
    )
    assert known.known(value) and not known.known(value + "x")


@pytest.mark.parametrize(
    "doc",
    [
        {"examples": [{"value": "abc"}]},  # no source
        {"examples": [{"value": "abc", "sha256": "0" * 64, "source": "x"}]},  # both
        {"public": [{"prefix": "pk", "source": "x"}]},  # prefix too short
        {"values": []},
    ],
)
def test_a_bad_known_examples_entry_is_refused(doc: dict[str, object]) -> None:
    with pytest.raises(RuleError):
        conf.parse_known_values(doc, "known-examples.toml")


def test_a_public_by_design_token_under_a_secret_name_is_no_finding(engine: Engine) -> None:
    body = base64.urlsafe_b64encode(b'{"u":"someone","a":"ck1234567890abcdef"}').decode()
    mapbox = f"pk.{body.rstrip('=')}.{random_value(3, 22)}"
    assert scan(engine, f'mapboxAccessToken = "{mapbox}"\n', "site/map.js") == []
    assert scan(engine, f'"publicToken": "{random_value(8, 32)}"\n', "site/map.js") == []


def test_a_value_a_test_asserts_against_is_a_test_vector_everywhere_in_the_file(
    engine: Engine,
) -> None:
    url = f"https://deploy:{random_value(6, 20)}@git.acme.io/repo"
    text = f'role = parse("git+{url}")\nassert role["src"] == "{url}"\n'
    assert scan(engine, text, "tests/units/test_roles.py") == [
        ("basic-auth-url", Confidence.LOW),
        ("basic-auth-url", Confidence.LOW),
    ]
    # outside tests, or without the assertion, it stays medium
    assert scan(engine, text, "src/roles.py") == [("basic-auth-url", Confidence.MEDIUM)] * 2
    assert scan(engine, f'role = parse("git+{url}")\n', "tests/units/test_roles.py") == [
        ("basic-auth-url", Confidence.MEDIUM)
    ]


def test_a_provider_token_in_an_assertion_keeps_its_confidence(engine: Engine) -> None:
    text = f'assert load() == "{github_token(8)}"\n'
    assert scan(engine, text, "tests/test_load.py") == [("github-pat-classic", Confidence.HIGH)]


def test_a_random_generic_value_in_recorded_test_data_is_low(engine: Engine) -> None:
    value = random_value(12, 32)
    line = f'"client_secret": "{value}",\n'
    for path in ("tests/unit/responses/ec2.json", "spec/cassettes/login.yml", "a/fixtures/b.json"):
        assert scan(engine, line, path) == [("generic-secret", Confidence.LOW)], path
    assert scan(engine, line, "tests/unit/test_login.py") == [("generic-secret", Confidence.MEDIUM)]


def test_digit_runs_in_hex_parts_are_not_ids() -> None:
    assert conf.has_id_digits("XqJIt1342112125076")
    assert not conf.has_id_digits("vault-held-3f9c2a7e1b8d41234567890af1c8e")  # a uuid's hex
    assert not conf.has_id_digits("3f9c2a7e1b8d41234567890af1c8e3f9c2a7e1")
