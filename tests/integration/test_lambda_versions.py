"""Published Lambda versions keep the environment they were published with: a secret removed
from $LATEST lives on in version 1, and --all-versions finds it there."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import boto3
import pytest

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine
from keyward.scan.postpass import KMS_RULE_ID
from keyward.scan.rules import load_rules
from keyward.scan.runner import Runner
from keyward.scan.sources.aws_lambda import LambdaOptions, LambdaSource

pytestmark = pytest.mark.integration

TOKEN = "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"


def test_secret_removed_from_latest_is_found_in_the_published_version(aws: Any) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps({}))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(e, c):\n    return 1\n")
    lam = boto3.client("lambda", region_name="us-east-1")
    lam.create_function(
        FunctionName="billing", Runtime="python3.12", Role=role, Handler="index.handler",
        Code={"ZipFile": buf.getvalue()}, Environment={"Variables": {"GITHUB_TOKEN": TOKEN}},
    )  # fmt: skip
    version = lam.publish_version(FunctionName="billing")["Version"]
    lam.update_function_configuration(
        FunctionName="billing", Environment={"Variables": {"GITHUB_TOKEN_PARAM": "/prod/gh"}}
    )
    engine = Engine(load_rules(), Fingerprinter(b"k" * 32), backend="re")

    latest = Runner(engine).run(LambdaSource(LambdaOptions(regions=("us-east-1",))))
    assert not [f for f in latest.findings if f.rule_id != KMS_RULE_ID]

    every = Runner(engine).run(
        LambdaSource(LambdaOptions(regions=("us-east-1",), all_versions=True))
    )
    [found] = [f for f in every.findings if f.rule_id != KMS_RULE_ID]
    assert found.location.resource is not None
    assert found.location.resource.endswith(f":billing:{version}")
    assert found.location.variable == "GITHUB_TOKEN"
    # the posture finding is about $LATEST only (a published version cannot change)
    assert len([f for f in every.findings if f.rule_id == KMS_RULE_ID]) == 1
