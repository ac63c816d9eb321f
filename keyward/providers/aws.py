"""AWS through boto3: the one client factory, its presets, and the error translation.

boto3 and botocore are imported inside the functions that need them, so importing this module
costs nothing (the scan's pre-commit path imports it only when ``--aws-lambda`` runs).

**Presets.** How patient a client is depends on what it is for, not on who builds it:

* ``SCAN`` — 10 s to connect, 60 s to read, *adaptive* retry mode, attempts from
  ``AWS_MAX_ATTEMPTS`` / the AWS config file (botocore's default: 3). Many read-only list
  calls run in parallel (one thread per region): adaptive mode also rate-limits the client
  itself once throttled; a page of large configurations reads slowly; the user tunes the
  attempts as for the AWS CLI.
* ``ROTATE`` — 5 s / 30 s, *standard* mode, 3 retries (4 attempts). Each call is one step of a
  persisted state machine under a lease: transient errors and throttling are retried with
  backoff, but an outage fails the step in under three minutes (4 x (5 + 30) s plus at most
  7 s of backoff), well inside the default 10-minute lease, and the rotation is resumed or
  rolled back later.
* ``VERIFY`` — the ``[verify]`` timeout to connect and to read (10 s), *standard* mode, 2
  retries. One ``GetCallerIdentity`` per found key while the user waits; no clear answer is
  just ``unknown``.

``discover`` uses the scan preset (it only reads, a page at a time). A setting in
``[rotation.aws]`` (``connect_timeout``, ``read_timeout``, ``max_attempts``, ``retry_mode``)
overrides the preset's value. Every client sends ``keyward`` in its user agent.

**Accounts.** A client is built for one :class:`~keyward.providers.settings.Account`. keyward's
own account uses the profile's credentials; another is reached with ``sts:AssumeRole`` (the
STS client is the home account's, with the same preset and endpoint), once per
:class:`AwsClients` and account, when its first client is built: a role that cannot be
assumed fails there, as ``sts:AssumeRole`` on that role, not inside a later call. The role's
credentials are botocore ``RefreshableCredentials``: assumed again when less than 15 minutes
are left (10 minutes: before any further call), so a long daemon tick or scan never signs with
expired credentials.

**Errors.** :func:`aws_errors` is the boundary: any botocore exception raised inside it leaves
as the keyward error its :class:`~keyward.providers.errors.ErrorFamily` gives, with one
sentence naming the action and the resource (``AWS denied iam:CreateAccessKey on IAM user
app (AccessDenied: ...)``) and the provider's error code in ``err.fault``.
"""

from __future__ import annotations

import copy
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from keyward.core.errors import ConfigError, Failure, KeywardError, ProviderFault
from keyward.providers.errors import PROVIDER_ERRORS, ErrorFamily
from keyward.providers.settings import (
    HOME,
    Account,
    AwsCredentials,
    AwsSettings,
    RetryMode,
    home_account,
)


class AwsService(StrEnum):
    """The AWS services keyward calls, by boto3's names: consumers ask :class:`AwsClients`
    for one of these (``aws.client(AwsService.IAM, region)``), never by a name of their own."""

    EC2 = "ec2"
    IAM = "iam"
    LAMBDA = "lambda"
    SECRETS_MANAGER = "secretsmanager"
    SSM = "ssm"
    STS = "sts"


@dataclass(frozen=True, slots=True)
class ClientPreset:
    """Timeouts and retries for one use of AWS clients (see the module docstring)."""

    name: str
    connect_timeout: float
    read_timeout: float
    retry_mode: RetryMode
    max_attempts: int | None  # retries after the first attempt; None: AWS_MAX_ATTEMPTS / config


SCAN = ClientPreset("scan", connect_timeout=10, read_timeout=60, retry_mode="adaptive",
                    max_attempts=None)  # fmt: skip
ROTATE = ClientPreset("rotate", connect_timeout=5, read_timeout=30, retry_mode="standard",
                      max_attempts=3)  # fmt: skip
VERIFY = ClientPreset("verify", connect_timeout=10, read_timeout=10, retry_mode="standard",
                      max_attempts=2)  # fmt: skip

# Said by every command that reaches AWS: AWS_PROFILE works for all of them; `scan` takes
# --profile, discovery and rotation read profile from [rotation.aws].
CREDENTIALS_HINT = (
    "Set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --profile for "
    "keyward scan, profile under [rotation.aws] for discovery and rotation)"
)


class AwsClients:
    """Builds and caches boto3 clients for one use (a preset) and one set of settings.

    One boto3 session per account, created on first use (for another account: by assuming
    its role); clients are cached per (service, region, account) for this object's lifetime.
    Creating sessions and clients is serialised by a lock (boto3 sessions are not thread-safe;
    the clients they make are). ``clock`` is botocore's time source for refreshing assumed
    credentials (tests move it forward)."""

    def __init__(
        self,
        settings: AwsSettings | None = None,
        preset: ClientPreset = ROTATE,
        *,
        session: Any = None,
        pool_size: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or AwsSettings()
        self.preset = preset
        self.account: Account = HOME  # the account a client is for unless told otherwise
        self._pool_size = pool_size
        self._clock = clock
        # shared by every view of this factory (for_account): clients, sessions (None: the
        # home account's, maybe a boto3 Session the caller built), account ids, the lock
        self._cache: dict[tuple[AwsService, str | None, Account], Any] = {}
        self._sessions: dict[Account | None, Any] = {} if session is None else {None: session}
        self._ids: dict[Account, str | None] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        where = "" if self.account is HOME else f", account={self.account.label!r}"
        return f"AwsClients({self.settings!r}, preset={self.preset.name!r}{where})"

    def for_account(self, account: Account) -> AwsClients:
        """A view of this factory whose clients are for ``account`` unless a call names
        another; it shares the clients, sessions and assumed roles already built."""
        view = copy.copy(self)
        view.account = account
        return view

    def resolve(self, account_id: str | None) -> Account:
        """The :class:`Account` a resource of AWS account ``account_id`` is reached through:
        the ``[aws.accounts]`` entry with that id, keyward's own account when it is that id
        (``sts:GetCallerIdentity``: when that fails, its failure is raised, exit 3), this
        view's account for ``None``. Any other id is a :class:`ConfigError`: keyward never
        acts in an account it was not told how to reach, nor with the wrong account's
        credentials."""
        if account_id is None:
            return self.account
        for known in self.settings.accounts:
            if known.id == account_id:
                return known
        home = home_account(self.settings.accounts)
        own = self.account_id(home, strict=True)
        if own == account_id:
            return home
        raise ConfigError(
            f"AWS account {account_id} is not in [aws.accounts], and keyward's own account is "
            f"{own}",
            hint=f'Add [aws.accounts.NAME] with role_arn = "arn:aws:iam::{account_id}:role/..." '
            "for the role keyward assumes there",
        )

    # ------------------------------------------------------------------ building
    def botocore_config(self) -> Any:
        """The ``botocore.config.Config`` of the preset, with the settings' overrides."""
        from botocore.config import Config as BotoConfig

        s, p = self.settings, self.preset
        retries: dict[str, Any] = {"mode": s.retry_mode or p.retry_mode}
        attempts = s.max_attempts if s.max_attempts is not None else p.max_attempts
        if attempts is not None:
            retries["max_attempts"] = attempts
        kwargs: dict[str, Any] = {}
        if self._pool_size is not None:
            kwargs["max_pool_connections"] = max(10, self._pool_size)
        return BotoConfig(
            connect_timeout=s.connect_timeout or p.connect_timeout,
            read_timeout=s.read_timeout or p.read_timeout,
            retries=retries,
            user_agent_extra="keyward",
            **kwargs,
        )

    def session(self, account: Account = HOME) -> Any:
        """The boto3 session for ``account``: the home account's is built from the profile,
        another's by assuming its role (raises the ``sts:AssumeRole`` failure, exit 3)."""
        if account.role_arn is None:
            return self._home_session()
        with self._lock:
            session = self._sessions.get(account)
            if session is None:
                session = self._assume(account)
                self._sessions[account] = session
            return session

    def _home_session(self) -> Any:
        with self._lock:
            if None not in self._sessions:
                import boto3
                import botocore.exceptions

                try:
                    self._sessions[None] = boto3.session.Session(profile_name=self.settings.profile)
                except botocore.exceptions.ProfileNotFound:
                    raise ConfigError(
                        f"The AWS profile {self.settings.profile!r} does not exist",
                        hint="Check --profile, AWS_PROFILE or profile in [rotation.aws] "
                        "against ~/.aws/config",
                    ) from None
            return self._sessions[None]

    def _assume(self, account: Account) -> Any:
        """A boto3 session whose credentials are ``account``'s role, assumed now and again
        before they expire."""
        import boto3
        import botocore.session
        from botocore.credentials import (
            CredentialProvider,
            CredentialResolver,
            RefreshableCredentials,
        )

        assert account.role_arn is not None
        home = self._home_session()
        sts = home.client(
            AwsService.STS.value,
            region_name=self.settings.region or home.region_name or "us-east-1",
            **self._client_kwargs(),
        )
        params: dict[str, Any] = {
            "RoleArn": account.role_arn,
            "RoleSessionName": account.session_name,
        }
        if account.external_id:
            params["ExternalId"] = account.external_id

        def fetch() -> dict[str, Any]:
            try:
                creds = sts.assume_role(**params)["Credentials"]
            except Exception as exc:
                raise _assume_error(exc, account) from None
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": _iso(creds["Expiration"]),  # botocore parses it back
            }

        first = fetch()
        extra: dict[str, Any] = {} if self._clock is None else {"time_fetcher": self._clock}
        credentials = RefreshableCredentials(
            first["access_key"],
            first["secret_key"],
            first["token"],
            datetime.fromisoformat(first["expiry_time"]),
            refresh_using=fetch,
            method="keyward-assume-role",
            **extra,
        )

        class Role(CredentialProvider):  # type: ignore[misc]
            METHOD = "keyward-assume-role"

            def load(self) -> Any:
                return credentials

        core = botocore.session.Session(profile=self.settings.profile)
        core.register_component("credential_provider", CredentialResolver([Role()]))
        return boto3.session.Session(botocore_session=core, region_name=home.region_name)

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"config": self.botocore_config()}
        if self.settings.endpoint_url:
            kwargs["endpoint_url"] = self.settings.endpoint_url
        return kwargs

    def client(
        self, service: AwsService, region: str | None = None, *, account: Account | None = None
    ) -> Any:
        """A boto3 client for ``service`` in ``region`` (default: the settings' or the
        profile's region) and ``account`` (default: this view's), cached."""
        service = AwsService(service)  # also a plain name (tests, plugins outside keyward)
        account = self.account if account is None else account
        region = region or self.settings.region
        key = (service, region, account)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                session = self.session(account)
                cached = self._build(session, service, region)
                self._cache[key] = cached
            return cached

    def with_credentials(
        self, service: AwsService, credentials: AwsCredentials, region: str | None = None
    ) -> Any:
        """A fresh, uncached client that signs with ``credentials`` only (never the profile's
        credentials): to prove a new key works, or to verify a found one."""
        import boto3

        with self._lock:
            session = boto3.session.Session(
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
            )
            return self._build(session, AwsService(service), region or self.settings.region)

    def _build(self, session: Any, service: AwsService, region: str | None) -> Any:
        """``session.client(...)``; a malformed region or endpoint URL is a ConfigError
        naming the setting (botocore checks both offline, when the client is made)."""
        import botocore.exceptions

        try:
            return session.client(service.value, region_name=region, **self._client_kwargs())
        except botocore.exceptions.InvalidRegionError:
            raise ConfigError(
                f"{region!r} is not an AWS region name",
                hint="Use a name such as eu-west-1 (--region, AWS_REGION or AWS_DEFAULT_REGION, "
                "or region in [rotation.aws])",
            ) from None
        except ValueError as exc:
            if "endpoint" not in str(exc).lower():
                raise
            url = self.settings.endpoint_url
            where = (
                f"endpoint_url {url!r} in [rotation.aws]"
                if url
                else "the endpoint URL from AWS_ENDPOINT_URL (or the AWS config file)"
            )
            raise ConfigError(
                f"{where[0].upper()}{where[1:]} is not a URL",
                hint="Use a URL such as https://host:4566, or unset it to use AWS itself",
            ) from None

    # ---------------------------------------------------------------- questions
    def default_region(self) -> str | None:
        """The settings' region, else the profile's (``AWS_DEFAULT_REGION``, config file)."""
        return self.settings.region or self.session().region_name or None

    def account_id(self, account: Account = HOME, *, strict: bool = False) -> str | None:
        """``account``'s id: configured, else ``sts:GetCallerIdentity`` (no permission needed;
        answered once). When that fails: ``None`` (the caller treats the account as unknown),
        or with ``strict`` the failure itself (no credentials, rejected, unreachable: exit 3)."""
        if account.id is not None:
            return account.id
        with self._lock:
            if self._ids.get(account) is not None:
                return self._ids[account]
        try:
            with aws_errors("sts:GetCallerIdentity", f"account {account.label}"):
                found = (
                    self.client(AwsService.STS, account=account)
                    .get_caller_identity()
                    .get("Account")
                )
        except KeywardError:
            if strict:
                raise
            found = None
        with self._lock:
            self._ids[account] = str(found) if found else None
            return self._ids[account]

    def available_regions(self, service: AwsService) -> list[str]:
        """Every region botocore knows for ``service`` (offline; enabled or not)."""
        return sorted(self.session().get_available_regions(AwsService(service).value))

    def require_credentials(self, family: ErrorFamily = PROVIDER_ERRORS) -> None:
        """Raise the "no credentials" error now, before any call, if the chain finds none."""
        import botocore.exceptions

        try:
            creds = self.session().get_credentials()
        except botocore.exceptions.BotoCoreError as exc:
            fault = _fault(
                Failure.NO_CREDENTIALS,
                "load credentials",
                "the credential chain",
                type(exc).__name__,
                f"Cannot load AWS credentials ({_brief(exc)})",
                "Fix the profile or credential settings",
            )
            raise family.error(fault) from None
        if creds is None:
            fault = _fault(
                Failure.NO_CREDENTIALS,
                "load credentials",
                "the credential chain",
                "NoCredentials",
                "No AWS credentials found",
                CREDENTIALS_HINT,
            )
            raise family.error(fault)


# ---------------------------------------------------------------------- error translation
_REJECTED = frozenset(
    {
        "UnrecognizedClientException",  # also an opt-in region that is not enabled
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "AuthFailure",
    }
)
_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "KMSAccessDeniedException",
    }
)
_THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
        "TooManyUpdates",  # SSM: concurrent updates of one parameter
    }
)
_NOT_FOUND = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchEntity",
        "NoSuchEntityException",
        # SSM Parameter Store (400s)
        "ParameterNotFound",
        "ParameterVersionNotFound",
        "ParameterVersionLabelNotFound",
    }
)
_CONFLICT = frozenset(
    {
        "ResourceExistsException",
        "PreconditionFailedException",
        "ResourceConflictException",
        "ConcurrentModification",
        "LimitExceeded",
        "InvalidRequestException",
        # SSM Parameter Store
        "ParameterAlreadyExists",
        "ParameterMaxVersionLimitExceeded",
        "ParameterLimitExceeded",
    }
)
_UNAVAILABLE = frozenset(
    {
        "InternalServiceError",
        "InternalFailure",
        "InternalServiceErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceException",
    }
)
_CREDENTIAL_ERRORS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "NoAuthTokenError",
    "TokenRetrievalError",
    "SSOError",
)


def _iso(value: Any) -> str:
    """An STS ``Expiration`` (a datetime from botocore, a string from a stub) as ISO 8601."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _assume_error(exc: BaseException, account: Account) -> BaseException:
    """What a failed ``sts:AssumeRole`` into ``account`` raises: a keyward error naming the
    account and the role (exit 3 when denied or unreachable), else ``exc`` itself."""
    resource = f"role {account.role_arn} of account {account.label}"
    fault = aws_fault(exc, "sts:AssumeRole", resource)
    if fault is None:
        return exc
    if fault.failure in (Failure.DENIED, Failure.REJECTED):
        fault = replace(
            fault,
            hint="Allow sts:AssumeRole on this role for the identity keyward runs with, and "
            "let the role's trust policy trust that identity"
            + (" with this external_id" if account.external_id else ""),
        )
    return PROVIDER_ERRORS.error(fault)


def _brief(exc: BaseException) -> str:
    from keyward.core.logging import scrub

    text = str(exc).strip()
    return scrub(text.splitlines()[0][:200]) if text else type(exc).__name__


def _endpoint(url: object) -> str | None:
    """The endpoint of a request URL, as safe to show: scheme, host and port only (no user
    info, no query of a pre-signed URL, no request path: botocore reports the full URL of the
    call that failed, ``/2015-03-31/functions/NAME`` for Lambda)."""
    if not isinstance(url, str) or not url:
        return None
    found = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/@?#]*@)?([^/?#]*)", url)
    if not found:
        return None
    return f"{found.group(1)}{found.group(2)}/"


def _fault(
    failure: Failure,
    action: str,
    resource: str,
    code: str,
    message: str,
    hint: str | None,
    *,
    detail: str = "",
    endpoint: str | None = None,
) -> ProviderFault:
    return ProviderFault("AWS", failure, action, resource, code, message, hint, detail, endpoint)


def _client_error_parts(response: Any) -> tuple[str, str, int]:
    """(code, message, HTTP status) of an error response (a ClientError's, or the last one a
    waiter saw), with an XML error body in a JSON API (seen with moto) parsed and an unparsed
    401/403 counted as AccessDenied."""
    from keyward.core.logging import scrub

    error = response.get("Error", {}) or {}
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", "")).strip()
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode", 0) or 0)
    if message.startswith("<"):
        found = re.search(r"<Code>(.*?)</Code>", message)
        if found:
            code = found.group(1).strip()
        text = re.search(r"<Message>(.*?)</Message>", message, re.S)
        message = text.group(1).strip() if text else ""
    if code.isdigit() and status in (401, 403):
        code = "AccessDenied"
    return code, scrub(message)[:300], status


def _classify(code: str, status: int) -> Failure:
    if code in _REJECTED:
        return Failure.REJECTED
    if code in _DENIED or status in (401, 403):
        return Failure.DENIED
    if code in _THROTTLED or status == 429:
        return Failure.THROTTLED
    if code in _NOT_FOUND or status == 404:
        return Failure.NOT_FOUND
    if code in _CONFLICT or status in (409, 412):
        return Failure.CONFLICT
    if code in _UNAVAILABLE or status >= 500:
        return Failure.UNAVAILABLE
    return Failure.FAILED


def aws_fault(exc: BaseException, action: str, resource: str) -> ProviderFault | None:
    """Classify a boto3/botocore exception raised by ``action`` on ``resource``; ``None``
    when ``exc`` is not one (botocore not even loaded means it cannot be)."""
    if "botocore.exceptions" not in sys.modules:
        return None
    import botocore.exceptions as bx

    response: Any = None
    if isinstance(exc, bx.ClientError):
        response = exc.response
    elif isinstance(exc, bx.WaiterError):
        # A waiter polls with an ordinary call (function_updated_v2 calls lambda:GetFunction)
        # and gives up when that call fails: the failure is that call's, e.g. a denial.
        last = getattr(exc, "last_response", None)
        if isinstance(last, dict) and last.get("Error"):
            response = last
    if response is not None:
        code, detail, status = _client_error_parts(response)
        failure = _classify(code, status)
        suffix = f" ({code}: {detail})" if detail else f" ({code})"
        message, hint = {
            Failure.REJECTED: (
                f"AWS denied {action} on {resource}{suffix}",
                "Check the credentials keyward runs with: the key is unknown, inactive or "
                "expired, or its secret is wrong",
            ),
            Failure.DENIED: (
                f"AWS denied {action} on {resource}{suffix}",
                f"Allow {action} for this resource in the IAM policy keyward runs with",
            ),
            Failure.THROTTLED: (
                f"AWS kept throttling {action} on {resource}{suffix}",
                "Retry later or lower the request rate (max_attempts in [rotation.aws] or "
                "AWS_MAX_ATTEMPTS sets the retries)",
            ),
            Failure.UNAVAILABLE: (
                f"AWS is unavailable for {action} on {resource}{suffix}",
                "Retry later",
            ),
            Failure.NOT_FOUND: (f"{resource} does not exist ({action}{suffix})", None),
            Failure.CONFLICT: (f"{action} on {resource} was refused{suffix}", None),
            Failure.FAILED: (f"{action} on {resource} failed{suffix}", None),
        }[failure]
        return _fault(failure, action, resource, code, message, hint, detail=detail)
    if not isinstance(exc, bx.BotoCoreError):
        return None
    name = type(exc).__name__
    credential_errors = tuple(
        cls for n in _CREDENTIAL_ERRORS if isinstance(cls := getattr(bx, n, None), type)
    )
    if isinstance(exc, bx.NoCredentialsError):
        return _fault(
            Failure.NO_CREDENTIALS,
            action,
            resource,
            "NoCredentials",
            f"No AWS credentials found for {action} on {resource}",
            CREDENTIALS_HINT,
        )
    if isinstance(exc, credential_errors):
        return _fault(
            Failure.NO_CREDENTIALS,
            action,
            resource,
            name,
            f"Cannot load AWS credentials for {action} on {resource} ({_brief(exc)})",
            "Fix the profile or credential settings",
        )
    if isinstance(exc, bx.ConnectionError | bx.HTTPClientError):
        kwargs = getattr(exc, "kwargs", None) or {}
        endpoint = _endpoint(kwargs.get("endpoint_url"))
        where = f" at {endpoint}" if endpoint else ""
        return _fault(
            Failure.UNAVAILABLE,
            action,
            resource,
            name,
            f"Cannot reach AWS{where} for {action} on {resource} ({name})",
            "Check the network, the region and the endpoint (AWS_ENDPOINT_URL or "
            "endpoint_url in [rotation.aws]), then retry",
            endpoint=endpoint,
        )
    # Anything else (a waiter that gave up, a parameter botocore rejected): the class name
    # only, since some messages quote the parameters, values included.
    return _fault(Failure.FAILED, action, resource, name, f"{action} on {resource} failed ({name})",
                  None)  # fmt: skip


def translate_aws_error(
    exc: BaseException, action: str, resource: str, family: ErrorFamily = PROVIDER_ERRORS
) -> KeywardError | None:
    """The keyward error for a failed AWS call ``action`` (``iam:CreateAccessKey``) on
    ``resource``, or ``None`` when ``exc`` is not an AWS client error."""
    fault = aws_fault(exc, action, resource)
    return family.error(fault) if fault is not None else None


@contextmanager
def aws_errors(action: str, resource: str, family: ErrorFamily = PROVIDER_ERRORS) -> Iterator[None]:
    """The boundary: a botocore exception raised inside leaves as a keyward error (the
    original stays in ``__context__``, not in the message). Anything else passes unchanged."""
    try:
        yield
    except Exception as exc:
        err = translate_aws_error(exc, action, resource, family)
        if err is None:
            raise
        raise err from None
