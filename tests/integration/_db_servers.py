"""The local MariaDB and Redis servers, for the mysql-password and redis-acl tests.

Import the fixtures into a test module with ``from tests.integration._db_servers import *``.

* ``mariadb`` (session): root over TCP on 127.0.0.1:3306 (``KEYWARD_TEST_MYSQL_URL``), a fresh
  database for the session, and a factory of accounts with unique names, all dropped at the end.
* ``redis_server`` (session): the shared Redis on 127.0.0.1:6379 (``KEYWARD_TEST_REDIS_URL``),
  which has no ACL file; users with unique names, deleted at the end.
* ``redis_with_aclfile`` (session): a private ``redis-server`` on a free loopback port that keeps
  its users in an ACL file, and can be restarted.

When a server does not answer the tests are skipped, unless ``KEYWARD_REQUIRE_MARIADB`` /
``KEYWARD_REQUIRE_REDIS`` is set (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

__all__ = ["MariaDB", "RedisServer", "mariadb", "redis_server", "redis_with_aclfile"]

MYSQL_URL = os.environ.get("KEYWARD_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
REDIS_URL = os.environ.get("KEYWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _unreachable(what: str, env: str, exc: BaseException) -> None:
    if os.environ.get(env):
        pytest.fail(f"{what} is required ({env}) but unreachable: {exc}")
    pytest.skip(f"{what} unreachable: {exc}")


def unique(prefix: str = "kw") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------------- MariaDB
@dataclass
class MariaDB:
    """Root's view of the server, and accounts made for one test session."""

    url: str
    database: str
    host: str
    port: int
    made: list[tuple[str, str]] = field(default_factory=list)

    def admin(self) -> Any:
        import pymysql

        return pymysql.connect(
            host=self.host, port=self.port, user="root", password="", autocommit=True
        )

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params or None)
                return list(cur.fetchall())
        finally:
            conn.close()

    def account(
        self, password: str | None = None, *, host: str = "%", grants: tuple[str, ...] = ()
    ) -> str:
        """A new account ``kw…@host`` (its ``_clone`` is dropped afterwards too)."""
        user = unique()
        for name in (user, user + "_clone"):
            self.made.append((name, host))
        if password is None:
            self.sql("CREATE USER %s@%s", user, host)
        else:
            self.sql("CREATE USER %s@%s IDENTIFIED BY %s", user, host, password)
        for privs in grants:
            self.sql(f"GRANT {privs} ON `{self.database}`.* TO %s@%s", user, host)
        return user

    def role(self, *privs: str) -> str:
        name = unique("kwrole")
        self.made.append((name, ""))
        self.sql(f"CREATE ROLE `{name}`")
        for p in privs:
            self.sql(f"GRANT {p} ON `{self.database}`.* TO `{name}`")
        return name

    def login(self, user: str, password: str) -> str:
        """CURRENT_USER() of a real TCP login; raises pymysql's error when refused."""
        import pymysql

        conn = pymysql.connect(
            host=self.host, port=self.port, user=user, password=password, connect_timeout=5
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER()")
                row = cur.fetchone()
                assert row is not None
                return str(row[0])
        finally:
            conn.close()

    def works(self, user: str, password: str) -> bool:
        import pymysql

        try:
            self.login(user, password)
        except pymysql.err.OperationalError as exc:
            assert exc.args[0] in (1045, 4151), exc  # refused: bad password / account locked
            return False
        return True

    def exists(self, user: str, host: str = "%") -> bool:
        return bool(self.sql("SELECT 1 FROM mysql.user WHERE User=%s AND Host=%s", user, host))

    def locked(self, user: str, host: str = "%") -> bool:
        rows = self.sql(
            "SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv "
            "WHERE User=%s AND Host=%s",
            user,
            host,
        )
        assert rows, f"no account {user}@{host}"
        return str(rows[0][0]) in ("1", "true")

    def auth_string(self, user: str, host: str = "%") -> str:
        rows = self.sql(
            "SELECT authentication_string FROM mysql.user WHERE User=%s AND Host=%s", user, host
        )
        assert rows, f"no account {user}@{host}"
        return str(rows[0][0])

    def grants(self, user: str, host: str = "%") -> list[str]:
        """SHOW GRANTS with the account name neutralised and the USAGE line dropped."""
        rows = self.sql("SHOW GRANTS FOR %s@%s", user, host)
        me = f"`{user}`@`{host}`"
        lines = [str(r[0]).replace(me, "<me>") for r in rows]
        return sorted(line for line in lines if not line.startswith("GRANT USAGE ON *.*"))

    def drop_all(self) -> None:
        for user, host in reversed(self.made):
            if host == "":
                self.sql(f"DROP ROLE IF EXISTS `{user}`")
            else:
                self.sql("DROP USER IF EXISTS %s@%s", user, host)
        self.made.clear()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    from urllib.parse import urlsplit

    pymysql = pytest.importorskip("pymysql")
    parts = urlsplit(MYSQL_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 3306
    try:
        conn = pymysql.connect(host=host, port=port, user="root", password="", connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        _unreachable("MariaDB", "KEYWARD_REQUIRE_MARIADB", exc)
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        row = cur.fetchone()
    assert row and "mariadb" in str(row[0]).lower(), f"not MariaDB: {row}"
    database = unique("kwdb_")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute(f"CREATE TABLE `{database}`.`orders` (id INT PRIMARY KEY)")
    conn.close()
    server = MariaDB(f"mysql://root@{host}:{port}/", database, host, port)
    try:
        yield server
    finally:
        server.drop_all()
        server.sql(f"DROP DATABASE IF EXISTS `{database}`")


# ------------------------------------------------------------------------------ Redis
@dataclass
class RedisServer:
    host: str
    port: int
    aclfile: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)
    made: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def admin(self) -> Any:
        import redis

        return redis.Redis(host=self.host, port=self.port, decode_responses=True)

    def user(self, *passwords: str, rules: str = "~* +@all") -> str:
        name = unique()
        self.made.append(name)
        r = self.admin()
        try:
            r.execute_command(
                "ACL", "SETUSER", name, "on", *(">" + p for p in passwords), *rules.split()
            )
        finally:
            r.close()
        return name

    def getuser(self, name: str) -> dict[str, Any] | None:
        r = self.admin()
        try:
            doc = r.acl_getuser(name)
        finally:
            r.close()
        return dict(doc) if doc else None

    def works(self, user: str, password: str) -> bool:
        """A real ``AUTH user password`` on a new connection."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        r = redis.Redis(
            host=self.host, port=self.port, decode_responses=True, retry=Retry(NoBackoff(), 0)
        )
        try:
            return bool(r.execute_command("AUTH", user, password))
        except redis.exceptions.AuthenticationError:
            return False
        finally:
            r.close()

    def restart(self) -> None:
        assert self.proc is not None, "only the private server restarts"
        self.stop()
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        import redis

        while True:
            try:
                r = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5)
                r.ping()
                r.close()
                return
            except redis.exceptions.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the private redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def drop_all(self) -> None:
        r = self.admin()
        try:
            for name in self.made:
                r.execute_command("ACL", "DELUSER", name)
        finally:
            r.close()
        self.made.clear()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    from urllib.parse import urlsplit

    redis = pytest.importorskip("redis")
    parts = urlsplit(REDIS_URL)
    server = RedisServer(parts.hostname or "127.0.0.1", parts.port or 6379)
    try:
        server.admin().ping()
    except redis.exceptions.ConnectionError as exc:
        _unreachable("Redis", "KEYWARD_REQUIRE_REDIS", exc)
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture(scope="session")
def redis_with_aclfile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    pytest.importorskip("redis")
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("KEYWARD_REQUIRE_REDIS"):
            pytest.fail("redis-server is required (KEYWARD_REQUIRE_REDIS) but not on PATH")
        pytest.skip("redis-server not on PATH")
    home = tmp_path_factory.mktemp("redis-acl")
    aclfile = home / "users.acl"
    aclfile.write_text("user default on nopass ~* &* +@all\n")
    port = free_port()
    args = [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(home), "--aclfile", str(aclfile), "--daemonize", "no",
    ]  # fmt: skip
    server = RedisServer("127.0.0.1", port, aclfile=aclfile, args=args)
    server.start()
    try:
        yield server
    finally:
        server.stop()
