"""Plugins are found by entry point, imported lazily and checked against their protocol."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from keyward.core.errors import ConfigError
from keyward.core.redaction import Fingerprinter
from keyward.providers import Providers
from keyward.rotation import registry
from keyward.rotation.protocols import (
    Retirement,
    RetireOutcome,
    RotationContext,
    SecretDescription,
    SecretStore,
    SecretValue,
    VersionedSecret,
)
from keyward.rotation.registry import PluginContext, PluginGroup

CTX = PluginContext(Providers(), Fingerprinter(b"registry-test-key-0123"))


class FakeStore:
    """An in-memory SecretStore (a fake of our own protocol)."""

    kind = "fake"

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> FakeStore:
        return cls(options)

    def plan(self, name: str) -> tuple[str, ...]:
        return ()

    def describe(self, name: str) -> SecretDescription:
        return SecretDescription(name, False)

    def read_current(self, name: str) -> VersionedSecret:
        return VersionedSecret(name, "1", SecretValue({}))

    def read_version(self, name: str, version: str) -> VersionedSecret:
        return VersionedSecret(name, version, SecretValue({}))

    def put_pending(self, name: str, value: SecretValue, token: str) -> str:
        return "2"

    def promote(self, name: str, version: str) -> None:
        return None

    def discard_pending(self, name: str, token: str) -> None:
        return None

    def list_secrets(self, prefix: str = "") -> Iterator[str]:
        return iter(())


class HalfStore:
    kind = "half"

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> HalfStore:
        return cls()

    def describe(self, name: str) -> SecretDescription:
        return SecretDescription(name, False)


class WrongKind(FakeStore):
    kind = "something-else"

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> WrongKind:
        return cls(options)


class NoFactory:
    kind = "nofactory"


class FakeRotator:
    kind = "fake-rotator"

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> FakeRotator:
        return cls()

    def plan(self, current: SecretValue) -> tuple[str, ...]:
        return ()

    def create(self, current: SecretValue, ctx: RotationContext) -> SecretValue:
        return current

    def set(self, current: SecretValue, new: SecretValue) -> None: ...

    def test(self, new: SecretValue) -> None: ...

    def deactivate(self, old: SecretValue, new: SecretValue) -> None: ...

    def revoke(self, old: SecretValue, new: SecretValue, deactivated_at: datetime) -> Retirement:
        return Retirement(RetireOutcome.NOT_APPLICABLE)

    def rollback(
        self, current: SecretValue, new: SecretValue | None, ctx: RotationContext
    ) -> None: ...


HERE = __name__


@pytest.fixture
def fake_eps(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = {
        "keyward.stores": [
            EntryPoint("fake", f"{HERE}:FakeStore", "keyward.stores"),
            EntryPoint("half", f"{HERE}:HalfStore", "keyward.stores"),
            EntryPoint("wrong", f"{HERE}:WrongKind", "keyward.stores"),
            EntryPoint("nofactory", f"{HERE}:NoFactory", "keyward.stores"),
            EntryPoint("broken", "keyward_no_such_module.x:Y", "keyward.stores"),
        ],
        "keyward.rotators": [EntryPoint("fake-rotator", f"{HERE}:FakeRotator", "keyward.rotators")],
    }
    monkeypatch.setattr(registry, "entry_points", lambda group: eps.get(group, []))


def test_built_in_plugins_are_registered_through_entry_points() -> None:
    assert {"aws-secretsmanager", "vault-kv"} <= set(registry.available(PluginGroup.STORES))
    assert {"aws-iam-access-key", "postgres-password", "random"} <= set(
        registry.available(PluginGroup.ROTATORS)
    )
    assert "aws-lambda" in registry.available(PluginGroup.DEPENDENTS)


def test_every_built_in_entry_point_imports_and_has_a_factory() -> None:
    for group in PluginGroup:
        for ep in registry._entry_points(group).values():
            if ep.value.startswith("keyward."):
                obj = ep.load()
                assert callable(obj.from_config), ep.name
                assert obj.kind == ep.name


def test_a_built_in_rotator_loads_and_passes_the_protocol_check() -> None:
    rot = registry.load_rotator("random", CTX, {"length": 40})
    assert rot.kind == "random"


def test_a_plugin_is_built_from_its_options(fake_eps: None) -> None:
    store = registry.load_store("fake", CTX, {"region": "x"})
    assert isinstance(store, SecretStore) and store.options == {"region": "x"}  # type: ignore[attr-defined]
    assert registry.load_rotator("fake-rotator", CTX).kind == "fake-rotator"


def test_an_unknown_plugin_lists_what_is_installed(fake_eps: None) -> None:
    with pytest.raises(ConfigError) as err:
        registry.load_store("nope", CTX)
    assert "There is no secret store named 'nope' (installed: broken, fake, half" in str(err.value)


def test_a_plugin_missing_protocol_methods_is_refused_by_name(fake_eps: None) -> None:
    with pytest.raises(ConfigError) as err:
        registry.load_store("half", CTX)
    text = str(err.value)
    assert "does not implement SecretStore" in text
    assert "put_pending" in text and "promote" in text


def test_a_plugin_whose_kind_disagrees_with_its_name_is_refused(fake_eps: None) -> None:
    with pytest.raises(ConfigError, match="says its kind is 'something-else'"):
        registry.load_store("wrong", CTX)


def test_a_plugin_without_a_factory_is_refused(fake_eps: None) -> None:
    with pytest.raises(ConfigError, match="has no from_config"):
        registry.load_store("nofactory", CTX)


def test_a_plugin_that_cannot_be_imported_is_a_config_error(fake_eps: None) -> None:
    with pytest.raises(ConfigError, match="cannot be imported: ModuleNotFoundError"):
        registry.load_store("broken", CTX)
