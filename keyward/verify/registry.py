"""Find verifiers through the ``keyward.verifiers`` entry point group, lazily.

Nothing is imported until :func:`load_verifiers` runs (only with ``--verify``). Each entry
point names a factory taking a :class:`VerifyContext`; what it builds must satisfy the
:class:`Verifier` protocol, or loading fails with a message naming the plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points

from keyward.core.errors import ConfigError
from keyward.verify.base import Verifier, VerifyContext

log = logging.getLogger(__name__)

GROUP = "keyward.verifiers"


def available() -> list[EntryPoint]:
    """Every registered verifier entry point, sorted by name (nothing imported)."""
    return sorted(entry_points(group=GROUP), key=lambda ep: ep.name)


def load_verifiers(
    context: VerifyContext,
    *,
    names: Iterable[str] | None = None,
    points: Sequence[EntryPoint] | None = None,
) -> list[Verifier]:
    """Build the selected verifiers (all registered ones when ``names`` is None)."""
    eps = list(points) if points is not None else available()
    by_name = {ep.name: ep for ep in eps}
    if names is not None:
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise ConfigError(
                f"Unknown verifier {', '.join(sorted(unknown))}",
                hint=f"Registered verifiers: {', '.join(sorted(by_name)) or 'none'}",
            )
        eps = [by_name[n] for n in wanted]
    return [_build(ep, context) for ep in eps]


def _build(ep: EntryPoint, context: VerifyContext) -> Verifier:
    where = f"{ep.name} ({ep.value})"
    try:
        factory = ep.load()
    except Exception as exc:  # a broken plugin must say which one it is
        raise ConfigError(
            f"Cannot load the verifier plugin {where}: {type(exc).__name__}",
            hint="Fix or uninstall the plugin",
        ) from None
    if not callable(factory):
        raise ConfigError(
            f"The verifier plugin {where} is not a factory",
            hint="Point the entry point at a class or function taking a VerifyContext",
        )
    try:
        verifier = factory(context)
    except Exception as exc:
        raise ConfigError(
            f"The verifier plugin {where} failed to start: {type(exc).__name__}",
            hint="Check its [verify] settings",
        ) from None
    if (
        not isinstance(verifier, Verifier)
        or not isinstance(getattr(verifier, "name", None), str)
        or not callable(getattr(verifier, "accepts", None))
        or not callable(getattr(verifier, "verify", None))
    ):
        raise ConfigError(
            f"The verifier plugin {where} does not implement the Verifier protocol",
            hint="It needs a 'name' string and 'accepts(finding)' and 'verify(finding)' methods",
        )
    log.debug("loaded verifier %s", where)
    return verifier
