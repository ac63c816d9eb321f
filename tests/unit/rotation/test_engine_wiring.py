"""How inventoried dependents become rotation targets, and rotation settings from config."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from keyward.core.config import Config, load_config
from keyward.core.errors import ConfigError
from keyward.rotation.protocols import DependentMode, EnvBinding
from keyward.rotation.wiring import (
    RotationSettings,
    guess_field,
    plugin_options,
    store_kind,
    store_name,
    targets_for,
)


@dataclass
class Row:
    target: str
    variable: str | None
    kind: str = "aws-lambda"
    region: str | None = "us-east-1"
    attributes: dict[str, Any] = field(default_factory=dict)
    account: str | None = None


IAM_FIELDS = ["access_key_id", "secret_access_key"]


@pytest.mark.parametrize(
    ("variable", "fields", "expected"),
    [
        ("AWS_SECRET_ACCESS_KEY", IAM_FIELDS, "secret_access_key"),
        ("AWS_ACCESS_KEY_ID", IAM_FIELDS, "access_key_id"),
        ("DB_PASSWORD", ["username", "password", "host"], "password"),
        ("DBUSERNAME", ["username", "password"], "username"),
        ("SIGNING_KEY", ["value"], "value"),
        ("SOMETHING", IAM_FIELDS, None),
    ],
)
def test_a_variable_is_bound_to_the_field_its_name_ends_with(
    variable: str, fields: list[str], expected: str | None
) -> None:
    assert guess_field(variable, fields) == expected


def test_rows_of_one_function_become_one_target_with_both_bindings() -> None:
    rows = [Row("fn", "AWS_ACCESS_KEY_ID"), Row("fn", "AWS_SECRET_ACCESS_KEY"), Row("g", None)]
    fn, g = targets_for(rows, IAM_FIELDS, "prod/aws")
    assert fn.resource == "fn" and fn.mode is DependentMode.VALUE
    assert fn.bindings == (
        EnvBinding("AWS_ACCESS_KEY_ID", "access_key_id"),
        EnvBinding("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    )
    assert g.mode is DependentMode.REFERENCE and g.bindings == ()


def test_a_target_in_another_account_than_the_secrets_names_it() -> None:
    rows = [
        Row("fn", "AWS_ACCESS_KEY_ID", account="111111111111"),  # the secret's own account
        Row("fn", "AWS_ACCESS_KEY_ID", account="222222222222"),  # same name, other account
        Row("g", "AWS_SECRET_ACCESS_KEY"),  # no account: the secret's
    ]
    own, other, g = targets_for(rows, IAM_FIELDS, "prod/aws", None, "111111111111")
    assert (own.account, other.account, g.account) == (None, "222222222222", None)
    assert other.bindings == (EnvBinding("AWS_ACCESS_KEY_ID", "access_key_id"),)


def test_config_overrides_give_alias_mode_and_explicit_fields() -> None:
    rows = [Row("fn", "LEGACY"), Row("h", "X")]
    overrides = {
        "fn": {"alias": "live", "fields": {"LEGACY": "secret_access_key"}},
        "h": {"mode": "reference"},
    }
    fn, h = targets_for(rows, IAM_FIELDS, "prod/aws", overrides)
    assert fn.alias == "live" and fn.bindings == (EnvBinding("LEGACY", "secret_access_key"),)
    assert h.mode is DependentMode.REFERENCE


def test_an_unguessable_variable_is_a_config_error_naming_where_to_fix_it() -> None:
    with pytest.raises(ConfigError) as err:
        targets_for([Row("fn", "MYSTERY")], IAM_FIELDS, "prod/aws")
    text = err.value.diagnostics()
    assert "MYSTERY" in text and '[rotation.secrets."prod/aws".targets."fn"]' in text


def test_store_names_and_aliases() -> None:
    assert store_kind("vault", "x") == "vault-kv"
    assert store_name("vault-kv", "secret/data/app/db", "x", {}) == "app/db"
    assert store_name("vault-kv", "kv/app/db", "x", {"mount": "kv"}) == "app/db"
    assert store_name("aws-secretsmanager", None, "prod/db", {}) == "prod/db"
    with pytest.raises(ConfigError, match="has no store"):
        store_kind(None, "prod/db")


def test_settings_and_per_secret_options_come_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "keyward.toml"
    path.write_text(
        '[rotation]\ngrace_period = "2d"\nlease_ttl = 30\n'
        "[rotation.rotators.random]\nlength = 64\n"
        '[rotation.secrets."app/key".rotator]\nlength = 80\n'
    )
    config = load_config(path)
    s = RotationSettings.from_config(config)
    assert s.grace_period == timedelta(days=2) and s.lease_ttl == timedelta(seconds=30)
    assert plugin_options(config, "rotators", "random", "app/key", {})["length"] == 80
    assert plugin_options(config, "rotators", "random", "other", {})["length"] == 64
    per_secret = {"rotator": {"length": 96}}  # the secret's attributes["rotation"]
    assert plugin_options(config, "rotators", "random", "app/key", per_secret)["length"] == 96
    with pytest.raises(ConfigError, match="not a duration"):
        RotationSettings.from_config(Config({"rotation": {"grace_period": "soon"}}))


def test_on_leak_is_read_from_the_config_file_or_environment_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keyward.toml"
    path.write_text('[rotation]\non_leak = "Alert"\n')
    assert RotationSettings.from_config(load_config(path)).on_leak == "alert"
    assert RotationSettings.from_config(Config()).on_leak is None
    monkeypatch.setenv("KEYWARD_ON_LEAK", "ignore")
    assert RotationSettings.from_config(load_config(path)).on_leak == "ignore"
    monkeypatch.setenv("KEYWARD_ON_LEAK", "sometimes")
    with pytest.raises(ConfigError, match=r"on_leak 'sometimes' is not one of rotate, alert"):
        RotationSettings.from_config(Config())
