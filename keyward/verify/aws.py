"""AWS access key pairs, verified with STS ``GetCallerIdentity``.

``GetCallerIdentity`` needs no permission, so any active key answers it. The client comes
from :class:`keyward.providers.aws.AwsClients` with the verify preset (the ``[verify]``
timeout, two retries), signs with the found key pair only (never the user's profile) and
honours ``AWS_ENDPOINT_URL`` (``[verify] aws_endpoint_url`` overrides it). boto3 is imported
only when a key is verified.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from keyward.core.errors import KeywardError
from keyward.scan.model import Finding, Verification
from keyward.verify.base import VerifyContext
from keyward.verify.ratelimit import RateLimiter

if TYPE_CHECKING:
    from keyward.providers.aws import AwsClients

log = logging.getLogger(__name__)

REVOKED_CODES = frozenset({"InvalidClientTokenId", "SignatureDoesNotMatch"})


class AwsVerifier:
    name = "aws"

    def __init__(self, context: VerifyContext) -> None:
        from keyward.providers.aws import VERIFY, AwsClients
        from keyward.providers.settings import AwsSettings

        self.endpoint_url = context.settings.get("aws_endpoint_url") or None
        self.region = context.setting("aws_region", "us-east-1")
        self.timeout = context.timeout
        self.limiter = RateLimiter(context.rate)
        settings = AwsSettings(
            region=self.region,
            endpoint_url=self.endpoint_url,
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
        )
        self._aws: AwsClients = AwsClients(settings, VERIFY)  # its lock makes building safe

    def accepts(self, finding: Finding) -> bool:
        return finding.rule_id == "aws-access-key-id"

    def verify(self, finding: Finding) -> Verification:
        key_id, secret = finding.secret, finding.companion
        # Without the secret key there is nothing to sign with; temporary (ASIA) keys also
        # need their session token, which is never next to them.
        if not secret or not key_id.startswith("AKIA"):
            return Verification.UNKNOWN
        from keyward.providers.aws import AwsService, aws_errors
        from keyward.providers.settings import AwsCredentials

        self.limiter.acquire()
        try:
            client = self._aws.with_credentials(AwsService.STS, AwsCredentials(key_id, secret))
            with aws_errors("sts:GetCallerIdentity", "a found access key"):
                resp = client.get_caller_identity()
        except KeywardError as err:
            code = err.fault.code if err.fault is not None else type(err).__name__
            if code in REVOKED_CODES:
                return Verification.REVOKED
            log.debug("aws verification failed: %s", code)
            return Verification.UNKNOWN
        return Verification.LIVE if resp.get("Arn") else Verification.UNKNOWN
