"""Value types of the rotation protocols: secrets stay out of reprs, snapshots, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from keyward.core.redaction import Fingerprinter
from keyward.rotation.protocols import (
    DependentMode,
    DependentSnapshot,
    DependentTarget,
    EnvBinding,
    HeldState,
    SecretValue,
    VariableBefore,
    VersionedSecret,
    new_token,
)

RAW = "sk_live_0123456789abcdefABCDEF"
FP = Fingerprinter(b"unit-test-fingerprint-key")


def test_secret_value_repr_shows_field_names_but_never_values() -> None:
    v = SecretValue({"password": RAW, "username": "app"})
    held = VersionedSecret("app/db", "3", v)
    for text in (repr(v), str(v), repr(held), str(held), f"{held}"):
        assert RAW not in text
    assert repr(v) == "SecretValue(fields=['password', 'username'])"


def test_secret_value_is_immutable_and_replace_makes_a_copy() -> None:
    v = SecretValue({"password": "a", "username": "app"})
    with pytest.raises(TypeError):
        v.fields["password"] = "b"  # type: ignore[index]
    w = v.replace(password="b")
    assert (v["password"], w["password"], w["username"]) == ("a", "b", "app")


def test_secret_value_rejects_non_string_fields() -> None:
    with pytest.raises(TypeError, match="str to str"):
        SecretValue({"port": 5432})  # type: ignore[dict-item]


def test_same_as_compares_content_not_order() -> None:
    a = SecretValue({"x": "1", "y": "2"})
    assert a.same_as(SecretValue({"y": "2", "x": "1"}))
    assert not a.same_as(SecretValue({"x": "1", "y": "3"}))
    assert not a.same_as(SecretValue({"x": "1"}))


def test_fingerprints_are_keyed_and_stable() -> None:
    v = SecretValue({"password": RAW})
    assert v.fingerprint(FP) == SecretValue({"password": RAW}).fingerprint(FP)
    assert v.fingerprint(FP) != v.fingerprint(Fingerprinter(b"another-key-0123456789"))
    assert v.field_fingerprints(FP) == {"password": FP.fingerprint(RAW)}
    assert RAW not in v.fingerprint(FP)


def test_tokens_fit_aws_client_request_token_limits_and_are_unique() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(32 <= len(t) <= 64 for t in tokens)


def test_dependent_snapshot_round_trips_through_json() -> None:
    snap = DependentSnapshot(
        target=DependentTarget(
            "aws-lambda",
            "arn:aws:lambda:eu-west-1:1:function:f",
            (EnvBinding("API_KEY", "value"), EnvBinding("KEYWARD_SECRET_VERSION", None)),
            region="eu-west-1",
            mode=DependentMode.VALUE,
            alias="live",
            account="222222222222",  # a target in another account than the secret's
        ),
        old_version="v1",
        new_version="v2",
        variables=(
            VariableBefore("API_KEY", "value", HeldState.OLD, fingerprint=FP.fingerprint(RAW)),
            VariableBefore("KEYWARD_SECRET_VERSION", None, HeldState.PLAIN, plain="v1"),
            VariableBefore("NEW_VAR", "value", HeldState.ABSENT),
        ),
        alias_version="7",
    )
    doc = json.loads(json.dumps(snap.to_dict()))
    assert DependentSnapshot.from_dict(doc) == snap
    assert RAW not in json.dumps(doc)
    del doc["target"]["account"]  # a snapshot persisted before accounts: the secret's account
    assert DependentSnapshot.from_dict(doc).target.account is None


def test_importing_the_rotation_modules_loads_no_cloud_or_database_library() -> None:
    code = (
        "import sys\n"
        "import keyward.rotation.protocols, keyward.rotation.registry, keyward.rotation.errors\n"
        "import keyward.rotation.stores.aws_secretsmanager, keyward.rotation.stores.vault_kv\n"
        "import keyward.rotation.rotators.aws_iam, keyward.rotation.rotators.postgres\n"
        "import keyward.rotation.rotators.random, keyward.rotation.dependents.aws_lambda\n"
        "heavy = {'boto3', 'botocore', 'hvac', 'psycopg', 'sqlalchemy', 'requests'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
