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
