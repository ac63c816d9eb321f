"""Pieces shared by several commands: engine, file-walk options, suppression, output."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from keyward.core.config import Config, cache_dir, parse_size
from keyward.core.errors import ConfigError
from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Backend
from keyward.scan.service import EngineSpec

if TYPE_CHECKING:
    from keyward.scan.rules import Rule
    from keyward.scan.service import ScanResult
    from keyward.scan.sources.files import WalkOptions

F = TypeVar("F", bound=Callable[..., Any])


def fingerprint_key(config: Config) -> bytes:
    """The installation's fingerprint key: ``KEYWARD_FINGERPRINT_KEY`` (hex) or the key file."""
    env = os.environ.get("KEYWARD_FINGERPRINT_KEY")
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise ConfigError(
                "KEYWARD_FINGERPRINT_KEY is not hex", hint="Use 64 hex characters"
            ) from None
        if len(key) < 16:
            raise ConfigError("KEYWARD_FINGERPRINT_KEY is too short", hint="Use 64 hex characters")
        return key
    return Fingerprinter.from_file(config.fingerprint_key_file())._key


def engine_spec(
    config: Config, rule_files: Sequence[Path] = (), backend: Backend = "auto"
) -> EngineSpec:
    """Rule files from the config file, then ``KEYWARD_RULES``, then the command line (later
    files override rules of the same id)."""
    files = (*config.rule_files(), *rule_files)
    return EngineSpec(
        rule_files=tuple(files),
        fingerprint_key=fingerprint_key(config),
        backend=backend,
        cache_dir=cache_dir() / "hyperscan",
    )


def walk_options(
    config: Config,
    exclude: Sequence[str] = (),
    *,
    no_ignore: bool = False,
    max_file_size: str | None = None,
    skip_files: Sequence[Path | None] = (),
) -> WalkOptions:
    """File-walk options: excludes add up (config file, ``KEYWARD_EXCLUDE``, ``--exclude``);
    ``--max-file-size`` beats ``KEYWARD_MAX_FILE_SIZE`` beats the config file."""
    from keyward.scan.sources.files import WalkOptions, check_max_file_size

    size = parse_size(max_file_size) if max_file_size else config.max_file_size()
    walk = WalkOptions(
        exclude=(*config.excludes(), *exclude),
        use_ignore_files=not no_ignore,
        skip_files=frozenset(os.path.realpath(p) for p in skip_files if p is not None),
    )
    if size is not None:
        walk.max_file_size = check_max_file_size(size)
    return walk


def baseline_setting(config: Config, cli_value: Path | None) -> Path | None:
    """``--baseline`` beats ``KEYWARD_BASELINE`` beats ``scan.baseline`` in the config file."""
    return cli_value if cli_value is not None else config.path_setting("scan", "baseline")


def apply_baseline(result: ScanResult, baseline: Path, rules: Sequence[Rule]) -> None:
    """Mark findings held in the baseline as suppressed (paths relative to its directory)."""
    from keyward.scan.baseline import file_key, load_baseline

    loaded = load_baseline(baseline)
    loaded.apply(
        result.findings,
        (r.id for r in rules),
        key=file_key(result.roots, baseline.parent),
    )
    result._count()


def open_output(output: Path | None) -> IO[str]:
    """The report stream: ``--output FILE`` (UTF-8) or standard output."""
    if output is None:
        return sys.stdout
    try:
        return output.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(f"Cannot write the report to {output}: {exc.strerror}") from None


def add_options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Apply several click decorators at once (top one first, as if stacked)."""

    def wrap(fn: F) -> F:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return wrap


rules_option = click.option(
    "--rules",
    "rule_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Extra rule file (TOML); repeatable. Rules with a built-in id override it.",
)
engine_option = click.option(
    "--engine",
    type=click.Choice(["auto", "hyperscan", "re"]),
    default="auto",
    show_default=True,
    help="Matching engine; auto uses hyperscan when installed.",
)
exclude_option = click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Skip paths matching GLOB (gitignore syntax, repeatable; adds to scan.exclude).",
)
no_ignore_option = click.option(
    "--no-ignore", is_flag=True, help="Do not honour .gitignore and .git/info/exclude."
)
max_file_size_option = click.option(
    "--max-file-size",
    default=None,
    metavar="SIZE",
    help="Skip files larger than SIZE, e.g. 512k, 10M (default 10M, at most 256M).",
)
# --exclude, --no-ignore, --max-file-size: every command that walks files takes these.
file_options = add_options(exclude_option, no_ignore_option, max_file_size_option)
