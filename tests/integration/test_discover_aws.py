"""`keyward discover aws-secretsmanager|aws-iam` against the moto server, on both databases."""

from __future__ import annotations

import json
import random
from typing import Any

import boto3
import pytest
from _inventory_db import *  # noqa: F403
from _inventory_db import Cli
from conftest import Moto, free_port

from keyward.inventory.discovery.aws import _max_age

pytestmark = pytest.mark.integration


def sm(region: str = "us-east-1") -> Any:
    return boto3.client("secretsmanager", region_name=region)


def iam() -> Any:
    return boto3.client("iam", region_name="us-east-1")


def test_secretsmanager_import_is_idempotent_and_follows_changes(aws: Moto, cli: Cli) -> None:
    client = sm()
    client.create_secret(
        Name="prod/db",
        SecretString='{"username": "app", "password": "pw-1"}',
        Tags=[{"Key": "Owner", "Value": "alice"}, {"Key": "team", "Value": "payments"}],
    )
    client.create_secret(Name="prod/api", SecretString="tok", Tags=[{"Key": "x", "Value": "y"}])
    sm("eu-west-1").create_secret(Name="eu/only", SecretString="v")

    first = cli.json("discover", "aws-secretsmanager", "--region", "us-east-1")
    assert (first["added"], first["updated"], first["unchanged"]) == (2, 0, 0)
    secrets = {s["name"]: s for s in cli.json("inventory", "list", "--store", "aws-secretsmanager")}
    assert set(secrets) == {"aws-sm/us-east-1/prod/db", "aws-sm/us-east-1/prod/api"}
    db = secrets["aws-sm/us-east-1/prod/db"]
    assert (db["owner"], db["team"]) == ("alice", "payments")
    assert db["reference"].startswith("arn:aws:secretsmanager:us-east-1:")
    assert db["last_rotated_at"] is not None and db["created_at"] is not None
    versions = cli.json("inventory", "show", "aws-sm/us-east-1/prod/db")["versions"]
    assert [v["stage"] for v in versions] == ["AWSCURRENT"]

    again = cli.json("discover", "aws-secretsmanager", "--region", "us-east-1")
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 2)

    client.tag_resource(SecretId="prod/db", Tags=[{"Key": "Owner", "Value": "bob"}])
    client.put_secret_value(SecretId="prod/db", SecretString='{"password": "pw-2"}')
    client.delete_secret(SecretId="prod/api", ForceDeleteWithoutRecovery=True)
    third = cli.json("discover", "aws-secretsmanager", "--region", "us-east-1")
    assert (third["added"], third["updated"], third["missing"]) == (0, 1, 1)
    shown = cli.json("inventory", "show", "aws-sm/us-east-1/prod/db")
    assert shown["secret"]["owner"] == "bob"
    assert sorted(v["stage"] for v in shown["versions"]) == ["AWSCURRENT", "AWSPREVIOUS"]
    gone = cli.json("inventory", "show", "aws-sm/us-east-1/prod/api")["secret"]
    assert gone["status"] == "missing"

    # another region is another scope: it neither duplicates nor marks us-east-1 missing
    eu = cli.json("discover", "aws-secretsmanager", "--region", "eu-west-1")
    assert (eu["added"], eu["missing"]) == (1, 0)


def test_secretsmanager_owner_tag_keys_are_configurable(aws: Moto, cli: Cli) -> None:
    sm().create_secret(Name="s", SecretString="v", Tags=[{"Key": "CostOwner", "Value": "finops"}])
    cli.json("discover", "aws-secretsmanager", "--owner-tag", "CostOwner")
    (secret,) = cli.json("inventory", "list")
    assert secret["owner"] == "finops"


def test_rotation_rules_become_a_max_age_policy() -> None:
    assert _max_age({"AutomaticallyAfterDays": 30}) == 30 * 86400
    assert _max_age({"ScheduleExpression": "rate(10 days)"}) == 10 * 86400
    assert _max_age({"ScheduleExpression": "rate(4 hours)"}) == 4 * 3600
    assert _max_age({"ScheduleExpression": "cron(0 16 1,15 * ? *)"}) is None


def _key_id(rng: random.Random) -> str:
    return "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


def test_iam_keys_are_imported_and_a_leaked_key_id_links_to_them(
    aws: Moto, cli: Cli, git_repo: Any
) -> None:
    client = iam()
    client.create_user(UserName="deploy", Tags=[{"Key": "owner", "Value": "ops"}])
    client.create_user(UserName="ci")
    k1 = client.create_access_key(UserName="deploy")["AccessKey"]
    k2 = client.create_access_key(UserName="ci")["AccessKey"]
    client.update_access_key(UserName="ci", AccessKeyId=k2["AccessKeyId"], Status="Inactive")

    result = cli.json("discover", "aws-iam")
    assert result["added"] == 2 and result["warnings"] == []
    keys = {
        s["reference"]: s for s in cli.json("inventory", "list", "--kind", "aws-iam-access-key")
    }
    assert keys[k1["AccessKeyId"]]["owner"] == "ops"
    assert keys[k1["AccessKeyId"]]["status"] == "active"
    assert keys[k2["AccessKeyId"]]["status"] == "inactive"
    assert keys[k1["AccessKeyId"]]["attributes"]["user"] == "deploy"
    assert cli.json("discover", "aws-iam")["unchanged"] == 2

    (git_repo / "config.py").write_text(
        f'aws_access_key_id = "{k1["AccessKeyId"]}"\n'
        f'aws_secret_access_key = "{k1["SecretAccessKey"]}"\n'
    )
    rc, _, err = cli("scan", str(git_repo), "--engine", "re", "--record", "--exit-zero")
    assert rc == 0, err
    (finding,) = cli.json("findings", "list")
    assert finding["secret"] == f"aws-iam/deploy/{k1['AccessKeyId']}"
    assert finding["owner"] == "ops"


def _limited_user(policy: dict[str, Any]) -> dict[str, str]:
    client = iam()
    client.create_user(UserName="limited")
    client.put_user_policy(UserName="limited", PolicyName="p", PolicyDocument=json.dumps(policy))
    key = client.create_access_key(UserName="limited")["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def _allow(*actions: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }


def test_denied_calls_give_partial_results_with_warnings(
    aws: Moto, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    sm().create_secret(Name="a", SecretString="v", Tags=[{"Key": "owner", "Value": "alice"}])
    sm().create_secret(Name="b", SecretString="v")
    creds = _limited_user(_allow("secretsmanager:ListSecrets", "iam:ListUsers"))
    aws.set_auth(True)
    for key, value in creds.items():
        monkeypatch.setenv(key, value)

    rc, out, err = cli("discover", "aws-secretsmanager", "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["added"] == 2
    assert any("denied ListSecretVersionIds" in w for w in doc["warnings"])
    assert "warning: Secrets Manager (us-east-1) denied" in err
    # IAM: users listed but every user's keys denied -> nothing to import: exit 3
    rc, out, err = cli("discover", "aws-iam", "--format", "json")
    assert rc == 3 and json.loads(out)["added"] == 0
    assert "denied ListAccessKeys" in err


def test_fully_denied_discovery_writes_nothing_and_exits_3(
    aws: Moto, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    sm().create_secret(Name="a", SecretString="v")
    creds = _limited_user(_allow("s3:ListBuckets"))
    aws.set_auth(True)
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    rc, _, err = cli("discover", "aws-secretsmanager")
    assert rc == 3
    assert "denied ListSecrets" in err
    monkeypatch.delenv("KEYWARD_ACTOR")
    assert cli.json("inventory", "list") == []


def test_unreachable_endpoint_is_one_sentence_and_exit_3(
    aws: Moto, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    rc, _, err = cli("discover", "aws-iam")
    assert rc == 3
    assert f"127.0.0.1:{port}" in err and err.count("\n") == 1


def test_a_failure_while_importing_leaves_the_inventory_unchanged(
    aws: Moto, cli: Cli, database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyward.inventory.discovery as discovery
    from keyward.inventory.discovery.aws import discover_secretsmanager

    for name in ("a", "b", "c"):
        sm().create_secret(Name=name, SecretString="v")
    scan = discover_secretsmanager(sm(), "us-east-1")
    assert len(scan.items) == 3
    real = discovery._upsert
    calls = []

    def flaky(session: Any, d: Any, source: str, *rest: Any) -> Any:
        calls.append(d.name)
        if len(calls) == 3:
            raise RuntimeError("database went away")
        return real(session, d, source, *rest)

    monkeypatch.setattr(discovery, "_upsert", flaky)
    with pytest.raises(RuntimeError):
        discovery.import_discovered(database, scan)
    assert cli.json("inventory", "list") == []
    monkeypatch.setattr(discovery, "_upsert", real)
    assert discovery.import_discovered(database, scan).added == 3
