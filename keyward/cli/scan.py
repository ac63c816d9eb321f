"""``keyward scan``: find secrets in files and directories (and, via options, other sources).

Shape of the command, so a new source is a small edit:

1. options: declared next to the others (:mod:`keyward.cli.scan_options` for sources other
   than files), one decorator each;
2. the command resolves them and the configuration into one frozen
   :class:`~keyward.scan.request.ScanRequest` (add a field), which checks how they combine;
   the source itself is a :class:`~keyward.scan.sources.base.Source` that
   :func:`~keyward.scan.runner.run_scan` runs;
3. suppression (inline is done by the engine, then ``--baseline``), verification, output,
   ``--record``, exit code.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from keyward.cli.app import EPILOG, get_state
from keyward.cli.common import (
    baseline_setting,
    engine_option,
    engine_spec,
    excludes_setting,
    file_options,
    flag_setting,
    format_option,
    max_file_size_setting,
    min_confidence_option,
    min_confidence_setting,
    open_output,
    real_paths,
    rules_option,
)
from keyward.cli.scan_options import (
    LAMBDA_EXAMPLES,
    SOURCE_EXAMPLES,
    history_staged_env_options,
    lambda_and_check_options,
)
from keyward.core.config import Config
from keyward.core.errors import ConfigError, ExitCode
from keyward.core.text import plural

if TYPE_CHECKING:
    from keyward.providers.settings import Account
    from keyward.scan.engine import Backend
    from keyward.scan.request import ScanRequest
    from keyward.scan.result import ScanResult

log = logging.getLogger(__name__)

SCAN_EPILOG = (
    """\b
Examples:
  keyward scan .                            scan the current directory
  keyward scan src/ tests/ --exclude '*.min.js'
  keyward scan . --format json -o findings.json
  keyward scan . --format sarif -o keyward.sarif   (GitHub code scanning)
  keyward scan . --format html -o report.html      (one self-contained page)
  keyward scan . --baseline .secrets.baseline      (report only new secrets)
  keyward scan . --max-file-size 50M --no-ignore   (also ignored and big files)
  keyward scan . --record                          (remember findings in the inventory)
  keyward scan . --min-confidence low              (also generic matches that look like samples)
  keyward scan --targets repos.txt --record        (many paths, repositories and Lambda
                                                    accounts; each recorded under its own name)
  keyward scan --targets repos.txt --record --shard 0/4     (the first of four shares)
"""
    + SOURCE_EXAMPLES
    + LAMBDA_EXAMPLES
    + """
\b
Settings (command line > KEYWARD_* environment > keyward.toml or
[tool.keyward] in pyproject.toml): scan.exclude (adds up), scan.rules,
scan.baseline, scan.max_file_size, scan.min_confidence.

"""
    + EPILOG
)


@click.command(epilog=SCAN_EPILOG)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@file_options
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Report only findings not held in this detect-secrets-format baseline.",
)
@rules_option
@engine_option
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), help="Worker processes (default: every core)."
)
@min_confidence_option
@format_option("text", "json", "sarif", "csv", "html")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the report here."
)
@click.option("--reveal", is_flag=True, help="Print raw secret values (dangerous; off by default).")
@click.option("-v", "--verbose", is_flag=True, help="List skipped files on stderr.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@click.option("--color/--no-color", default=None, help="Force or disable colour in text output.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option(
    "--record",
    is_flag=True,
    help="Store the findings in the inventory (keyed fingerprints only); findings of the "
    "same target no longer seen become resolved.",
)
@click.option(
    "--target",
    "record_target",
    metavar="NAME",
    help="Name the scanned target for --record (default: the absolute paths scanned).",
)
@click.option(
    "--targets",
    "targets_file",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Scan the targets listed in FILE, one a line: a path, a git repository path or URL "
    "(cloned read-only), aws-lambda:ACCOUNT/REGION; each recorded under its own name.",
)
@click.option(
    "--shard",
    metavar="K/N",
    help="With --targets: scan only shard K of N (K from 0): every N-th target from the K-th.",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --targets: one of N shards, K taken from JOB_COMPLETION_INDEX (an Indexed Job).",
)
@history_staged_env_options
@lambda_and_check_options
def scan(
    paths: tuple[Path, ...],
    exclude: tuple[str, ...],
    no_ignore: bool,
    max_file_size: str | None,
    baseline: Path | None,
    rule_files: tuple[Path, ...],
    backend: Backend,
    jobs: int | None,
    min_confidence: str | None,
    fmt: str,
    output: Path | None,
    reveal: bool,
    verbose: bool,
    no_progress: bool,
    color: bool | None,
    exit_zero: bool,
    record: bool,
    record_target: str | None,
    targets_file: Path | None,
    shard: str | None,
    shards: int | None,
    git_history: bool,
    all_branches: bool,
    since: str | None,
    commit_range: str | None,
    staged: bool,
    environment: bool,
    aws_lambda: bool,
    regions: tuple[str, ...],
    all_regions: bool,
    profile: str | None,
    account_names: tuple[str, ...],
    all_accounts: bool,
    include_code: bool,
    all_versions: bool,
    verify: bool,
    detect_secrets_plugins: bool | None,
) -> None:
    """Scan files and directories for hardcoded secrets.

    PATHS default to the current directory. .gitignore files are honoured, binary files and
    files above --max-file-size are skipped, symlinks are never followed. Archives (zip, jar,
    whl, tar, tar.gz/bz2/xz, gzip) are scanned inside, within bounds; a member is shown as
    archive!path. Findings show a redacted preview; the raw value is never printed unless
    --reveal is given.
    """
    from keyward.scan.baseline import apply_baseline, load_baseline
    from keyward.scan.report import OutputFormat, render
    from keyward.scan.request import ScanRequest
    from keyward.scan.runner import run_scan

    if reveal and fmt == "html":
        raise ConfigError(
            "--reveal cannot be used with --format html: an HTML report shows redacted previews "
            "only",
            hint="Use --reveal with --format text or json, never for a file others will open",
        )
    cfg = get_state().config
    if targets_file is not None:
        _scan_targets(
            targets_file, shard, shards, paths=paths, baseline=baseline,
            record_target=record_target, git_history=git_history, staged=staged,
            environment=environment, aws_lambda=aws_lambda, regions=regions,
            all_regions=all_regions, since=since, commit_range=commit_range,
            rule_files=rule_files, backend=backend,
            detect_secrets_plugins=detect_secrets_plugins, jobs=jobs,
            min_confidence=min_confidence, exclude=exclude, no_ignore=no_ignore,
            max_file_size=max_file_size, all_branches=all_branches, profile=profile,
            include_code=include_code, all_versions=all_versions, record=record, verify=verify,
            fmt=fmt, output=output, reveal=reveal, color=color, exit_zero=exit_zero,
        )  # fmt: skip
        return
    if shard is not None or shards is not None:
        raise ConfigError("--shard and --shards apply to --targets", hint="Add --targets FILE")
    baseline = baseline_setting(cfg, baseline)
    held = load_baseline(baseline) if baseline is not None else None  # a bad one fails first
    if detect_secrets_plugins is None:
        detect_secrets_plugins = flag_setting(
            cfg.get("scan", "detect_secrets_plugins", False), "[scan] detect_secrets_plugins"
        )
    max_code_size, check_kms = _lambda_settings(cfg) if aws_lambda else (None, True)
    if (account_names or all_accounts) and not aws_lambda:
        raise ConfigError(
            "--account and --all-accounts apply to --aws-lambda", hint="Add --aws-lambda"
        )
    accounts = _lambda_accounts(cfg, account_names, all_accounts) if aws_lambda else ()
    request = ScanRequest(
        engine=engine_spec(
            cfg,
            rule_files,
            backend,
            detect_secrets=detect_secrets_plugins,
            baseline=baseline,
            keeps_nothing=not record,
        ),
        paths=paths,
        jobs=jobs,
        min_confidence=min_confidence_setting(cfg, min_confidence),
        exclude=excludes_setting(cfg, exclude),
        use_ignore_files=not no_ignore,
        max_file_size=max_file_size_setting(cfg, max_file_size),
        skip_files=real_paths(baseline),
        git=git_history,
        all_branches=all_branches,
        since=since,
        commit_range=commit_range,
        staged=staged,
        environment=environment,
        aws_lambda=aws_lambda,
        regions=regions,
        all_regions=all_regions,
        profile=profile,
        accounts=accounts,
        include_code=include_code,
        all_versions=all_versions,
        max_code_size=max_code_size,
        check_kms=check_kms,
    )
    engine = request.engine.build()
    log.debug("engine %s with %d rules", engine.backend, len(engine.rules))
    progress, stop = _progress(no_progress or not request.scans_files)
    try:
        result = run_scan(request, engine=engine, progress=progress)
    finally:
        stop()

    # ---- suppression, verification, output, exit code -----------------------------------
    if held is not None:
        apply_baseline(result, held, engine.rules)
    if verify:  # only the findings still reported
        _verify(result, cfg)
    _report_skipped(result, verbose)
    if fmt != "text" or output is not None:  # the text report on stdout shows them itself
        for w in result.warnings:
            click.echo(f"keyward: warning: {w}", err=True)
    log.debug("scan stats: %s", result.stats.as_dict())
    out = open_output(output)
    try:
        render(
            result,
            OutputFormat(fmt),
            out,
            rules=engine.rules,
            reveal=reveal,
            color=False if output is not None else color,
            verbose=verbose,
        )
    finally:
        if out is not sys.stdout:
            out.close()
    if record:
        _record(result, cfg, request, record_target)
    if result.reported and not exit_zero:
        sys.exit(int(ExitCode.FINDINGS))


def _scan_targets(
    targets_file: Path,
    shard: str | None,
    shards: int | None,
    *,
    paths: tuple[Path, ...],
    baseline: Path | None,
    record_target: str | None,
    git_history: bool,
    staged: bool,
    environment: bool,
    aws_lambda: bool,
    regions: tuple[str, ...],
    all_regions: bool,
    since: str | None,
    commit_range: str | None,
    rule_files: tuple[Path, ...],
    backend: Backend,
    detect_secrets_plugins: bool | None,
    jobs: int | None,
    min_confidence: str | None,
    exclude: tuple[str, ...],
    no_ignore: bool,
    max_file_size: str | None,
    all_branches: bool,
    profile: str | None,
    include_code: bool,
    all_versions: bool,
    record: bool,
    verify: bool,
    fmt: str,
    output: Path | None,
    reveal: bool,
    color: bool | None,
    exit_zero: bool,
) -> None:
    """``--targets FILE``: this shard's targets, each scanned and recorded on its own."""
    from keyward.cli.scan_targets import (
        TargetOptions,
        refuse_with_targets,
        scan_targets,
        shard_setting,
    )
    from keyward.scan.report import OutputFormat, render
    from keyward.scan.request import ScanRequest

    cfg = get_state().config
    refuse_with_targets(
        **{
            "PATHS": paths, "--baseline": baseline_setting(cfg, baseline),
            "--target": record_target, "--git": git_history, "--staged": staged,
            "--env": environment, "--aws-lambda": aws_lambda, "--region": regions,
            "--all-regions": all_regions, "--since": since, "--range": commit_range,
        }
    )  # fmt: skip
    share = shard_setting(shard, shards)
    if detect_secrets_plugins is None:
        detect_secrets_plugins = flag_setting(
            cfg.get("scan", "detect_secrets_plugins", False), "[scan] detect_secrets_plugins"
        )
    base = ScanRequest(
        engine=engine_spec(cfg, rule_files, backend, detect_secrets=detect_secrets_plugins),
        jobs=jobs,
        min_confidence=min_confidence_setting(cfg, min_confidence),
        exclude=excludes_setting(cfg, exclude),
        use_ignore_files=not no_ignore,
        max_file_size=max_file_size_setting(cfg, max_file_size),
    )
    max_code_size, check_kms = _lambda_settings(cfg)
    clone_dir = os.environ.get("KEYWARD_CLONE_DIR")
    opts = TargetOptions(
        all_branches=all_branches,
        profile=profile,
        include_code=include_code,
        all_versions=all_versions,
        max_code_size=max_code_size,
        check_kms=check_kms,
        record=record,
        clone_dir=Path(clone_dir) if clone_dir else None,
    )
    engine = base.engine.build()

    def report(result: ScanResult) -> None:
        out = open_output(output)
        try:
            render(
                result,
                OutputFormat(fmt),
                out,
                rules=engine.rules,
                reveal=reveal,
                color=False if output is not None else color,
            )
        finally:
            if out is not sys.stdout:
                out.close()

    rc = scan_targets(
        targets_file,
        share,
        base,
        opts,
        cfg=cfg,
        engine=engine,
        verify=(lambda result: _verify(result, cfg)) if verify else None,
        render=report,
        exit_zero=exit_zero,
    )
    if rc:
        sys.exit(rc)


def _lambda_settings(cfg: Config) -> tuple[int | None, bool]:
    """``[aws_lambda] max_code_size`` and ``check_kms``, read only for a Lambda scan."""
    from keyward.core.config import parse_size

    section = cfg.section("aws_lambda")
    cap = section.get("max_code_size")
    check_kms = flag_setting(section.get("check_kms", True), "[aws_lambda] check_kms")
    return (parse_size(cap) if cap is not None else None), check_kms


def _lambda_accounts(cfg: Config, names: tuple[str, ...], every: bool) -> tuple[Account, ...]:
    """The accounts of a Lambda scan: ``--account`` / ``--all-accounts`` resolved against
    ``[aws.accounts]``; none given: keyward's own (as configured, with its regions)."""
    from keyward.providers.settings import aws_accounts, choose_accounts

    return choose_accounts(aws_accounts(cfg), names, every=every)


def _verify(result: ScanResult, cfg: Config) -> None:
    """--verify: set live / revoked / unknown on each reported finding, in place."""
    from keyward.verify.registry import load_verifiers
    from keyward.verify.service import VerifySettings, verify_findings

    settings = VerifySettings.from_table(cfg.section("verify"))
    verifiers = load_verifiers(settings.context(), names=settings.names)
    threshold = result.min_confidence  # values under the threshold are never sent
    reported = [
        i
        for i, f in enumerate(result.findings)
        if f.suppressed_by is None and f.confidence.at_least(threshold)
    ]
    checked = verify_findings(
        [result.findings[i] for i in reported], verifiers, workers=settings.workers
    )
    for i, f in zip(reported, checked, strict=True):
        result.findings[i] = f


def _record(result: ScanResult, cfg: Config, request: ScanRequest, target: str | None) -> None:
    """--record: the inventory (and SQLAlchemy) is imported only here."""
    from keyward.cli.compose import leak_policy, report_leaks
    from keyward.inventory.recording import default_target, record_scan_result
    from keyward.inventory.service import default_actor

    roots = list(result.roots or [])
    repo = request.repository if request.names_repository else None
    target = target or default_target(
        roots, git_repo=repo, env=request.environment, aws_lambda=request.aws_lambda
    )
    # staged changes are a slice of the repository: they never resolve anything
    summary = record_scan_result(
        cfg,
        result.confident,
        roots=roots,
        target=target,
        fingerprint_key=request.engine.fingerprint_key,
        full=not request.staged,
        git_repo=repo,
        min_confidence=request.min_confidence,
        leak_policy=leak_policy(cfg),
    )
    # the report counted suppressed findings apart ("1 allowed inline"): so does this line
    reported = summary.recorded - summary.ignored
    also = f" and {summary.ignored} suppressed as ignored" if summary.ignored else ""
    click.echo(
        f"keyward: recorded {plural(reported, 'finding')}{also} for {summary.target} "
        f"({summary.new} new, {summary.resolved} resolved, {summary.linked} linked to secrets)",
        err=True,
    )
    report_leaks(cfg, summary.leaks, default_actor())
    if request.aws_lambda:  # the functions' dependents too, as `discover aws-lambda` does
        from keyward.cli.discover import (
            lambda_listings,
            record_lambda_dependents,
            render_dependents,
        )

        listings = lambda_listings(
            request.accounts,
            request.regions,
            all_regions=request.all_regions,
            profile=request.profile,
        )
        render_dependents(record_lambda_dependents(listings, None), "text", err=True)


def _report_skipped(result: ScanResult, verbose: bool) -> None:
    """Warnings (e.g. permission denied) always go to stderr; other skips with --verbose."""
    for s in result.skipped:
        if s.warning:
            click.echo(f"keyward: warning: skipped {s.what}: {s.reason}", err=True)
        elif verbose:
            click.echo(f"keyward: skipped {s.what}: {s.reason}", err=True)


def _progress(
    disabled: bool,
) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A rich progress bar on stderr when it is a terminal (never in CI or when piped)."""
    if disabled or not sys.stderr.isatty() or os.environ.get("CI"):
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
        console=Console(stderr=True),
    )
    task = bar.add_task("scanning", total=None)
    started = False

    def update(done: int, total: int) -> None:
        nonlocal started
        if not started:
            bar.start()
            started = True
        bar.update(task, completed=done, total=total)

    return update, bar.stop
