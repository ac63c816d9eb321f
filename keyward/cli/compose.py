"""The composition root of rotation: the inventory's repository wired into rotation's ports.

``keyward rotate``, ``keyward rotations`` and ``keyward daemon`` all build their rotation
engine here, the one place that knows both :mod:`keyward.inventory` (which implements
:mod:`keyward.rotation.ports`) and :mod:`keyward.rotation` (which declares them). Everything
heavy (SQLAlchemy, the plugins, the provider clients) is imported when a command needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keyward.core.config import Config
    from keyward.core.redaction import Fingerprinter
    from keyward.inventory.db import Database
    from keyward.inventory.leaks import Leak, LeakPolicy
    from keyward.inventory.rotations import RotationRepository
    from keyward.rotation.driver import Notifier
    from keyward.rotation.engine import RotationEngine
    from keyward.rotation.registry import PluginLoader
    from keyward.rotation.wiring import RotationSettings, Wiring


def _loader() -> PluginLoader:
    from keyward.rotation.registry import PluginLoader

    return PluginLoader()


@dataclass(frozen=True, slots=True)
class RotationParts:
    """The pieces of rotation for one command or one daemon: the inventory (the engine's
    journal, leases and secrets), the settings, and factories for plugins and engines."""

    inventory: RotationRepository
    settings: RotationSettings
    config: Config
    fingerprinter: Fingerprinter
    notifier: Notifier
    holder: str | None = None
    # plugins found and checked once for these parts (the daemon builds wirings all along)
    loader: PluginLoader = field(default_factory=_loader)

    def wiring(self) -> Wiring:
        """Stores, rotators and dependents with fresh provider clients (the daemon takes new
        ones every batch: no stale connections or expired tokens held across batches)."""
        from keyward.providers import Providers
        from keyward.rotation.registry import PluginContext
        from keyward.rotation.wiring import Wiring

        clients = Providers.from_config(self.config)
        return Wiring(self.config, PluginContext(clients, self.fingerprinter), self.loader)

    def close(self) -> None:
        self.inventory.db.close()

    def refresh_posture(self) -> dict[str, int]:
        """Recompute the inventory's posture after rotations (``[inventory] unused_days``);
        how many secrets have each breach now."""
        from keyward.inventory.posture import refresh_for

        summary = refresh_for(self.inventory.db, self.config)
        return {b.value: n for b, n in summary.counts.items()}

    def posture_counts(self) -> dict[str, int]:
        """How many secrets have each breach in the stored posture (one GROUP BY)."""
        from keyward.inventory.posture import stored_counts

        with self.inventory.db.session() as session:
            return {b.value: n for b, n in stored_counts(session).items()}

    def engine(
        self, wiring: Wiring | None = None, *, stop: threading.Event | None = None
    ) -> RotationEngine:
        from keyward.rotation.engine import RotationEngine

        return RotationEngine(
            self.inventory,
            wiring or self.wiring(),
            self.fingerprinter,
            self.settings,
            holder=self.holder,
            notifier=self.notifier,
            stop=stop,
        )


def compose_rotation(
    config: Config,
    open_db: Callable[[], Database],
    *,
    actor: str | None = None,
    holder: str | None = None,
) -> RotationParts:
    """Rotation over the inventory ``open_db`` opens (after the settings were read: a bad
    ``[rotation]`` table is reported before any database is touched). Audit events name
    ``actor`` (default: the user), leases ``holder`` (default: one per engine). The caller
    closes the parts."""
    from keyward.cli.common import fingerprint_key
    from keyward.core.redaction import Fingerprinter
    from keyward.inventory.rotations import RotationRepository
    from keyward.rotation.webhook import notifier_for
    from keyward.rotation.wiring import RotationSettings

    settings = RotationSettings.from_config(config)
    fingerprinter = Fingerprinter(fingerprint_key(config))
    notifier = notifier_for(settings.webhook_url, settings.webhook_timeout)
    return RotationParts(
        inventory=RotationRepository(open_db(), actor=actor),
        settings=settings,
        config=config,
        fingerprinter=fingerprinter,
        notifier=notifier,
        holder=holder,
    )


def leak_policy(config: Config) -> LeakPolicy:
    """How ``scan --record`` and the rotation commands decide a secret's ``on_leak`` when it
    has none: ``[rotation] on_leak``, else whether a rotator and a store plugin are
    installed for it."""
    from keyward.inventory import models as m
    from keyward.inventory.leaks import LeakPolicy
    from keyward.rotation.wiring import on_leak_setting, rotatable_plugins

    default = on_leak_setting(config)
    rotators, stores = rotatable_plugins()
    return LeakPolicy(m.OnLeak(default) if default else None, rotators, stores)


def report_leaks(config: Config, leaks: Sequence[Leak], actor: str) -> None:
    """Tell the person who ran the scan (one sentence each, on stderr) and the webhook
    (``leak.detected``; never a value) about secrets found leaked."""
    if not leaks:
        return
    import click

    from keyward.inventory.leaks import leak_event
    from keyward.rotation.webhook import notifier_for
    from keyward.rotation.wiring import RotationSettings

    for leak in leaks:
        click.echo(f"keyward: {leak.sentence()}", err=True)
    settings = RotationSettings.from_config(config)
    notifier = notifier_for(settings.webhook_url, settings.webhook_timeout)
    for leak in leaks:
        if leak.on_leak.value == "ignore":
            continue
        notifier.notify(leak_event(leak, actor))
