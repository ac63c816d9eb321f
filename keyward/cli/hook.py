"""``keyward hook``: the pre-commit entry point, and ``keyward hook install``.

This path is imported on every commit, so it stays light: no process pool, no rich, no cloud
or database libraries. It runs the same request and runner as ``keyward scan --staged``: only
the lines added in the index (of the files pre-commit names), inline allows and the baseline;
when it blocks a commit it says where, which rule, and the three ways out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from keyward.cli import get_state
from keyward.core.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from keyward.scan.model import Finding
    from keyward.scan.result import ScanResult

HOOK_MARKER = "installed by `keyward hook install`"
DEFAULT_BASELINE = ".secrets.baseline"


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
    findings, result = run_staged_scan(
        Path("."),
        None if all_staged or not files else list(files),
        baseline=baseline,
        rule_files=rule_files,
    )
    if findings:
        write_blocked(findings, sys.stderr, staged=_staged_paths(result.repository))
        sys.exit(int(ExitCode.FINDINGS))


def run_staged_scan(
    repo_path: Path,
    files: Sequence[str] | None,
    *,
    baseline: Path | None = None,
    rule_files: Sequence[Path] = (),
) -> tuple[list[Finding], ScanResult]:
    """Scan staged changes the way ``keyward scan --staged`` does (one request, one runner);
    return the unsuppressed findings (in report order) and the result."""
    from keyward.cli.common import (
        excludes_setting,
        light_engine_spec,
        max_file_size_setting,
        min_confidence_setting,
    )
    from keyward.scan.baseline import apply_baseline
    from keyward.scan.request import ScanRequest
    from keyward.scan.runner import run_scan

    cfg = get_state().config
    request = ScanRequest(
        engine=light_engine_spec(cfg, rule_files),
        paths=(repo_path,),
        staged=True,
        staged_files=None if files is None else tuple(files),
        exclude=excludes_setting(cfg),  # scan.exclude / KEYWARD_EXCLUDE, as for `keyward scan`
        max_file_size=max_file_size_setting(cfg),
        min_confidence=min_confidence_setting(cfg),  # KEYWARD_MIN_CONFIDENCE, [scan]
    )
    engine = request.engine.build()
    result = run_scan(request, engine=engine)
    # --baseline > KEYWARD_BASELINE > scan.baseline in the config > .secrets.baseline at the root
    base_path = (
        baseline or cfg.path_setting("scan", "baseline") or _default_baseline(result.repository)
    )
    if base_path is not None:
        apply_baseline(result, base_path, engine.rules)
    return result.reported, result


def _default_baseline(root: Path | None) -> Path | None:
    candidate = (root or Path(".")) / DEFAULT_BASELINE
    return candidate if candidate.is_file() else None


def _staged_paths(root: Path | None) -> frozenset[str] | None:
    """Paths with staged changes (relative to the repository top), None when git cannot say."""
    from keyward.core.errors import KeywardError
    from keyward.scan.sources.git import open_repo

    try:
        out = open_repo(root or Path(".")).run("diff", "--cached", "--name-only", "-z")
    except KeywardError:
        return None
    return frozenset(p.decode("utf-8", "backslashreplace") for p in out.split(b"\0") if p)


def write_blocked(
    findings: Sequence[Finding], out: IO[str], *, staged: frozenset[str] | None = None
) -> None:
    """The message that explains a blocked commit (no raw values, ever).

    ``staged``: the paths with staged changes. Files named by pre-commit but not staged
    (``pre-commit run --all-files``) were scanned whole, and no commit is being made."""
    n = len(findings)
    noun = "secret" if n == 1 else "secrets"
    in_staged = n if staged is None else sum(1 for f in findings if f.location.path in staged)
    if in_staged == n:
        head = f"keyward: commit blocked: {n} {noun} in the staged changes"
    elif in_staged == 0:
        head = (
            f"keyward: {n} {noun} in the files checked (they are not staged, so each was "
            "scanned whole)"
        )
    else:
        head = f"keyward: commit blocked: {n} {noun} in the staged changes and the files checked"
    lines = [head, ""]
    for f in findings:
        loc = f.location
        where = f"{loc.path}:{loc.line}" if loc.line else f"{loc.path} (binary)"
        lines.append(f"  {where}  {f.rule_id} ({f.severity.value})  {f.preview}")
        if f.description:
            lines.append(f"      {f.description}")
    lines += [
        "",
        "To continue, do one of:",
        "  1. Remove it from the file and stage the change (rotate it if it was ever shared).",
        "  2. If it is not a secret, add a `keyward: allow` comment on that line.",
        "  3. Accept it as known: `keyward baseline update` (or `keyward baseline create`)",
        f"     records it in {DEFAULT_BASELINE}; stage that file too.",
        "",
    ]
    out.write("\n".join(lines))
    out.flush()


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
