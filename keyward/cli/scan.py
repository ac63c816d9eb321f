"""``keyward scan``: find secrets in files and directories."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import click

from keyward.cli import EPILOG, get_state
from keyward.cli.common import engine_option, engine_spec, rules_option
from keyward.core.config import parse_size
from keyward.core.errors import ConfigError, ExitCode

SCAN_EPILOG = (
    """\b
Examples:
  keyward scan .                            scan the current directory
  keyward scan src/ tests/ --exclude '*.min.js'
  keyward scan . --format json -o findings.json
  keyward scan . --format sarif -o keyward.sarif   (GitHub code scanning)
  keyward scan . --baseline .secrets.baseline      (report only new secrets)

"""
    + EPILOG
)


@click.command(epilog=SCAN_EPILOG)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
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
@click.option(
    "--exclude", multiple=True, metavar="GLOB", help="Skip paths matching GLOB (repeatable)."
)
@click.option("--no-ignore", is_flag=True, help="Do not honour .gitignore files.")
@click.option(
    "--max-file-size",
    default=None,
    metavar="SIZE",
    help="Skip files larger than SIZE (default 10M).",
)
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
@click.option("--reveal", is_flag=True, help="Print raw secret values (dangerous; off by default).")
@click.option("-v", "--verbose", is_flag=True, help="List skipped files and show more detail.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@click.option("--color/--no-color", default=None, help="Force or disable colour in text output.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
def scan(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    exclude: tuple[str, ...],
    no_ignore: bool,
    max_file_size: str | None,
    baseline: Path | None,
    rule_files: tuple[Path, ...],
    engine: str,
    jobs: int | None,
    reveal: bool,
    verbose: bool,
    no_progress: bool,
    color: bool | None,
    exit_zero: bool,
) -> None:
    """Scan files and directories for hardcoded secrets.

    PATHS default to the current directory. Findings show a redacted preview; the raw value
    is never printed unless --reveal is given.
    """
    from keyward.scan.baseline import load_baseline
    from keyward.scan.report import OutputFormat, render
    from keyward.scan.service import scan_paths
    from keyward.scan.sources.files import WalkOptions

    st = get_state()
    cfg = st.config
    section = cfg.section("scan")
    size_value = max_file_size or cfg.get("scan", "max_file_size")
    walk = WalkOptions(
        exclude=(*section.get("exclude", []), *exclude),
        use_ignore_files=not no_ignore,
    )
    if size_value is not None:
        walk.max_file_size = parse_size(size_value)
    baseline = baseline or _config_path(section.get("baseline"))
    spec = engine_spec(cfg, rule_files, engine)  # type: ignore[arg-type]
    rules = spec.rules()
    eng = spec.build(rules)
    loaded_baseline = load_baseline(baseline) if baseline else None
    roots = list(paths) or [Path(".")]

    progress_cb, stop = _progress(no_progress)
    try:
        result = scan_paths(roots, spec, walk, jobs=jobs, engine=eng, progress=progress_cb)
    finally:
        stop()
    if loaded_baseline is not None:
        result.stats.suppressed_baseline = loaded_baseline.apply(
            result.findings, (r.id for r in rules)
        )
        result.stats.findings = len(result.reported)
    for s in result.skipped:
        if s.warning:
            result.warnings.append(f"skipped {s.what}: {s.reason}")

    _emit(
        result,
        OutputFormat(fmt),
        output,
        rules=rules.rules,
        reveal=reveal,
        color=color,
        verbose=verbose or st.verbose,
        render=render,
    )
    if result.reported and not exit_zero:
        sys.exit(int(ExitCode.FINDINGS))


def _config_path(value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError("[scan] baseline in the config file must be a path")
    return Path(value)


def _emit(result: Any, fmt: Any, output: Path | None, *, render: Any, **kw: Any) -> None:
    if output is None:
        if fmt.value == "text":
            render(result, fmt, sys.stdout, **kw)
        else:
            kw.pop("color", None)
            kw.pop("verbose", None)
            render(result, fmt, sys.stdout, **kw)
        return
    try:
        fh: IO[str] = output.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(f"Cannot write the report to {output}: {exc.strerror}") from None
    with fh:
        if fmt.value != "text":
            kw.pop("color", None)
            kw.pop("verbose", None)
        else:
            kw["color"] = False
        render(result, fmt, fh, **kw)


def _progress(disabled: bool) -> tuple[Any, Any]:
    """A rich progress bar on stderr when it is a terminal (never in CI or when piped)."""
    import os

    if disabled or not sys.stderr.isatty() or os.environ.get("CI"):
        return None, lambda: None
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
        console=__import__("rich.console").console.Console(stderr=True),
    )
    task = bar.add_task("scanning", total=None)
    started = [False]

    def update(done: int, total: int) -> None:
        if not started[0]:
            bar.start()
            started[0] = True
        bar.update(task, completed=done, total=total)

    return update, bar.stop
