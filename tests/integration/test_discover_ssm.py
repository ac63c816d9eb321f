"""`keyward discover aws-ssm` against the moto server, on both databases."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from _inventory_db import *  # noqa: F403
from _inventory_db import Cli
from conftest import Moto

from keyward.rotation.protocols import SecretValue, new_token
from keyward.rotation.stores.aws_ssm import ParameterStore

pytestmark = pytest.mark.integration


def ssm(region: str = "us-east-1") -> Any:
    return boto3.client("ssm", region_name=region)


def test_secure_parameters_are_imported_with_owner_age_and_versions(aws: Moto, cli: Cli) -> None:
    c = ssm()
    c.put_parameter(
        Name="/prod/db/password",
        Value="pw-1",
        Type="SecureString",
        Tags=[{"Key": "Owner", "Value": "alice"}, {"Key": "team", "Value": "pay"}],
    )
    c.put_parameter(Name="/prod/db/password", Value="pw-2", Type="SecureString", Overwrite=True)
    c.put_parameter(Name="/prod/api/token", Value="tok", Type="SecureString")
    c.put_parameter(Name="/prod/api/url", Value="https://example.com", Type="String")
    c.put_parameter(Name="/dev/other", Value="x", Type="SecureString")
    ssm("eu-west-1").put_parameter(Name="/prod/eu", Value="v", Type="SecureString")
    # a rotation in flight: its staging parameter is keyward's, not a secret
    ParameterStore(lambda _r: c).put_pending(
        "/prod/api/token", SecretValue.single("n"), new_token()
    )

    first = cli.json("discover", "aws-ssm", "--region", "us-east-1", "--path", "/prod")
    assert (first["added"], first["updated"], first["warnings"]) == (2, 0, [])
    secrets = {s["name"]: s for s in cli.json("inventory", "list", "--store", "aws-ssm")}
    assert set(secrets) == {
        "aws-ssm/us-east-1/prod/db/password",
        "aws-ssm/us-east-1/prod/api/token",
    }
    db = secrets["aws-ssm/us-east-1/prod/db/password"]
    assert (db["owner"], db["team"]) == ("alice", "pay")
    assert db["reference"].startswith("arn:aws:ssm:us-east-1:") and db["reference"].endswith(
        ":parameter/prod/db/password"
    )
    shown = cli.json("inventory", "show", "aws-ssm/us-east-1/prod/db/password")
    assert [(v["identifier"], v["stage"]) for v in shown["versions"]] == [
        ("1", "previous"), ("2", "current"),
    ]  # fmt: skip
    assert shown["secret"]["last_rotated_at"] >= shown["secret"]["created_at"]

    again = cli.json("discover", "aws-ssm", "--region", "us-east-1", "--path", "/prod")
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 2)

    # another path does not mark these missing; a deleted parameter under the path is
    other = cli.json("discover", "aws-ssm", "--region", "us-east-1", "--path", "/dev")
    assert (other["added"], other["missing"]) == (1, 0)
    c.delete_parameter(Name="/prod/db/password")
    third = cli.json("discover", "aws-ssm", "--region", "us-east-1", "--path", "/prod")
    assert third["missing"] == 1
    assert cli.json("inventory", "show", "aws-ssm/us-east-1/dev/other")["secret"]["status"] == (
        "active"
    )


def test_fingerprint_values_link_the_current_value_without_storing_it(aws: Moto, cli: Cli) -> None:
    ssm().put_parameter(Name="/app/key", Value='{"password": "Sup3r-Secret-Value-77"}',
                        Type="SecureString")  # fmt: skip
    cli.json("discover", "aws-ssm", "--fingerprint-values")
    shown = cli.json("inventory", "show", "aws-ssm/us-east-1/app/key")
    (current,) = shown["versions"]  # the fingerprints are the current version's fields
    assert current["identifier"] == "1" and current["fingerprint"]
    assert set(current["fields"]) == {"password"}
    assert "Sup3r-Secret-Value-77" not in str(shown)


def test_a_denied_listing_is_a_warning_and_exit_3(
    aws: Moto, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    aws.set_auth(True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    rc, _out, err = cli("discover", "aws-ssm", "--region", "us-east-1")
    assert rc == 3
    assert "denied DescribeParameters" in err
