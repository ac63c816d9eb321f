"""The shipped policies match the code: nothing missing, nothing the code never uses.

AWS: keyward runs every feature that calls AWS end to end on the moto server — the Lambda
scan (every region, code packages; another account through its role), each discovery, a
rotation of an IAM key in Secrets Manager with Lambda dependents (an alias, and retirement of
the old key) after taking over AWS's own rotation, a rotation that is rolled back, rotations
of a random value in SSM Parameter Store with a reference-mode dependent — as an IAM user
holding only the actions of ``deploy/policies/iam-rotation-policy.json`` (moto enforces
them), while a botocore event hook records every action it performs. The recorded set must
equal the policy's.

Vault: discovery and rotations (finished, and rolled back) with a token that holds only
``deploy/policies/vault-keyward.hcl`` on the OpenBao dev server.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest

from keyward.rotation import engine as engine_mod
from tests.integration._aws_actions import (
    ActionLog,
    policy_actions,
    policy_for_moto,
    vault_policy_text,
)
from tests.integration._inventory_db import Cli, sqlite_template  # noqa: F401
from tests.integration._rotation_world import (
    REGION,
    SECRET,
    _zip,
    aws_rotates_it,
    build_world,
)
from tests.integration.test_rotation_engine import rotation_rows

pytestmark = pytest.mark.integration

# sts:GetCallerIdentity needs no permission (keyward calls it with the new key, to test it)
NO_PERMISSION = {"sts:GetCallerIdentity"}
# KMS calls Parameter Store makes on keyward's behalf for SecureString values (kms:ViaService):
# in the policy, never called by keyward itself
ON_KEYWARDS_BEHALF = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"}
# Authorised as part of another call, never a call of its own: CreateSecret with Tags
# (keyward adopt) needs secretsmanager:TagResource too.
IMPLIED = {"secretsmanager:TagResource"}

PARAM = "/app/signing-key"
OTHER = "111111111111"  # another AWS account


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:  # noqa: F811
    path = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def _other_account(endpoint: str) -> None:
    """Account OTHER with a role ``keyward`` that keyward's account may assume (built while
    moto checks no credentials) and one Lambda function."""
    import boto3

    base = {"region_name": REGION, "endpoint_url": endpoint}
    sts = boto3.client("sts", aws_access_key_id="testing", aws_secret_access_key="testing", **base)
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{OTHER}:role/setup", RoleSessionName="setup")
    creds = {
        "aws_access_key_id": c["Credentials"]["AccessKeyId"],
        "aws_secret_access_key": c["Credentials"]["SecretAccessKey"],
        "aws_session_token": c["Credentials"]["SessionToken"],
    }
    iam = boto3.client("iam", **creds, **base)
    trust = {"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}  # fmt: skip
    allow = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    doc = lambda st: json.dumps({"Version": "2012-10-17", "Statement": [st]})  # noqa: E731
    iam.create_role(RoleName="keyward", AssumeRolePolicyDocument=doc(trust))
    iam.put_role_policy(RoleName="keyward", PolicyName="all", PolicyDocument=doc(allow))
    fn_trust = {**trust, "Principal": {"Service": "lambda.amazonaws.com"}}
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=doc(fn_trust))["Role"]["Arn"]
    boto3.client("lambda", **creds, **base).create_function(
        FunctionName="billing", Runtime="python3.12", Role=role, Handler="handler.handler",
        Code={"ZipFile": _zip()}, Environment={"Variables": {"STAGE": "prod"}},
    )  # fmt: skip


def _fail_at(monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    def checkpoint(self: Any, p: str) -> None:
        if p == point:
            raise RuntimeError(f"stopped at {point} by the test")

    monkeypatch.setattr(engine_mod.RotationEngine, "checkpoint", checkpoint)


def test_the_iam_policy_allows_every_action_the_code_performs_and_nothing_else(
    aws: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = ActionLog().install(monkeypatch)
    cli = Cli(capsys)
    _other_account(aws.endpoint)  # a second account, reached by sts:AssumeRole
    world = build_world(
        aws, sqlite_url, tmp_path, monkeypatch, functions=2,
        extra_config='[rotation.secrets."prod/aws".targets."svc-00"]\nalias = "live"\n'
        f'[aws.accounts.prod]\nrole_arn = "arn:aws:iam::{OTHER}:role/keyward"\n',
    )  # fmt: skip
    lam, ssm = world.client("lambda"), world.client("ssm")
    version = lam.publish_version(FunctionName="svc-00")["Version"]
    lam.create_alias(FunctionName="svc-00", Name="live", FunctionVersion=version)
    arn = aws_rotates_it(world)  # Secrets Manager rotates the secret itself: keyward takes over
    # a random value in Parameter Store, loaded by svc-01 itself (reference mode)
    ssm.put_parameter(Name=PARAM, Value="s" * 48, Type="SecureString",
                      Tags=[{"Key": "owner", "Value": "alice"}])  # fmt: skip
    inv = world.inventory()
    param_arn = ssm.get_parameter(Name=PARAM)["Parameter"]["ARN"]
    inv.add_secret("app/signing", "random", store="aws-ssm", reference=param_arn)
    inv.add_dependent("app/signing", "aws-lambda", "svc-01", region=REGION)
    inv.db.close()
    # a token hardcoded in a function of its own, for keyward adopt
    from tests.integration._adopt_world import github_token

    role = world.client("iam").get_role(RoleName="fn-role")["Role"]["Arn"]
    lam.create_function(
        FunctionName="hardcoded", Runtime="python3.12", Role=role, Handler="handler.handler",
        Code={"ZipFile": _zip()}, Environment={"Variables": {"GITHUB_TOKEN": github_token()}},
    )  # fmt: skip
    # keyward's user holds the shipped policy's actions only
    iam = world.client("iam")
    iam.put_user_policy(
        UserName="keyward", PolicyName="shipped", PolicyDocument=json.dumps(policy_for_moto())
    )
    iam.delete_user_policy(UserName="keyward", PolicyName="all")

    def run(*args: str, expect: int = 0) -> str:
        with log.on():
            rc, out, err = cli(*args)
        assert rc == expect, (args, rc, out, err)
        return out

    run("rotate", SECRET, "--take-over")  # takes over, rotates, retires the old key at once
    world.assert_consistent()
    _fail_at(monkeypatch, "finish:before")
    run("rotate", SECRET, expect=3)  # fails before finish: rolled back
    monkeypatch.setattr(engine_mod.RotationEngine, "checkpoint", lambda self, p: None)
    assert [r["state"] for r in rotation_rows(world)] == ["finished", "rolled_back"]
    for _ in range(3):  # the third moves the first one's keyward label off (Unlabel...)
        run("rotate", "app/signing")
    for kind in ("aws-secretsmanager", "aws-ssm"):
        run("discover", kind, "--region", REGION, "--fingerprint-values")
    run("discover", "aws-iam")
    run("discover", "aws-lambda", "--region", REGION)  # dependents: aliases, tags
    run("discover", "aws-secretsmanager", "--account", "prod", "--region", REGION)  # by role
    run("scan", "--engine", "re", "--aws-lambda", "--all-regions", "--include-code",
        "--format", "json", expect=1)  # fmt: skip
    out = run("scan", "--engine", "re", "--aws-lambda", "--account", "prod", "--region", REGION,
              "--format", "json", expect=1)  # fmt: skip
    report = json.loads(out)  # the role in the other account was assumed, its function read
    assert not report.get("warnings"), report
    assert {f.get("resource", "").split(":")[4] for f in report["findings"]} == {OTHER}

    run("scan", "--engine", "re", "--aws-lambda", "--region", REGION, "--record", expect=1)
    import sqlalchemy as sa

    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        fid = conn.execute(
            sa.text(
                "SELECT id FROM findings WHERE resource LIKE '%:function:hardcoded' "
                "AND rule_id LIKE 'github%'"
            )
        ).scalar_one()
    engine.dispose()
    run("adopt", str(fid), "--store", "aws-secretsmanager", "--name", "app/github", "--reference")

    used = log.actions - NO_PERMISSION
    shipped = policy_actions()
    assert ON_KEYWARDS_BEHALF | IMPLIED <= shipped
    missing = sorted(used - shipped)
    unused = sorted(shipped - used - ON_KEYWARDS_BEHALF - IMPLIED)
    assert not missing, f"the code performs actions the shipped policy lacks: {missing}"
    assert not unused, f"the shipped policy allows actions the code never performs: {unused}"
    assert {"lambda:GetFunction", "secretsmanager:CancelRotateSecret"} <= used  # (sanity)
    assert "secretsmanager:CreateSecret" in used
    assert arn  # the take-over named it; test_rotation_faults checks the wording


def test_the_vault_policy_is_enough_for_discovery_and_rotation(
    openbao: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from keyward.inventory.db import open_database
    from keyward.inventory.service import Inventory

    root = hvac.Client(url=openbao.addr, token=openbao.token)
    name = f"keyward-{uuid.uuid4().hex[:8]}"
    root.sys.create_or_update_policy(name=name, policy=vault_policy_text())
    token = root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    path = f"app/signing-{uuid.uuid4().hex[:8]}"
    root.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"value": "s" * 48}, mount_point="secret"
    )
    inv = Inventory(open_database(url=sqlite_url), actor="tester")
    inv.add_secret("app/signing", "random", store="vault", reference=f"secret/data/{path}")
    inv.db.close()
    config = tmp_path / "keyward.toml"
    config.write_text('[rotation]\ngrace_period = "0s"\n')
    for k, v in {"KEYWARD_DATABASE_URL": sqlite_url, "KEYWARD_CONFIG": str(config),
                 "KEYWARD_ACTOR": "tester", "VAULT_ADDR": openbao.addr,
                 "VAULT_TOKEN": token}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    cli = Cli(capsys)

    rc, out, err = cli("discover", "vault", "--fingerprint-values", "--format", "json")
    assert rc == 0, err
    found = json.loads(out)  # walked from the mount's root: list on secret/metadata/
    assert f"vault/secret/{path}" in found["secrets"], found
    # (other tests' folders on this shared server are outside the policy: warnings about
    # them are expected; none about app/ or the staging area)
    assert not [w for w in found["warnings"] if "app/" in w or "keyward-staging" in w], found
    # stages an earlier keyward kept in the secret's metadata: the rotation removes them
    root.secrets.kv.v2.update_metadata(
        path=path, mount_point="secret", custom_metadata={"keyward_current_version": "1"}
    )
    rc, _out, err = cli("rotate", "app/signing")  # a rotation that finishes
    assert rc == 0, err
    meta = root.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")["data"]
    assert not meta["custom_metadata"], meta["custom_metadata"]
    _fail_at(monkeypatch, "finish:before")
    rc, _out, err = cli("rotate", "app/signing")  # one rolled back: the staging is discarded
    assert rc == 3 and "rolled back" in err, err
    assert "denied" not in err.lower(), err
    monkeypatch.setattr(engine_mod.RotationEngine, "checkpoint", lambda self, p: None)
    meta = root.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")["data"]
    assert list(meta["versions"]) == ["1", "2"]  # the rolled-back value never reached the path
    staged = root.secrets.kv.v2.read_secret_metadata(
        path=f"keyward-staging/secret/{path}", mount_point="secret"
    )["data"]
    assert all(v["destroyed"] for v in staged["versions"].values())
    assert "keyward_pending_token" not in (staged["custom_metadata"] or {})
