"""``keyward scan``: find secrets in files and directories (and, via options, other sources).

Shape of the command, so a new source is a small edit:

1. options: add yours next to the file options (one decorator each);
2. ``sources``: each source produces a :class:`~keyward.scan.service.ScanResult` and is added
   with ``result.extend(...)`` (files run when PATHS are given or no other source is chosen);
3. suppression (inline is done by the engine, then ``--baseline``), output, exit code.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from keyward.cli import EPILOG, get_state
from keyward.cli.common import (
    apply_baseline,
    baseline_setting,
    engine_option,
    engine_spec,
    file_options,
    open_output,
    rules_option,
    walk_options,
)
from keyward.cli.scan_extras import EXAMPLES as EXTRA_EXAMPLES
from keyward.cli.scan_extras import ExtraScan, extra_scan_options
from keyward.cli.scan_sources import EXAMPLES as SOURCE_EXAMPLES
from keyward.cli.scan_sources import LocalSources, source_scan_options
from keyward.core.errors import ExitCode

if TYPE_CHECKING:
    from keyward.scan.service import ScanResult

log = logging.getLogger(__name__)

SCAN_EPILOG = (
    """\b
Examples:
  keyward scan .                            scan the current directory
  keyward scan src/ tests/ --exclude '*.min.js'
  keyward scan . --format json -o findings.json
  keyward scan . --format sarif -o keyward.sarif   (GitHub code scanning)
  keyward scan . --baseline .secrets.baseline      (report only new secrets)
  keyward scan . --max-file-size 50M --no-ignore   (also ignored and big files)
  keyward scan . --record                          (remember findings in the inventory)
"""
    + SOURCE_EXAMPLES
    + EXTRA_EXAMPLES
    + """
\b
Settings (command line > KEYWARD_* environment > keyward.toml or
[tool.keyward] in pyproject.toml): scan.exclude (adds up), scan.rules,
scan.baseline, scan.max_file_size.

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
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "csv"]),
    default="text",
    show_default=True,
    help="Output format.",
)
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
@source_scan_options
@extra_scan_options
def scan(
    paths: tuple[Path, ...],
    exclude: tuple[str, ...],
    no_ignore: bool,
    max_file_size: str | None,
    baseline: Path | None,
    rule_files: tuple[Path, ...],
    engine: str,
    jobs: int | None,
    fmt: str,
    output: Path | None,
    reveal: bool,
    verbose: bool,
    no_progress: bool,
    color: bool | None,
    exit_zero: bool,
    record: bool,
    record_target: str | None,
    **extra: Any,
) -> None:
    """Scan files and directories for hardcoded secrets.

    PATHS default to the current directory. .gitignore files are honoured, binary files and
    files above --max-file-size are skipped, symlinks are never followed. Findings show a
    redacted preview; the raw value is never printed unless --reveal is given.
    """
    from keyward.scan.report import OutputFormat, render
    from keyward.scan.service import ScanResult, scan_paths

    cfg = get_state().config
    baseline = baseline_setting(cfg, baseline)
    spec = engine_spec(cfg, rule_files, engine)  # type: ignore[arg-type]
    rules = spec.rules()
    extras = ExtraScan(extra, cfg)
    local = LocalSources(extra, cfg)  # --git, --staged, --env
    eng = extras.engine(spec.build(rules), spec.fingerprint_key, baseline)
    log.debug("engine %s with %d rules", eng.backend, len(rules))
    result = ScanResult()

    # ---- sources ----------------------------------------------------------------------
    other_sources = extras.aws_lambda or local.chosen
    if (paths and not local.owns_paths) or not other_sources:
        roots = list(paths) or [Path(".")]
        walk = walk_options(
            cfg, exclude, no_ignore=no_ignore, max_file_size=max_file_size, skip_files=[baseline]
        )
        progress, stop = _progress(no_progress)
        try:
            result.extend(
                scan_paths(roots, spec, walk, jobs=extras.jobs(jobs), engine=eng, progress=progress)
            )
        finally:
            stop()
        result.roots = roots
    if extras.aws_lambda:
        result.extend(extras.scan_lambda(eng))
    if local.chosen:
        result.extend(
            local.scan(paths, spec, eng, jobs=jobs, max_file_size=max_file_size, exclude=exclude)
        )
    # (further sources: result.extend(...) here)

    # ---- suppression, output, exit code -----------------------------------------------
    if baseline is not None:
        apply_baseline(result, baseline, rules.rules)
    extras.apply_verification(result)  # --verify: only the findings still reported
    _report_skipped(result, verbose)
    log.debug("scan stats: %s", result.stats.as_dict())
    out = open_output(output)
    try:
        render(
            result,
            OutputFormat(fmt),
            out,
            rules=rules.rules,
            reveal=reveal,
            color=False if output is not None else color,
        )
    finally:
        if out is not sys.stdout:
            out.close()
    if record:
        repo = (paths[0] if paths else Path(".")) if local.owns_paths else None
        _record(result, cfg, spec.fingerprint_key, record_target, repo, local, extras)
    if result.reported and not exit_zero:
        sys.exit(int(ExitCode.FINDINGS))


def _record(
    result: ScanResult,
    cfg: Any,
    key: bytes,
    target: str | None,
    repo: Path | None,
    local: Any,
    extras: Any,
) -> None:
    """--record: the inventory (and SQLAlchemy) is imported only here."""
    from keyward.inventory.recording import default_target, record_scan_result

    roots = list(result.roots or [])
    target = target or default_target(
        roots, git_repo=repo, env=local.env, aws_lambda=bool(extras.aws_lambda)
    )
    # staged changes are a slice of the repository: they never resolve anything
    summary = record_scan_result(
        cfg,
        result.findings,
        roots=roots,
        target=target,
        fingerprint_key=key,
        full=not local.staged,
        git_repo=repo,
    )
    click.echo(
        f"keyward: recorded {summary.recorded} findings for {summary.target} "
        f"({summary.new} new, {summary.resolved} resolved, {summary.linked} linked to secrets)",
        err=True,
    )


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
