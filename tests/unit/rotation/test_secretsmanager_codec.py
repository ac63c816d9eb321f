"""How Secrets Manager SecretStrings map to secret fields and back, and SCRAM verifiers."""

from __future__ import annotations

import json

from keyward.rotation.protocols import SecretValue
from keyward.rotation.rotators.postgres import scram_sha256_verifier, verifier_matches
from keyward.rotation.stores.aws_secretsmanager import decode, encode


def test_a_plain_string_is_the_single_field_value_and_is_written_back_plain() -> None:
    value, doc = decode("just-a-token")
    assert value.fields == {"value": "just-a-token"} and doc is None
    assert encode(SecretValue.single("next"), None, plain=True) == "next"


def test_a_json_string_that_is_not_an_object_stays_plain() -> None:
    value, doc = decode('"quoted"')
    assert value.fields == {"value": '"quoted"'} and doc is None


def test_json_objects_keep_the_types_of_non_string_fields() -> None:
    value, doc = decode('{"host": "db", "port": 5432, "ssl": true, "opts": {"a": 1}}')
    assert value.fields == {"host": "db", "port": "5432", "ssl": "true", "opts": '{"a":1}'}
    out = json.loads(encode(value.replace(host="db2"), doc, plain=False))
    assert out == {"host": "db2", "port": 5432, "ssl": True, "opts": {"a": 1}}


def test_a_single_value_field_of_a_json_secret_stays_json() -> None:
    value, doc = decode('{"value": "x"}')
    assert json.loads(encode(value, doc, plain=False)) == {"value": "x"}


def test_scram_verifier_is_deterministic_for_a_salt_and_matches_only_its_password() -> None:
    v = scram_sha256_verifier("pencil", salt=b"0123456789abcdef")
    assert v == scram_sha256_verifier("pencil", salt=b"0123456789abcdef")
    assert v.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert verifier_matches("pencil", v) and not verifier_matches("pencil2", v)
    assert not verifier_matches("pencil", "md5abc")
