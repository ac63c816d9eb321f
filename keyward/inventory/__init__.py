"""The inventory: every secret, its owner, its age, where it lives and who depends on it.

``models`` holds the SQLAlchemy schema (migrated by Alembic from ``migrations/``), ``db`` opens
and migrates a database, ``service`` answers every query the commands need and returns frozen
records (ORM rows never leave this package). Importing this package costs nothing; the modules
below import SQLAlchemy, so only the database paths of the CLI load them.
"""
