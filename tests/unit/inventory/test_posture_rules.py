"""Posture's small rules, without a database: which fields hold a secret, how a breach name is
read from the command line, how a function is named in a detail."""

from __future__ import annotations

import pytest

from keyward.core.errors import ConfigError
from keyward.inventory.models import Breach
from keyward.inventory.posture import _field_of, _function_name, parse_breaches, secret_field


@pytest.mark.parametrize(
    ("field", "secret"),
    [
        ("value", True), ("", True), ("password", True), ("DB_PASSWORD", True),
        ("secret_access_key", True), ("access_key_id", True), ("api_token", True),
        ("private_key", True), ("client_secret", True),
        ("username", False), ("host", False), ("port", False), ("engine", False),
        ("dbname", False),
    ],
)  # fmt: skip
def test_only_secret_bearing_fields_make_copies(field: str, secret: bool) -> None:
    assert secret_field(field) is secret


def test_a_current_values_label_names_its_field() -> None:
    assert _field_of("#password") == "password"
    assert _field_of("3f2a-version#secret_access_key") == "secret_access_key"
    assert _field_of("3f2a-version") == "value" and _field_of(None) == "value"


def test_breach_names_are_repeatable_comma_lists_and_a_wrong_one_names_the_choices() -> None:
    assert parse_breaches(["reused, duplicated", "reused", "CROSS_ENVIRONMENT"]) == (
        Breach.REUSED,
        Breach.DUPLICATED,
        Breach.CROSS_ENVIRONMENT,
    )
    assert parse_breaches([]) == ()
    with pytest.raises(ConfigError) as err:
        parse_breaches(["leaked,stale"])
    text = err.value.diagnostics()
    assert "'stale' is not a posture breach" in text and "no-owner" in text


def test_a_lambda_arn_is_shown_by_its_function_name() -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:orders"
    assert _function_name(arn) == "orders" and _function_name(arn + ":live") == "orders:live"
    assert _function_name("my-container") == "my-container"
