"""Throttling is retried: a local endpoint answers ListFunctions with Lambda's 429
TooManyRequestsException twice, then the page (boto3 pointed at it by AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine
from keyward.scan.postpass import KMS_RULE_ID
from keyward.scan.rules import load_rules
from keyward.scan.runner import Runner
from keyward.scan.sources.aws_lambda import LambdaOptions, LambdaSource

pytestmark = pytest.mark.integration

TOKEN = "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"


@pytest.fixture
def throttling_lambda(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    statuses: list[int] = []
    throttles = [2]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if throttles[0] > 0:
                throttles[0] -= 1
                body = json.dumps({"message": "Rate exceeded", "Reason": "CallerRateLimitExceeded"})
                status, headers = 429, {"x-amzn-ErrorType": "TooManyRequestsException"}
            else:
                functions = [{
                    "FunctionName": "f",
                    "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
                    "Environment": {"Variables": {"GITHUB_TOKEN": TOKEN}},
                }]  # fmt: skip
                body, status, headers = json.dumps({"Functions": functions}), 200, {}
            statuses.append(status)
            data = body.encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield statuses
    finally:
        server.shutdown()
        server.server_close()


def test_throttled_listing_is_retried_until_it_succeeds(throttling_lambda: list[int]) -> None:
    engine = Engine(load_rules(), Fingerprinter(b"k" * 32), backend="re")
    result = Runner(engine).run(LambdaSource(LambdaOptions(regions=("us-east-1",))))
    assert throttling_lambda == [429, 429, 200]
    assert not result.warnings
    [f] = [f for f in result.findings if f.rule_id != KMS_RULE_ID]
    assert f.location.variable == "GITHUB_TOKEN"
