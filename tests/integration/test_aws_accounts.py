"""Several AWS accounts on the moto server: keyward assumes each account's role and works in
that account's own state; an account whose role cannot be assumed is a warning and the others
go on (tests/integration/_accounts_world.py builds the accounts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration._accounts_world import (
    BLOCKED,
    HOME,
    PROD,
    STAGING,
    AccountsWorld,
    _zip,
    build_accounts_world,
    role_arn,
)
from tests.integration._inventory_db import Cli, sqlite_template  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def world(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AccountsWorld:
    return build_accounts_world(aws, tmp_path, monkeypatch)


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str],
    sqlite_template: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    import shutil

    db = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, db)
    monkeypatch.setenv("KEYWARD_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("KEYWARD_ACTOR", "tester")
    return Cli(capsys)


def _scan(cli: Cli, tmp_path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    out = tmp_path / "scan.json"
    rc, _out, err = cli(
        "scan", "--engine", "re", "--aws-lambda", "--format", "json", "-o", str(out), *args
    )
    findings = json.loads(out.read_text())["findings"] if out.exists() else []
    return rc, findings, err


# ---------------------------------------------------------------- providers
def test_clients_of_an_account_act_in_it_and_its_credentials_are_renewed_before_expiry(
    aws: Any,
) -> None:
    import boto3

    from keyward.providers import SCAN, Account, AwsClients

    now = [datetime.now(UTC)]
    calls: list[dict[str, Any]] = []
    home = boto3.session.Session()
    home.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: calls.append(dict(params))
    )
    clients = AwsClients(preset=SCAN, session=home, clock=lambda: now[0])
    prod = Account("prod", PROD, role_arn(PROD), external_id="ext-7", session_name="kw-test")
    clients.client("iam", account=prod).create_user(UserName="only-in-prod")
    assert clients.client("sts", account=prod).get_caller_identity()["Account"] == PROD
    assert [u["UserName"] for u in clients.client("iam").list_users()["Users"]] == []
    assert calls == [
        {"RoleArn": role_arn(PROD), "RoleSessionName": "kw-test", "ExternalId": "ext-7"}
    ]
    first = clients.session(prod).get_credentials().get_frozen_credentials().access_key
    now[0] += timedelta(minutes=55)  # five minutes left of the hour: assumed again
    users = clients.client("iam", account=prod).list_users()["Users"]
    assert [u["UserName"] for u in users] == ["only-in-prod"]
    assert len(calls) == 2
    assert clients.session(prod).get_credentials().get_frozen_credentials().access_key != first


def test_a_resource_of_an_account_is_reached_only_through_that_accounts_entry(aws: Any) -> None:
    from keyward.core.config import Config
    from keyward.core.errors import ConfigError
    from keyward.providers import Providers

    cfg = Config({"aws": {"accounts": {"prod": {"role_arn": role_arn(PROD)}}}})
    providers = Providers.from_config(cfg)
    prod = providers.aws.resolve(PROD)
    assert prod.name == "prod" and providers.aws.resolve(HOME).role_arn is None
    with pytest.raises(ConfigError) as info:
        providers.aws.resolve(BLOCKED)
    assert (
        f"AWS account {BLOCKED} is not in [aws.accounts], and keyward's own account is {HOME}"
        in (info.value.diagnostics())
    )
    in_prod = providers.for_account(prod)  # a view: clients default to prod's role
    in_prod.aws.client("iam").create_user(UserName="made-in-prod")
    assert in_prod.aws.client("sts").get_caller_identity()["Account"] == PROD
    assert providers.aws.client("iam").list_users()["Users"] == []  # the original: home
    assert in_prod.aws.resolve(None) is prod


def test_a_role_that_cannot_be_assumed_is_denied_naming_the_role_and_the_account(
    world: AccountsWorld,
) -> None:
    from keyward.core.errors import ExitCode, ProviderDenied
    from keyward.providers import Account, AwsClients

    blocked = Account("blocked", BLOCKED, role_arn(BLOCKED))
    with pytest.raises(ProviderDenied) as info:
        AwsClients().client("lambda", account=blocked)
    text = info.value.diagnostics()
    assert f"AWS denied sts:AssumeRole on role {role_arn(BLOCKED)} of account blocked" in text
    assert "trust policy" in text and info.value.exit_code is ExitCode.BACKEND


# ---------------------------------------------------------------- scan --aws-lambda
def test_a_lambda_scan_of_every_account_skips_the_one_whose_role_cannot_be_assumed(
    world: AccountsWorld, cli: Cli, tmp_path: Path
) -> None:
    rc, findings, err = _scan(cli, tmp_path, "--all-accounts")
    assert rc == 1, err
    tokens = [f for f in findings if f["rule"] == "github-pat-classic"]
    assert {f["account"] for f in tokens} == {HOME, PROD, STAGING}
    for f in tokens:  # each function's location names its own account
        assert f["resource"].split(":")[4] == f["account"]
    assert BLOCKED not in {f.get("account") for f in findings}
    (warning,) = [line for line in err.splitlines() if BLOCKED in line]
    assert "account blocked (333333333333) skipped" in warning
    assert f"cannot assume its role {role_arn(BLOCKED)}: access denied" in warning
    for token in world.tokens.values():
        assert token not in err and token not in json.dumps(findings)


def test_account_chooses_accounts_by_name_or_id(
    world: AccountsWorld, cli: Cli, tmp_path: Path
) -> None:
    rc, findings, err = _scan(cli, tmp_path, "--account", "prod", "--account", STAGING)
    assert rc == 1, err
    assert {f["account"] for f in findings if f["rule"] == "github-pat-classic"} == {
        PROD,
        STAGING,
    }
    rc, findings, _err = _scan(cli, tmp_path)  # no option: keyward's own account
    assert {f["account"] for f in findings if f["rule"] == "github-pat-classic"} == {HOME}


def test_a_scan_of_only_an_account_that_cannot_be_reached_exits_3(
    world: AccountsWorld, cli: Cli, tmp_path: Path
) -> None:
    rc, _findings, err = _scan(cli, tmp_path, "--account", "blocked")
    assert rc == 3, err
    assert "No account could be scanned for Lambda functions (account blocked" in err
    assert "sts:AssumeRole for keyward's identity" in err  # the hint says what to check
    rc, _findings, err = _scan(cli, tmp_path, "--account", "nope")
    assert rc == 2 and "No AWS account 'nope' in [aws.accounts]" in err
    assert "configured: main, prod, staging, blocked" in err


# ---------------------------------------------------------------- discovery and the inventory
def test_discovery_of_every_account_records_each_secret_with_its_account(
    world: AccountsWorld, cli: Cli
) -> None:
    # keyward's own IAM user (whose key it runs with) is discovered too: 4 keys
    for store, added in (("aws-secretsmanager", 3), ("aws-ssm", 3), ("aws-iam", 4)):
        rc, out, err = cli("discover", store, "--all-accounts", "--format", "json")
        assert rc == 0, err
        (warning,) = [line for line in err.splitlines() if "warning" in line]
        assert (
            f"account blocked (333333333333) skipped: cannot assume its role {role_arn(BLOCKED)}"
            in warning
        )
        results = json.loads(out)
        assert {r["store"] for r in results} == {store}
        assert sum(r["added"] for r in results) == added, out
    names = {HOME: "main", PROD: "prod", STAGING: "staging"}
    by_account: dict[str | None, set[str]] = {}
    for sec in cli.json("inventory", "list"):
        if "/keyward/" in sec["name"]:  # keyward's own key
            assert sec["account"] == HOME
            continue
        by_account.setdefault(sec["account"], set()).add(sec["name"])
        assert sec["owner"] == f"team-{names[sec['account']]}", sec
    assert set(by_account) == {HOME, PROD, STAGING}
    assert by_account[PROD] == {
        "aws-sm/prod/us-east-1/app/db",
        "aws-ssm/prod/us-east-1/app/signing-key",
        f"aws-iam/prod/app/{world.keys[PROD]}",
    }
    assert by_account[HOME] == {  # keyward's own account keeps the names it always had
        "aws-sm/us-east-1/app/db",
        "aws-ssm/us-east-1/app/signing-key",
        f"aws-iam/app/{world.keys[HOME]}",
    }
    listed = {s["name"] for s in cli.json("inventory", "list", "--account", "prod")}
    assert listed == by_account[PROD]
    listed = {s["name"] for s in cli.json("inventory", "list", "--account", STAGING)}
    assert listed == by_account[STAGING]
    rc, _out, err = cli("inventory", "list", "--account", "nowhere")
    assert rc == 2 and "neither an AWS account id nor an account of [aws.accounts]" in err

    # a secret gone from one account is missing there only: the others are not touched
    world.client("secretsmanager", PROD).delete_secret(
        SecretId="app/db", ForceDeleteWithoutRecovery=True
    )
    rc, out, err = cli("discover", "aws-secretsmanager", "--account", "prod", "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["missing"] == 1
    status = {s["name"]: s["status"] for s in cli.json("inventory", "list")}
    assert status["aws-sm/prod/us-east-1/app/db"] == "missing"
    assert (
        status["aws-sm/us-east-1/app/db"] == status["aws-sm/staging/us-east-1/app/db"] == "active"
    )


def test_recorded_lambda_findings_carry_their_account(
    world: AccountsWorld, cli: Cli, tmp_path: Path
) -> None:
    rc, _out, err = cli(
        "scan", "--engine", "re", "--aws-lambda", "--all-accounts", "--record", "-o",
        str(tmp_path / "report.txt"),
    )  # fmt: skip
    assert rc == 1, err
    found = cli.json("findings", "list", "--account", "staging", "--rule", "github-pat-classic")
    (finding,) = found
    assert finding["account"] == STAGING and ":222222222222:function:" in finding["resource"]
    everyone = cli.json("findings", "list", "--rule", "github-pat-classic")
    assert {f["account"] for f in everyone} == {HOME, PROD, STAGING}


# ---------------------------------------------------------------- rotation in another account
ROTATION_CONFIG = """
[rotation]
grace_period = "0s"
lease_ttl = "60s"
[rotation.rotators.aws-iam-access-key]
test_delay = 0
test_attempts = 2
[rotation.dependents.aws-lambda]
wait_delay = 1
"""


def _function_with(world: AccountsWorld, account: str, key: dict[str, str]) -> str:
    """A Lambda function ``svc-fn`` of ``account`` holding ``key``; its ARN."""
    iam, lam = world.client("iam", account), world.client("lambda", account)
    return str(
        lam.create_function(
            FunctionName="svc-fn", Runtime="python3.12", Handler="handler.handler",
            Role=iam.get_role(RoleName="fn-role")["Role"]["Arn"], Code={"ZipFile": _zip()},
            Environment={"Variables": {"AWS_ACCESS_KEY_ID": key["access_key_id"],
                                       "AWS_SECRET_ACCESS_KEY": key["secret_access_key"]}},
        )["FunctionArn"]
    )  # fmt: skip


def _iam_secret_in(
    world: AccountsWorld, account: str, cli: Cli, *, also_in: str | None = None
) -> dict[str, str]:
    """User ``svc`` of ``account`` with a key kept in that account's Secrets Manager and held
    by a Lambda function there (and in account ``also_in``), inventoried as ``svc/key`` with
    its dependents; the key."""
    iam, sm = world.client("iam", account), world.client("secretsmanager", account)
    iam.create_user(UserName="svc")
    k = iam.create_access_key(UserName="svc")["AccessKey"]
    key = {"access_key_id": k["AccessKeyId"], "secret_access_key": k["SecretAccessKey"]}
    arn = sm.create_secret(Name="svc/key", SecretString=json.dumps(key))["ARN"]
    functions = [_function_with(world, a, key) for a in (account, also_in) if a]
    world.config.write_text(world.config.read_text() + ROTATION_CONFIG)
    rc, _out, err = cli("inventory", "add", "svc/key", "--kind", "aws-iam-access-key",
                        "--store", "aws-secretsmanager", "--reference", arn)  # fmt: skip
    assert rc == 0, err
    for fn in functions:  # each dependent's account comes from its ARN
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            rc, _out, err = cli("dependents", "add", "svc/key", "--target", fn, "--variable", var)
            assert rc == 0, err
    return key


def _held(world: AccountsWorld, account: str) -> dict[str, str]:
    lam = world.client("lambda", account)
    env = lam.get_function_configuration(FunctionName="svc-fn")["Environment"]["Variables"]
    return {"access_key_id": env["AWS_ACCESS_KEY_ID"],
            "secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}  # fmt: skip


def _state(
    world: AccountsWorld, account: str
) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, str]]:
    """(the secret's current value, the user's keys and their status, the function's key)."""
    sm, iam = world.client("secretsmanager", account), world.client("iam", account)
    got = sm.get_secret_value(SecretId="svc/key", VersionStage="AWSCURRENT")
    listed = iam.list_access_keys(UserName="svc")["AccessKeyMetadata"]
    keys = [(m["AccessKeyId"], m["Status"]) for m in listed]
    return json.loads(got["SecretString"]), keys, _held(world, account)


def test_an_iam_key_of_a_second_account_is_rotated_there_with_its_lambda_dependent(
    world: AccountsWorld, cli: Cli
) -> None:
    import boto3

    old = _iam_secret_in(world, PROD, cli, also_in=STAGING)  # staging's function uses it too
    (listed,) = cli.json("inventory", "list", "--account", "prod")
    assert listed["name"] == "svc/key" and listed["account"] == PROD
    rc, plan, err = cli("rotate", "svc/key", "--dry-run")
    assert rc == 0, err
    assert "account prod (111111111111)" in plan
    rc, out, err = cli("rotate", "svc/key")
    assert rc == 0, err
    cur, keys, held = _state(world, PROD)
    assert cur["access_key_id"] != old["access_key_id"]
    assert keys == [(cur["access_key_id"], "Active")]  # the old key retired, in prod
    assert held == cur
    assert _held(world, STAGING) == cur  # the dependent in another account, with its role
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=world.endpoint,
                       aws_access_key_id=cur["access_key_id"],
                       aws_secret_access_key=cur["secret_access_key"])  # fmt: skip
    assert sts.get_caller_identity()["Account"] == PROD  # the new key is prod's and works
    home_users = [u["UserName"] for u in world.client("iam", HOME).list_users()["Users"]]
    assert "svc" not in home_users  # nothing was made in keyward's own account
    assert old["secret_access_key"] not in out + err and cur["secret_access_key"] not in out + err


def test_a_rotation_in_a_second_account_killed_mid_way_rolls_back_there(
    world: AccountsWorld, cli: Cli, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    old = _iam_secret_in(world, PROD, cli)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_crash_driver.py")), "rotate", "svc/key"],
        env={**os.environ, "KEYWARD_TEST_CRASH_AT": "dependents:inside:1", "PYTHONPATH": str(root)},
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr)
    _cur, keys, held = _state(world, PROD)
    assert len(keys) == 2 and held["access_key_id"] != old["access_key_id"]  # half way
    rc, _out, err = cli("rotations", "rollback", "1")
    assert rc == 0, err
    cur, keys, held = _state(world, PROD)
    assert cur == old and held == old
    assert keys == [(old["access_key_id"], "Active")]  # the new key deleted, in prod


def test_the_daemon_rotates_due_secrets_of_every_account_and_one_it_cannot_reach_fails_alone(
    world: AccountsWorld, cli: Cli
) -> None:
    import logging

    from keyward.cli.compose import compose_rotation
    from keyward.core.config import load_config
    from keyward.inventory.db import open_database
    from keyward.rotation.scheduler import Metrics, Worker

    world.config.write_text(world.config.read_text() + ROTATION_CONFIG)
    long_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    for account in (HOME, PROD, BLOCKED, STAGING):  # the blocked one in the middle
        rc, _out, err = cli(
            "inventory", "add", f"db-{account}", "--kind", "random", "--store",
            "aws-secretsmanager", "--reference", world.secrets[account], "--max-age", "1d",
            "--created", long_ago,
        )  # fmt: skip
        assert rc == 0, err
    import os

    class Errors(logging.Handler):
        seen: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                self.seen.append(record.getMessage())

    errors = Errors()
    logging.getLogger("keyward.rotation.scheduler").addHandler(errors)

    parts = compose_rotation(  # as keyward daemon composes it
        load_config(world.config),
        lambda: open_database(url=os.environ["KEYWARD_DATABASE_URL"]),
        holder="daemon-1",
    )
    try:
        w = Worker(parts.inventory, lambda stop: parts.engine(stop=stop), "daemon-1",
                   lease_ttl=parts.settings.lease_ttl, batch=10, metrics=Metrics())  # fmt: skip
        outcomes = w.run_once()
    finally:
        parts.close()
        logging.getLogger("keyward.rotation.scheduler").removeHandler(errors)
    assert sorted(outcomes) == ["failed", "finished", "finished", "finished"]
    (error,) = errors.seen
    assert f"rotation of db-{BLOCKED}: AWS denied sts:AssumeRole on role {role_arn(BLOCKED)}" in (
        error
    )
    for account in (HOME, PROD, STAGING):  # each rotated in its own account
        sm = world.client("secretsmanager", account)
        got = sm.get_secret_value(SecretId="app/db", VersionStage="AWSCURRENT")
        assert json.loads(got["SecretString"]) != {"password": f"pw-{account}"}


def test_lambda_dependents_of_every_account_are_matched_in_their_own_account(
    world: AccountsWorld, cli: Cli
) -> None:
    for account in (HOME, PROD):
        world.client("lambda", account).update_function_configuration(
            FunctionName=f"orders-{'main' if account == HOME else 'prod'}",
            Environment={"Variables": {"DB_SECRET": "app/db", "DB_PASSWORD": f"pw-{account}"}},
        )
    cli("discover", "aws-secretsmanager", "--all-accounts", "--fingerprint-values")
    rc, out, err = cli("discover", "aws-lambda", "--all-accounts", "--format", "json")
    assert rc == 0, err
    assert f"account blocked ({BLOCKED}) skipped" in err
    found = json.loads(out)
    assert found["functions"] == 3  # home, prod, staging
    got = {(c["secret"], c["function"], c["variable"], c["mode"], c["account"])
           for c in found["added"]}  # fmt: skip
    assert got == {
        ("aws-sm/us-east-1/app/db", "orders-main", "DB_SECRET", "reference", HOME),
        ("aws-sm/us-east-1/app/db", "orders-main", "DB_PASSWORD", "value", HOME),
        ("aws-sm/prod/us-east-1/app/db", "orders-prod", "DB_SECRET", "reference", PROD),
        ("aws-sm/prod/us-east-1/app/db", "orders-prod", "DB_PASSWORD", "value", PROD),
    }
    # gone from prod: missing there only, after a run over that account alone
    world.client("lambda", PROD).update_function_configuration(
        FunctionName="orders-prod", Environment={"Variables": {"STAGE": "prod"}}
    )
    rc, out, err = cli("discover", "aws-lambda", "--account", "prod", "--format", "json")
    assert rc == 0, err
    assert {(c["function"], c["variable"]) for c in json.loads(out)["missing"]} == {
        ("orders-prod", "DB_SECRET"), ("orders-prod", "DB_PASSWORD"),
    }  # fmt: skip
    status = {(d["secret"], d["variable"]): d["status"] for d in cli.json("dependents", "list")}
    assert status[("aws-sm/us-east-1/app/db", "DB_SECRET")] == "active"
    assert status[("aws-sm/prod/us-east-1/app/db", "DB_SECRET")] == "missing"
