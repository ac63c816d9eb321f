"""Lambda source logic that needs no server: pagination (moto ignores MaxItems), pairing,
posture findings, zip handling. botocore's Stubber stands in for the paginated API."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from keyward.core.errors import BackendError, ConfigError
from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine
from keyward.scan.model import Severity, SourceKind
from keyward.scan.postpass import KMS_RULE_ID, FunctionRecord, kms_findings
from keyward.scan.result import ScanResult
from keyward.scan.rules import load_rules
from keyward.scan.runner import Runner
from keyward.scan.sources.aws_lambda import (
    CodePackage,
    CodeTooLarge,
    LambdaOptions,
    LambdaSource,
    download_package,
)

ACCOUNT = "123456789012"
TOKEN = "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"


def run_lambda(engine: Engine, options: LambdaOptions, **seams: Any) -> ScanResult:
    """The runner over a Lambda source (``seams``: session, client_factory, downloader)."""
    return Runner(engine).run(LambdaSource(options, **seams))


def fn(name: str, region: str = "us-east-1", **extra: Any) -> dict[str, Any]:
    return {
        "FunctionName": name,
        "FunctionArn": f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}",
        "PackageType": "Zip",
        **extra,
    }


def stubbed_client(pages: list[list[dict[str, Any]]], region: str = "us-east-1") -> Any:
    client = boto3.client(
        "lambda",
        region_name=region,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:9",
    )
    stub = Stubber(client)
    for i, page in enumerate(pages):
        params = {} if i == 0 else {"Marker": f"m{i}"}
        resp: dict[str, Any] = {"Functions": page}
        if i < len(pages) - 1:
            resp["NextMarker"] = f"m{i + 1}"
        stub.add_response("list_functions", resp, params)
    stub.activate()
    client._keyward_stub = stub
    return client


@pytest.fixture
def engine() -> Engine:
    return Engine(load_rules(), Fingerprinter(b"k" * 32), backend="re")


def test_every_page_of_functions_is_listed_following_markers(engine: Engine) -> None:
    pages = [
        [fn(f"a{i}", Environment={"Variables": {"N": str(i)}}) for i in range(50)],
        [fn(f"b{i}") for i in range(50)],
        [fn("last", Environment={"Variables": {"GITHUB_TOKEN": TOKEN}})],
    ]
    client = stubbed_client(pages)
    result = run_lambda(
        engine,
        LambdaOptions(regions=("us-east-1",)),
        client_factory=lambda service, region: client,
    )
    client._keyward_stub.assert_no_pending_responses()
    secrets = [f for f in result.findings if f.rule_id != KMS_RULE_ID]
    assert [f.location.resource for f in secrets] == [pages[2][0]["FunctionArn"]]
    assert secrets[0].location.variable == "GITHUB_TOKEN"
    assert secrets[0].location.kind is SourceKind.LAMBDA
    assert result.stats.chunks == 51


def test_undecryptable_environment_is_a_warning(engine: Engine) -> None:
    error = {"ErrorCode": "KMSAccessDeniedException", "Message": "denied"}
    client = stubbed_client([[fn("locked", Environment={"Error": error})]])
    result = run_lambda(
        engine, LambdaOptions(regions=("us-east-1",)), client_factory=lambda s, r: client
    )
    assert any("could not be read" in w and "KMSAccessDenied" in w for w in result.warnings)


def test_api_error_in_the_only_region_is_a_backend_error(engine: Engine) -> None:
    client = boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    stub.add_client_error("list_functions", "AccessDeniedException", http_status_code=403)
    stub.activate()
    with pytest.raises(BackendError, match="access denied"):
        run_lambda(
            engine, LambdaOptions(regions=("us-east-1",)), client_factory=lambda s, r: client
        )


def test_kms_finding_only_for_functions_with_variables_and_no_cmk() -> None:
    records = [
        FunctionRecord("arn:1", "one", "us-east-1", variables=2, kms_key_arn=None),
        FunctionRecord("arn:2", "two", "us-east-1", variables=2, kms_key_arn="arn:kms"),
        FunctionRecord("arn:3", "three", "us-east-1", variables=0, kms_key_arn=None),
    ]
    [f] = kms_findings(records)
    assert (f.rule_id, f.severity, f.location.resource) == (KMS_RULE_ID, Severity.LOW, "arn:1")
    assert f.description and f.fingerprint == kms_findings(records)[0].fingerprint


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_code_files_are_scanned_in_memory_and_binaries_skipped(engine: Engine) -> None:
    package = _zip(
        {
            "handler.js": f"const t = '{TOKEN}';\n".encode(),
            "lib/native.so": b"\x7fELF\x00\x00" + TOKEN.encode(),
        }
    )
    client = stubbed_client([[fn("coded")]])
    client._keyward_stub.add_response(
        "get_function",
        {"Code": {"Location": "https://example.invalid/pkg"}},
        {"FunctionName": fn("coded")["FunctionArn"]},
    )
    seen: list[CodePackage] = []

    def downloader(p: CodePackage, cap: int) -> bytes:
        seen.append(p)
        return package

    result = run_lambda(
        engine,
        LambdaOptions(regions=("us-east-1",), include_code=True),
        client_factory=lambda s, r: client,
        downloader=downloader,
    )
    assert [p.url for p in seen] == ["https://example.invalid/pkg"]
    [f] = [f for f in result.findings if f.rule_id != KMS_RULE_ID]
    assert (f.location.path, f.location.line) == ("handler.js", 1)
    assert any(s.reason == "binary file" for s in result.skipped)


def test_default_downloader_refuses_packages_over_the_cap() -> None:
    with pytest.raises(CodeTooLarge):
        download_package(CodePackage("arn", "us-east-1", "https://example.invalid", 100), 10)
    with pytest.raises(OSError):
        download_package(CodePackage("arn", "us-east-1", "file:///etc/passwd", None), 10)


def test_a_malformed_code_location_is_an_oserror_that_does_not_quote_the_url() -> None:
    url = "https://example.invalid/pkg?X-Amz-Signature=s3cr3tsig\r\nx"
    with pytest.raises(OSError) as err:
        download_package(CodePackage("arn", "us-east-1", url, None), 10)
    assert "s3cr3tsig" not in str(err.value)


def test_no_region_configured_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x")
    with pytest.raises(ConfigError, match="No AWS region"):
        LambdaSource(LambdaOptions(), session=session).regions()


def test_unknown_profile_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    with pytest.raises(ConfigError, match="profile 'nope' does not exist"):
        LambdaSource(LambdaOptions(profile="nope", regions=("us-east-1",))).chunks().__next__()


def test_clients_use_adaptive_retries_for_throttling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x")
    client = LambdaSource(LambdaOptions(), session=session)._client("lambda", "eu-west-1")
    assert client.meta.config.retries["mode"] == "adaptive"
