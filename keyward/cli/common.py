"""Pieces shared by several commands: settings for a scan request, options, output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from keyward.cli.settings import (
    CONFIDENCE_LEVELS,
    DEFAULT_MIN_CONFIDENCE,
    baseline_setting,
    engine_spec,
    excludes_setting,
    fingerprint_key,
    flag_setting,
    light_engine_spec,
    max_file_size_setting,
    min_confidence_setting,
    real_paths,
)
from keyward.core.errors import ConfigError

__all__ = [
    "CONFIDENCE_LEVELS",
    "DEFAULT_MIN_CONFIDENCE",
    "add_options",
    "baseline_setting",
    "confirm",
    "engine_option",
    "engine_spec",
    "exclude_option",
    "excludes_setting",
    "file_options",
    "fingerprint_key",
    "flag_setting",
    "format_option",
    "light_engine_spec",
    "max_file_size_option",
    "max_file_size_setting",
    "min_confidence_option",
    "min_confidence_setting",
    "no_ignore_option",
    "open_output",
    "real_paths",
    "rules_option",
]

F = TypeVar("F", bound=Callable[..., Any])


def confirm(question: str, action: str) -> None:
    """Ask ``question`` at a terminal (declining aborts, exit 130); without a terminal there
    is no one to answer, so refuse at once (exit 2): ``action`` needs --yes."""
    if not sys.stdin.isatty():
        raise ConfigError(
            f"{action} needs confirmation and standard input is not a terminal, so nothing "
            "was changed",
            hint="Pass --yes to confirm",
        )
    click.confirm(question, abort=True)


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


def format_option(*choices: str) -> Callable[[F], F]:
    """``-f/--format`` with these choices, the first one the default."""
    return click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help="Output format.",
    )


rules_option = click.option(
    "--rules",
    "rule_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Extra rule file (TOML); repeatable. Rules with a built-in id override it.",
)
engine_option = click.option(
    "--engine",
    "backend",
    type=click.Choice(["auto", "hyperscan", "re"]),
    default="auto",
    show_default=True,
    help="Matching engine; auto uses hyperscan when installed.",
)
min_confidence_option = click.option(
    "--min-confidence",
    type=click.Choice(CONFIDENCE_LEVELS),
    default=None,
    help="Report findings at or above this confidence (default: medium; config: "
    "[scan] min_confidence). low adds generic matches that look like samples.",
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
