"""A scan request is validated once, when it is built: one sentence per bad combination."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyward.core.errors import ConfigError, ExitCode
from keyward.scan.request import ScanRequest


@pytest.mark.parametrize(
    ("options", "sentence"),
    [
        ({"regions": ("us-east-1",)}, "apply to --aws-lambda"),
        ({"profile": "audit"}, "apply to --aws-lambda"),
        ({"include_code": True}, "apply to --aws-lambda"),
        (
            {"aws_lambda": True, "regions": ("us-east-1",), "all_regions": True},
            "Give either --region or --all-regions, not both",
        ),
        ({"since": "v1.0"}, "--since needs --git"),
        ({"all_branches": True, "commit_range": "a..b"}, "--all-branches, --range needs --git"),
        ({"git": True, "staged": True}, "--git and --staged cannot be combined"),
        (
            {"git": True, "commit_range": "a..b", "since": "v1"},
            "--range cannot be combined with --since or --all-branches",
        ),
        (
            {"git": True, "paths": (Path("a"), Path("b"))},
            "--git and --staged take one repository path",
        ),
        ({"staged_files": ("a.py",)}, "Staged file names apply to a scan of staged changes"),
        ({"jobs": 0}, "--jobs must be at least 1"),
        ({"max_file_size": 0}, "--max-file-size must be positive"),
    ],
)
def test_each_bad_combination_is_one_usage_error(options: dict[str, object], sentence: str) -> None:
    with pytest.raises(ConfigError) as info:
        ScanRequest(**options)  # type: ignore[arg-type]
    assert sentence in info.value.diagnostics()
    assert info.value.exit_code is ExitCode.USAGE
    assert "\n" not in info.value.diagnostics()


def test_files_are_scanned_when_named_or_when_no_other_source_is_chosen() -> None:
    here = (Path("src"),)
    assert ScanRequest().scans_files and ScanRequest().roots == [Path(".")]
    assert not ScanRequest(environment=True).scans_files
    assert ScanRequest(environment=True, paths=here).scans_files
    assert not ScanRequest(git=True, paths=here).scans_files  # the path is the repository
    assert ScanRequest(git=True, paths=here).repository == Path("src")
    assert not ScanRequest(aws_lambda=True).scans_files


def test_a_history_only_size_limit_is_not_held_to_the_file_limit() -> None:
    # files are read whole (at most 256M); history and staged scans read added lines only
    request = ScanRequest(git=True, max_file_size=512 * 1024 * 1024)
    assert request.git_options().max_file_size == 512 * 1024 * 1024


def test_options_reach_each_source() -> None:
    request = ScanRequest(
        git=True, all_branches=True, since="v1", exclude=("vendor/",), max_file_size=1024
    )
    git = request.git_options()
    assert (git.all_branches, git.since, git.range, git.exclude, git.max_file_size) == (
        True, "v1", None, ("vendor/",), 1024,
    )  # fmt: skip
    lam = ScanRequest(aws_lambda=True, regions=("eu-west-1",), check_kms=False).lambda_options()
    assert lam.regions == ("eu-west-1",) and not lam.check_kms and lam.max_code_size > 0
    walk = ScanRequest(use_ignore_files=False, exclude=("*.min.js",)).walk_options()
    assert not walk.use_ignore_files and walk.exclude == ("*.min.js",)
