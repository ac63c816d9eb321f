"""RevisionId preconditions (moto returns none, so botocore's Stubber plays Lambda here)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from keyward.core.redaction import Fingerprinter
from keyward.rotation.dependents.aws_lambda import LambdaEnvironmentDependent
from keyward.rotation.errors import DependentError
from keyward.rotation.protocols import (
    DependentTarget,
    EnvBinding,
    SecretValue,
    VersionedSecret,
)

FP = Fingerprinter(b"stubbed-lambda-key-0001")
OLD = VersionedSecret("s", "1", SecretValue.single("old-value-123456"))
NEW = VersionedSecret("s", "2", SecretValue.single("new-value-654321"))
TARGET = DependentTarget("aws-lambda", "fn", (EnvBinding("API_KEY", "value"),), region="eu-west-1")


def config(env: dict[str, str], revision: str) -> dict[str, Any]:
    return {
        "FunctionName": "fn",
        "Environment": {"Variables": env},
        "RevisionId": revision,
        "LastUpdateStatus": "Successful",
        "State": "Active",
    }


def precondition_failed(stub: Stubber) -> None:
    stub.add_client_error(
        "update_function_configuration",
        service_error_code="PreconditionFailedException",
        http_status_code=412,
    )


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    return boto3.client("lambda", region_name="eu-west-1", endpoint_url="http://127.0.0.1:9")


def test_a_concurrent_edit_is_re_read_and_kept(client: Any) -> None:
    dep = LambdaEnvironmentDependent(lambda region: client, FP, wait_delay=0, wait_attempts=1)
    stub = Stubber(client)
    fn = {"FunctionName": "fn"}
    stub.add_response(
        "get_function_configuration", config({"API_KEY": OLD.value["value"]}, "r1"), fn
    )
    stub.add_response(
        "get_function_configuration", config({"API_KEY": OLD.value["value"]}, "r1"), fn
    )
    precondition_failed(stub)  # someone else changed the function after we read it
    stub.add_response("get_function", {"Configuration": config({}, "r2")}, fn)  # waiter
    edited = {"API_KEY": OLD.value["value"], "FEATURE": "on"}
    stub.add_response("get_function_configuration", config(edited, "r2"), fn)
    stub.add_response(
        "update_function_configuration",
        config({**edited, "API_KEY": NEW.value["value"]}, "r3"),
        {
            "FunctionName": "fn",
            "Environment": {"Variables": {"API_KEY": NEW.value["value"], "FEATURE": "on"}},
            "RevisionId": "r2",
        },
    )
    stub.add_response("get_function", {"Configuration": config({}, "r3")}, fn)  # waiter
    with stub:
        snap = dep.prepare(TARGET, OLD, NEW)
        dep.update(snap, NEW)
    stub.assert_no_pending_responses()


def test_a_function_that_keeps_changing_gives_up_with_a_clear_error(client: Any) -> None:
    dep = LambdaEnvironmentDependent(
        lambda region: client, FP, wait_delay=0, wait_attempts=1, conflict_retries=2
    )
    stub = Stubber(client)
    fn = {"FunctionName": "fn"}
    stub.add_response(
        "get_function_configuration", config({"API_KEY": OLD.value["value"]}, "r1"), fn
    )
    for rev in ("r1", "r2"):
        stub.add_response(
            "get_function_configuration", config({"API_KEY": OLD.value["value"]}, rev), fn
        )
        precondition_failed(stub)
        if rev == "r1":
            stub.add_response("get_function", {"Configuration": config({}, "r2")}, fn)
    with stub:
        snap = dep.prepare(TARGET, OLD, NEW)
        with pytest.raises(DependentError, match="Lambda function fn in eu-west-1") as err:
            dep.update(snap, NEW)
    assert OLD.value["value"] not in err.value.diagnostics()


def test_a_failed_update_names_lambdas_reason_and_never_calls_itself_successful(
    client: Any,
) -> None:
    # moto never reports LastUpdateStatus=Failed; the waiter's failure acceptor needs it
    dep = LambdaEnvironmentDependent(lambda region: client, FP, wait_delay=0, wait_attempts=1)
    stub = Stubber(client)
    fn = {"FunctionName": "fn"}
    held = config({"API_KEY": OLD.value["value"]}, "r1")
    stub.add_response("get_function_configuration", held, fn)
    stub.add_response("get_function_configuration", held, fn)
    stub.add_response("update_function_configuration", config({}, "r2"), None)
    failed = {**config({}, "r2"), "LastUpdateStatus": "Failed",
              "LastUpdateStatusReason": "KMS key is disabled"}  # fmt: skip
    stub.add_response("get_function", {"Configuration": failed}, fn)  # the waiter's poll
    stub.add_response("get_function_configuration", failed, fn)
    with stub:
        snap = dep.prepare(TARGET, OLD, NEW)
        with pytest.raises(DependentError) as err:
            dep.update(snap, NEW)
    text = err.value.diagnostics()
    assert "LastUpdateStatus is Failed (KMS key is disabled)" in text
    assert "Successful" not in text and OLD.value["value"] not in text
