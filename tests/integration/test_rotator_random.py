"""random rotator through Vault KV v2, with a Lambda function that holds a reference.

The function holds the Vault path, not the value; keyward bumps KEYWARD_SECRET_VERSION to the
new KV version so new execution environments load it.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

import boto3
import hvac
import pytest

from keyward.core.redaction import Fingerprinter
from keyward.rotation.dependents.aws_lambda import VERSION_VARIABLE, LambdaEnvironmentDependent
from keyward.rotation.protocols import (
    DependentMode,
    DependentTarget,
    RotationContext,
    new_token,
)
from keyward.rotation.rotators.random import RandomRotator
from keyward.rotation.stores.vault_kv import VaultKVStore

pytestmark = pytest.mark.integration


def _function(aws: Any, name: str, env: dict[str, str]) -> Any:
    iam = boto3.client("iam", region_name="us-east-1")
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
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("h.py", "def h(e, c):\n    return 1\n")
    fn = boto3.client("lambda", region_name="us-east-1")
    fn.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="h.h",
        Code={"ZipFile": buf.getvalue()},
        Environment={"Variables": env},
    )
    return fn


def test_a_signing_key_in_vault_rotates_and_the_referencing_function_is_bumped(
    openbao: Any, aws: Any
) -> None:
    root = hvac.Client(url=openbao.addr, token=openbao.token)
    path = f"app/signing-{new_token()[:8]}"
    root.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"value": "x" * 64, "kid": "k1"}, mount_point="secret"
    )
    fn = _function(aws, "signer", {"SIGNING_KEY_PATH": f"secret/{path}", VERSION_VARIABLE: "1"})
    store = VaultKVStore(root)
    rot = RandomRotator(length=64, alphabet="0123456789abcdef")
    dep = LambdaEnvironmentDependent(lambda region: fn, Fingerprinter(b"k" * 32), wait_delay=1)
    target = DependentTarget("aws-lambda", "signer", mode=DependentMode.REFERENCE)

    c = RotationContext(new_token(), datetime.now(UTC))
    cur = store.read_current(path)
    pending = store.put_pending(path, rot.create(cur.value, c), c.token)
    new = store.read_version(path, pending)
    rot.set(cur.value, new.value)
    rot.test(new.value)
    snap = dep.prepare(target, cur, new)
    dep.update(snap, new)
    dep.verify(snap, new)
    store.promote(path, pending)

    assert new.value["kid"] == "k1" and new.value["value"] != "x" * 64
    env = fn.get_function_configuration(FunctionName="signer")["Environment"]["Variables"]
    assert env == {"SIGNING_KEY_PATH": f"secret/{path}", VERSION_VARIABLE: pending}
    # what a fresh execution environment would load: the version the variable names
    loaded = root.secrets.kv.v2.read_secret_version(
        path=path, version=int(env[VERSION_VARIABLE]), mount_point="secret",
        raise_on_deleted_version=True,
    )  # fmt: skip
    assert loaded["data"]["data"] == dict(new.value.fields)
    assert store.read_current(path).value.same_as(new.value)
