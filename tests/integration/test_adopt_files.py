"""``keyward adopt`` of secrets found in files and ``.env`` entries, into Vault (OpenBao): the
value is read again from the file, never edited there; the output names file and line to
replace; a Redis URL in a ``.env`` becomes a ``redis-acl`` secret rotated on a real Redis."""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest

from tests.integration._adopt_world import github_token
from tests.integration._db_servers import *  # noqa: F403
from tests.integration._db_servers import RedisServer
from tests.integration._inventory_db import Cli, sqlite_template  # noqa: F401

pytestmark = pytest.mark.integration
OLD_PASSWORD = "Tq8vZr2LmX5pWk9Nc3Hd"


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:  # noqa: F811
    path = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def project(
    openbao: Any,
    redis_server: RedisServer,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """A code base with a token in settings.py line 3 and a Redis URL in .env line 2."""
    user = redis_server.user(OLD_PASSWORD, rules="~app:* +@read +@write")
    app = tmp_path / "app"
    app.mkdir()
    token = github_token()
    (app / "settings.py").write_text(f'DEBUG = False\n\nGITHUB_TOKEN = "{token}"\n')
    (app / ".env").write_text(
        f"STAGE=prod\nREDIS_URL=redis://{user}:{OLD_PASSWORD}@{redis_server.host}:"
        f"{redis_server.port}/0\n"
    )
    config = tmp_path / "keyward.toml"
    config.write_text(
        '[rotation]\ngrace_period = "0s"\n'
        f'[rotation.rotators.redis-acl]\nadmin_url = "{redis_server.url}"\n'
    )
    for name, value in {
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": openbao.token,
        "KEYWARD_DATABASE_URL": sqlite_url,
        "KEYWARD_CONFIG": str(config),
        "KEYWARD_ACTOR": "tester",
    }.items():
        monkeypatch.setenv(name, value)
    for var in ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    prefix = f"adopt-{uuid.uuid4().hex[:8]}"
    return {
        "app": app,
        "token": token,
        "user": user,
        "prefix": prefix,
        "db": sqlite_url.removeprefix("sqlite:///"),
        "bao": hvac.Client(url=openbao.addr, token=openbao.token),
        "files": {p.name: p.read_bytes() for p in app.iterdir()},
    }


def finding_id(project: dict[str, Any], rule_prefix: str) -> int:
    con = sqlite3.connect(project["db"])
    try:
        (fid,) = con.execute(
            "SELECT id FROM findings WHERE rule_id LIKE ?", (f"{rule_prefix}%",)
        ).fetchone()
    finally:
        con.close()
    return int(fid)


def dump(project: dict[str, Any]) -> str:
    con = sqlite3.connect(project["db"])
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def vault_current(project: dict[str, Any], name: str) -> dict[str, str]:
    resp = project["bao"].secrets.kv.v2.read_secret_version(
        path=name, mount_point="secret", raise_on_deleted_version=True
    )
    return dict(resp["data"]["data"])


def test_file_and_env_secrets_are_adopted_into_vault_and_no_file_is_edited(
    project: dict[str, Any], cli: Cli, redis_server: RedisServer
) -> None:
    rc, out, err = cli("scan", str(project["app"]), "--record")
    assert rc == 1, err
    outputs = [out + err]
    token_name = f"{project['prefix']}/github"
    rc, out, err = cli(
        "adopt", str(finding_id(project, "github")), "--store", "vault-kv",
        "--name", token_name, "--owner", "alice",
    )  # fmt: skip
    outputs.append(out + err)
    assert rc == 0, err
    assert "settings.py:3" in out and "replace ghp_" in out and f"secret/{token_name}" in out
    assert vault_current(project, token_name) == {"value": project["token"]}
    meta = project["bao"].secrets.kv.v2.read_secret_metadata(path=token_name, mount_point="secret")
    assert meta["data"]["custom_metadata"]["owner"] == "alice"
    # the Redis URL of .env: a redis-acl secret read from the URL, rotated on the real server
    cache_name = f"{project['prefix']}/cache"
    rc, out, err = cli(
        "adopt", str(finding_id(project, "redis")), "--store", "vault-kv",
        "--name", cache_name, "--rotate", "--format", "json",
    )  # fmt: skip
    outputs.append(out + err)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "redis-acl" and doc["rotation"]["state"] in ("finished", "retiring")
    assert doc["fields"] == ["host", "password", "port", "username"]
    assert [r["where"] for r in doc["replace"]] == [".env:2"]
    current = vault_current(project, cache_name)
    assert current["username"] == project["user"] and current["password"] != OLD_PASSWORD
    assert redis_server.works(project["user"], current["password"])
    assert not redis_server.works(project["user"], OLD_PASSWORD)  # the leaked one is gone
    # keyward edits no file
    assert {p.name: p.read_bytes() for p in project["app"].iterdir()} == project["files"]
    # no value in any output, the inventory or its audit log
    everything = "\n".join([*outputs, dump(project)])
    for value in (project["token"], OLD_PASSWORD, current["password"]):
        assert value not in everything


def test_a_file_whose_value_changed_since_the_scan_is_refused_and_nothing_is_written(
    project: dict[str, Any], cli: Cli
) -> None:
    assert cli("scan", str(project["app"]), "--record")[0] == 1
    settings = project["app"] / "settings.py"
    settings.write_text('DEBUG = False\n\nGITHUB_TOKEN = os.environ["GITHUB_TOKEN"]\n')
    name = f"{project['prefix']}/github"
    rc, out, err = cli(
        "adopt", str(finding_id(project, "github")), "--store", "vault-kv", "--name", name
    )
    assert rc == 3, (out, err)
    assert len(err.strip().splitlines()) == 1
    assert "is no longer at settings.py:3: the file no longer holds it" in err
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault_current(project, name)
    con = sqlite3.connect(project["db"])
    try:
        assert con.execute("SELECT count(*) FROM secrets").fetchone() == (0,)
    finally:
        con.close()


def test_a_token_only_in_git_history_is_read_from_its_commit(
    project: dict[str, Any], cli: Cli, git_repo: Path
) -> None:
    from tests.integration._git_helpers import Git

    git = Git(git_repo)
    git.write("deploy/config.py", f'TOKEN = "{project["token"]}"\n')
    introduced = git.commit("add config")
    git.write("deploy/config.py", 'TOKEN = os.environ["TOKEN"]\n')
    git.commit("read it from the environment")
    assert cli("scan", str(git_repo), "--git", "--record")[0] == 1
    name = f"{project['prefix']}/from-history"
    rc, out, err = cli(
        "adopt", str(finding_id(project, "github")), "--store", "vault-kv", "--name", name,
        "--format", "json",
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["found_at"].startswith(f"deploy/config.py:1 @{introduced[:12]}")
    assert [r["source"] for r in doc["replace"]] == ["git"]
    assert vault_current(project, name) == {"value": project["token"]}
    assert project["token"] not in out + err


def test_a_process_environment_variable_is_read_again_and_refused_once_gone(
    project: dict[str, Any], cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_GITHUB_TOKEN", project["token"])
    assert cli("scan", "--env", "--record")[0] == 1
    fid = finding_id(project, "github")
    monkeypatch.delenv("DEPLOY_GITHUB_TOKEN")
    name = f"{project['prefix']}/env"
    rc, _out, err = cli("adopt", str(fid), "--store", "vault-kv", "--name", name)
    assert rc == 3 and "the variable DEPLOY_GITHUB_TOKEN is gone" in err, err
    monkeypatch.setenv("DEPLOY_GITHUB_TOKEN", project["token"])
    rc, out, err = cli("adopt", str(fid), "--store", "vault-kv", "--name", name)
    assert rc == 0, err
    assert "$DEPLOY_GITHUB_TOKEN" in out
    assert vault_current(project, name) == {"value": project["token"]}
