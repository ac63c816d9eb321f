"""Rotation: secret stores, rotators and dependents (the outside world), and the state machine.

* :mod:`~keyward.rotation.protocols` — the plugin protocols (``SecretStore``, ``Rotator``,
  ``Dependent``) and their values; :mod:`~keyward.rotation.registry` loads plugins by entry
  point; :mod:`~keyward.rotation.wiring` picks and configures them for a secret.
* :mod:`~keyward.rotation.ports` — what rotation needs from persistence (journal, leases,
  rotatable secrets, due work), as protocols the inventory implements; the one module of
  rotation that :mod:`keyward.inventory` imports. Rotation imports nothing from the inventory.
* :mod:`~keyward.rotation.engine` starts, resumes and drives rotations forward;
  :mod:`~keyward.rotation.retire` retires the old credential after finish;
  :mod:`~keyward.rotation.rollback` undoes a rotation that failed before finish;
  :mod:`~keyward.rotation.driver` is what the three share (the run, durable writes).
* :mod:`~keyward.rotation.scheduler` (the daemon), :mod:`~keyward.rotation.plan`
  (``--dry-run``), :mod:`~keyward.rotation.webhook` (events).

Nothing here creates a client at import time. AWS and Vault clients, and the translation of
their errors, come from :mod:`keyward.providers` (passed in through
:class:`~keyward.rotation.registry.PluginContext`); psycopg is imported only by the
PostgreSQL rotator, which opens its own admin connection. ``keyward.cli.compose`` wires the
inventory into these modules.
"""
