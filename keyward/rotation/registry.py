"""Plugin discovery: secret stores, rotators and dependents by entry point.

Built-ins register through the same entry point groups as third-party plugins
(``keyward.stores``, ``keyward.rotators``, ``keyward.dependents`` in pyproject.toml). An entry
point names a class (or any object) with a ``from_config(context, options)`` factory; it is
imported only when asked for, and what it builds is checked against the protocol, so a broken
plugin fails with a clear :class:`~keyward.core.errors.ConfigError` instead of mid-rotation.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar, cast

from keyward.core.errors import ConfigError
from keyward.core.redaction import Fingerprinter
from keyward.providers import Providers
from keyward.rotation.protocols import Dependent, Rotator, SecretStore


class PluginGroup(StrEnum):
    STORES = "keyward.stores"
    ROTATORS = "keyward.rotators"
    DEPENDENTS = "keyward.dependents"


_PROTOCOL: dict[PluginGroup, type[Any]] = {
    PluginGroup.STORES: SecretStore,
    PluginGroup.ROTATORS: Rotator,
    PluginGroup.DEPENDENTS: Dependent,
}
_NOUN = {
    PluginGroup.STORES: "secret store",
    PluginGroup.ROTATORS: "rotator",
    PluginGroup.DEPENDENTS: "dependent kind",
}


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What every plugin factory receives: the provider clients and the fingerprinter.

    ``clients.aws`` builds boto3 clients (the rotate preset), ``clients.vault`` the
    authenticated hvac client (:class:`keyward.providers.Providers`)."""

    clients: Providers
    fingerprinter: Fingerprinter
    extra: Mapping[str, Any] = field(default_factory=dict)


T = TypeVar("T")


def _entry_points(group: PluginGroup) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group.value):
        found.setdefault(ep.name, ep)  # first wins; duplicates are a packaging mistake
    return found


def available(group: PluginGroup) -> list[str]:
    """Names registered in ``group`` (nothing is imported)."""
    return sorted(_entry_points(group))


def protocol_members(protocol: type[Any]) -> list[str]:
    """Public attributes and methods a plugin must have to satisfy ``protocol``."""
    names = {n for n in getattr(protocol, "__annotations__", {}) if not n.startswith("_")}
    names |= {
        n for n, v in vars(protocol).items() if not n.startswith("_") and inspect.isfunction(v)
    }
    return sorted(names)


def check_plugin(obj: object, group: PluginGroup, name: str) -> None:
    """Raise ConfigError naming what is missing when ``obj`` does not satisfy the protocol."""
    protocol = _PROTOCOL[group]
    missing = [m for m in protocol_members(protocol) if not hasattr(obj, m)]
    if missing or not isinstance(obj, protocol):
        raise ConfigError(
            f"The {_NOUN[group]} plugin {name!r} does not implement {protocol.__name__}: "
            f"missing {', '.join(missing) or 'members'}",
            hint="Fix or uninstall the package that provides it",
        )
    kind = getattr(obj, "kind", None)
    if kind != name:
        raise ConfigError(
            f"The {_NOUN[group]} plugin registered as {name!r} says its kind is {kind!r}",
            hint="The entry point name and the plugin's kind attribute must agree",
        )


class PluginLoader:
    """Loads plugins, discovering each group's entry points once and checking each plugin
    class against its protocol once (both cost milliseconds: the daemon builds a store and
    a rotator for every rotation). One per :class:`~keyward.rotation.wiring.Wiring`, so a
    newly installed plugin is seen by the next one."""

    def __init__(self) -> None:
        self._found: dict[PluginGroup, dict[str, EntryPoint]] = {}
        self._checked: set[tuple[PluginGroup, str, type[Any]]] = set()

    def entry_points(self, group: PluginGroup) -> dict[str, EntryPoint]:
        if group not in self._found:
            self._found[group] = _entry_points(group)
        return self._found[group]

    def load(
        self,
        group: PluginGroup,
        name: str,
        context: PluginContext,
        options: Mapping[str, Any] | None = None,
    ) -> Any:
        plugin = _build(self.entry_points(group), group, name, context, options)
        key = (group, name, type(plugin))
        if key not in self._checked:
            check_plugin(plugin, group, name)
            self._checked.add(key)
        elif getattr(plugin, "kind", None) != name:  # the cheap part of the check, always
            check_plugin(plugin, group, name)
        return plugin


def load(
    group: PluginGroup,
    name: str,
    context: PluginContext,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Import the plugin ``name`` of ``group``, build it from ``options`` and check it."""
    return PluginLoader().load(group, name, context, options)


def _build(
    eps: Mapping[str, EntryPoint],
    group: PluginGroup,
    name: str,
    context: PluginContext,
    options: Mapping[str, Any] | None,
) -> Any:
    ep = eps.get(name)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(
            f"There is no {_NOUN[group]} named {name!r} (installed: {known})",
            hint="Check the spelling, or install the package that provides it",
        )
    try:
        factory = ep.load()
    except Exception as exc:  # a broken third-party package must not crash keyward
        raise ConfigError(
            f"The {_NOUN[group]} plugin {name!r} ({ep.value}) cannot be imported: "
            f"{type(exc).__name__}: {exc}",
            hint="Fix or reinstall the package that provides it",
        ) from None
    build = getattr(factory, "from_config", None)
    if not callable(build):
        raise ConfigError(
            f"The {_NOUN[group]} plugin {name!r} ({ep.value}) has no from_config(context, "
            "options) factory",
            hint="A plugin entry point must name a class with a from_config classmethod",
        )
    return build(context, dict(options or {}))


def load_store(
    name: str,
    context: PluginContext,
    options: Mapping[str, Any] | None = None,
    loader: PluginLoader | None = None,
) -> SecretStore:
    plugin = (loader or PluginLoader()).load(PluginGroup.STORES, name, context, options)
    return cast(SecretStore, plugin)


def load_rotator(
    name: str,
    context: PluginContext,
    options: Mapping[str, Any] | None = None,
    loader: PluginLoader | None = None,
) -> Rotator:
    plugin = (loader or PluginLoader()).load(PluginGroup.ROTATORS, name, context, options)
    return cast(Rotator, plugin)


def load_dependent(
    name: str,
    context: PluginContext,
    options: Mapping[str, Any] | None = None,
    loader: PluginLoader | None = None,
) -> Dependent:
    plugin = (loader or PluginLoader()).load(PluginGroup.DEPENDENTS, name, context, options)
    return cast(Dependent, plugin)
