"""AWS key pairs verified with STS GetCallerIdentity against moto with credential checking on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from _moto_patches import reject_inactive_keys

from keyward.scan.model import Finding, Location, Severity, Verification
from keyward.verify.aws import AwsVerifier
from keyward.verify.base import VerifyContext
from keyward.verify.service import verify_findings

pytestmark = pytest.mark.integration


def pair(key_id: str, secret: str | None) -> Finding:
    return Finding(
        rule_id="aws-access-key-id",
        severity=Severity.CRITICAL,
        location=Location(path="config.ini", line=1),
        preview="AKIA…XXXX",
        fingerprint="0" * 64,
        secret=key_id,
        companion=secret,
    )


def _keys(user: str, n: int) -> list[dict[str, str]]:
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName=user)
    return [iam.create_access_key(UserName=user)["AccessKey"] for _ in range(n)]


def _verify(*findings: Finding, **settings: Any) -> list[Verification | None]:
    verifier = AwsVerifier(VerifyContext(settings=settings, timeout=5))
    return [f.verification for f in verify_findings(list(findings), [verifier])]


def test_active_key_is_live_and_deleted_key_is_revoked(aws: Any) -> None:
    active, deleted = _keys("app", 2)
    boto3.client("iam", region_name="us-east-1").delete_access_key(
        UserName="app", AccessKeyId=deleted["AccessKeyId"]
    )
    aws.set_auth(True)
    assert _verify(
        pair(active["AccessKeyId"], active["SecretAccessKey"]),
        pair(deleted["AccessKeyId"], deleted["SecretAccessKey"]),
    ) == [Verification.LIVE, Verification.REVOKED]


def test_wrong_secret_for_a_real_key_is_revoked(aws: Any) -> None:
    [key] = _keys("app", 1)
    aws.set_auth(True)
    wrong = key["SecretAccessKey"][:-4] + "AAAA"
    assert _verify(pair(key["AccessKeyId"], wrong)) == [Verification.REVOKED]


def test_inactive_key_is_revoked(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reject_inactive_keys(monkeypatch)  # moto accepts Inactive keys; AWS does not
    [key] = _keys("app", 1)
    boto3.client("iam", region_name="us-east-1").update_access_key(
        UserName="app", AccessKeyId=key["AccessKeyId"], Status="Inactive"
    )
    aws.set_auth(True)
    assert _verify(pair(key["AccessKeyId"], key["SecretAccessKey"])) == [Verification.REVOKED]


def test_key_id_without_its_secret_or_temporary_key_is_unknown(aws: Any) -> None:
    [key] = _keys("app", 1)
    aws.set_auth(True)
    assert _verify(
        pair(key["AccessKeyId"], None),
        pair("ASIA" + key["AccessKeyId"][4:], key["SecretAccessKey"]),
    ) == [Verification.UNKNOWN, Verification.UNKNOWN]


def test_unreachable_endpoint_is_unknown(aws: Any) -> None:
    [key] = _keys("app", 1)
    result = _verify(
        pair(key["AccessKeyId"], key["SecretAccessKey"]),
        aws_endpoint_url="http://127.0.0.1:9",
    )
    assert result == [Verification.UNKNOWN]


def test_cli_verify_reports_live_and_revoked_pairs_without_leaking(
    aws: Any, tmp_path: Path
) -> None:
    active, deleted = _keys("ci", 2)
    boto3.client("iam", region_name="us-east-1").delete_access_key(
        UserName="ci", AccessKeyId=deleted["AccessKeyId"]
    )
    aws.set_auth(True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "live.ini").write_text(
        f"aws_access_key_id = {active['AccessKeyId']}\n"
        f"aws_secret_access_key = {active['SecretAccessKey']}\n"
    )
    (src / "old.ini").write_text(
        f"aws_access_key_id = {deleted['AccessKeyId']}\n"
        f"aws_secret_access_key = {deleted['SecretAccessKey']}\n"
    )
    env = dict(os.environ)  # AWS_ENDPOINT_URL points at moto (the aws fixture)
    proc = subprocess.run(
        [sys.executable, "-m", "keyward", "scan", "--engine", "re", "src", "--verify",
         "--format", "json"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    got = {f["path"]: f["verification"] for f in doc["findings"]}
    assert got == {"live.ini": "live", "old.ini": "revoked"}
    for value in (active["SecretAccessKey"], deleted["SecretAccessKey"]):
        assert value not in proc.stdout and value not in proc.stderr


def test_lambda_scan_with_verify_marks_the_function_key_pair_live(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main case: a live key pair in a function's environment, found and verified."""
    import io
    import zipfile

    from _moto_patches import fix_get_request_signatures

    fix_get_request_signatures(monkeypatch)
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="scanner")
    iam.put_user_policy(
        UserName="scanner",
        PolicyName="read-lambda",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "lambda:ListFunctions", "Resource": "*"}]}),
    )  # fmt: skip
    scanner = iam.create_access_key(UserName="scanner")["AccessKey"]
    live, dead = _keys("app", 2)
    iam.delete_access_key(UserName="app", AccessKeyId=dead["AccessKeyId"])
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(e, c):\n    return 1\n")
    lam = boto3.client("lambda", region_name="us-east-1")
    for name, key in (("uses-live-key", live), ("uses-old-key", dead)):
        lam.create_function(
            FunctionName=name, Runtime="python3.12", Role=role, Handler="index.handler",
            Code={"ZipFile": buf.getvalue()},
            Environment={"Variables": {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                                       "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}},
        )  # fmt: skip
    aws.set_auth(True)
    env = dict(os.environ) | {
        "AWS_ACCESS_KEY_ID": scanner["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": scanner["SecretAccessKey"],
    }
    proc = subprocess.run(
        [sys.executable, "-m", "keyward", "scan", "--engine", "re", "--aws-lambda",
         "--region", "us-east-1", "--verify", "--format", "json"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    got = {
        f["resource"].rsplit(":", 1)[1]: f["verification"]
        for f in doc["findings"]
        if f["rule"] == "aws-access-key-id"
    }
    assert got == {"uses-live-key": "live", "uses-old-key": "revoked"}
    assert live["SecretAccessKey"] not in proc.stdout + proc.stderr
