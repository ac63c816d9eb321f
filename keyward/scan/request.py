"""One scan, as asked for: a frozen request, validated once when it is built.

The CLI (``keyward scan``, ``keyward hook``, ``keyward baseline``) resolves its options and
the configuration into one :class:`ScanRequest`; :func:`keyward.scan.runner.run_scan` runs it.
Every combination of options that makes no sense is refused here, each with one sentence, so
no source and no command checks them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from keyward.core.config import DEFAULT_MAX_FILE_SIZE
from keyward.core.errors import ConfigError
from keyward.scan.model import Confidence

if TYPE_CHECKING:
    from keyward.providers.settings import Account
    from keyward.scan.engine_spec import EngineSpec
    from keyward.scan.sources.aws_lambda import LambdaOptions
    from keyward.scan.sources.files import WalkOptions
    from keyward.scan.sources.git import GitOptions


def _default_engine() -> EngineSpec:
    from keyward.scan.engine_spec import EngineSpec

    return EngineSpec()


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """Which sources to scan, with which options, and how to match.

    ``paths`` are the files and directories to scan, or with ``git`` / ``staged`` the one
    repository. Files are scanned when paths are given for them or no other source is chosen.
    """

    engine: EngineSpec = field(default_factory=_default_engine)
    paths: tuple[Path, ...] = ()
    jobs: int | None = None  # worker processes; None: every core
    # findings under this confidence are not reported (nor recorded, nor exit 1)
    min_confidence: Confidence = Confidence.MEDIUM
    # files (exclude and max_file_size apply to history and staged changes too)
    exclude: tuple[str, ...] = ()
    use_ignore_files: bool = True
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    skip_files: frozenset[str] = frozenset()  # real paths never scanned (the baseline)
    # git history
    git: bool = False
    all_branches: bool = False
    since: str | None = None
    commit_range: str | None = None
    # staged changes
    staged: bool = False
    staged_files: tuple[str, ...] | None = None  # only these paths; None: every staged change
    # this process's environment
    environment: bool = False
    # live AWS Lambda functions
    aws_lambda: bool = False
    regions: tuple[str, ...] = ()
    all_regions: bool = False
    profile: str | None = None
    accounts: tuple[Account, ...] = ()  # resolved from [aws.accounts]; empty: keyward's own
    include_code: bool = False
    all_versions: bool = False
    max_code_size: int | None = None  # None: the Lambda source's default
    check_kms: bool = True

    def __post_init__(self) -> None:
        lambda_only = (
            self.regions, self.all_regions, self.profile, self.include_code, self.all_versions,
            self.accounts,
        )  # fmt: skip
        if not self.aws_lambda and any(lambda_only):
            raise ConfigError(
                "--region, --all-regions, --profile, --account, --all-accounts, --include-code "
                "and --all-versions apply to --aws-lambda",
                hint="Add --aws-lambda",
            )
        if self.regions and self.all_regions:
            raise ConfigError("Give either --region or --all-regions, not both")
        history_only = [
            name
            for name, value in (
                ("--all-branches", self.all_branches),
                ("--since", self.since),
                ("--range", self.commit_range),
            )
            if value
        ]
        if history_only and not self.git:
            raise ConfigError(f"{', '.join(history_only)} needs --git")
        if self.git and self.staged:
            raise ConfigError(
                "--git and --staged cannot be combined",
                hint="Scan history with --git, or what is about to be committed with --staged",
            )
        if self.commit_range is not None and (self.since is not None or self.all_branches):
            raise ConfigError("--range cannot be combined with --since or --all-branches")
        if self.names_repository and len(self.paths) > 1:
            raise ConfigError(
                "--git and --staged take one repository path", hint="Run one scan per repository"
            )
        if self.staged_files is not None and not self.staged:
            raise ConfigError("Staged file names apply to a scan of staged changes only")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1 (got {self.jobs})")
        if self.scans_files:
            from keyward.scan.sources.files import check_max_file_size

            check_max_file_size(self.max_file_size)
        if self.exclude:
            from keyward.scan.sources.files import check_excludes

            check_excludes(self.exclude)

    # ------------------------------------------------------------------ what to scan
    @property
    def names_repository(self) -> bool:
        """With ``git`` or ``staged``, the paths name the repository, not files to scan."""
        return self.git or self.staged

    @property
    def scans_files(self) -> bool:
        others = self.aws_lambda or self.git or self.staged or self.environment
        return bool(self.paths and not self.names_repository) or not others

    @property
    def roots(self) -> list[Path]:
        """The files and directories to scan (default: the current directory)."""
        return list(self.paths) or [Path(".")]

    @property
    def repository(self) -> Path:
        """The repository of a history or staged scan (default: the current directory)."""
        return self.paths[0] if self.paths else Path(".")

    # ------------------------------------------------------------------ per source
    def walk_options(self) -> WalkOptions:
        from keyward.scan.sources.files import WalkOptions

        return WalkOptions(
            exclude=self.exclude,
            use_ignore_files=self.use_ignore_files,
            max_file_size=self.max_file_size,
            skip_files=self.skip_files,
        )

    def git_options(self) -> GitOptions:
        from keyward.scan.sources.git import GitOptions

        return GitOptions(
            all_branches=self.all_branches,
            since=self.since,
            range=self.commit_range,
            max_file_size=self.max_file_size,
            exclude=self.exclude,
        )

    def lambda_options(self) -> LambdaOptions:
        from keyward.scan.sources.aws_lambda import DEFAULT_MAX_CODE_SIZE, LambdaOptions

        return LambdaOptions(
            regions=self.regions,
            all_regions=self.all_regions,
            profile=self.profile,
            accounts=self.accounts,
            include_code=self.include_code,
            all_versions=self.all_versions,
            max_code_size=(
                self.max_code_size if self.max_code_size is not None else DEFAULT_MAX_CODE_SIZE
            ),
            check_kms=self.check_kms,
        )
