"""``keyward scan`` options for git history, staged changes and the environment.

Kept apart from :mod:`keyward.cli.scan`: this module adds the options (``--git``,
``--all-branches``, ``--since``, ``--range``, ``--staged``, ``--env``), checks how they
combine, and runs the chosen sources; the scan command only calls :class:`LocalSources`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from keyward.core.config import Config, parse_size
from keyward.core.errors import ConfigError

if TYPE_CHECKING:
    from keyward.scan.engine import Engine
    from keyward.scan.service import EngineSpec, ScanResult

F = TypeVar("F", bound=Callable[..., Any])

EXAMPLES = """\
  keyward scan --git                               (every commit reachable from HEAD)
  keyward scan --git ../other-repo --all-branches
  keyward scan --git --since v1.4.0                (commits after v1.4.0)
  keyward scan --git --range main..feature
  keyward scan --staged                            (only lines added in the index)
  keyward scan --env                               (this process's environment variables)
"""

_OPTIONS: tuple[Callable[[F], F], ...] = (
    click.option(
        "--git",
        "git_history",
        is_flag=True,
        help="Scan git history (every commit reachable from HEAD); PATH is the repository "
        "(default: .). One finding per secret, naming the commit that introduced it.",
    ),
    click.option(
        "--all-branches", is_flag=True, help="Git: every branch, tag and remote ref, not just HEAD."
    ),
    click.option("--since", metavar="REV", help="Git: only commits after REV (REV..HEAD)."),
    click.option("--range", "commit_range", metavar="A..B", help="Git: only the commits in A..B."),
    click.option(
        "--staged",
        is_flag=True,
        help="Scan only the lines added in the git index (what the next commit adds).",
    ),
    click.option(
        "--env",
        "environment",
        is_flag=True,
        help="Scan this process's environment variables (one finding per variable; values are "
        "never printed). PATHS are scanned too only when given.",
    ),
)

SOURCE_PARAMS = ("git_history", "all_branches", "since", "commit_range", "staged", "environment")


def source_scan_options(f: F) -> F:
    """Decorate the scan command with this module's options."""
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


class LocalSources:
    """The git / staged / environment sources chosen on the command line."""

    def __init__(self, params: Mapping[str, Any], config: Config) -> None:
        self.git = bool(params.get("git_history"))
        self.all_branches = bool(params.get("all_branches"))
        self.since: str | None = params.get("since")
        self.range: str | None = params.get("commit_range")
        self.staged = bool(params.get("staged"))
        self.env = bool(params.get("environment"))
        self._config = config
        history_only = [
            n
            for n, v in (
                ("--all-branches", self.all_branches),
                ("--since", self.since),
                ("--range", self.range),
            )
            if v
        ]
        if history_only and not self.git:
            raise ConfigError(f"{', '.join(history_only)} needs --git")
        if self.git and self.staged:
            raise ConfigError(
                "--git and --staged cannot be combined",
                hint="Scan history with --git, or what is about to be committed with --staged",
            )

    @property
    def chosen(self) -> bool:
        return self.git or self.staged or self.env

    @property
    def owns_paths(self) -> bool:
        """With --git / --staged, PATHS name the repository, not files to scan."""
        return self.git or self.staged

    def scan(
        self,
        paths: Sequence[Path],
        spec: EngineSpec,
        engine: Engine,
        *,
        jobs: int | None = None,
        max_file_size: str | None = None,
        exclude: Sequence[str] = (),
    ) -> ScanResult:
        from keyward.scan.service import ScanResult

        result = ScanResult()
        size = self._max_size(max_file_size)
        excludes = (*self._config.excludes(), *exclude)  # as for files: they add up
        if self.owns_paths:
            if len(paths) > 1:
                raise ConfigError(
                    "--git and --staged take one repository path",
                    hint="Run one scan per repository",
                )
            repo = paths[0] if paths else Path(".")
            if self.git:
                result.extend(self._history(repo, spec, engine, jobs, size, excludes))
            else:
                result.extend(self._staged(repo, engine, size, excludes))
        if self.env:
            from keyward.scan.service import scan_chunks
            from keyward.scan.sources.env import ProcessEnvSource

            source = ProcessEnvSource()
            env_result = scan_chunks(engine, source.chunks())
            env_result.skipped.extend(source.skipped)
            result.extend(env_result)
        return result

    def _max_size(self, cli_value: str | None) -> int:
        from keyward.core.config import DEFAULT_MAX_FILE_SIZE

        if cli_value:
            return parse_size(cli_value)
        configured = self._config.max_file_size()
        return configured if configured is not None else DEFAULT_MAX_FILE_SIZE

    def _history(
        self,
        repo: Path,
        spec: EngineSpec,
        engine: Engine,
        jobs: int | None,
        size: int,
        exclude: Sequence[str],
    ) -> ScanResult:
        from keyward.scan.sources.git import GitOptions, open_repo, scan_history

        options = GitOptions(
            all_branches=self.all_branches,
            since=self.since,
            range=self.range,
            max_file_size=size,
            exclude=tuple(exclude),
        )
        result, _ = scan_history(repo, spec, options, jobs=jobs, engine=engine)
        result.roots = [open_repo(repo).toplevel()]
        return result

    def _staged(self, repo: Path, engine: Engine, size: int, exclude: Sequence[str]) -> ScanResult:
        import time

        from keyward.scan.service import ScanResult
        from keyward.scan.sources.git import open_repo
        from keyward.scan.sources.staged import StagedSource
        from keyward.scan.sources.structured import scan_file_chunk

        started = time.perf_counter()
        source = StagedSource(repo, max_file_size=size, exclude=exclude)
        result = ScanResult()
        result.stats.engine = engine.backend
        result.stats.rules = len(engine.rules)
        for chunk in source.chunks():  # added lines of .env files are read as variables too
            result.stats.chunks += 1
            result.stats.bytes += len(chunk.text)
            result.findings.extend(scan_file_chunk(engine, chunk))
        result.skipped.extend(source.skipped)
        result.finish(started)
        result.roots = [open_repo(repo).toplevel()]
        return result
