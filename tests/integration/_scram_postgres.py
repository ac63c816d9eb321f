"""A private PostgreSQL cluster that really checks passwords (the shared one on 5432 trusts
every login): ``initdb`` as a non-root user, ``scram-sha-256`` for TCP on 127.0.0.1, trust only
on its own Unix socket (for the admin). Session-scoped; stopped and removed at the end.

Import the fixture with ``from tests.integration._scram_postgres import scram_postgres``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

__all__ = ["ScramPostgres", "scram_postgres"]


@dataclass(frozen=True)
class ScramPostgres:
    port: int
    socket_dir: str

    @property
    def admin_url(self) -> str:
        """The superuser over the Unix socket (trusted): what keyward's rotator uses."""
        return f"postgresql://postgres@/postgres?host={self.socket_dir}&port={self.port}"

    def admin(self) -> object:
        import psycopg

        return psycopg.connect(self.admin_url, autocommit=True)

    def login(self, user: str, password: str) -> bool:
        """A real TCP login with a password, as an application makes it."""
        import psycopg

        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user=user, password=password,
                dbname="postgres", connect_timeout=5,
            ) as conn:  # fmt: skip
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def role(self, password: str) -> str:
        from psycopg import sql

        name = f"kw_{uuid.uuid4().hex[:10]}"
        with self.admin() as conn:  # type: ignore[attr-defined]
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )
        return name


def _bindir() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


@pytest.fixture(scope="session")
def scram_postgres() -> Iterator[ScramPostgres]:
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("KEYWARD_REQUIRE_POSTGRES"):
            pytest.fail("initdb is required (PostgreSQL server binaries) but not installed")
        pytest.skip("initdb not installed")
    base = Path(tempfile.mkdtemp(prefix="kw-scram-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as nobody
        nobody = pwd.getpwnam("nobody")
        for p in (base, sock):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    port = free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(
        [*as_user, f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8"],
        check=True, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    (data / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    )
    if as_user:
        os.chown(data / "pg_hba.conf", pwd.getpwnam("nobody").pw_uid, -1)
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-o", opts, "-l", str(base / "log"),
         "-w", "start"],
        check=True, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    server = ScramPostgres(port, str(sock))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.admin().close()  # type: ignore[attr-defined]
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        subprocess.run(
            [*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, env=env, timeout=60,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
