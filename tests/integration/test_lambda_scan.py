"""Live Lambda scan against a moto server: 320 functions in two regions.

Planted secrets sit in some functions' environments, references only in others, and some
functions use a customer managed KMS key. One test switches moto's credential checking on to
get a real AccessDenied for one region.
"""

from __future__ import annotations

import io
import json
import os
import random
import string
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from _moto_patches import fix_get_request_signatures

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine
from keyward.scan.model import Severity, SourceKind
from keyward.scan.postpass import KMS_RULE_ID
from keyward.scan.report import OutputFormat, to_string
from keyward.scan.result import ScanResult
from keyward.scan.rules import load_rules
from keyward.scan.runner import Runner
from keyward.scan.sources.aws_lambda import (
    CodePackage,
    LambdaOptions,
    LambdaSource,
)

pytestmark = pytest.mark.integration
Moto = Any  # tests/conftest.py: the moto server handle (endpoint, reset, set_auth)

REGIONS = ("us-east-1", "eu-west-1")
PER_REGION = 160  # 320 functions in all
ACCOUNT = "123456789012"


def run_lambda(engine: Engine, options: LambdaOptions, **seams: Any) -> ScanResult:
    """The runner over a Lambda source (``seams``: session, client_factory, downloader)."""
    return Runner(engine).run(LambdaSource(options, **seams))


CMK = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0b1a7c5e-0000-4000-8000-000000000001"
_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _base62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(width, "0")


def github_token(rng: random.Random) -> str:
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30))
    return f"ghp_{body}{_base62(zlib.crc32(body.encode()), 6)}"


def aws_key_pair(rng: random.Random) -> tuple[str, str]:
    key_id = "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))
    secret = "".join(rng.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))
    return key_id, secret


def code_zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


PLAIN_CODE = code_zip({"index.py": "def handler(event, context):\n    return 1\n"})


@dataclass
class Fleet:
    endpoint: str
    planted: dict[str, dict[str, str]] = field(default_factory=dict)  # arn -> {var: secret}
    references: set[str] = field(default_factory=set)  # arns with references only
    cmk: set[str] = field(default_factory=set)  # arns encrypted with a CMK
    with_env: set[str] = field(default_factory=set)
    code: dict[str, bytes] = field(default_factory=dict)  # arn -> zip bytes
    code_secret: dict[str, str] = field(default_factory=dict)  # arn -> secret in its code
    total: int = 0
    secrets: list[str] = field(default_factory=list)


def client(service: str, region: str, endpoint: str, **creds: str) -> Any:
    creds = creds or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, region_name=region, endpoint_url=endpoint, **creds)


def build_fleet(endpoint: str) -> Fleet:
    rng = random.Random(20261123)
    fleet = Fleet(endpoint)
    iam = client("iam", "us-east-1", endpoint)
    role = iam.create_role(
        RoleName="keyward-test-lambda",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    for region in REGIONS:
        lam = client("lambda", region, endpoint)
        for i in range(PER_REGION):
            name = f"svc-{region}-{i:03d}"
            env: dict[str, str] = {"STAGE": "prod", "LOG_LEVEL": "info"}
            kind = i % 8
            code = PLAIN_CODE
            planted: dict[str, str] = {}
            if kind == 0:  # AWS key pair in two variables
                key_id, secret = aws_key_pair(rng)
                env |= {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
                planted = {"AWS_ACCESS_KEY_ID": key_id}
                fleet.secrets += [key_id, secret]
            elif kind == 1:  # a GitHub token
                token = github_token(rng)
                env["GITHUB_TOKEN"] = token
                planted = {"GITHUB_TOKEN": token}
                fleet.secrets.append(token)
            elif kind == 2:  # references only: never findings
                env |= {
                    "DB_PASSWORD": "{{resolve:secretsmanager:prod/db:SecretString:password}}",
                    "API_TOKEN_PARAM": "/prod/api/token",
                    "GITHUB_TOKEN_ARN": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:gh",
                }
            elif kind == 3 and i % 16 == 3:  # a secret in the code only
                token = github_token(rng)
                code = code_zip({"index.py": "def handler(e, c):\n    return 1\n",
                                 "config/settings.py": f'GITHUB = "{token}"\n'})  # fmt: skip
                fleet.secrets.append(token)
            elif kind == 4:  # no environment at all
                env = {}
            kms = CMK if kind in (5, 6) else None
            kwargs: dict[str, Any] = {}
            if env:
                kwargs["Environment"] = {"Variables": env}
            if kms:
                kwargs["KMSKeyArn"] = kms
            arn = lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role,
                Handler="index.handler",
                Code={"ZipFile": code},
                **kwargs,
            )["FunctionArn"]
            fleet.total += 1
            fleet.code[arn] = code
            if planted:
                fleet.planted[arn] = planted
            if kind == 2:
                fleet.references.add(arn)
            if kms:
                fleet.cmk.add(arn)
            if env:
                fleet.with_env.add(arn)
            if code is not PLAIN_CODE:
                fleet.code_secret[arn] = token
    return fleet


@pytest.fixture(scope="module")
def fleet(moto_server: Moto) -> Iterator[Fleet]:
    moto_server.reset()
    with pytest.MonkeyPatch.context() as mp:
        _point_at(mp, moto_server.endpoint)
        yield build_fleet(moto_server.endpoint)


def _point_at(mp: pytest.MonkeyPatch, endpoint: str) -> None:
    mp.setenv("AWS_ENDPOINT_URL", endpoint)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_CONFIG_FILE", os.devnull)
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        mp.delenv(var, raising=False)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_rules(), Fingerprinter(b"k" * 32), backend="re")


@pytest.fixture
def fleet_env(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    _point_at(monkeypatch, fleet.endpoint)
    return fleet


def test_every_function_in_both_regions_is_scanned_and_planted_secrets_found(
    fleet_env: Fleet, engine: Engine
) -> None:
    fleet = fleet_env
    result = run_lambda(engine, LambdaOptions(regions=REGIONS))
    assert fleet.total >= 300
    secrets = [f for f in result.findings if f.rule_id != KMS_RULE_ID]
    found = {(f.location.resource, f.location.variable) for f in secrets}
    expected = {(arn, var) for arn, planted in fleet.planted.items() for var in planted}
    assert found == expected
    for f in secrets:
        assert f.location.kind is SourceKind.LAMBDA
        assert f.location.region in REGIONS
        assert f.location.resource is not None
        assert f":{f.location.region}:" in f.location.resource
    # both regions contribute
    assert {f.location.region for f in secrets} == set(REGIONS)
    assert not result.warnings


def test_aws_key_id_and_secret_in_two_variables_become_one_paired_finding(
    fleet_env: Fleet, engine: Engine
) -> None:
    result = run_lambda(engine, LambdaOptions(regions=("us-east-1",)))
    aws = [f for f in result.findings if f.rule_id == "aws-access-key-id"]
    assert aws, "planted AWS keys must be found"
    for f in aws:
        assert f.companion is not None and len(f.companion) == 40
        assert f.companion_preview is not None and "…" in f.companion_preview
        assert f.severity is Severity.CRITICAL
    assert not [f for f in result.findings if f.rule_id == "aws-secret-access-key"]


def test_functions_holding_only_references_produce_no_secret_findings(
    fleet_env: Fleet, engine: Engine
) -> None:
    result = run_lambda(engine, LambdaOptions(regions=REGIONS))
    flagged = {f.location.resource for f in result.findings if f.rule_id != KMS_RULE_ID}
    assert fleet_env.references
    assert not flagged & fleet_env.references


def test_environment_without_customer_managed_key_is_a_separate_low_finding(
    fleet_env: Fleet, engine: Engine
) -> None:
    result = run_lambda(engine, LambdaOptions(regions=REGIONS))
    kms = {f.location.resource: f for f in result.findings if f.rule_id == KMS_RULE_ID}
    assert set(kms) == fleet_env.with_env - fleet_env.cmk
    f = next(iter(kms.values()))
    assert f.severity is Severity.LOW
    assert f.description
    off = run_lambda(engine, LambdaOptions(regions=REGIONS, check_kms=False))
    assert not [f for f in off.findings if f.rule_id == KMS_RULE_ID]


def test_no_secret_value_reaches_any_report_format(fleet_env: Fleet, engine: Engine) -> None:
    result = run_lambda(engine, LambdaOptions(regions=REGIONS))
    assert result.findings
    for fmt in OutputFormat:
        text = to_string(result, fmt)
        leaked = [s for s in fleet_env.secrets if s in text]
        assert not leaked, f"{fmt}: raw secret in report"
    sarif = json.loads(to_string(result, OutputFormat.SARIF))
    rule_ids = {r["id"]: r for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert KMS_RULE_ID in rule_ids


def test_include_code_scans_files_inside_the_deployment_package(
    fleet_env: Fleet, engine: Engine
) -> None:
    fetched: list[CodePackage] = []

    def from_fleet(package: CodePackage, cap: int) -> bytes:
        # moto cannot serve Code.Location; hand over the bytes that were deployed.
        fetched.append(package)
        return fleet_env.code[package.function_arn]

    result = run_lambda(
        engine, LambdaOptions(regions=REGIONS, include_code=True), downloader=from_fleet
    )
    assert len(fetched) == fleet_env.total
    in_code = {
        f.location.resource: f for f in result.findings if f.location.path == "config/settings.py"
    }
    assert set(in_code) == set(fleet_env.code_secret)
    f = next(iter(in_code.values()))
    assert f.location.line == 1 and f.rule_id == "github-pat-classic"


def test_oversized_package_is_skipped_not_fatal(fleet_env: Fleet, engine: Engine) -> None:
    result = run_lambda(
        engine,
        LambdaOptions(regions=("eu-west-1",), include_code=True, max_code_size=10),
    )
    assert any("larger than the code size cap" in s.reason for s in result.skipped)
    assert [f for f in result.findings if f.location.variable]  # env still scanned


# ---------------------------------------------------------------- access denied
def _user_with_policy(endpoint: str, name: str, statements: list[dict[str, Any]]) -> dict[str, str]:
    iam = client("iam", "us-east-1", endpoint)
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="p",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }


@pytest.fixture
def auth_on(
    fleet_env: Fleet, moto_server: Moto, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Fleet]:
    fix_get_request_signatures(monkeypatch)
    yield fleet_env
    moto_server.set_auth(False)


def test_region_that_denies_listing_is_a_warning_and_others_are_scanned(
    auth_on: Fleet, moto_server: Moto, engine: Engine
) -> None:
    endpoint = auth_on.endpoint
    allowed = _user_with_policy(
        endpoint, "scanner-ok", [{"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}]
    )
    denied = _user_with_policy(
        endpoint,
        "scanner-denied",
        [
            {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "lambda:ListFunctions", "Resource": "*"},
        ],
    )
    moto_server.set_auth(True)
    # moto evaluates no region conditions, so the eu-west-1 client uses an identity whose
    # policy denies lambda:ListFunctions: moto itself answers AccessDenied.
    per_region = {"us-east-1": allowed, "eu-west-1": denied}

    def factory(service: str, region: str) -> Any:
        return client(service, region, endpoint, **per_region[region])

    result = run_lambda(engine, LambdaOptions(regions=REGIONS), client_factory=factory)
    assert any("eu-west-1" in w and "access denied" in w for w in result.warnings)
    regions = {f.location.region for f in result.findings}
    assert regions == {"us-east-1"}
    assert len({f.location.resource for f in result.findings}) > 50


def test_access_denied_to_function_code_is_a_warning_per_function(
    auth_on: Fleet, moto_server: Moto, engine: Engine
) -> None:
    creds = _user_with_policy(
        auth_on.endpoint,
        "no-code",
        [
            {"Effect": "Allow", "Action": "lambda:ListFunctions", "Resource": "*"},
            {"Effect": "Deny", "Action": "lambda:GetFunction", "Resource": "*"},
        ],
    )
    moto_server.set_auth(True)

    def factory(service: str, region: str) -> Any:
        return client(service, region, auth_on.endpoint, **creds)

    result = run_lambda(
        engine,
        LambdaOptions(regions=("eu-west-1",), include_code=True),
        client_factory=factory,
        downloader=lambda p, cap: auth_on.code[p.function_arn],
    )
    denied = [w for w in result.warnings if "access denied to its code" in w]
    assert len(denied) == PER_REGION
    assert [f for f in result.findings if f.location.variable]  # env still scanned


def test_every_region_refusing_is_a_backend_error(
    auth_on: Fleet, moto_server: Moto, engine: Engine
) -> None:
    from keyward.core.errors import BackendError, ExitCode

    moto_server.set_auth(True)  # the 'testing' key does not exist in moto's IAM
    with pytest.raises(BackendError) as info:
        run_lambda(engine, LambdaOptions(regions=REGIONS))
    assert info.value.exit_code is ExitCode.BACKEND
    assert "No region could be scanned" in info.value.diagnostics()


# ---------------------------------------------------------------- the CLI
def _keyward(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyward", *args[:1], "--engine", "re", *args[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_cli_scans_lambda_and_exits_one_with_findings(fleet_env: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = _keyward(
        ["scan", "--aws-lambda", "--region", "us-east-1", "--region", "eu-west-1",
         "--format", "json", "-o", str(out)],
        dict(os.environ), tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(out.read_text())
    rules = {f["rule"] for f in doc["findings"]}
    assert {"aws-access-key-id", "github-pat-classic", KMS_RULE_ID} <= rules
    first = next(f for f in doc["findings"] if f["rule"] == "github-pat-classic")
    assert first["source"] == "lambda" and first["variable"] == "GITHUB_TOKEN"
    assert first["region"] in REGIONS and first["resource"].startswith("arn:aws:lambda:")


def test_cli_without_credentials_says_so_in_one_sentence_and_exits_3(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    proc = _keyward(["scan", "--aws-lambda", "--region", "us-east-1"], env, tmp_path)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No AWS credentials found" in lines[0]
    assert "Traceback" not in proc.stderr


def test_cli_unreachable_endpoint_exits_3(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
    }
    proc = _keyward(["scan", "--aws-lambda", "--region", "us-east-1"], env, tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "cannot reach" in proc.stderr and "Traceback" not in proc.stderr


def test_all_regions_come_from_ec2_describe_regions(fleet_env: Fleet) -> None:
    from keyward.scan.sources.aws_lambda import LambdaSource

    regions = LambdaSource(LambdaOptions(all_regions=True)).regions()
    assert set(REGIONS) < set(regions) and len(regions) > 10
    assert regions == sorted(regions)
