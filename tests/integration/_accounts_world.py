"""Several AWS accounts on one moto server, reached the way keyward reaches them.

moto keeps accounts apart by the account of the assumed role's ARN (TESTING.md). The world:

* keyward's own account (``HOME``) has an IAM user ``keyward`` whose key keyward runs with; its
  policy allows everything except ``sts:AssumeRole`` into ``BLOCKED``'s role;
* ``PROD`` and ``STAGING`` have a role ``keyward`` (allowed everything) that keyward assumes;
* ``BLOCKED`` has the same role, but keyward may not assume it;
* every account has a Lambda function holding a GitHub token of its own, a Secrets Manager
  secret, an SSM ``SecureString`` parameter and an IAM user with an access key, each tagged
  with an owner naming the account.

Moto's credential checking is switched on once the world is built, so each call is signed by
an identity moto knows and a denied ``sts:AssumeRole`` is a real ``AccessDenied``.
"""

from __future__ import annotations

import json
import random
import string
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration._moto_patches import fix_get_request_signatures

HOME = "123456789012"  # moto's default account
PROD = "111111111111"
STAGING = "222222222222"
BLOCKED = "333333333333"
ROLE = "keyward"
REGION = "us-east-1"
NAMES = {HOME: "main", PROD: "prod", STAGING: "staging", BLOCKED: "blocked"}

CONFIG = f"""
[aws.accounts.main]
id = "{HOME}"

[aws.accounts.prod]
role_arn = "arn:aws:iam::{PROD}:role/{ROLE}"
regions = ["{REGION}"]

[aws.accounts.staging]
role_arn = "arn:aws:iam::{STAGING}:role/{ROLE}"
external_id = "keyward-staging"

[aws.accounts.blocked]
role_arn = "arn:aws:iam::{BLOCKED}:role/{ROLE}"
"""

_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def github_token(seed: str) -> str:
    rng = random.Random(seed)
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30))
    n, check = zlib.crc32(body.encode()), ""
    while n:
        n, r = divmod(n, 62)
        check = _B62[r] + check
    return f"ghp_{body}{check.rjust(6, '0')}"


def role_arn(account: str, name: str = ROLE) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


@dataclass
class AccountsWorld:
    endpoint: str
    config: Path
    home_key: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)  # account -> token in its function
    keys: dict[str, str] = field(default_factory=dict)  # account -> IAM key id of user "app"
    secrets: dict[str, str] = field(default_factory=dict)  # account -> ARN of secret app/db

    def creds(self, account: str) -> dict[str, str]:
        """Credentials acting in ``account``: keyward's own key, or its role there."""
        if account == HOME:
            return dict(self.home_key)
        sts = boto3.client("sts", region_name=REGION, endpoint_url=self.endpoint, **self.home_key)
        c = sts.assume_role(RoleArn=role_arn(account), RoleSessionName="test")["Credentials"]
        return {
            "aws_access_key_id": c["AccessKeyId"],
            "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"],
        }

    def client(self, service: str, account: str, region: str = REGION) -> Any:
        return boto3.client(
            service, region_name=region, endpoint_url=self.endpoint, **self.creds(account)
        )


def _admin(endpoint: str, service: str, account: str) -> Any:
    """A client in ``account`` while moto checks no credentials (building the world)."""
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if account != HOME:
        sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint, **creds)
        c = sts.assume_role(RoleArn=role_arn(account, "setup"), RoleSessionName="setup")
        creds = {
            "aws_access_key_id": c["Credentials"]["AccessKeyId"],
            "aws_secret_access_key": c["Credentials"]["SecretAccessKey"],
            "aws_session_token": c["Credentials"]["SessionToken"],
        }
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, **creds)


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}
ASSUME = {"Effect": "Allow", "Action": "sts:AssumeRole"}
TRUST = _policy({**ASSUME, "Principal": {"AWS": f"arn:aws:iam::{HOME}:root"}})
FN_TRUST = _policy({**ASSUME, "Principal": {"Service": "lambda.amazonaws.com"}})


def _zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    return buf.getvalue()


def _populate(world: AccountsWorld, account: str) -> None:
    ep = world.endpoint
    iam = _admin(ep, "iam", account)
    if account != HOME:
        iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=TRUST)
        iam.put_role_policy(RoleName=ROLE, PolicyName="all", PolicyDocument=_policy(ALLOW_ALL))
    fn_role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=FN_TRUST)["Role"]["Arn"]
    owner = [{"Key": "owner", "Value": f"team-{NAMES[account]}"}]
    token = world.tokens[account] = github_token(account)
    _admin(ep, "lambda", account).create_function(
        FunctionName=f"orders-{NAMES[account]}",
        Runtime="python3.12",
        Role=fn_role,
        Handler="handler.handler",
        Code={"ZipFile": _zip()},
        Environment={"Variables": {"GITHUB_TOKEN": token, "STAGE": "prod"}},
    )
    world.secrets[account] = _admin(ep, "secretsmanager", account).create_secret(
        Name="app/db", SecretString=json.dumps({"password": f"pw-{account}"}), Tags=owner
    )["ARN"]
    _admin(ep, "ssm", account).put_parameter(
        Name="/app/signing-key", Value=f"key-{account}", Type="SecureString", Tags=owner
    )
    iam.create_user(UserName="app", Tags=owner)
    world.keys[account] = iam.create_access_key(UserName="app")["AccessKey"]["AccessKeyId"]


def build_accounts_world(
    moto: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AccountsWorld:
    """The four accounts above on the (reset) moto server of ``moto``, credential checking
    on, the environment set to keyward's own key and ``KEYWARD_CONFIG`` to a config naming
    the accounts."""
    ep = moto.endpoint
    iam = _admin(ep, "iam", HOME)
    iam.create_user(UserName="keyward")
    deny = {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": role_arn(BLOCKED)}
    iam.put_user_policy(UserName="keyward", PolicyName="p", PolicyDocument=_policy(ALLOW_ALL, deny))
    key = iam.create_access_key(UserName="keyward")["AccessKey"]
    config = tmp_path / "keyward.toml"
    config.write_text(CONFIG)
    world = AccountsWorld(
        ep,
        config,
        {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]},
    )
    for account in (HOME, PROD, STAGING, BLOCKED):
        _populate(world, account)
    fix_get_request_signatures(monkeypatch)
    moto.set_auth(True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setenv("KEYWARD_CONFIG", str(config))
    return world
