"""A world to rotate in (shared by the rotation and daemon tests).

keyward runs as an IAM admin user; an application user ``app`` has one access key stored in
Secrets Manager as ``app/aws`` and held by N Lambda functions; the inventory knows the secret
(``prod/aws``) and its dependents. Credential checking is on in moto, inactive keys are refused.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyward.inventory.db import open_database
from keyward.inventory.service import Inventory

SECRET = "prod/aws"
SM_NAME = "app/aws"
REGION = "us-east-1"


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    return buf.getvalue()


@dataclass
class World:
    aws: Any
    admin: dict[str, str]
    old: dict[str, str]
    functions: list[str]
    db_url: str
    config: Path
    env: dict[str, str]

    def client(self, service: str, key: dict[str, str] | None = None) -> Any:
        key = key or self.admin
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.aws.endpoint,
            aws_access_key_id=key["access_key_id"],
            aws_secret_access_key=key["secret_access_key"],
        )

    def current(self) -> dict[str, str]:
        # Explicit stage: moto 5.2 keeps answering the old default version to a bare
        # GetSecretValue after UpdateSecretVersionStage moved AWSCURRENT (real AWS does not).
        doc = self.client("secretsmanager").get_secret_value(
            SecretId=SM_NAME, VersionStage="AWSCURRENT"
        )
        return dict(json.loads(doc["SecretString"]))

    def stages(self) -> dict[str, list[str]]:
        meta = self.client("secretsmanager").describe_secret(SecretId=SM_NAME)
        return dict(meta.get("VersionIdsToStages") or {})

    def keys(self) -> list[tuple[str, str]]:
        rows = self.client("iam").list_access_keys(UserName="app")["AccessKeyMetadata"]
        return sorted((k["AccessKeyId"], k["Status"]) for k in rows)

    def env_of(self, fn: str) -> dict[str, str]:
        cfg = self.client("lambda").get_function_configuration(FunctionName=fn)
        return dict(cfg.get("Environment", {}).get("Variables", {}))

    def works(self, key: dict[str, str]) -> bool:
        """STS accepts the key (refused keys answer an auth error; anything else is retried)."""
        from botocore.exceptions import ClientError

        for attempt in range(3):
            try:
                self.client("sts", key).get_caller_identity()
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied"):
                    return False
                if attempt == 2:
                    raise
            except Exception:
                if attempt == 2:
                    raise
            else:
                return True
        return False

    def inventory(self) -> Inventory:
        return Inventory(open_database(url=self.db_url), actor="tester")

    def assert_consistent(self) -> dict[str, str]:
        """Exactly one credential current, every dependent holds it, it works; returns it."""
        cur = self.current()
        stages = self.stages()
        assert not any("AWSPENDING" in s for s in stages.values()), stages
        active = [k for k, status in self.keys() if status == "Active"]
        assert active == [cur["access_key_id"]], (active, cur["access_key_id"])
        for fn in self.functions:
            env = self.env_of(fn)
            assert env["AWS_ACCESS_KEY_ID"] == cur["access_key_id"], fn
            assert env["AWS_SECRET_ACCESS_KEY"] == cur["secret_access_key"], fn
            assert env["SERVICE"] == fn
        assert self.works(cur)
        return cur


def aws_rotates_it(world: World) -> str:
    """Turn on Secrets Manager's own rotation of the world's secret, with a rotation Lambda,
    as `aws secretsmanager rotate-secret` does; its ARN."""
    import urllib.request

    def lambda_docker(on: bool) -> None:
        req = urllib.request.Request(
            f"{world.aws.endpoint}/moto-api/config",
            data=json.dumps({"lambda": {"use_docker": on}}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()

    lam, sm = world.client("lambda"), world.client("secretsmanager")
    role = world.client("iam").get_role(RoleName="fn-role")["Role"]["Arn"]
    # moto invokes the rotation Lambda's testSecret step, which needs Docker unless this
    # (server-wide) switch selects its Docker-free Lambda backend: on only for these calls
    lambda_docker(False)
    try:
        arn = lam.create_function(
            FunctionName="sm-rotator", Runtime="python3.12", Role=role,
            Handler="handler.handler", Code={"ZipFile": _zip()},
        )["FunctionArn"]  # fmt: skip
        sm.rotate_secret(
            SecretId=SM_NAME, RotationLambdaARN=arn,
            RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False,
        )  # fmt: skip
    finally:
        lambda_docker(True)
    meta = sm.describe_secret(SecretId=SM_NAME)
    assert meta["RotationEnabled"] and meta["RotationLambdaARN"] == arn
    return str(arn)


def build_world(
    aws: Any,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    functions: int = 20,
    extra_config: str = "",
    auth: bool = True,
    grace_period: str = "0s",
) -> World:
    from tests.integration._moto_patches import fix_get_request_signatures, reject_inactive_keys

    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="keyward")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="keyward", PolicyName="all", PolicyDocument=json.dumps(policy))
    a = iam.create_access_key(UserName="keyward")["AccessKey"]
    admin = {"access_key_id": a["AccessKeyId"], "secret_access_key": a["SecretAccessKey"]}
    iam.create_user(UserName="app")
    k = iam.create_access_key(UserName="app")["AccessKey"]
    old = {"access_key_id": k["AccessKeyId"], "secret_access_key": k["SecretAccessKey"]}
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=SM_NAME, SecretString=json.dumps(old)
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(trust))
    lam = boto3.client("lambda", region_name=REGION)
    names = [f"svc-{i:02d}" for i in range(functions)]
    for name in names:
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
            Environment={
                "Variables": {
                    "AWS_ACCESS_KEY_ID": old["access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": old["secret_access_key"],
                    "SERVICE": name,
                }
            },
        )
    inv = Inventory(open_database(url=db_url), actor="tester")
    inv.add_secret(
        SECRET,
        "aws-iam-access-key",
        store="aws-secretsmanager",
        reference=SM_NAME,
        owner="alice",
        max_age_seconds=90 * 86400,
    )
    for name in names:
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            inv.add_dependent(SECRET, "aws-lambda", name, variable=var, region=REGION)
    inv.db.close()
    config = tmp_path / "keyward.toml"
    config.write_text(
        f'[rotation]\ngrace_period = "{grace_period}"\nlease_ttl = "60s"\n'
        "[rotation.rotators.aws-iam-access-key]\ntest_delay = 0\ntest_attempts = 2\n"
        "[rotation.dependents.aws-lambda]\nwait_delay = 1\n" + extra_config
    )
    env = {
        "KEYWARD_DATABASE_URL": db_url,
        "KEYWARD_CONFIG": str(config),
        "KEYWARD_ACTOR": "tester",
        "AWS_ACCESS_KEY_ID": admin["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": admin["secret_access_key"],
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_DEFAULT_REGION": REGION,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if auth:
        fix_get_request_signatures(monkeypatch)
        reject_inactive_keys(monkeypatch)
        aws.set_auth(True)
    return World(aws, admin, old, names, db_url, config, dict(os.environ))
