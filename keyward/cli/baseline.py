"""``keyward baseline``: record today's findings as known (detect-secrets format)."""

from __future__ import annotations

from pathlib import Path

import click

from keyward.cli import get_state
from keyward.cli.common import engine_spec, rules_option

DEFAULT_BASELINE = Path(".secrets.baseline")


@click.group()
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


def _scan(paths: tuple[Path, ...], rule_files: tuple[Path, ...], exclude: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from keyward.scan.service import scan_paths
    from keyward.scan.sources.files import WalkOptions

    st = get_state()
    cfg = st.config
    spec = engine_spec(cfg, rule_files)
    walk = WalkOptions(exclude=(*cfg.section("scan").get("exclude", []), *exclude))
    return scan_paths(list(paths) or [Path(".")], spec, walk)


_paths = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
_out = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_BASELINE,
    show_default=True,
    help="Baseline file.",
)
_exclude = click.option(
    "--exclude", multiple=True, metavar="GLOB", help="Skip paths matching GLOB."
)


@baseline.command()
@_paths
@_out
@rules_option
@_exclude
@click.option("--force", is_flag=True, help="Overwrite an existing baseline.")
def create(
    paths: tuple[Path, ...],
    output: Path,
    rule_files: tuple[Path, ...],
    exclude: tuple[str, ...],
    force: bool,
) -> None:
    """Scan PATHS (default .) and write every finding to the baseline."""
    from keyward.core.errors import BaselineError
    from keyward.scan.baseline import build_baseline, write_baseline

    if output.exists() and not force:
        raise BaselineError(
            f"The baseline {output} already exists",
            hint="Use 'keyward baseline update' or pass --force to overwrite it",
        )
    result = _scan(paths, rule_files, exclude)
    doc = build_baseline(result.findings)
    write_baseline(output, doc)
    n = sum(len(v) for v in doc["results"].values())
    click.echo(f"wrote {n} entries for {len(doc['results'])} files to {output}")


@baseline.command()
@_paths
@_out
@rules_option
@_exclude
def update(
    paths: tuple[Path, ...], output: Path, rule_files: tuple[Path, ...], exclude: tuple[str, ...]
) -> None:
    """Rescan and rewrite the baseline, keeping audit flags of entries still present."""
    from keyward.scan.baseline import build_baseline, load_baseline, write_baseline

    previous = load_baseline(output)
    result = _scan(paths, rule_files, exclude)
    doc = build_baseline(result.findings, previous)
    write_baseline(output, doc)
    old = {(e.filename, e.hashed_secret) for e in previous.entries}
    new = {(e["filename"], e["hashed_secret"]) for v in doc["results"].values() for e in v}
    click.echo(
        f"updated {output}: {len(new - old)} added, {len(old - new)} removed, {len(new & old)} kept"
    )
