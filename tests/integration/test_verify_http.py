"""HTTP verifiers against a local server that answers as each provider's API documents.

GitHub ``GET /user`` (200 / 401 Bad credentials), GitLab
``GET /api/v4/personal_access_tokens/self`` (200 with ``active`` / 401), Slack
``POST /api/auth.test`` (``{"ok": true}`` / ``{"ok": false, "error": "invalid_auth"}``) and
Stripe ``GET /v1/balance`` (200 / 401; 403 for a restricted key lacking the permission).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from keyward.scan.model import Finding, Location, Severity, Verification
from keyward.verify.base import VerifyContext
from keyward.verify.registry import load_verifiers
from keyward.verify.service import verify_findings

pytestmark = pytest.mark.integration

GH_LIVE = "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"
GH_DEAD = "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"  # a valid checksum
GL_LIVE = "glpat-xPG_xK_Xh6YwP8Dlt3uS"
GL_DEAD = "glpat-AAAAbbbbCCCCddddEEEE"
GL_INACTIVE = "glpat-ZZZZyyyyXXXXwwwwVVVV"
SL_LIVE = "xoxb-93857083934-7357143217853-EYupOYzBneBDtnhP0NRvQ24r"
SL_DEAD = "xoxb-11111111111-2222222222222-abcdefghijklmnopqrstuvwx"
SL_LIMITED = "xoxp-31980582972-110799991462-0148014432686-4a179c7f76d45fef6806a17981c48be8"
ST_LIVE = "sk_live_jRNwkJTQMlysNBKLcUHINVH4"
ST_DEAD = "sk_live_Qm7Xr2Lp9Vt4Kw8Zn3Bj6Hc1"
ST_RESTRICTED = "rk_live_BYVfFEox92a5SVgsau20FGOO"
SLOW = "ghp_SLOWslowSLOWslowSLOWslowSLOWslow0000"


@dataclass
class Provider:
    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settings(self) -> dict[str, str]:
        return {f"{p}_url": f"{self.url}/{p}" for p in ("github", "gitlab", "slack", "stripe")}


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _bearer(self) -> str:
            auth = self.headers.get("Authorization", "")
            return auth.split(" ", 1)[1] if " " in auth else ""

        def do_GET(self) -> None:
            with provider.lock:
                provider.requests.append(("GET", self.path))
            if self.path.startswith("/moved/"):
                self.send_response(302)
                self.send_header("Location", f"{provider.url}/stolen")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if self.path == "/github/user":
                token = self._bearer()
                if token == SLOW:
                    time.sleep(1.5)
                if token == GH_LIVE:
                    return self._send(200, {"login": "octocat", "id": 1})
                return self._send(401, {"message": "Bad credentials"})
            if self.path == "/gitlab/api/v4/personal_access_tokens/self":
                token = self.headers.get("PRIVATE-TOKEN", "")
                if token == GL_LIVE:
                    return self._send(200, {"id": 4, "active": True, "revoked": False})
                if token == GL_INACTIVE:
                    return self._send(200, {"id": 5, "active": False, "revoked": True})
                return self._send(401, {"message": "401 Unauthorized"})
            if self.path == "/stripe/v1/balance":
                token = self._bearer()
                if token == ST_LIVE:
                    return self._send(200, {"object": "balance", "available": []})
                if token == ST_RESTRICTED:
                    err = {"type": "invalid_request_error", "code": "permission_error"}
                    return self._send(403, {"error": err})
                err = {"type": "invalid_request_error", "message": "Invalid API Key provided"}
                return self._send(401, {"error": err})
            return self._send(404, {"message": "Not Found"})

        def do_POST(self) -> None:
            with provider.lock:
                provider.requests.append(("POST", self.path))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/slack/api/auth.test":
                token = self._bearer()
                if token == SL_LIVE:
                    return self._send(200, {"ok": True, "team": "T", "user_id": "U"})
                if token == SL_LIMITED:
                    return self._send(429, {"ok": False, "error": "ratelimited"})
                return self._send(200, {"ok": False, "error": "invalid_auth"})
            return self._send(404, {"ok": False, "error": "unknown_method"})

    return Handler


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Provider("")))
    prov = Provider(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(prov)
    server.handle_error = lambda *args: None  # type: ignore[method-assign]  # client gone
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield prov
    finally:
        server.shutdown()
        server.server_close()


def finding(rule_id: str, secret: str) -> Finding:
    return Finding(
        rule_id=rule_id,
        severity=Severity.HIGH,
        location=Location(path="app.env", line=1),
        preview="x…y",
        fingerprint="f" * 64,
        secret=secret,
    )


CASES = [
    ("github-pat-classic", GH_LIVE, Verification.LIVE),
    ("github-pat-classic", GH_DEAD, Verification.REVOKED),
    ("gitlab-pat", GL_LIVE, Verification.LIVE),
    ("gitlab-pat", GL_DEAD, Verification.REVOKED),
    ("gitlab-pat", GL_INACTIVE, Verification.REVOKED),
    ("slack-bot-token", SL_LIVE, Verification.LIVE),
    ("slack-bot-token", SL_DEAD, Verification.REVOKED),
    ("slack-user-token", SL_LIMITED, Verification.UNKNOWN),
    ("stripe-secret-key", ST_LIVE, Verification.LIVE),
    ("stripe-secret-key", ST_DEAD, Verification.REVOKED),
    ("stripe-restricted-key", ST_RESTRICTED, Verification.LIVE),
]


@pytest.mark.parametrize(("rule_id", "secret", "expected"), CASES, ids=lambda v: str(v)[:20])
def test_provider_answer_maps_to_live_revoked_or_unknown(
    provider: Provider, rule_id: str, secret: str, expected: Verification
) -> None:
    verifiers = load_verifiers(VerifyContext(settings=provider.settings(), timeout=5))
    [result] = verify_findings([finding(rule_id, secret)], verifiers)
    assert result.verification is expected
    assert provider.requests, "the provider was asked"


def test_every_case_at_once_uses_one_request_per_distinct_credential(provider: Provider) -> None:
    verifiers = load_verifiers(VerifyContext(settings=provider.settings(), timeout=5, rate=50))
    findings = [finding(r, s) for r, s, _ in CASES] * 3
    results = verify_findings(findings, verifiers, workers=4)
    assert [f.verification for f in results] == [e for _, _, e in CASES] * 3
    assert len(provider.requests) == len(CASES)


def test_slow_provider_times_out_as_unknown(provider: Provider) -> None:
    verifiers = load_verifiers(
        VerifyContext(settings=provider.settings(), timeout=0.3), names=["github"]
    )
    started = time.monotonic()
    [result] = verify_findings([finding("github-pat-classic", SLOW)], verifiers)
    assert result.verification is Verification.UNKNOWN
    assert time.monotonic() - started < 1.4


def test_unreachable_provider_is_unknown() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = {"stripe_url": f"http://127.0.0.1:{port}"}
    verifiers = load_verifiers(VerifyContext(settings=settings, timeout=2), names=["stripe"])
    [result] = verify_findings([finding("stripe-secret-key", ST_LIVE)], verifiers)
    assert result.verification is Verification.UNKNOWN


def test_redirects_are_not_followed_so_the_token_goes_nowhere_else(provider: Provider) -> None:
    settings = {"github_url": f"{provider.url}/moved"}
    verifiers = load_verifiers(VerifyContext(settings=settings, timeout=5), names=["github"])
    [result] = verify_findings([finding("github-pat-classic", GH_LIVE)], verifiers)
    assert result.verification is Verification.UNKNOWN
    assert provider.requests == [("GET", "/moved/user")]


def test_findings_no_verifier_accepts_are_left_unverified(provider: Provider) -> None:
    verifiers = load_verifiers(VerifyContext(settings=provider.settings()))
    [result] = verify_findings([finding("generic-api-key", "Zx81kqPLm02vBnTr7wQe")], verifiers)
    assert result.verification is None
    assert provider.requests == []


# ------------------------------------------------------------------------ the CLI
SECRETS_FILE = f"""\
GITHUB_TOKEN={GH_LIVE}
OLD_GITHUB_TOKEN={GH_DEAD}
SLACK_BOT_TOKEN={SL_LIVE}
STRIPE_SECRET_KEY={ST_DEAD}
"""


def _project(tmp_path: Path, provider: Provider) -> Path:
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "settings.env").write_text(SECRETS_FILE)
    verify = "\n".join(f'{k} = "{v}"' for k, v in provider.settings().items())
    (project / "keyward.toml").write_text(f"[verify]\n{verify}\ntimeout = 5\n")
    return project


def _keyward(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyward", *args[:1], "--engine", "re", *args[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ),
        timeout=120,
    )


def test_without_verify_no_request_leaves_the_machine(tmp_path: Path, provider: Provider) -> None:
    project = _project(tmp_path, provider)
    outputs = {}
    for fmt in ("text", "json", "sarif", "csv"):
        proc = _keyward(["scan", "src", "--format", fmt], project)
        assert proc.returncode == 1, proc.stderr
        outputs[fmt] = proc.stdout
    assert provider.requests == []
    findings = json.loads(outputs["json"])["findings"]
    assert len(findings) == 4 and all("verification" not in f for f in findings)
    results = json.loads(outputs["sarif"])["runs"][0]["results"]
    assert all("verification" not in r.get("properties", {}) for r in results)
    assert {r["verification"] for r in csv.DictReader(io.StringIO(outputs["csv"]))} == {""}
    assert "[live]" not in outputs["text"] and "[revoked]" not in outputs["text"]


def test_verify_result_appears_in_every_output_format(tmp_path: Path, provider: Provider) -> None:
    project = _project(tmp_path, provider)
    expected = {
        "OLD_GITHUB_TOKEN": "revoked",
        "GITHUB_TOKEN": "live",
        "SLACK_BOT_TOKEN": "live",
        "STRIPE_SECRET_KEY": "revoked",
    }

    proc = _keyward(["scan", "src", "--verify", "--format", "json"], project)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    by_line = {f["line"]: f["verification"] for f in doc["findings"]}
    assert by_line == {1: "live", 2: "revoked", 3: "live", 4: "revoked"}

    sarif = json.loads(_keyward(["scan", "src", "--verify", "--format", "sarif"], project).stdout)
    results = sarif["runs"][0]["results"]
    assert sorted(r["properties"]["verification"] for r in results) == sorted(expected.values())

    rows = list(csv.DictReader(io.StringIO(
        _keyward(["scan", "src", "--verify", "--format", "csv"], project).stdout
    )))  # fmt: skip
    assert sorted(r["verification"] for r in rows) == sorted(expected.values())

    text = _keyward(["scan", "src", "--verify", "--no-color"], project).stdout
    assert text.count("[live]") == 2 and text.count("[revoked]") == 2

    for out in (proc.stdout, proc.stderr, text):
        for secret in (GH_LIVE, GH_DEAD, SL_LIVE, ST_DEAD):
            assert secret not in out
