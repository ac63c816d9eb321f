"""``keyward hook``: the pre-commit entry point, and ``keyward hook install``.

The scan and the blocked-commit message live in :mod:`keyward.cli.hookrun`, which also runs
the plain ``keyward hook FILE...`` of pre-commit without click; these click commands answer
everything else (``--help``, ``install``, usage errors). The scan runs the same request and
runner as ``keyward scan --staged``: only the lines added in the index (of the files
pre-commit names), inline allows and the baseline; when it blocks a commit it says where,
which rule, and the three ways out. No process pool, no rich, no cloud or database library.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from keyward.cli.app import get_state
from keyward.cli.hookrun import DEFAULT_BASELINE, run_staged_scan, scan_and_report, write_blocked
from keyward.core.errors import ConfigError, ExitCode

__all__ = ["DEFAULT_BASELINE", "HOOK_MARKER", "hook", "run_staged_scan", "write_blocked"]

HOOK_MARKER = "installed by `keyward hook install`"


class _HookGroup(click.Group):
    """``keyward hook [FILES]...`` scans; ``keyward hook install`` is the one sub-command.

    pre-commit appends file names to the entry, so anything that is not a sub-command (or is
    a file that happens to be called ``install``) is handed to the scanner as a file name.
    """

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        is_sub = name in self.commands and name != "scan"
        if is_sub and not os.path.isfile(name):
            return super().resolve_command(ctx, args)
        return "scan", self.commands["scan"], args


HOOK_HELP = """Scan the staged changes before a commit (the pre-commit entry point).

\b
Only lines added in the index are scanned, so old secrets in a file you touch do not block
you. FILES limit the scan to those paths (pre-commit passes them); files named but not
staged are scanned whole. Exit code 1 blocks the commit.

\b
Use it from the pre-commit framework (.pre-commit-config.yaml):
  repos:
    - repo: https://github.com/keyward/keyward
      rev: v0.1.0
      hooks:
        - id: keyward

\b
Scan options:
  --baseline FILE   known findings (default: .secrets.baseline at the repository root)
  --rules FILE      an extra rule file (repeatable)
  --all-staged      ignore FILES and scan every staged change

\b
or as a plain git hook:
  keyward hook install            writes .git/hooks/pre-commit
  keyward hook install --force    replaces a hook not written by keyward

\b
Examples:
  keyward hook                    scan everything staged
  keyward hook src/app.py         scan the staged lines of one file
  keyward hook --baseline .secrets.baseline
"""


@click.group(
    cls=_HookGroup,
    invoke_without_command=True,
    help=HOOK_HELP,
    subcommand_metavar="[FILES]... | install [--force]",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.pass_context
def hook(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(scan_staged)


@hook.command("scan", hidden=True)
@click.argument("files", nargs=-1, type=click.Path())
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Baseline of known findings (default: .secrets.baseline at the repository root).",
)
@click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path))
@click.option("--all-staged", is_flag=True, help="Ignore FILES and scan every staged change.")
def scan_staged(
    files: tuple[str, ...] = (),
    baseline: Path | None = None,
    rule_files: tuple[Path, ...] = (),
    all_staged: bool = False,
) -> None:
    """Scan the staged lines of FILES (all staged changes when none are given)."""
    code = scan_and_report(
        get_state().config,
        None if all_staged or not files else list(files),
        baseline=baseline,
        rule_files=rule_files,
    )
    if code:
        sys.exit(int(ExitCode.FINDINGS))


# ------------------------------------------------------------------------ install
SCRIPT = """#!/bin/sh
# keyward pre-commit hook, {marker}.
# Blocks commits that add secrets. Bypass once with `git commit --no-verify`.
KEYWARD_PYTHON={python}
if [ -x "$KEYWARD_PYTHON" ]; then
  exec "$KEYWARD_PYTHON" -m keyward hook
fi
exec keyward hook
"""


@hook.command()
@click.option("--force", is_flag=True, help="Replace an existing hook not written by keyward.")
@click.option(
    "--repo",
    "repo_path",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    help="Repository to install into (default: the current one).",
)
def install(force: bool, repo_path: Path) -> None:
    """Write a plain .git/hooks/pre-commit that runs `keyward hook`.

    For teams without the pre-commit framework. An existing hook written by keyward is
    updated; any other hook is kept unless --force is given (then it is saved as
    pre-commit.keyward-backup).

    \b
    Examples:
      keyward hook install
      keyward hook install --force
    """
    target, backup = install_hook(repo_path, force=force)
    click.echo(f"installed the keyward pre-commit hook at {target}")
    if backup is not None:
        click.echo(f"the previous hook was saved as {backup}")


def install_hook(repo_path: Path, *, force: bool = False) -> tuple[Path, Path | None]:
    import shlex

    from keyward.scan.sources.git import open_repo

    repo = open_repo(repo_path)
    hooks = repo.run("rev-parse", "--git-path", "hooks").decode("utf-8", "replace").strip()
    hooks_dir = Path(hooks)
    if not hooks_dir.is_absolute():
        hooks_dir = repo.path / hooks_dir
    target = hooks_dir / "pre-commit"
    backup: Path | None = None
    try:
        existing = target.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise ConfigError(f"Cannot read the existing hook {target}: {exc.strerror}") from None
    if existing is not None and HOOK_MARKER not in existing:
        if not force:
            raise ConfigError(
                f"{target} already exists and was not written by keyward",
                hint="Pass --force to replace it (it is kept as pre-commit.keyward-backup), "
                "or add `keyward hook` to that script yourself",
            )
        backup = target.with_name("pre-commit.keyward-backup")
        target.replace(backup)
    script = SCRIPT.format(marker=HOOK_MARKER, python=shlex.quote(sys.executable))
    try:
        hooks_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".pre-commit.{os.getpid()}.tmp")
        tmp.write_text(script, encoding="utf-8")
        tmp.chmod(0o755)
        tmp.replace(target)
    except OSError as exc:
        raise ConfigError(f"Cannot write the hook {target}: {exc.strerror}") from None
    return target, backup
