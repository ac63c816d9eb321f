"""``keyward scan --targets FILE [--shard K/N | --shards N]``: many targets, one process's share.

Each target of this shard (:mod:`keyward.scan.targets`) is scanned on its own, one after the
other (each scan uses every core), and with ``--record`` recorded under the target's own name
as soon as it is done: a full scan of that target resolves only that target's findings, so
shards never resolve each other's, and a target that failed (a clone refused, a path gone) is
not recorded at all: its findings stay as they were. The others go on.

The report holds every target's findings, each path prefixed by its target's path or URL.
Exit code: 3 (or 2) when a target could not be scanned, else 1 when there are findings
(unless ``--exit-zero``), else 0.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from keyward.core.errors import ExitCode, KeywardError

if TYPE_CHECKING:
    from keyward.core.config import Config
    from keyward.inventory.db import Database
    from keyward.providers.aws import AwsClients
    from keyward.providers.settings import Account
    from keyward.scan.engine import Engine
    from keyward.scan.model import Finding
    from keyward.scan.request import ScanRequest
    from keyward.scan.result import ScanResult
    from keyward.scan.targets import Shard, Target


@dataclass(frozen=True, slots=True)
class TargetOptions:
    """What ``keyward scan`` options say about the targets of a file."""

    all_branches: bool = False  # git targets: every branch and tag, not just the default branch
    profile: str | None = None  # aws-lambda targets
    include_code: bool = False
    all_versions: bool = False
    max_code_size: int | None = None
    check_kms: bool = True
    record: bool = False
    clone_dir: Path | None = None  # where remote repositories are cloned (default: TMPDIR)


def target_request(
    base: ScanRequest,
    target: Target,
    opts: TargetOptions,
    where: Path | None = None,
    account: Account | None = None,
) -> ScanRequest:
    """The scan request of one target: ``base`` (engine, files options) for its source.

    ``where`` is the local repository of a remote git target (its clone); ``account`` the
    AWS account of an ``aws-lambda:`` target, resolved by :class:`LambdaAccounts`."""
    from keyward.scan.targets import TargetKind

    match target.kind:
        case TargetKind.FILES:
            return dataclasses.replace(base, paths=(Path(target.where),))
        case TargetKind.GIT:
            repo = where if where is not None else Path(target.where)
            return dataclasses.replace(
                base, paths=(repo,), git=True, all_branches=opts.all_branches
            )
        case TargetKind.AWS_LAMBDA:
            assert target.region is not None
            return dataclasses.replace(
                base,
                aws_lambda=True,
                regions=(target.region,),
                accounts=(account,) if account is not None else (),
                profile=opts.profile,
                include_code=opts.include_code,
                all_versions=opts.all_versions,
                max_code_size=opts.max_code_size,
                check_kms=opts.check_kms,
            )


class LambdaAccounts:
    """The AWS account of each ``aws-lambda:ACCOUNT/REGION`` target.

    A name of ``[aws.accounts]``, or an id: the configured account with that id (its role
    assumed), else keyward's own account when its credentials are in it
    (``sts:GetCallerIdentity``, asked once), else one sentence (exit 2): keyward never scans
    an account it was not told how to reach."""

    def __init__(self, cfg: Config, profile: str | None) -> None:
        self.cfg = cfg
        self.profile = profile
        self._clients: AwsClients | None = None

    def resolve(self, target: Target) -> Account:
        from keyward.core.errors import ConfigError
        from keyward.providers.settings import ACCOUNT_ID, find_account

        assert target.account is not None
        clients = self._aws()
        if not ACCOUNT_ID.match(target.account):
            found = find_account(clients.settings.accounts, target.account)
            if found is None:
                known = ", ".join(a.name for a in clients.settings.accounts) or "none"
                raise ConfigError(
                    f"No AWS account {target.account!r} in [aws.accounts] (configured: {known})",
                    hint="Name a configured account, or give its 12-digit id",
                )
            return found
        if not any(a.id == target.account for a in clients.settings.accounts):
            clients.require_credentials()  # none at all: exit 3, as for any Lambda scan
        return clients.resolve(target.account)

    def _aws(self) -> AwsClients:
        if self._clients is None:
            from keyward.providers.aws import SCAN, AwsClients
            from keyward.providers.settings import AwsSettings, aws_accounts

            settings = AwsSettings(profile=self.profile, accounts=aws_accounts(self.cfg))
            self._clients = AwsClients(settings, SCAN)
        return self._clients


def relocated(finding: Finding, target: Target) -> Finding:
    """The finding with its path under the target's (for a report of many targets)."""
    from keyward.scan.targets import TargetKind, safe_url

    loc = finding.location
    if target.kind is TargetKind.AWS_LAMBDA or not loc.path:
        return finding
    root = safe_url(target.where).rstrip("/")
    return finding.with_(location=dataclasses.replace(loc, path=f"{root}/{loc.path}"))


def scan_targets(
    targets_file: Path,
    shard: Shard,
    base: ScanRequest,
    opts: TargetOptions,
    *,
    cfg: Config,
    engine: Engine,
    verify: Callable[[ScanResult], None] | None,
    render: Callable[[ScanResult], None],
    exit_zero: bool,
) -> int:
    """Scan (and record) this shard's targets; return the exit code."""
    from keyward.scan.result import ScanResult
    from keyward.scan.targets import TargetKind, clone, read_targets

    everything = read_targets(targets_file)  # a bad file is one usage error, nothing scanned
    mine = shard.select(everything)
    click.echo(f"keyward: shard {shard}: {len(mine)} of {len(everything)} targets", err=True)
    db = _open_inventory(cfg) if opts.record else None  # unreachable: exit 3 before scanning
    accounts = LambdaAccounts(cfg, opts.profile)
    combined = ScanResult(min_confidence=base.min_confidence)
    failed: list[int] = []
    try:
        for target in mine:
            started = time.perf_counter()
            cloned = 0.0
            try:
                with ExitStack() as stack:
                    where = None
                    if target.remote:
                        where = stack.enter_context(
                            clone(target, all_branches=opts.all_branches, parent=opts.clone_dir)
                        )
                        cloned = time.perf_counter() - started
                    account = None
                    if target.kind is TargetKind.AWS_LAMBDA:
                        account = accounts.resolve(target)
                    request = target_request(base, target, opts, where, account)
                    result = _scan_one(request, engine)
                    summary = ""
                    if db is not None:
                        summary = _record(db, result, request, target, base, cfg)
            except KeywardError as err:
                failed.append(int(err.exit_code))
                click.echo(f"keyward: {target.name} not scanned: {err.diagnostics()}", err=True)
                continue
            found = len(result.reported)
            took = f"{time.perf_counter() - started:.1f} s" + (
                f", clone {cloned:.1f} s" if target.remote else ""
            )
            click.echo(
                f"keyward: {target.name}: {found} finding{'' if found == 1 else 's'}{summary} "
                f"in {took}",
                err=True,
            )
            result.findings = [relocated(f, target) for f in result.findings]
            combined.extend(result)
        combined.recount()
        if verify is not None:
            verify(combined)
        render(combined)
    finally:
        if db is not None:
            db.close()
    if failed:
        click.echo(f"keyward: {len(failed)} of {len(mine)} targets not scanned", err=True)
        return max(failed)
    if combined.reported and not exit_zero:
        return int(ExitCode.FINDINGS)
    return int(ExitCode.OK)


def _scan_one(request: ScanRequest, engine: Engine) -> ScanResult:
    from keyward.scan.runner import run_scan

    return run_scan(request, engine=engine)


def _open_inventory(cfg: Config) -> Database:
    from keyward.inventory.db import open_database

    return open_database(cfg)


def _record(
    db: Database,
    result: ScanResult,
    request: ScanRequest,
    target: Target,
    base: ScanRequest,
    cfg: Config,
) -> str:
    """Record one target's findings under its name; a short summary for its line (and a
    sentence for each secret found leaked)."""
    from keyward.cli.compose import leak_policy, report_leaks
    from keyward.core.redaction import Fingerprinter
    from keyward.inventory.ownership import OwnershipResolver
    from keyward.inventory.recording import record_findings
    from keyward.inventory.service import default_actor

    summary = record_findings(
        db,
        result.confident,
        target.name,
        full=True,
        fingerprinter=Fingerprinter(base.engine.fingerprint_key),
        roots=list(result.roots or []),
        ownership=OwnershipResolver(blame=True),
        git_repo=request.repository if request.git else None,
        min_confidence=base.min_confidence,
        leak_policy=leak_policy(cfg),
    )
    report_leaks(cfg, summary.leaks, default_actor())
    deps = ""
    if request.aws_lambda:  # its functions' dependents too, as `discover aws-lambda` does
        from keyward.cli.discover import lambda_listings
        from keyward.inventory.dependents import record_dependents

        found = record_dependents(
            db, lambda_listings(request.accounts, request.regions, profile=request.profile)
        )
        for w in found.warnings:
            click.echo(f"keyward: warning: {w}", err=True)
        deps = (
            f"; dependents: {len(found.added)} added, {len(found.kept)} kept, "
            f"{len(found.missing)} missing"
        )
    return f" (recorded {summary.recorded}: {summary.new} new, {summary.resolved} resolved{deps})"


def refuse_with_targets(**given: object) -> None:
    """Options that name what to scan, or apply to one target only, make no sense with
    ``--targets``: one sentence naming them."""
    from keyward.core.errors import ConfigError

    clash = [name for name, value in given.items() if value]
    if clash:
        raise ConfigError(
            f"{', '.join(clash)} cannot be combined with --targets",
            hint="The targets file says what to scan; each target is recorded under its own name",
        )


def shard_setting(shard: str | None, shards: int | None) -> Shard:
    """``--shard K/N``, or ``--shards N`` with K from ``JOB_COMPLETION_INDEX``; else 0/1."""
    from keyward.core.errors import ConfigError
    from keyward.scan.targets import Shard

    if shard is not None and shards is not None:
        raise ConfigError("Give either --shard K/N or --shards N, not both")
    if shard is not None:
        return Shard.parse(shard)
    if shards is not None:
        return Shard.from_environment(shards)
    return Shard()
