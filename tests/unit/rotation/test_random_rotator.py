"""The random rotator: configurable length and alphabet, refuses weak settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keyward.core.errors import ConfigError
from keyward.core.redaction import Fingerprinter
from keyward.providers import Providers
from keyward.rotation.errors import CredentialRejected
from keyward.rotation.protocols import RetireOutcome, RotationContext, SecretValue, new_token
from keyward.rotation.registry import PluginContext
from keyward.rotation.rotators.random import ALPHABETS, RandomRotator

CTX = RotationContext(new_token(), datetime.now(UTC))
PCTX = PluginContext(Providers(), Fingerprinter(b"random-rotator-key-01"))


def test_create_generates_a_value_of_the_configured_shape_and_keeps_other_fields() -> None:
    rot = RandomRotator.from_config(PCTX, {"length": 64, "alphabet": "hex", "field": "key"})
    cur = SecretValue({"key": "old", "issuer": "me"})
    new = rot.create(cur, CTX)
    assert len(new["key"]) == 64 and set(new["key"]) <= set(ALPHABETS["hex"])
    assert new["issuer"] == "me"
    rot.test(new)


def test_custom_characters_are_used() -> None:
    rot = RandomRotator.from_config(PCTX, {"length": 200, "characters": "ab"})
    value = rot.create(SecretValue.single("x"), CTX)["value"]
    assert set(value) == {"a", "b"}


def test_values_do_not_repeat() -> None:
    rot = RandomRotator()
    values = {rot.create(SecretValue.single("x"), CTX)["value"] for _ in range(50)}
    assert len(values) == 50


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"length": 8, "alphabet": "hex"}, "bits of entropy"),
        ({"length": 5000}, "out of range"),
        ({"alphabet": "emoji"}, "Unknown alphabet"),
        ({"characters": "aaaa"}, "at least two characters"),
    ],
)
def test_weak_or_invalid_settings_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RandomRotator.from_config(PCTX, options)


def test_test_rejects_a_value_of_the_wrong_shape() -> None:
    rot = RandomRotator(length=32)
    with pytest.raises(CredentialRejected):
        rot.test(SecretValue.single("too-short"))
    with pytest.raises(CredentialRejected):
        rot.test(SecretValue({"other": "x" * 32}))


def test_retiring_a_random_value_is_not_applicable() -> None:
    rot = RandomRotator()
    old, new = SecretValue.single("a" * 48), SecretValue.single("b" * 48)
    rot.deactivate(old, new)
    assert rot.revoke(old, new, datetime.now(UTC)).outcome is RetireOutcome.NOT_APPLICABLE
    assert "48-character" in rot.plan(old)[0]
