"""Rotation: secret stores, rotators and dependents (the outside world), and the state machine.

Nothing here creates a client at import time. AWS and Vault clients, and the translation of
their errors, come from :mod:`keyward.providers` (passed in through
:class:`~keyward.rotation.registry.PluginContext`); psycopg is imported only by the
PostgreSQL rotator, which opens its own admin connection.
"""
