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
from keyward.inventory.errors import DatabaseCorrupt, DatabaseUnavailable

log = logging.getLogger(__name__)

DEFAULT_FILENAME = "inventory.db"
SQLITE_HEADER = b"SQLite format 3\x00"
CONNECT_TIMEOUT_SECONDS = 5


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


def create_db_engine(url: str) -> Engine:
    """An engine for ``url`` (no connection is made yet)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if path is not None:
            check_sqlite_file(path)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    return sa.create_engine(
        parsed,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        pool_pre_ping=True,
    )


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not SQLite; create a new empty one (mode 0600) if missing."""
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
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


def unavailable_error(url: str | URL, exc: BaseException) -> DatabaseUnavailable:
    """One sentence naming host and port, without the password or the driver's prose."""
    parsed = make_url(url) if isinstance(url, str) else url
    host = parsed.host or "localhost"
    port = parsed.port or 5432
    text = str(getattr(exc, "orig", exc) or exc).lower()
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
    if isinstance(exc, sa.exc.OperationalError) and exc.connection_invalidated is False:
        if "connection" in text or "server" in text or "timeout" in text:
            return unavailable_error(parsed, exc)
    return exc


@dataclass(slots=True)
class Database:
    """An open inventory database: an engine and a session factory."""

    url: str
    engine: Engine
    _sessions: sessionmaker[Session] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def display_url(self) -> str:
        return display_url(self.url)

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


def connect(url: str) -> Database:
    """Open ``url`` without touching its schema (``keyward db`` commands use this)."""
    db = Database(url, create_db_engine(url))
    db.ping()
    return db


def open_database(
    config: Config | None = None, url: str | None = None, *, migrate: bool = True
) -> Database:
    """Open the inventory, migrating it to this keyward's schema when it is behind.

    Refuses (DatabaseTooNew) a database migrated past what this keyward knows.
    """
    from keyward.inventory import migrate as migrations

    db = connect(resolve_url(config, url))
    try:
        migrations.ensure_current(db, upgrade=migrate)
    except BaseException:
        db.close()
        raise
    return db
