"""The inventory: every secret, its owner, its age, where it lives and who depends on it.

``models`` holds the SQLAlchemy schema (migrated by Alembic from ``migrations/``), ``db`` opens
and migrates a database, ``service`` answers every query the commands need and returns frozen
records (ORM rows never leave this package). ``fields`` keeps the keyed fingerprint of each
field of each version and answers "which secret, version and field is this value?"
(:func:`~keyward.inventory.fields.fields_by_fingerprint`, for finding links, dependents
discovery, adoption and posture); ``dependents`` records the Lambda functions that hold a
secret, by value or by reference (``discover aws-lambda``). Importing this package costs
nothing; the modules below import SQLAlchemy, so only the database paths of the CLI load them.
"""
