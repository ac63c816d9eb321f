"""Open the inventory database: resolve its URL, connect, check and migrate its schema.

The default database is a SQLite file in the user data directory, created (mode 0600) and
migrated on first use. ``KEYWARD_DATABASE_URL`` or ``[inventory] database_url`` selects
another one, e.g. ``postgresql://user@host/keyward`` (the psycopg 3 driver is implied).

Connection failures become :class:`DatabaseUnavailable` (one sentence naming host and port,
exit 3); a file that is not a SQLite database becomes :class:`DatabaseCorrupt` and is never
written to; a database migrated by a newer keyward is refused with :class:`DatabaseTooNew`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from keyward.core.config import Config, data_dir
from keyward.core.errors import ConfigError
from keyward.inventory.errors import DatabaseCorrupt, DatabaseRefused, DatabaseUnavailable

log = logging.getLogger(__name__)

DEFAULT_FILENAME = "inventory.db"
SQLITE_HEADER = b"SQLite format 3\x00"
CONNECT_TIMEOUT_SECONDS = 5
SCHEMA_ENV = "KEYWARD_DATABASE_SCHEMA"
# An unquoted PostgreSQL identifier (at most 63 bytes), so it can be named in SQL and messages.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def default_url() -> str:
    return f"sqlite:///{data_dir() / DEFAULT_FILENAME}"


def resolve_url(config: Config | None = None, explicit: str | None = None) -> str:
    """``--database`` > ``KEYWARD_DATABASE_URL`` > ``[inventory] database_url`` > default."""
    if explicit:
        return normalize_url(explicit)
    env = os.environ.get("KEYWARD_DATABASE_URL")
    if env:
        return normalize_url(env)
    if config is not None and config.database_url:
        return normalize_url(config.database_url)
    return default_url()


def resolve_schema(config: Config | None, url: str) -> str | None:
    """The PostgreSQL schema keyward keeps its tables in: ``KEYWARD_DATABASE_SCHEMA`` >
    ``[inventory] schema`` > none (the user's default ``search_path``, usually ``public``)."""
    env = os.environ.get(SCHEMA_ENV)
    if env is not None:
        value: object = env
        where = SCHEMA_ENV
    elif config is not None:
        value = config.file_value("inventory", "schema")
        where = f"[inventory] schema in {config.path}" if config.path else "[inventory] schema"
    else:
        return None
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _SCHEMA_NAME.fullmatch(value):
        raise ConfigError(
            f"{where} must be a schema name of letters, digits and underscores (got {value!r})",
            hint="Use a name such as keyward",
        )
    if make_url(url).get_backend_name() != "postgresql":
        raise ConfigError(
            f"{where} is set, but only a PostgreSQL inventory has schemas",
            hint="Remove the setting, or point KEYWARD_DATABASE_URL at PostgreSQL",
        )
    return value


def normalize_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigError(
            "The inventory database URL is not a valid URL",
            hint="Use sqlite:///path/to/inventory.db or postgresql://user@host:5432/dbname",
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(
            f"Unsupported inventory database {backend!r}",
            hint="Use SQLite (sqlite:///path) or PostgreSQL (postgresql://...)",
        )
    return parsed.render_as_string(hide_password=False)


def display_url(url: str | URL) -> str:
    """The URL without its password, safe to print."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: str | URL) -> Path | None:
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite":
        return None
    db = parsed.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        # 64 MiB page cache (default 2 MiB): bulk upserts touch many index pages at random
        cur.execute("PRAGMA cache_size = -65536")
    finally:
        cur.close()


def _search_path_setter(schema: str) -> Any:
    """A connect hook putting ``schema`` alone on the session's ``search_path``, so every
    table (and Alembic's version table) is created and found there."""

    def set_search_path(dbapi_conn: Any, _record: Any) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True  # a SET inside a transaction rolled back would be undone
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute(f'SET search_path TO "{schema}"')
        finally:
            dbapi_conn.autocommit = autocommit

    return set_search_path


def create_db_engine(url: str, schema: str | None = None) -> Engine:
    """An engine for ``url`` (no connection is made yet); on PostgreSQL, in ``schema``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if path is not None:
            check_sqlite_file(path)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    engine = sa.create_engine(
        parsed,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        pool_pre_ping=True,
    )
    if schema is not None:
        # insert=True: before SQLAlchemy reads the default schema on the first connection
        sa.event.listen(engine, "connect", _search_path_setter(schema), insert=True)
    return engine


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not SQLite; create a new empty one (mode 0600) if missing."""
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        if not path.parent.is_dir() and path.parent != data_dir():
            # Only the default location is created; a directory named in a URL that does not
            # exist is a typo more often than a wish for an empty inventory.
            raise ConfigError(
                f"The directory {path.parent} of the inventory database does not exist",
                hint="Create it, or fix KEYWARD_DATABASE_URL (or [inventory] database_url)",
            ) from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise DatabaseUnavailable(
                f"Cannot create the inventory database {path}: {exc.strerror}",
                hint="Check the directory's permissions or set KEYWARD_DATABASE_URL",
            ) from None
        return
    except IsADirectoryError:
        raise DatabaseCorrupt(
            f"The inventory database {path} is a directory, not a SQLite file",
            hint="Point KEYWARD_DATABASE_URL at a file",
        ) from None
    except OSError as exc:
        raise DatabaseUnavailable(
            f"Cannot read the inventory database {path}: {exc.strerror}",
            hint="Check its permissions",
        ) from None
    if header and header != SQLITE_HEADER:
        raise corrupt_error(path)


def corrupt_error(path: Path | None) -> DatabaseCorrupt:
    where = f" {path}" if path else ""
    return DatabaseCorrupt(
        f"The inventory database{where} is not a valid SQLite database (it is damaged or "
        "another kind of file) and was left untouched",
        hint="Restore it from a backup, or move it aside to start a new inventory",
    )


def unavailable_error(url: str | URL, exc: BaseException) -> DatabaseUnavailable | DatabaseRefused:
    """One sentence naming host and port, without the password or the driver's prose."""
    parsed = make_url(url) if isinstance(url, str) else url
    host = parsed.host or "localhost"
    port = parsed.port or 5432
    raw = str(getattr(exc, "orig", exc) or exc)
    text = raw.lower()
    fatal = raw.partition("FATAL:")[2].strip().splitlines()
    if fatal and fatal[0]:
        # The server answered and refused the login (unknown role, wrong password, no such
        # database, pg_hba.conf): its own words, which never carry the password.
        return DatabaseRefused(
            f"The PostgreSQL server at {host}:{port} refused the inventory login: "
            f"{fatal[0].rstrip('.')}",
            hint="Check the user, password and database in KEYWARD_DATABASE_URL "
            "(or [inventory] database_url)",
        )
    if "refused" in text:
        reason = "the connection was refused"
    elif "timeout" in text or "timed out" in text:
        reason = "the connection timed out"
    elif "does not exist" in text and "database" in text:
        reason = f"the database {parsed.database!r} does not exist"
    elif "authentication" in text or "password" in text:
        reason = "authentication failed"
    elif "could not translate host name" in text or "name or service not known" in text:
        reason = "the host name does not resolve"
    else:
        reason = "it did not answer"
    return DatabaseUnavailable(
        f"Cannot connect to the PostgreSQL inventory database at {host}:{port}: {reason}",
        hint="Check KEYWARD_DATABASE_URL (or [inventory] database_url) and that the server runs",
    )


def refused_error(url: str | URL, exc: sa.exc.DBAPIError) -> DatabaseRefused:
    """A privilege the database user lacks, in the server's words (first line, no SQL)."""
    parsed = make_url(url) if isinstance(url, str) else url
    diag = getattr(exc.orig, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(exc.orig).splitlines()[0]
    return DatabaseRefused(
        f"PostgreSQL refused the inventory user {parsed.username or '(default)'} on database "
        f"{parsed.database}: {primary.rstrip('.')}",
        hint="Have the database owner grant the privilege, or use a user that owns the "
        "inventory's tables",
    )


def translate_error(url: str | URL, exc: sa.exc.DBAPIError) -> Exception:
    """Map a driver error to a keyward error when it is an expected failure."""
    parsed = make_url(url) if isinstance(url, str) else url
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    if parsed.get_backend_name() == "sqlite":
        if "not a database" in text or "malformed" in text or "disk image" in text:
            return corrupt_error(sqlite_path(parsed))
        if "unable to open" in text:
            return DatabaseUnavailable(
                f"Cannot open the inventory database {sqlite_path(parsed)}",
                hint="Check that its directory exists and is writable",
            )
        return exc
    if getattr(exc.orig, "sqlstate", None) == "42501":  # insufficient_privilege
        return refused_error(parsed, exc)
    if isinstance(exc, sa.exc.OperationalError) and exc.connection_invalidated is False:
        if "connection" in text or "server" in text or "timeout" in text:
            return unavailable_error(parsed, exc)
    return exc


@dataclass(slots=True)
class Database:
    """An open inventory database: an engine and a session factory."""

    url: str
    engine: Engine
    schema: str | None = None  # PostgreSQL: the schema keyward's tables live in
    _sessions: sessionmaker[Session] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def display_url(self) -> str:
        return display_url(self.url)

    @property
    def sqlite_file(self) -> Path | None:
        return sqlite_path(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except sa.exc.DBAPIError as exc:
            session.rollback()
            translated = translate_error(self.url, exc)
            if translated is exc:
                raise
            raise translated from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Connect once; raise DatabaseUnavailable / DatabaseCorrupt when that fails."""
        try:
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
                else:
                    conn.exec_driver_sql("SELECT 1").scalar()
        except sa.exc.DBAPIError as exc:
            if self.dialect != "sqlite":
                raise unavailable_error(self.url, exc) from None
            translated = translate_error(self.url, exc)
            if translated is exc:
                raise
            raise translated from None

    def close(self) -> None:
        self.engine.dispose()


def connect(url: str, schema: str | None = None) -> Database:
    """Open ``url`` without touching its schema (``keyward db`` commands use this)."""
    db = Database(url, create_db_engine(url, schema), schema)
    db.ping()
    return db


def open_database(
    config: Config | None = None, url: str | None = None, *, migrate: bool = True
) -> Database:
    """Open the inventory, migrating it to this keyward's schema when it is behind.

    Refuses (DatabaseTooNew) a database migrated past what this keyward knows.
    """
    from keyward.inventory import migrate as migrations

    resolved = resolve_url(config, url)
    db = connect(resolved, resolve_schema(config, resolved))
    try:
        migrations.ensure_current(db, upgrade=migrate)
    except BaseException:
        db.close()
        raise
    return db
