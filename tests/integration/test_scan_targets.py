"""``keyward scan --targets FILE --shard K/N --record``: many targets, several processes, one
PostgreSQL inventory; remote repositories cloned from ``file://`` URLs, Lambda on moto."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from _git_helpers import Git, git_env, mint_github_token
from conftest import free_port

pytestmark = pytest.mark.integration

KEY = "ab" * 32  # KEYWARD_FINGERPRINT_KEY shared by every process


def token(seed: int) -> str:
    return mint_github_token(1500 + seed)


@pytest.fixture
def new_database(postgres_url: str) -> Iterator[Any]:
    """Make fresh, never migrated PostgreSQL databases (dropped afterwards)."""
    made: list[str] = []
    base = postgres_url.rsplit("/", 1)[0]

    def make() -> str:
        name = f"keyward_targets_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"{base}/{name}"

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_repo(path: Path) -> Git:
    path.mkdir(parents=True)
    git = Git(path)
    git("init", "-q", "-b", "main")
    return git


def world(root: Path) -> tuple[Path, dict[str, str]]:
    """Five targets of three kinds; returns the targets file and target name -> its token."""
    planted: dict[str, str] = {}
    for i, name in enumerate(("svc-a", "svc-b")):
        (root / name).mkdir()
        (root / name / "settings.py").write_text(f"GITHUB = '{token(i)}'\n")
        planted[f"files:{root / name}"] = token(i)
    api = new_repo(root / "api")  # a work tree: its history (the token was removed since)
    api.write("deploy.env", f"GH={token(2)}\n")
    api.commit("deploy")
    api("rm", "-q", "deploy.env")
    api.commit("no secrets in the repo")
    planted[f"git:{root / 'api'}"] = token(2)
    for i, name in ((3, "lib"), (4, "site")):  # bare repositories, as a mirror host keeps them
        work = new_repo(root / f"{name}-work")
        work.write("conf.yaml", f"token: {token(i)}\n")
        work.commit("conf")
        subprocess.run(["git", "clone", "-q", "--bare", str(work.root), str(root / f"{name}.git")],
                       check=True, env=git_env())  # fmt: skip
    planted[f"git:{root / 'lib.git'}"] = token(3)
    planted[f"git:file://{root / 'site.git'}"] = token(4)
    targets = root / "targets.txt"
    targets.write_text(
        "# the organisation, nightly\n"
        "svc-a\n"
        "git:api            # history of a work tree\n"
        "lib.git            # a bare repository: history\n"
        f"file://{root / 'site.git'}\n"
        "svc-b\n"
        "svc-a              # listed twice, scanned once\n"
    )
    return targets, planted


def keyward(db_url: str, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**git_env(), "KEYWARD_DATABASE_URL": db_url, "KEYWARD_FINGERPRINT_KEY": KEY,
           "KEYWARD_ACTOR": "tester"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "keyward", "scan", "--targets", "targets.txt", "--record",
         "--jobs", "1", "--no-progress", "--engine", "re", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=180)
    return proc.returncode, err


def findings(db_url: str) -> list[tuple[str, ...]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT target, rule_id, fingerprint, source, coalesce(path, ''), state "
            "FROM findings ORDER BY 1, 2, 3, 4, 5"
        ).fetchall()
    return [tuple(r) for r in rows]


def test_shards_on_one_postgres_inventory_record_exactly_the_findings_of_one_unsharded_run(
    tmp_path: Path, new_database: Any
) -> None:
    _, planted = world(tmp_path)
    whole, sharded = new_database(), new_database()

    rc, err = finish(keyward(whole, tmp_path, "--exit-zero"))
    assert rc == 0, err
    assert "shard 0/1: 5 of 5 targets" in err
    expected = findings(whole)
    assert {row[0] for row in expected} == set(planted)  # each target under its own name
    assert all(row[5] == "open" for row in expected)

    # three processes at once on a database none of them has migrated yet
    procs = [keyward(sharded, tmp_path, "--shard", f"{k}/3", "--exit-zero") for k in range(3)]
    outcomes = [finish(p) for p in procs]
    assert [rc for rc, _ in outcomes] == [0, 0, 0], outcomes
    assert [err.count(": 1 finding (") for _, err in outcomes] == [2, 2, 1]
    got = findings(sharded)
    assert got == expected  # same rows, none twice, none resolved

    # a shard's run resolves nothing of the targets other shards scanned
    rc, err = finish(keyward(sharded, tmp_path, "--shard", "1/3", "--exit-zero"))
    assert rc == 0, err
    assert findings(sharded) == expected

    # svc-a (shard 0) loses its secret: its run resolves that one finding, nothing else
    (tmp_path / "svc-a" / "settings.py").write_text("GITHUB = None\n")
    rc, err = finish(keyward(sharded, tmp_path, "--shard", "0/3"))
    assert rc == 1, err  # site.git (shard 0 too) still has its finding
    after = {row[0]: row[5] for row in findings(sharded)}
    assert after == {name: ("resolved" if name.endswith("/svc-a") else "open") for name in planted}


def test_a_target_that_cannot_be_cloned_keeps_its_findings_and_the_others_go_on(
    tmp_path: Path, new_database: Any
) -> None:
    _, planted = world(tmp_path)
    db = new_database()
    site = f"git:file://{tmp_path / 'site.git'}"
    rc, err = finish(keyward(db, tmp_path, "--exit-zero"))
    assert rc == 0, err

    secret = "hunter2-in-a-clone-url"  # keyward: allow
    port = free_port()  # nothing listens there
    (tmp_path / "targets.txt").write_text(
        f"file://{tmp_path / 'site.git'}\nsvc-b\nhttp://ci:{secret}@127.0.0.1:{port}/org/x.git\n"
    )
    shutil.move(tmp_path / "site.git", tmp_path / "site-moved.git")
    (tmp_path / "svc-b" / "settings.py").write_text("nothing = 1\n")
    rc, err = finish(keyward(db, tmp_path, "--exit-zero"))

    assert rc == 3  # a target could not be scanned, whatever the findings
    assert f"{site} not scanned: Cannot clone {site}" in err
    assert f"git:http://127.0.0.1:{port}/org/x.git not scanned" in err
    assert "2 of 3 targets not scanned" in err
    states = {row[0]: row[5] for row in findings(db)}
    assert states[site] == "open"  # not resolved by a scan that never happened
    assert states[f"files:{tmp_path / 'svc-b'}"] == "resolved"  # the others went on
    with psycopg.connect(db) as conn:
        stored = json.dumps(conn.execute("SELECT * FROM audit_events").fetchall(), default=str)
        stored += json.dumps(conn.execute("SELECT * FROM findings").fetchall(), default=str)
    assert secret not in err and secret not in stored
    assert not any(planted[name] in err + stored for name in planted)


def test_shards_take_this_pods_share_from_job_completion_index(
    tmp_path: Path, new_database: Any
) -> None:
    world(tmp_path)
    db = new_database()
    rc, err = finish(keyward(db, tmp_path, "--shards", "3"))  # outside an Indexed Job
    assert rc == 2 and "--shards needs JOB_COMPLETION_INDEX" in err, err
    os.environ["JOB_COMPLETION_INDEX"] = "2"
    try:
        by_index = keyward(db, tmp_path, "--shards", "3", "--exit-zero", "--format", "json")
        out_index, err_index = by_index.communicate(timeout=180)
    finally:
        del os.environ["JOB_COMPLETION_INDEX"]
    assert by_index.returncode == 0, err_index
    assert "shard 2/3: 1 of 5 targets" in err_index
    paths = [f["path"] for f in json.loads(out_index)["findings"]]
    assert paths == [f"{tmp_path / 'lib.git'}/conf.yaml"]  # the third target: index 2


# ------------------------------------------------------------------------- Lambda
def lambda_with_token(endpoint: str, value: str) -> str:
    kw: dict[str, Any] = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                          "endpoint_url": endpoint, "region_name": "us-east-1"}  # fmt: skip
    role = boto3.client("iam", **kw).create_role(
        RoleName="targets-test", AssumeRolePolicyDocument=json.dumps({"Statement": []})
    )["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(e, c):\n    return 1\n")
    arn: str = boto3.client("lambda", **kw).create_function(
        FunctionName="billing", Runtime="python3.12", Role=role, Handler="index.handler",
        Code={"ZipFile": buf.getvalue()}, Environment={"Variables": {"GITHUB_TOKEN": value}},
    )["FunctionArn"]  # fmt: skip
    return arn


def test_without_accounts_configured_only_the_credentials_own_account_is_scanned(
    tmp_path: Path, aws: Any, new_database: Any
) -> None:
    arn = lambda_with_token(aws.endpoint, token(9))
    db = new_database()
    (tmp_path / "targets.txt").write_text(
        "aws-lambda:123456789012/us-east-1\naws-lambda:210987654321/us-east-1\n"
    )
    rc, err = finish(keyward(db, tmp_path, "--exit-zero"))

    assert rc == 2, err
    assert (
        "aws-lambda:210987654321/us-east-1 not scanned: AWS account 210987654321 is not in "
        "[aws.accounts], and keyward's own account is 123456789012"
    ) in err
    # the token, and the environment's missing customer managed key
    assert {r[0] for r in findings(db)} == {"aws-lambda:123456789012/us-east-1"}
    with psycopg.connect(db) as conn:
        resource = conn.execute(
            "SELECT resource FROM findings WHERE rule_id = 'github-pat-classic'"
        ).fetchall()
    assert resource == [(arn,)]


def test_lambda_targets_reach_configured_accounts_through_their_roles(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration._accounts_world import BLOCKED, HOME, PROD, STAGING
    from tests.integration._accounts_world import build_accounts_world as accounts_world
    from tests.integration._inventory_db import Cli

    world = accounts_world(aws, tmp_path, monkeypatch)  # moto checks credentials from now on
    monkeypatch.setenv("KEYWARD_DATABASE_URL", f"sqlite:///{tmp_path / 'inventory.db'}")
    monkeypatch.chdir(tmp_path)
    # prod's function also names its account's secret: recorded as a dependent there
    Cli(capsys)("discover", "aws-secretsmanager", "--account", "prod")
    world.client("lambda", PROD).update_function_configuration(
        FunctionName="orders-prod",
        Environment={"Variables": {"GITHUB_TOKEN": world.tokens[PROD], "DB_SECRET": "app/db"}},
    )
    (tmp_path / "targets.txt").write_text(
        f"aws-lambda:{HOME}/us-east-1\n"
        "aws-lambda:prod/us-east-1      # by name\n"
        f"aws-lambda:{STAGING}/us-east-1  # by id (its role wants an external id)\n"
        "aws-lambda:blocked/us-east-1   # keyward may not assume its role\n"
        "aws-lambda:444444444444/us-east-1\n"
    )
    rc, out, err = Cli(capsys)(
        "scan", "--targets", "targets.txt", "--record", "--engine", "re", "-f", "json"
    )

    assert rc == 3, err  # a backend refused (the blocked role), whatever else failed
    assert "aws-lambda:blocked/us-east-1 not scanned: No account could be scanned" in err
    assert "aws-lambda:444444444444/us-east-1 not scanned: AWS account 444444444444 is not" in err
    tokens = [f for f in json.loads(out)["findings"] if f["rule"] == "github-pat-classic"]
    assert sorted(f["account"] for f in tokens) == sorted([HOME, PROD, STAGING])
    import sqlite3

    with sqlite3.connect(tmp_path / "inventory.db") as conn:
        recorded = conn.execute(
            "SELECT target, resource FROM findings WHERE rule_id = 'github-pat-classic'"
        ).fetchall()
    assert sorted(recorded) == sorted(
        (f"aws-lambda:{name}/us-east-1", f"arn:aws:lambda:us-east-1:{acct}:function:orders-{n}")
        for name, acct, n in ((HOME, HOME, "main"), ("prod", PROD, "prod"),
                              (STAGING, STAGING, "staging"))
    )  # fmt: skip
    assert BLOCKED not in json.dumps(recorded)
    for value in world.tokens.values():
        assert value not in out + err
    (line,) = [x for x in err.splitlines() if x.startswith("keyward: aws-lambda:prod/")]
    assert "; dependents: 1 added, 0 kept, 0 missing) in" in line, err
    with sqlite3.connect(tmp_path / "inventory.db") as conn:
        deps = conn.execute("SELECT target, variable, account, origin FROM dependents").fetchall()
    assert deps == [
        (f"arn:aws:lambda:us-east-1:{PROD}:function:orders-prod", "DB_SECRET", PROD, "discovered")
    ]
