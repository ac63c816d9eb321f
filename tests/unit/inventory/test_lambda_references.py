"""What a Lambda variable's value may name: the reference shapes dependents discovery knows."""

from __future__ import annotations

import pytest

from keyward.inventory.discovery.aws_lambda import (
    Reference,
    RefKind,
    environment_of,
    observe,
    parse_references,
    vault_key,
)

ARN = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:prod/db-AbCdEf"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ARN, [Reference(RefKind.SM_ARN, ARN)]),
        (f"{ARN}:password", [Reference(RefKind.SM_ARN, ARN, "password")]),
        (ARN[:-7], [Reference(RefKind.SM_ARN, ARN[:-7])]),
        (
            "{{resolve:secretsmanager:prod/db:SecretString:password}}",
            [Reference(RefKind.SM_NAME, "prod/db", "password")],
        ),
        ("{{resolve:secretsmanager:prod/db}}", [Reference(RefKind.SM_NAME, "prod/db")]),
        (
            "{{resolve:secretsmanager:" + ARN + ":SecretString:user::}}",
            [Reference(RefKind.SM_ARN, ARN, "user")],
        ),
        ("{{resolve:ssm-secure:/app/token:3}}", [Reference(RefKind.SSM_NAME, "/app/token")]),
        ("{{resolve:ssm:app/flag}}", [Reference(RefKind.SSM_NAME, "/app/flag")]),
        (
            "arn:aws:ssm:eu-west-1:111111111111:parameter/app/token",
            [Reference(RefKind.SSM_NAME, "/app/token")],
        ),
        ("/app/token", [Reference(RefKind.SSM_NAME, "/app/token")]),
        (
            "secret/data/apps/billing",
            [
                Reference(RefKind.SM_NAME, "secret/data/apps/billing"),
                Reference(RefKind.VAULT, "secret/apps/billing"),
            ],
        ),
        (
            "vault:secret/data/apps/db#password",
            [Reference(RefKind.VAULT, "secret/apps/db", "password")],
        ),
        ("prod-db", [Reference(RefKind.SM_NAME, "prod-db")]),
        ("arn:aws:lambda:eu-west-1:111111111111:function:f", []),
        ("two words", []),
        ("", []),
        ("x" * 3000, []),
    ],
)
def test_references_a_variable_may_hold(value: str, expected: list[Reference]) -> None:
    assert list(parse_references(value)) == expected


def test_vault_paths_compare_without_the_kv2_data_segment() -> None:
    assert vault_key("/v1/secret/data/a/b") == vault_key("secret/a/b") == "secret/a/b"
    assert vault_key("secret") is None


def test_observed_variables_keep_a_fingerprint_never_the_value() -> None:
    seen = observe({"DB_PASSWORD": "hunter2-Prod-88", "EMPTY": "", "KEYWARD_SECRET_VERSION": "v"},
                   lambda v: f"fp({len(v)})")  # fmt: skip
    assert [(v.name, v.fingerprint) for v in seen] == [("DB_PASSWORD", "fp(15)")]
    assert "hunter2" not in repr(seen)


def test_the_environment_tag_is_found_case_insensitively_and_lowercased() -> None:
    assert environment_of({"Environment": "Prod"}) == "prod"
    assert environment_of({"team": "x", "STAGE": "Staging"}) == "staging"
    assert environment_of({"team": "x"}) is None
