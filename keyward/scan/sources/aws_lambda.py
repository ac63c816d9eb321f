"""Live AWS Lambda function configurations: environment variables and, optionally, code.

Only ``keyward scan --aws-lambda`` imports this module. Clients come from
:class:`keyward.providers.aws.AwsClients` with the scan preset, and every call goes through its
error boundary (:func:`keyward.providers.aws.aws_errors`); both are imported inside functions,
so importing this module loads neither boto3 nor botocore.

* Every function of every selected region is listed with the ``ListFunctions`` paginator;
  regions are listed in parallel by a bounded thread pool (clients are created up front in the
  calling thread: boto3 sessions are not thread-safe, clients are).
* Each environment variable becomes its own chunk (``NAME=value``), whose location names the
  function ARN, the region and the variable.
* Functions with environment variables but no customer managed KMS key (``KMSKeyArn``) get a
  separate low-severity finding, :data:`~keyward.scan.postpass.KMS_RULE_ID`, and an access key
  id and its secret key
  in two variables become one paired finding: both in the post-pass
  (:class:`~keyward.scan.postpass.LambdaFindings`), after matching.
* ``include_code`` downloads each deployment package (size-capped) through an injectable
  :data:`Downloader` and scans the zip's files in memory.
* ``accounts`` (``--account``, ``--all-accounts``): each account's functions are listed with
  its assumed role's clients, in its own regions (``regions`` in ``[aws.accounts.NAME]``)
  unless ``--region`` / ``--all-regions`` say otherwise; every (account, region) pair is one
  listing in the same pool. Each location names the function's account id.
* AccessDenied for a region or a function is a warning, not a crash; so is an account whose
  role cannot be assumed (the others are scanned). Throttling is retried by botocore's
  adaptive retry mode (the scan preset). Missing credentials, or nothing reachable at all,
  raise a :class:`~keyward.core.errors.BackendError` (exit 3).
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keyward.core.config import DEFAULT_MAX_FILE_SIZE
from keyward.core.errors import BackendError, ConfigError, Failure, KeywardError, ProviderFault
from keyward.scan.model import Chunk, Location, SourceKind
from keyward.scan.postpass import FunctionRecord, LambdaFindings
from keyward.scan.sources.base import ChunkWork, PoolPolicy, Skipped
from keyward.scan.sources.files import decode

if TYPE_CHECKING:
    from keyward.providers.aws import AwsClients
    from keyward.providers.settings import Account
    from keyward.scan.rules import Rule

log = logging.getLogger(__name__)

DEFAULT_MAX_CODE_SIZE = 64 * 1024 * 1024  # zipped; Lambda's own limit for a direct upload is 50 MB
MAX_UNZIPPED_SIZE = 256 * 1024 * 1024  # Lambda's unzipped limit is 250 MB; guards against bombs
DEFAULT_WORKERS = 8


@dataclass(frozen=True, slots=True)
class LambdaOptions:
    """What to scan. Empty ``regions`` and no ``all_regions``: each account's own regions,
    else the session's default region. Empty ``accounts``: keyward's own account only."""

    regions: tuple[str, ...] = ()
    all_regions: bool = False
    profile: str | None = None
    accounts: tuple[Account, ...] = ()
    include_code: bool = False
    all_versions: bool = False  # published versions keep the environment they were built with
    max_code_size: int = DEFAULT_MAX_CODE_SIZE
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    workers: int = DEFAULT_WORKERS
    check_kms: bool = True


@dataclass(frozen=True, slots=True)
class CodePackage:
    """A deployment package to fetch: ``url`` is the pre-signed ``Code.Location``."""

    function_arn: str
    region: str
    url: str = field(repr=False)  # pre-signed: a short-lived credential
    size: int | None  # CodeSize from the configuration, when known


# (package, cap in bytes) -> the zip bytes; raise CodeTooLarge or OSError on failure.
Downloader = Callable[[CodePackage, int], bytes]
# (service name, region) -> a boto3 client
ClientFactory = Callable[[str, str], Any]


class CodeTooLarge(Exception):
    """The deployment package is larger than the configured cap."""


def download_package(package: CodePackage, cap: int) -> bytes:
    """Fetch a pre-signed ``Code.Location`` URL with the standard library, at most ``cap`` bytes."""
    import http.client
    import urllib.request

    if package.size is not None and package.size > cap:
        raise CodeTooLarge(f"{package.size} bytes")
    if not package.url.startswith(("https://", "http://")):
        raise OSError("the code location is not an HTTP(S) URL")
    try:
        with urllib.request.urlopen(package.url, timeout=60) as resp:
            data: bytes = resp.read(cap + 1)
    except (http.client.HTTPException, ValueError) as exc:  # InvalidURL quotes the URL: dropped
        raise OSError(f"bad response or code location ({type(exc).__name__})") from None
    if len(data) > cap:
        raise CodeTooLarge(f"more than {cap} bytes")
    return data


@dataclass(slots=True)
class LambdaSource:
    """Yields one chunk per environment variable (and per code file with ``include_code``).

    Clients come from :class:`keyward.providers.aws.AwsClients` (scan preset, the profile of
    ``options.profile``); ``session`` is a ``boto3.Session`` to build them from instead, and
    ``client_factory`` and ``downloader`` are seams for tests and for callers with their own
    client setup.
    """

    options: LambdaOptions = field(default_factory=LambdaOptions)
    session: Any = None
    client_factory: ClientFactory | None = None
    downloader: Downloader = download_package
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    functions: list[FunctionRecord] = field(default_factory=list)
    regions_scanned: list[str] = field(default_factory=list)
    _aws: AwsClients | None = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------------ set-up
    def _clients(self) -> AwsClients:
        if self._aws is None:
            from keyward.providers.aws import SCAN, AwsClients
            from keyward.providers.settings import AwsSettings

            self._aws = AwsClients(
                AwsSettings(profile=self.options.profile),
                SCAN,
                session=self.session,
                pool_size=self.options.workers,
            )
        return self._aws

    def _client(self, service: str, region: str, account: Account | None = None) -> Any:
        if self.client_factory is not None:
            return self.client_factory(service, region)
        from keyward.providers.aws import AwsService

        if account is None:
            return self._clients().client(AwsService(service), region)
        return self._clients().client(AwsService(service), region, account=account)

    def _accounts(self) -> tuple[Account, ...]:
        if self.options.accounts:
            return self.options.accounts
        from keyward.providers.settings import HOME

        return (HOME,)

    def _check_credentials(self) -> None:
        if self.client_factory is not None:
            return
        self._clients().require_credentials()

    def regions(self, account: Account | None = None) -> list[str]:
        """The regions to scan (in ``account``: its own unless the options name some), in a
        stable order."""
        if self.options.regions:
            return list(dict.fromkeys(self.options.regions))
        if self.options.all_regions:
            return self._all_regions(account)
        if account is not None and account.regions:
            return list(account.regions)
        region = self._clients().default_region() if self.client_factory is None else None
        if not region:
            raise ConfigError(
                "No AWS region is configured for the Lambda scan",
                hint="Pass --region R (repeatable) or --all-regions, or set AWS_DEFAULT_REGION "
                "(or regions in [aws.accounts.NAME])",
            )
        return [str(region)]

    def _all_regions(self, account: Account | None = None) -> list[str]:
        """Enabled regions (of ``account``) from EC2 ``DescribeRegions``; else botocore's list
        for Lambda."""
        from keyward.providers.aws import aws_errors

        home = "us-east-1"
        if self.client_factory is None:
            home = self._clients().default_region() or home
        try:
            ec2 = self._client("ec2", home, account)
            with aws_errors("ec2:DescribeRegions", f"region {home}"):
                resp = ec2.describe_regions(AllRegions=False)
            names = sorted(r["RegionName"] for r in resp.get("Regions", []))
            if names:
                return names
        except KeywardError as err:
            if err.fault is None or err.fault.failure is Failure.NO_CREDENTIALS:
                raise
            where = f" of account {account.label}" if account is not None and account.id else ""
            self.warnings.append(
                f"cannot list enabled regions{where} ({err.fault.code}); using every region "
                "botocore knows for Lambda"
            )
        from keyward.providers.aws import AwsService

        return self._clients().available_regions(AwsService.LAMBDA)

    # ------------------------------------------------------------------ scanning
    def _reach(self, account: Account) -> tuple[list[str], dict[str, Any]] | str:
        """``account``'s regions and a Lambda client for each, or a sentence saying why the
        account is skipped: its role cannot be assumed. Anything else raises."""
        try:
            regions = self.regions(account)
            return regions, {r: self._client("lambda", r, account) for r in regions}
        except KeywardError as err:
            fault = err.fault
            if fault is None or fault.action != "sts:AssumeRole":
                raise
            return f"cannot assume its role {account.role_arn}: {_why(fault)}"

    def chunks(self) -> Iterator[Chunk]:
        self._check_credentials()
        accounts = self._accounts()
        several = len(accounts) > 1 or accounts[0].role_arn is not None
        jobs: list[tuple[Account, str, Any]] = []  # (account, region, client)
        for account in accounts:
            reached = self._reach(account)
            if isinstance(reached, str):
                self.warnings.append(f"account {account.label} skipped: {reached}")
                continue
            regions, clients = reached
            jobs.extend((account, r, clients[r]) for r in regions)
        if not jobs:
            raise BackendError(
                f"No account could be scanned for Lambda functions ({self.warnings[-1]})",
                hint="Check the role_arn of each account in [aws.accounts], sts:AssumeRole for "
                "keyward's identity and the roles' trust policies",
            )
        failures: dict[tuple[Account, str], str] = {}
        listed: dict[tuple[Account, str], list[dict[str, Any]]] = {}
        workers = max(1, min(self.options.workers, len(jobs)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyward-lambda") as pool:
            futures = {
                (a, r): pool.submit(_list_functions, c, self.options.all_versions)
                for a, r, c in jobs
            }
            for account, region, _client in jobs:
                where = f"{region} of account {account.label}" if several else region
                outcome = _outcome(futures[account, region], where)
                if isinstance(outcome, str):
                    failures[account, region] = outcome
                    self.warnings.append(f"Lambda in {where} skipped: {outcome}")
                else:
                    listed[account, region] = outcome
        if failures and not listed:
            (account, region), why = next(iter(failures.items()))
            where = f"{region} of account {account.label}" if several else region
            raise BackendError(
                f"No region could be scanned for Lambda functions ({where}: {why})",
                hint="Check the credentials, the permissions (lambda:ListFunctions) and "
                "AWS_ENDPOINT_URL",
            )
        self.regions_scanned = list(dict.fromkeys(r for _a, r in listed))
        code_jobs: list[tuple[FunctionRecord, Any]] = []
        for account, region, client in jobs:
            for conf in listed.get((account, region), ()):
                record = _record(conf, region)
                self.functions.append(record)
                yield from self._env_chunks(conf, record)
                if self.options.include_code:
                    if record.package_type != "Zip":
                        self.skipped.append(
                            Skipped(record.arn, "container image package (code not scanned)")
                        )
                    else:
                        code_jobs.append((record, client))
        if code_jobs:
            yield from self._code_chunks(code_jobs)

    def _env_chunks(self, conf: Mapping[str, Any], record: FunctionRecord) -> Iterator[Chunk]:
        env = conf.get("Environment") or {}
        error = env.get("Error")
        if error:
            self.warnings.append(
                f"environment of {record.arn} could not be read "
                f"({error.get('ErrorCode', 'error')}); check kms:Decrypt on its key"
            )
        for name, value in sorted((env.get("Variables") or {}).items()):
            if not isinstance(value, str) or not value:
                continue
            yield Chunk(
                text=f"{name}={value}",
                location=Location(
                    kind=SourceKind.LAMBDA,
                    resource=record.arn,
                    region=record.region,
                    variable=name,
                    account=record.account,
                ),
            )

    def _code_chunks(self, jobs: Sequence[tuple[FunctionRecord, Any]]) -> Iterator[Chunk]:
        """Fetch packages with a bounded pool, scanning each as it arrives (window-bounded)."""
        workers = max(1, self.options.workers)
        window = workers * 2
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyward-code") as pool:
            pending: list[tuple[FunctionRecord, Future[bytes | str]]] = []
            it = iter(jobs)
            while True:
                while len(pending) < window:
                    job = next(it, None)
                    if job is None:
                        break
                    pending.append((job[0], pool.submit(self._fetch_code, job[0], job[1])))
                if not pending:
                    break
                record, fut = pending.pop(0)
                data = fut.result()
                if isinstance(data, str):
                    self._code_problem(record, data)
                    continue
                yield from self._zip_chunks(record, data)

    def _fetch_code(self, record: FunctionRecord, client: Any) -> bytes | str:
        """The package bytes, or a sentence saying why not (never raises)."""
        from keyward.providers.aws import aws_errors

        try:
            with aws_errors("lambda:GetFunction", record.arn):
                resp = client.get_function(FunctionName=record.arn)
            code = resp.get("Code") or {}
            url = code.get("Location")
            if not url:
                return "skip:no code location (image or layer-only function)"
            package = CodePackage(record.arn, record.region, url, record.code_size)
            return self.downloader(package, self.options.max_code_size)
        except KeywardError as err:
            fault = err.fault
            code_ = fault.code if fault is not None else type(err).__name__
            if fault is not None and fault.failure in _DENIED:
                return f"warn:access denied to its code ({code_})"
            if fault is not None and fault.failure is Failure.UNAVAILABLE:
                return f"warn:cannot download its code ({code_})"
            return f"warn:cannot get its code ({code_})"
        except CodeTooLarge as exc:
            return f"skip:package larger than the code size cap ({exc})"
        except OSError as exc:
            return f"warn:cannot download its code ({_brief(exc)})"

    def _code_problem(self, record: FunctionRecord, message: str) -> None:
        kind, _, text = message.partition(":")
        if kind == "warn":  # in the report's warnings; listed with the skipped items too
            self.warnings.append(f"code of {record.arn} not scanned: {text}")
            self.skipped.append(Skipped(record.arn, text))
        else:
            self.skipped.append(Skipped(record.arn, text))

    def _zip_chunks(self, record: FunctionRecord, data: bytes) -> Iterator[Chunk]:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError):
            self.skipped.append(Skipped(record.arn, "deployment package is not a zip file", True))
            return
        total = 0
        with archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                what = f"{record.arn}:{info.filename}"
                if info.file_size > self.options.max_file_size:
                    self.skipped.append(
                        Skipped(what, f"larger than the file cap ({info.file_size})")
                    )
                    continue
                total += info.file_size
                if total > MAX_UNZIPPED_SIZE:
                    self.skipped.append(
                        Skipped(record.arn, "unzipped package exceeds 256 MiB; rest skipped", True)
                    )
                    return
                try:
                    raw = archive.read(info)
                except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                    self.skipped.append(Skipped(what, f"cannot unzip: {_brief(exc)}"))
                    continue
                decoded = decode(raw)
                if decoded is None:
                    self.skipped.append(Skipped(what, "binary file"))
                    continue
                text, _ = decoded
                yield Chunk(
                    text=text,
                    location=Location(
                        kind=SourceKind.LAMBDA,
                        resource=record.arn,
                        region=record.region,
                        path=info.filename,
                        account=record.account,
                    ),
                )

    # ------------------------------------------------------------------ as a Source
    @property
    def pool(self) -> PoolPolicy | None:
        return None  # clients and sessions stay in this process; listing is threaded

    def work(self) -> Iterator[ChunkWork]:
        if self.options.workers < 1:
            raise ConfigError("The number of Lambda scan workers must be at least 1")
        for chunk in self.chunks():
            yield ChunkWork(chunk)
        log.debug(
            "listed %d Lambda functions in %d regions",
            len(self.functions),
            len(self.regions_scanned),
        )

    def post_pass(self, rules: Sequence[Rule]) -> LambdaFindings:
        """Key pairs across variables, then the functions' configuration findings."""
        return LambdaFindings(rules, self.functions, check_kms=self.options.check_kms)


# ---------------------------------------------------------------------- helpers
def _list_functions(client: Any, all_versions: bool = False) -> list[dict[str, Any]]:
    paginator = client.get_paginator("list_functions")
    out: list[dict[str, Any]] = []
    params = {"FunctionVersion": "ALL"} if all_versions else {}
    for page in paginator.paginate(**params):
        out.extend(page.get("Functions", []))
    return out


# Failures that skip one region (or one function's code) with a warning.
_DENIED = frozenset({Failure.DENIED, Failure.REJECTED})


def _outcome(fut: Future[list[dict[str, Any]]], where: str) -> list[dict[str, Any]] | str:
    """The region's functions, or a sentence saying why the region was skipped; no
    credentials raise (exit 3), as everywhere."""
    from keyward.providers.aws import aws_errors

    try:
        with aws_errors("lambda:ListFunctions", f"region {where}"):
            return fut.result()
    except KeywardError as err:
        fault = err.fault
        if fault is None or fault.failure is Failure.NO_CREDENTIALS:
            raise
        return _why(fault)


def _why(fault: ProviderFault) -> str:
    from keyward.providers.errors import skip_reason

    return skip_reason(fault)


def _record(conf: Mapping[str, Any], region: str) -> FunctionRecord:
    env = conf.get("Environment") or {}
    arn = str(conf.get("FunctionArn", ""))
    parts = arn.split(":")
    return FunctionRecord(
        arn=arn,
        name=str(conf.get("FunctionName", "")),
        region=region,
        variables=len(env.get("Variables") or {}),
        account=parts[4] if len(parts) > 4 and parts[4].isdigit() else None,
        kms_key_arn=conf.get("KMSKeyArn") or None,
        code_size=conf.get("CodeSize"),
        package_type=str(conf.get("PackageType") or "Zip"),
        version=str(conf.get("Version") or "$LATEST"),
    )


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
