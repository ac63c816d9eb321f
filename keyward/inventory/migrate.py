"""Alembic, configured in code: find the migrations, upgrade under a lock, refuse the future.

The migrations live in ``migrations/`` at the top of a source checkout and are shipped in the
wheel as ``keyward/_migrations``; :func:`migrations_dir` finds either. ``alembic.ini`` at the
top of the checkout points at the same directory for developers running ``alembic`` directly.

Two ``keyward db upgrade`` at once are serialised: on PostgreSQL by a session advisory lock,
on SQLite by an exclusive ``flock`` of a ``<database>.lock`` file next to the database. The
second process waits, then finds the schema current and does nothing.

This module works on any :class:`OpenDatabase` (``keyward.inventory.db.Database`` is one);
``keyward.inventory.db.open_database`` calls :func:`ensure_current`, so this module imports
nothing from ``db`` (no import cycle).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa

from keyward import __version__
from keyward.core.errors import ConfigError, InventoryError
from keyward.inventory.errors import (
    DatabaseRefused,
    DatabaseTooNew,
    ForeignDatabase,
    MigrationLocked,
)

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)


class OpenDatabase(Protocol):
    """An open inventory database, as migrations need it."""

    url: str
    engine: sa.Engine
    schema: str | None

    @property
    def dialect(self) -> str: ...

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite file (None for PostgreSQL or an in-memory database)."""
        ...


LOCK_TIMEOUT_SECONDS = 300
# pg_advisory_lock takes a bigint; derive a stable one from a name.
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"keyward-migrations").digest()[:8], "big") >> 1
VERSION_KEY = "keyward_version"
# The newest migration this keyward ships (a test checks it equals Alembic's head). Opening an
# up-to-date database compares against it without importing Alembic (~100 ms per command).
SCHEMA_HEAD = "0004"


def migrations_dir() -> Path:
    """``keyward/_migrations`` in an installed wheel, else ``migrations/`` of the checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise InventoryError(
        "The inventory migrations are missing from this keyward installation",
        hint="Reinstall keyward (the wheel ships them as keyward/_migrations)",
    )


def alembic_config(url: str | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: str | None  # None: never migrated
    head: str
    known: bool  # this keyward has the migration the database is at
    migrated_by: str | None  # keyward version that last migrated it
    foreign: bool = False  # the alembic_version table is another application's

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def current_revision(db: OpenDatabase) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if heads else None


def status(db: OpenDatabase) -> SchemaStatus:
    current = current_revision(db)
    script = script_directory()
    known = current is None or _is_known(script, current)
    migrated_by: str | None = None
    foreign = False
    if current is not None:
        with db.engine.connect() as conn:
            if not known:  # a keyward database always has keyward_schema; another's has not
                foreign = not sa.inspect(conn).has_table("keyward_schema")
            try:
                migrated_by = conn.execute(
                    sa.text("SELECT value FROM keyward_schema WHERE key = :k"), {"k": VERSION_KEY}
                ).scalar()
            except sa.exc.DBAPIError:
                migrated_by = None
    head = script.get_current_head()
    assert head is not None
    return SchemaStatus(current, head, known, migrated_by, foreign)


def _is_known(script: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def too_new(st: SchemaStatus) -> DatabaseTooNew | ForeignDatabase:
    if st.foreign:
        return ForeignDatabase(
            f"The inventory database's alembic_version table belongs to another application "
            f"(revision {st.current}, not a keyward migration)",
            hint=_OWN_SCHEMA_HINT,
        )
    needed = f"keyward {st.migrated_by} or later" if st.migrated_by else "a newer keyward"
    return DatabaseTooNew(
        f"The inventory database is at schema revision {st.current}, newer than this keyward "
        f"{__version__} understands (its newest is {st.head}); it needs {needed}",
        hint="Upgrade keyward, or point KEYWARD_DATABASE_URL at another database",
    )


def ensure_current(db: OpenDatabase, *, upgrade: bool = True) -> SchemaStatus:
    """Refuse a newer schema; migrate an older one (or say how, when ``upgrade`` is off)."""
    try:
        with db.engine.connect() as conn:
            current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        current = None  # no table yet: the slow path below creates it
    if current == SCHEMA_HEAD:
        return SchemaStatus(current, SCHEMA_HEAD, True, None)
    st = status(db)
    if not st.known:
        raise too_new(st)
    if st.up_to_date:
        return st
    if not upgrade:
        raise InventoryError(
            f"The inventory database is at schema revision {st.current or 'none'}, "
            f"this keyward needs {st.head}",
            hint="Run `keyward db upgrade`",
        )
    return upgrade_to(db, "head")


_OWN_SCHEMA_HINT = (
    "Set [inventory] schema (or KEYWARD_DATABASE_SCHEMA) so keyward keeps its tables in a "
    "PostgreSQL schema of its own, or use another database"
)


def check_can_create(db: OpenDatabase) -> None:
    """Before creating the tables in an empty database: on PostgreSQL the schema exists
    (created when the user may) and the user may create tables in it; and no table keyward
    would create is already there (someone else's ``secrets``)."""
    from keyward.inventory.models import Base

    schema: str | None = None
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            schema = _creatable_schema(db, conn)
    taken = sorted(
        set(sa.inspect(db.engine).get_table_names(schema=schema)) & set(Base.metadata.tables)
    )
    if taken:
        where = f"schema {schema} of the inventory database" if schema else "the inventory database"
        hint = (
            _OWN_SCHEMA_HINT
            if db.dialect == "postgresql"
            else "Point KEYWARD_DATABASE_URL at another file"
        )
        raise ForeignDatabase(
            f"{where[0].upper()}{where[1:]} already has a table named {taken[0]} that keyward "
            "did not create (it was left untouched)",
            hint=hint,
        )


def _creatable_schema(db: OpenDatabase, conn: sa.Connection) -> str:
    user, database = conn.execute(sa.text("SELECT current_user, current_database()")).one()
    if db.schema is not None:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": db.schema}
        ).scalar()
        if not exists:
            may = conn.execute(
                sa.text("SELECT has_database_privilege(current_database(), 'CREATE')")
            ).scalar()
            if not may:
                raise DatabaseRefused(
                    f"The schema {db.schema} does not exist in the PostgreSQL database "
                    f"{database} and the user {user} may not create it",
                    hint=f"Have the database owner run CREATE SCHEMA {db.schema} "
                    f"AUTHORIZATION {user}",
                )
            log.info("creating the schema %s for the inventory", db.schema)
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')
    schema = db.schema or conn.execute(sa.text("SELECT current_schema()")).scalar()
    if schema is None:
        raise DatabaseRefused(
            f"No schema on the PostgreSQL user {user}'s search_path exists in database "
            f"{database}, so the inventory has nowhere to create its tables",
            hint="Set [inventory] schema (or KEYWARD_DATABASE_SCHEMA) to a schema it may "
            "create tables in",
        )
    may_create = sa.text("SELECT has_schema_privilege(:s, 'CREATE')")
    if not conn.execute(may_create, {"s": schema}).scalar():
        why = " (PostgreSQL 15 and later grant it only to the database owner)"
        raise DatabaseRefused(
            f"The PostgreSQL user {user} may not create the inventory's tables: it lacks the "
            f"CREATE privilege on schema {schema} of database {database}"
            + (why if schema == "public" else ""),
            hint=f"Have the owner run GRANT CREATE ON SCHEMA {schema} TO {user}, or set "
            "[inventory] schema (or KEYWARD_DATABASE_SCHEMA) to a schema the user owns",
        )
    return str(schema)


@contextmanager
def migration_lock(db: OpenDatabase, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the database's migration lock (advisory lock or lock file) for the block."""
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            deadline = time.monotonic() + timeout
            while not conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
            ).scalar():
                if time.monotonic() > deadline:
                    raise _locked(timeout)
                time.sleep(0.1)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
        return
    path = db.sqlite_file
    if path is None:  # in-memory: one process only
        yield
        return
    with _file_lock(path.with_name(path.name + ".lock"), timeout):
        yield


@contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    import os

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: SQLite's own locking must do
            yield
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _locked(timeout) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _locked(timeout: float) -> MigrationLocked:
    return MigrationLocked(
        f"Another keyward process has held the inventory migration lock for over {timeout:.0f}s",
        hint="Wait for it to finish, or stop it if it is stuck",
    )


def upgrade_to(db: OpenDatabase, revision: str = "head") -> SchemaStatus:
    """Upgrade under the migration lock; a no-op when already there."""
    from alembic import command

    with migration_lock(db):
        st = status(db)  # re-read under the lock: another process may have done it
        if not st.known:
            raise too_new(st)
        target = st.head if revision == "head" else revision
        if st.current != target:
            if st.current is None:
                check_can_create(db)
            log.info("migrating the inventory from %s to %s", st.current, target)
            cfg = alembic_config()
            with db.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                _run(command.upgrade, cfg, revision)
                _record_version(conn)
        return status(db)


def downgrade_to(db: OpenDatabase, revision: str) -> SchemaStatus:
    from alembic import command

    with migration_lock(db):
        st = status(db)
        if not st.known:
            raise too_new(st)
        cfg = alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            _run(command.downgrade, cfg, revision)
        return status(db)


def _run(fn: object, cfg: AlembicConfig, revision: str) -> None:
    from alembic.util import CommandError

    try:
        fn(cfg, revision)  # type: ignore[operator]
    except CommandError as exc:
        raise ConfigError(
            f"Cannot migrate to {revision!r}: {exc}",
            hint="Use `keyward db current` to see the revision; targets are head, base or an id",
        ) from None


def _record_version(conn: sa.Connection) -> None:
    if not sa.inspect(conn).has_table("keyward_schema"):
        return
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for key, value in ((VERSION_KEY, __version__), ("migrated_at", now)):
        updated = conn.execute(
            sa.text("UPDATE keyward_schema SET value = :v WHERE key = :k"), {"k": key, "v": value}
        ).rowcount
        if not updated:
            conn.execute(
                sa.text("INSERT INTO keyward_schema (key, value) VALUES (:k, :v)"),
                {"k": key, "v": value},
            )
