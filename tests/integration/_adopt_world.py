"""A world where an AWS key is hardcoded in Lambda environments and kept in no store.

keyward runs as an IAM admin user; the application user ``app`` has one access key, held by
value (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``) in N functions; another function
holds an unrelated GitHub-shaped token. Nothing is in Secrets Manager or the inventory.
Credential checking is on in moto (inactive and deleted keys refused).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration._rotation_world import REGION, _zip

TOKEN_FN = "token-fn"


@dataclass
class AdoptWorld:
    aws: Any
    admin: dict[str, str]
    key: dict[str, str]  # the hardcoded key of user app
    token: str  # a GitHub-shaped token hardcoded in TOKEN_FN
    functions: list[str]
    db_url: str
    config: Path

    def client(self, service: str, key: dict[str, str] | None = None) -> Any:
        key = key or self.admin
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.aws.endpoint,
            aws_access_key_id=key["access_key_id"],
            aws_secret_access_key=key["secret_access_key"],
        )

    def env_of(self, fn: str) -> dict[str, str]:
        cfg = self.client("lambda").get_function_configuration(FunctionName=fn)
        return dict(cfg.get("Environment", {}).get("Variables", {}))

    def set_env(self, fn: str, env: dict[str, str]) -> None:
        self.client("lambda").update_function_configuration(
            FunctionName=fn, Environment={"Variables": env}
        )

    def secret(self, name: str) -> dict[str, Any]:
        doc = self.client("secretsmanager").get_secret_value(
            SecretId=name, VersionStage="AWSCURRENT"
        )
        text = doc["SecretString"]
        try:
            value = json.loads(text)
        except ValueError:
            return {"value": text}
        return dict(value) if isinstance(value, dict) else {"value": text}

    def secret_names(self) -> list[str]:
        pages = self.client("secretsmanager").get_paginator("list_secrets").paginate()
        return sorted(s["Name"] for p in pages for s in p.get("SecretList", []))

    def keys(self) -> list[tuple[str, str]]:
        rows = self.client("iam").list_access_keys(UserName="app")["AccessKeyMetadata"]
        return sorted((k["AccessKeyId"], k["Status"]) for k in rows)


def github_token() -> str:
    """A GitHub token with a valid checksum (the rule checks it)."""
    import string
    import zlib

    chars = string.digits + string.ascii_uppercase + string.ascii_lowercase
    body = "Kq7Zp2Xv9Lm4Tn8Rb3Wc6Yd1Hf5Jg0"
    n, tail = zlib.crc32(body.encode()), ""
    while n:
        n, r = divmod(n, 62)
        tail = chars[r] + tail
    return f"ghp_{body}{tail.rjust(6, '0')}"


def build_adopt_world(
    aws: Any,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    functions: int = 3,
    auth: bool = True,
) -> AdoptWorld:
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
    key = {"access_key_id": k["AccessKeyId"], "secret_access_key": k["SecretAccessKey"]}
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
    names = [f"orders-{i}" for i in range(functions)]
    token = github_token()
    for name, env in [
        *(
            (
                n,
                {
                    "AWS_ACCESS_KEY_ID": key["access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": key["secret_access_key"],
                    "SERVICE": n,
                },
            )
            for n in names
        ),
        (TOKEN_FN, {"GITHUB_TOKEN": token, "SERVICE": TOKEN_FN}),
    ]:
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
            Environment={"Variables": env},
        )
    config = tmp_path / "keyward.toml"
    config.write_text(
        '[rotation]\ngrace_period = "0s"\nlease_ttl = "60s"\n'
        "[rotation.rotators.aws-iam-access-key]\ntest_delay = 0\ntest_attempts = 2\n"
        "[rotation.dependents.aws-lambda]\nwait_delay = 1\n"
    )
    env_vars = {
        "KEYWARD_DATABASE_URL": db_url,
        "KEYWARD_CONFIG": str(config),
        "KEYWARD_ACTOR": "tester",
        "KEYWARD_FINGERPRINT_KEY": os.urandom(32).hex(),
        "AWS_ACCESS_KEY_ID": admin["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": admin["secret_access_key"],
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_DEFAULT_REGION": REGION,
    }
    for name, value in env_vars.items():
        monkeypatch.setenv(name, value)
    if auth:
        fix_get_request_signatures(monkeypatch)
        reject_inactive_keys(monkeypatch)
        aws.set_auth(True)
    return AdoptWorld(aws, admin, key, token, names, db_url, config)
