"""AWS access key pairs, verified with STS ``GetCallerIdentity``.

``GetCallerIdentity`` needs no permission, so any active key answers it. The client is built
from the found key pair only (never the user's profile) and honours ``AWS_ENDPOINT_URL``
(``[verify] aws_endpoint_url`` overrides it). boto3 is imported only when a key is verified.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from keyward.scan.model import Finding, Verification
from keyward.verify.base import VerifyContext
from keyward.verify.ratelimit import RateLimiter

log = logging.getLogger(__name__)

REVOKED_CODES = frozenset({"InvalidClientTokenId", "SignatureDoesNotMatch"})


class AwsVerifier:
    name = "aws"

    def __init__(self, context: VerifyContext) -> None:
        self.endpoint_url = context.settings.get("aws_endpoint_url") or None
        self.region = context.setting("aws_region", "us-east-1")
        self.timeout = context.timeout
        self.limiter = RateLimiter(context.rate)
        self._lock = threading.Lock()

    def accepts(self, finding: Finding) -> bool:
        return finding.rule_id == "aws-access-key-id"

    def verify(self, finding: Finding) -> Verification:
        key_id, secret = finding.secret, finding.companion
        # Without the secret key there is nothing to sign with; temporary (ASIA) keys also
        # need their session token, which is never next to them.
        if not secret or not key_id.startswith("AKIA"):
            return Verification.UNKNOWN
        import botocore.exceptions

        self.limiter.acquire()
        try:
            resp = self._client(key_id, secret).get_caller_identity()
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            return Verification.REVOKED if code in REVOKED_CODES else Verification.UNKNOWN
        except botocore.exceptions.BotoCoreError as exc:
            log.debug("aws verification failed: %s", type(exc).__name__)
            return Verification.UNKNOWN
        return Verification.LIVE if resp.get("Arn") else Verification.UNKNOWN

    def _client(self, key_id: str, secret: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            retries={"mode": "standard", "max_attempts": 2},
        )
        with self._lock:  # sessions are not thread-safe; the client is used outside the lock
            session = boto3.session.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                region_name=self.region,
            )
            return session.client("sts", endpoint_url=self.endpoint_url, config=config)
