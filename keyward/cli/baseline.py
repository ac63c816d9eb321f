"""``keyward baseline``: record today's findings as known (detect-secrets format)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from keyward.cli.app import EPILOG, get_state
from keyward.cli.common import (
    engine_spec,
    excludes_setting,
    file_options,
    max_file_size_setting,
    real_paths,
    rules_option,
)
from keyward.core.text import plural

if TYPE_CHECKING:
    from keyward.scan.baseline import LocationKey
    from keyward.scan.result import ScanResult

DEFAULT_BASELINE = Path(".secrets.baseline")


@click.group(epilog=EPILOG)
def baseline() -> None:
    """Create or update a baseline of known findings.

    A baseline lets you adopt keyward on a code base with existing findings: `keyward scan
    --baseline .secrets.baseline` then reports only what the baseline does not hold. The file
    uses detect-secrets' format, and baselines written by detect-secrets load too.

    \b
    Examples:
      keyward baseline create                 # scan . into .secrets.baseline
      keyward baseline update                 # rescan, keep audit flags, drop what is gone
      keyward baseline create src/ -o my.baseline
    """


def _scan(
    paths: tuple[Path, ...],
    output: Path,
    rule_files: tuple[Path, ...],
    exclude: tuple[str, ...],
    no_ignore: bool,
    max_file_size: str | None,
) -> tuple[ScanResult, LocationKey]:
    from keyward.scan.baseline import file_key
    from keyward.scan.request import ScanRequest
    from keyward.scan.runner import run_scan

    cfg = get_state().config
    request = ScanRequest(
        engine=engine_spec(cfg, rule_files, keeps_nothing=True),  # baselines hash with SHA-1
        paths=paths,
        exclude=excludes_setting(cfg, exclude),
        use_ignore_files=not no_ignore,
        max_file_size=max_file_size_setting(cfg, max_file_size),
        skip_files=real_paths(output),
    )
    return run_scan(request), file_key(request.roots, output.parent)


_paths = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
_out = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_BASELINE,
    show_default=True,
    help="Baseline file.",
)


@baseline.command(
    epilog="""\b
Examples:
  keyward baseline create                    scan . into ./.secrets.baseline
  keyward baseline create src/ -o src/.secrets.baseline
  keyward baseline create --force            start over

"""
    + EPILOG
)
@_paths
@_out
@rules_option
@file_options
@click.option("--force", is_flag=True, help="Overwrite an existing baseline.")
def create(
    paths: tuple[Path, ...],
    output: Path,
    rule_files: tuple[Path, ...],
    exclude: tuple[str, ...],
    no_ignore: bool,
    max_file_size: str | None,
    force: bool,
) -> None:
    """Scan PATHS (default .) and write every finding to the baseline.

    Filenames in the baseline are relative to the baseline's own directory, as detect-secrets
    writes them. Findings allowed inline are left out; the baseline file itself is not scanned.
    """
    from keyward.core.errors import BaselineError
    from keyward.scan.baseline import build_baseline, write_baseline

    if output.exists() and not force:
        raise BaselineError(
            f"The baseline {output} already exists",
            hint="Use 'keyward baseline update' or pass --force to overwrite it",
        )
    result, key = _scan(paths, output, rule_files, exclude, no_ignore, max_file_size)
    doc = build_baseline(result.findings, key=key)
    write_baseline(output, doc)
    n = sum(len(v) for v in doc["results"].values())
    click.echo(
        f"wrote {plural(n, 'entry', 'entries')} for {plural(len(doc['results']), 'file')} "
        f"to {output}"
    )


@baseline.command(
    epilog="""\b
Examples:
  keyward baseline update                    rescan . and refresh ./.secrets.baseline
  keyward baseline update src/ -o src/.secrets.baseline

"""
    + EPILOG
)
@_paths
@_out
@rules_option
@file_options
def update(
    paths: tuple[Path, ...],
    output: Path,
    rule_files: tuple[Path, ...],
    exclude: tuple[str, ...],
    no_ignore: bool,
    max_file_size: str | None,
) -> None:
    """Rescan and rewrite the baseline, keeping audit flags of entries still present.

    Entries whose secret is gone are dropped, new findings are added, and entries that are
    still found keep their is_secret / is_verified flags and detect-secrets type names (a
    moved line changes only line_number).
    """
    from keyward.scan.baseline import build_baseline, load_baseline, write_baseline

    previous = load_baseline(output)
    result, key = _scan(paths, output, rule_files, exclude, no_ignore, max_file_size)
    doc = build_baseline(result.findings, previous, key=key)
    write_baseline(output, doc)
    old = {(e.filename, e.hashed_secret) for e in previous.entries}
    new = {(e["filename"], e["hashed_secret"]) for v in doc["results"].values() for e in v}
    click.echo(
        f"updated {output}: {len(new - old)} added, {len(old - new)} removed, {len(new & old)} kept"
    )
