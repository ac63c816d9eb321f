"""One behaviour for "no credentials", "unreachable", "denied" and "throttled", everywhere.

Every consumer of AWS (the Secrets Manager store, the IAM rotator, the Lambda dependent, built
through the plugin registry from ``keyward.providers.Providers``; ``discover`` and
``scan --aws-lambda`` through the CLI) and of Vault (the KV store, ``discover vault``) meets
the same real failure, and must exit 3 with one sentence of the same shape.

AWS: no credentials is an environment without any; unreachable a closed loopback port;
denied the moto server with credential checking on; throttled a loopback endpoint answering
each protocol's real throttling response (moto cannot throttle). Vault: the OpenBao dev server
(a token without policy, a closed port, a rate-limit quota).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest
from _inventory_db import Cli
from _moto_patches import fix_get_request_signatures
from conftest import Bao, Moto, free_port

from keyward.core.errors import (
    ExitCode,
    Failure,
    KeywardError,
    ProviderDenied,
    ProviderUnavailable,
)
from keyward.core.redaction import Fingerprinter
from keyward.providers import AwsSettings, Providers, VaultSettings
from keyward.rotation.protocols import (
    DependentTarget,
    EnvBinding,
    RotationContext,
    SecretValue,
    VersionedSecret,
    new_token,
)
from keyward.rotation.registry import PluginContext, load_dependent, load_rotator, load_store
from keyward.scan.model import Finding, Location, Severity, Verification
from keyward.verify.aws import AwsVerifier
from keyward.verify.base import VerifyContext
from tests.conftest import enable_kv2

pytestmark = pytest.mark.integration

FP = Fingerprinter(b"provider-failures-key-01")
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CURRENT = SecretValue({"access_key_id": KEY_ID, "secret_access_key": SECRET_KEY})
TARGET = DependentTarget("aws-lambda", "fn", (EnvBinding("API_KEY", "value"),), region="us-east-1")
OLD = VersionedSecret("s", "1", SecretValue.single("old-value-123456"))
NEW = VersionedSecret("s", "2", SecretValue.single("new-value-654321"))

# a consumer: the call it makes with the given Providers
AwsCall = Callable[[Providers], object]


def _sm_store(p: Providers) -> object:
    store = load_store("aws-secretsmanager", PluginContext(p, FP), {"region": "us-east-1"})
    return store.read_current("app/db")


def _iam_rotator(p: Providers) -> object:
    rot = load_rotator("aws-iam-access-key", PluginContext(p, FP), {"user_name": "app"})
    return rot.create(CURRENT, RotationContext(new_token(), datetime.now(UTC)))


def _lambda_dependent(p: Providers) -> object:
    return load_dependent("aws-lambda", PluginContext(p, FP)).prepare(TARGET, OLD, NEW)


# consumer -> (its call, the action and resource its first call names)
AWS_PLUGINS: dict[str, tuple[AwsCall, str]] = {
    "secrets manager store": (_sm_store, "secretsmanager:GetSecretValue on secret 'app/db'"),
    "iam rotator": (_iam_rotator, "iam:ListAccessKeys on IAM user app"),
    "lambda dependent": (
        _lambda_dependent,
        "lambda:GetFunctionConfiguration on Lambda function fn in us-east-1",
    ),
}
AWS_COMMANDS = {
    "discover secretsmanager": ("discover", "aws-secretsmanager", "--region", "us-east-1"),
    "discover iam": ("discover", "aws-iam"),
    "lambda scan": ("scan", "--engine", "re", "--aws-lambda", "--region", "us-east-1"),
}


def _raised(call: AwsCall, providers: Providers) -> KeywardError:
    with pytest.raises(KeywardError) as info:
        call(providers)
    return info.value


def _key_pair() -> Finding:
    return Finding(
        rule_id="aws-access-key-id",
        severity=Severity.CRITICAL,
        location=Location(path="config.ini", line=1),
        preview="AKIA…MPLE",
        fingerprint="0" * 64,
        secret=KEY_ID,
        companion=SECRET_KEY,
    )


def _one_sentence(text: str) -> None:
    assert text and "\n" not in text.strip() and "Traceback" not in text, text


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.setenv("KEYWARD_DATABASE_URL", f"sqlite:///{tmp_path / 'inventory.db'}")
    monkeypatch.setenv("KEYWARD_ACTOR", "tester")
    return Cli(capsys)


def _error_line(cli: Cli, args: tuple[str, ...]) -> str:
    rc, _, err = cli(*args)
    assert rc == ExitCode.BACKEND, (args, rc, err)
    lines = [line for line in err.splitlines() if line.startswith("keyward: error:")]
    assert len(lines) == 1, err
    _one_sentence(lines[0])
    return lines[0]


def _aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str | None, creds: bool = True) -> None:
    for var in [v for v in os.environ if v.startswith("AWS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the scan preset honours it: fail fast
    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    if creds:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def _providers() -> Providers:
    return Providers(AwsSettings(region="us-east-1", max_attempts=0))  # no retries: fail fast


# ------------------------------------------------------------------------------ AWS
def test_aws_no_credentials_is_exit_3_and_one_sentence_for_every_consumer(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws_env(monkeypatch, f"http://127.0.0.1:{free_port()}", creds=False)
    for name, (call, action) in AWS_PLUGINS.items():
        err = _raised(call, _providers())
        assert isinstance(err, ProviderDenied) and err.exit_code is ExitCode.BACKEND, name
        assert err.fault is not None and err.fault.failure is Failure.NO_CREDENTIALS, name
        assert err.message == f"No AWS credentials found for {action}", name
        assert "AWS_PROFILE" in (err.hint or ""), name
        _one_sentence(err.diagnostics())
    for name, args in AWS_COMMANDS.items():
        line = _error_line(cli, args)
        assert "No AWS credentials found" in line and "AWS_PROFILE" in line, (name, line)


def test_aws_unreachable_endpoint_is_exit_3_naming_it_for_every_consumer(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    _aws_env(monkeypatch, f"http://127.0.0.1:{port}")
    for name, (call, action) in AWS_PLUGINS.items():
        err = _raised(call, _providers())
        assert isinstance(err, ProviderUnavailable) and err.exit_code is ExitCode.BACKEND, name
        assert err.fault is not None and err.fault.failure is Failure.UNAVAILABLE, name
        assert err.message.startswith(f"Cannot reach AWS at http://127.0.0.1:{port}/"), name
        assert err.message.endswith(f"for {action} (EndpointConnectionError)"), name
        _one_sentence(err.diagnostics())
    for name, args in AWS_COMMANDS.items():
        line = _error_line(cli, args)
        assert f"127.0.0.1:{port}" in line, (name, line)


@pytest.fixture
def denied_identity(aws: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Credentials of a real moto user allowed nothing keyward needs; checking switched on."""
    fix_get_request_signatures(monkeypatch)
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="nobody")
    allow = {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}
    policy = {"Version": "2012-10-17", "Statement": [allow]}
    iam.put_user_policy(UserName="nobody", PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    creds = {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    _aws_env(monkeypatch, aws.endpoint, creds=False)
    for var, value in creds.items():
        monkeypatch.setenv(var, value)
    aws.set_auth(True)
    yield creds


def test_aws_denied_is_exit_3_naming_the_action_for_every_consumer(
    denied_identity: dict[str, str], cli: Cli
) -> None:
    secret = denied_identity["AWS_SECRET_ACCESS_KEY"]
    for name, (call, action) in AWS_PLUGINS.items():
        err = _raised(call, _providers())
        assert isinstance(err, ProviderDenied) and err.exit_code is ExitCode.BACKEND, name
        assert err.fault is not None and err.fault.failure is Failure.DENIED, name
        assert err.message.startswith(f"AWS denied {action} ("), name
        assert err.hint == f"Allow {action.split()[0]} for this resource in the IAM policy " \
            "keyward runs with", name  # fmt: skip
        assert secret not in err.diagnostics()
        _one_sentence(err.diagnostics())
    # commands that can carry on warn per resource and exit 3 when nothing could be read
    for name, args in AWS_COMMANDS.items():
        rc, _, err = cli(*args)
        assert rc == ExitCode.BACKEND, (name, err)
        assert "denied" in err and secret not in err, (name, err)


class _Throttling(BaseHTTPRequestHandler):
    """Answers every request with the throttling error of its protocol, as AWS sends it."""

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        headers = {"Content-Type": "application/json"}
        if self.headers.get("X-Amz-Target"):  # JSON protocol (Secrets Manager)
            status = 400
            data = {"__type": "ThrottlingException", "message": "Rate exceeded"}
            text = json.dumps(data)
        elif body.startswith("Action="):  # query protocol (IAM)
            status, headers = 400, {"Content-Type": "text/xml"}
            text = ("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                    "<Message>Rate exceeded</Message></Error><RequestId>1</RequestId>"
                    "</ErrorResponse>")  # fmt: skip
        else:  # REST-JSON (Lambda)
            status = 429
            headers["x-amzn-ErrorType"] = "TooManyRequestsException"
            text = json.dumps({"message": "Rate exceeded", "Reason": "CallerRateLimitExceeded"})
        raw = text.encode()
        self.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(raw))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture
def throttling_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_aws_throttled_past_retries_is_exit_3_for_every_consumer(
    throttling_endpoint: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws_env(monkeypatch, throttling_endpoint)
    for name, (call, action) in AWS_PLUGINS.items():
        err = _raised(call, _providers())
        assert isinstance(err, ProviderUnavailable) and err.exit_code is ExitCode.BACKEND, name
        assert err.fault is not None and err.fault.failure is Failure.THROTTLED, name
        assert err.message.startswith(f"AWS kept throttling {action} ("), name
        assert "Rate exceeded" in err.message, name
        _one_sentence(err.diagnostics())
    for name, args in AWS_COMMANDS.items():
        line = _error_line(cli, args)
        assert "throttl" in line.lower(), (name, line)
    # verification never fails a scan: a throttled answer is no answer
    verifier = AwsVerifier(VerifyContext(settings={"aws_endpoint_url": throttling_endpoint}))
    assert verifier.verify(_key_pair()) is Verification.UNKNOWN


# ---------------------------------------------------------------------------- Vault
def _kv_store(p: Providers) -> object:
    return load_store("vault-kv", PluginContext(p, FP), {"mount": "secret"}).read_current("app/x")


def _vault_env(monkeypatch: pytest.MonkeyPatch, addr: str, token: str | None) -> None:
    for var in ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_NAMESPACE", "VAULT_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAULT_ADDR", addr)
    if token:
        monkeypatch.setenv("VAULT_TOKEN", token)


def test_vault_no_token_is_exit_3_for_the_store_and_discovery(
    openbao: Bao, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _vault_env(monkeypatch, openbao.addr, None)
    err = _raised(_kv_store, Providers(vault=VaultSettings(addr=openbao.addr)))
    assert isinstance(err, ProviderDenied) and err.exit_code is ExitCode.BACKEND
    assert err.fault is not None and err.fault.failure is Failure.NO_CREDENTIALS
    assert err.message == "No Vault credentials are configured"
    line = _error_line(cli, ("discover", "vault"))
    assert err.diagnostics() in line


def test_vault_unreachable_is_exit_3_naming_the_address(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    addr = f"http://127.0.0.1:{free_port()}"
    _vault_env(monkeypatch, addr, "hvs.not-a-real-token-0000")
    err = _raised(_kv_store, Providers(vault=VaultSettings(addr=addr, token="x")))
    assert isinstance(err, ProviderUnavailable) and err.exit_code is ExitCode.BACKEND
    assert err.message == (
        f"Cannot reach Vault at {addr} for read metadata on secret/metadata/app/x (ConnectionError)"
    )
    line = _error_line(cli, ("discover", "vault"))
    assert f"Cannot reach Vault at {addr} for list on secret/metadata (ConnectionError)" in line


def test_vault_denied_is_exit_3_naming_the_path(
    openbao: Bao, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = hvac.Client(url=openbao.addr, token=openbao.token)
    token = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    _vault_env(monkeypatch, openbao.addr, token)
    err = _raised(_kv_store, Providers(vault=VaultSettings(addr=openbao.addr, token=token)))
    assert isinstance(err, ProviderDenied) and err.exit_code is ExitCode.BACKEND
    assert err.fault is not None and err.fault.failure is Failure.DENIED
    assert err.message == "Vault denied read metadata on secret/metadata/app/x"
    assert token not in err.diagnostics()
    rc, _, text = cli("discover", "vault", "--path", "app")
    assert rc == ExitCode.BACKEND and "warning: Vault denied list on secret/metadata/app" in text
    assert token not in text


def test_vault_throttled_is_exit_3_for_the_store_and_discovery(
    openbao: Bao, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = hvac.Client(url=openbao.addr, token=openbao.token)
    mount = f"thr{uuid.uuid4().hex[:8]}"
    enable_kv2(root, mount)
    root.secrets.kv.v2.create_or_update_secret(path="app/x", secret={"k": "v"}, mount_point=mount)
    # one request a minute under this mount: the second call of each consumer is throttled
    root.sys.create_or_update_quota(name=mount, rate=1.0, path=f"{mount}/", interval="60s")
    _vault_env(monkeypatch, openbao.addr, openbao.token)
    providers = Providers(vault=VaultSettings(addr=openbao.addr, token=openbao.token))
    store = load_store("vault-kv", PluginContext(providers, FP), {"mount": mount})
    with pytest.raises(KeywardError) as info:
        store.read_current("app/x")  # metadata (allowed), then the version (throttled)
    err = info.value
    assert isinstance(err, ProviderUnavailable) and err.exit_code is ExitCode.BACKEND
    assert err.fault is not None and err.fault.failure is Failure.THROTTLED
    assert err.message == (
        f"Vault kept throttling read version 1 on {mount}/data/app/x (RateLimitExceeded)"
    )
    line = _error_line(cli, ("discover", "vault", "--mount", mount))
    assert "Vault kept throttling" in line and f"{mount}/metadata" in line
