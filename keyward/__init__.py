"""keyward: find hardcoded secrets, keep an inventory of them, and rotate them.

The packages, and which way they depend (checked by a test and by the house rules):

* :mod:`keyward.cli` — click commands: parse, build one request, call a service, render.
  ``keyward.cli.compose`` is the composition root of rotation: it wires the inventory's
  repository into rotation's ports.
* :mod:`keyward.scan` — sources yield work, one runner drives the engine, post-passes, reports.
  Knows nothing of the inventory, rotation, verification or the CLI; on the pre-commit path.
* :mod:`keyward.verify` — liveness of found credentials.
* :mod:`keyward.inventory` — the schema and every query; implements the protocols of
  :mod:`keyward.rotation.ports`, the only module of rotation it imports.
* :mod:`keyward.rotation` — stores, rotators, dependents (plugins) and the state machine;
  imports nothing from the inventory.
* :mod:`keyward.providers` — the one place that builds AWS (boto3) and Vault (hvac) clients,
  assumes roles and translates their errors (imported lazily).
* :mod:`keyward.core` — errors, redaction and fingerprints, config, logging (imports none of
  the above).
"""

__version__ = "0.1.0"
