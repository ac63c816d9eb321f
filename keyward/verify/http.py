"""HTTP verifiers for token providers, on the standard library (no extra dependency).

Each provider's base URL is configurable (``[verify] github_url = ...``) so tests, GitHub
Enterprise and self-managed GitLab work; the defaults are the public APIs.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from keyward import __version__
from keyward.scan.model import Finding, Verification
from keyward.verify.base import VerifyContext
from keyward.verify.ratelimit import RateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A credential is never replayed to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    data: bytes | None = None,
    timeout: float,
    opener: urllib.request.OpenerDirector | None = None,
) -> Response:
    """One HTTP request, never following redirects; HTTP errors are responses, network
    failures raise OSError."""
    if not url.startswith(("https://", "http://")):
        raise OSError("verifier URL must be http(s)")
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"User-Agent": f"keyward/{__version__}", **headers},
    )
    try:
        with (opener or urllib.request.build_opener(_NoRedirect)).open(
            req, timeout=timeout
        ) as resp:
            return Response(resp.status, resp.read(1 << 20))
    except urllib.error.HTTPError as exc:
        with exc:
            return Response(exc.code, exc.read(1 << 20))


class HttpVerifier:
    """Base for token verifiers: rule-id prefix and value prefixes decide ``accepts``."""

    name: ClassVar[str] = ""
    default_url: ClassVar[str] = ""
    rule_prefix: ClassVar[str] = ""
    value_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: VerifyContext) -> None:
        self.base_url = context.setting(f"{self.name}_url", self.default_url).rstrip("/")
        self.timeout = context.timeout
        self.limiter = RateLimiter(context.rate)

    def accepts(self, finding: Finding) -> bool:
        return finding.rule_id.startswith(self.rule_prefix) and finding.secret.startswith(
            self.value_prefixes
        )

    def verify(self, finding: Finding) -> Verification:
        self.limiter.acquire()
        try:
            resp = self.call(finding.secret)
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
            log.debug("%s verification failed: %s", self.name, type(exc).__name__)
            return Verification.UNKNOWN
        return self.classify(resp)

    def call(self, token: str) -> Response:
        raise NotImplementedError

    def classify(self, resp: Response) -> Verification:
        if resp.status == 200:
            return Verification.LIVE
        if resp.status == 401:
            return Verification.REVOKED
        return Verification.UNKNOWN


class GitHubVerifier(HttpVerifier):
    """``GET /user``: 200 live, 401 bad credentials (revoked); 403/429 rate limits: unknown."""

    name = "github"
    default_url = "https://api.github.com"
    rule_prefix = "github-"
    value_prefixes = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")

    def call(self, token: str) -> Response:
        return request(
            "GET",
            f"{self.base_url}/user",
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            timeout=self.timeout,
        )


class GitLabVerifier(HttpVerifier):
    """``GET /api/v4/personal_access_tokens/self``: 200 with ``active`` live, 401 revoked."""

    name = "gitlab"
    default_url = "https://gitlab.com"
    rule_prefix = "gitlab-"
    value_prefixes = ("glpat-",)

    def call(self, token: str) -> Response:
        return request(
            "GET",
            f"{self.base_url}/api/v4/personal_access_tokens/self",
            {"PRIVATE-TOKEN": token},
            timeout=self.timeout,
        )

    def classify(self, resp: Response) -> Verification:
        if resp.status == 200:
            doc = resp.json()
            if isinstance(doc, dict) and (doc.get("revoked") or doc.get("active") is False):
                return Verification.REVOKED
            return Verification.LIVE
        return super().classify(resp)


class SlackVerifier(HttpVerifier):
    """``POST /api/auth.test``: ``{"ok": true}`` live; invalid_auth and friends revoked."""

    name = "slack"
    default_url = "https://slack.com"
    rule_prefix = "slack-"
    value_prefixes = ("xoxb-", "xoxp-", "xoxa-", "xoxs-")  # auth.test takes these
    REVOKED_ERRORS: ClassVar[frozenset[str]] = frozenset(
        {"invalid_auth", "token_revoked", "token_expired", "account_inactive", "not_authed"}
    )

    def call(self, token: str) -> Response:
        return request(
            "POST",
            f"{self.base_url}/api/auth.test",
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            data=b"",
            timeout=self.timeout,
        )

    def classify(self, resp: Response) -> Verification:
        doc = resp.json()
        if resp.status != 200 or not isinstance(doc, dict):
            return Verification.UNKNOWN
        if doc.get("ok") is True:
            return Verification.LIVE
        if doc.get("error") in self.REVOKED_ERRORS:
            return Verification.REVOKED
        return Verification.UNKNOWN


class StripeVerifier(HttpVerifier):
    """``GET /v1/balance``: 200 live; 403 (restricted key without that permission) live too;
    401 invalid key (revoked); 429 and others unknown."""

    name = "stripe"
    default_url = "https://api.stripe.com"
    rule_prefix = "stripe-"
    value_prefixes = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")

    def call(self, token: str) -> Response:
        return request(
            "GET",
            f"{self.base_url}/v1/balance",
            {"Authorization": f"Bearer {token}"},
            timeout=self.timeout,
        )

    def classify(self, resp: Response) -> Verification:
        if resp.status == 403:
            return Verification.LIVE
        return super().classify(resp)
