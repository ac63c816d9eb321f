"""Targets files and shards: what each line names, what it is recorded as, who scans it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from keyward.core.errors import ConfigError, ExitCode
from keyward.scan.targets import (
    Shard,
    Target,
    TargetKind,
    TargetsError,
    parse_targets,
    read_targets,
    safe_url,
)


def kinds_and_names(text: str, cwd: Path) -> list[tuple[TargetKind, str]]:
    return [(t.kind, t.name) for t in parse_targets(text, cwd=cwd)]


def test_each_line_form_names_its_kind_and_recorded_name(tmp_path: Path) -> None:
    bare = tmp_path / "mirror.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    text = f"""
# nightly scan
src                                  # a directory, relative to the current one
files:/srv/app
git:checkouts/api
{bare}
git@github.example:org/app.git
https://git.example.com/org/site.git
aws-lambda:123456789012/eu-west-1
aws-lambda:123456789012/us-gov-west-1
"""
    assert kinds_and_names(text, tmp_path) == [
        (TargetKind.FILES, f"files:{tmp_path}/src"),
        (TargetKind.FILES, "files:/srv/app"),
        (TargetKind.GIT, f"git:{tmp_path}/checkouts/api"),
        (TargetKind.GIT, f"git:{bare}"),
        (TargetKind.GIT, "git:git@github.example:org/app.git"),
        (TargetKind.GIT, "git:https://git.example.com/org/site.git"),
        (TargetKind.AWS_LAMBDA, "aws-lambda:123456789012/eu-west-1"),
        (TargetKind.AWS_LAMBDA, "aws-lambda:123456789012/us-gov-west-1"),
    ]


def test_only_urls_are_cloned_and_lambda_targets_carry_account_and_region(tmp_path: Path) -> None:
    url, path, lam = parse_targets(
        "git:file:///srv/x.git\ngit:/srv/y\naws-lambda:210987654321/ap-south-2", cwd=tmp_path
    )
    assert url.remote and not path.remote and not lam.remote
    assert (lam.account, lam.region) == ("210987654321", "ap-south-2")


def test_a_credential_in_a_url_never_reaches_the_target_name_or_repr() -> None:
    token = "ghp_notarealtoken000000000000000000000"  # keyward: allow
    (target,) = parse_targets(f"https://x-access-token:{token}@git.example.com/o/r.git?t={token}")
    assert target.name == "git:https://git.example.com/o/r.git"
    assert token not in repr(target)
    assert target.where.startswith("https://x-access-token:")  # what git is given
    assert safe_url(f"ssh://git:{token}@[::1]:2222/r.git") == "ssh://[::1]:2222/r.git"


def test_the_same_target_twice_is_scanned_once_in_first_position(tmp_path: Path) -> None:
    text = "a\nb\n./a\nfiles:a  # again\n"
    assert [t.name for t in parse_targets(text, cwd=tmp_path)] == [
        f"files:{tmp_path}/a",
        f"files:{tmp_path}/b",
    ]


@pytest.mark.parametrize(
    ("line", "sentence"),
    [
        ("aws-lambda:12345/eu-west-1", "aws-lambda:ACCOUNT/REGION"),
        ("aws-lambda:123456789012", "aws-lambda:ACCOUNT/REGION"),
        ("aws-lambda:123456789012/Europe", "aws-lambda:ACCOUNT/REGION"),
        ("git:", "names no path or URL"),
        ("files:https://git.example.com/o/r.git", "a files: target is a local path"),
    ],
)
def test_a_bad_line_is_one_usage_error_naming_file_and_line(line: str, sentence: str) -> None:
    with pytest.raises(TargetsError) as info:
        parse_targets(f"# ok\nsrc\n{line}\n", source="org.txt")
    assert info.value.exit_code is ExitCode.USAGE
    assert info.value.message.startswith("org.txt:3: ")
    assert sentence in info.value.diagnostics()


def test_a_file_of_comments_only_or_missing_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(TargetsError, match="names no target"):
        parse_targets("# nothing yet\n\n")
    with pytest.raises(TargetsError, match="does not exist"):
        read_targets(tmp_path / "absent.txt")


def test_a_targets_file_that_is_a_device_or_too_large_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TargetsError, match="not a regular file"):
        read_targets(Path("/dev/zero"))  # would never end if read whole
    monkeypatch.setattr("keyward.scan.targets.TARGETS_LIMIT", 64)
    big = tmp_path / "big.txt"
    big.write_text("src\n" * 40)
    with pytest.raises(TargetsError, match="larger than"):
        read_targets(big)


def names(n: int) -> list[Target]:
    return [Target(TargetKind.FILES, f"files:/t{i}", f"/t{i}") for i in range(n)]


@pytest.mark.parametrize(("targets", "count"), [(10, 3), (2, 5), (7, 1)])
def test_shards_split_the_targets_into_disjoint_shares_covering_all(
    targets: int, count: int
) -> None:
    every = names(targets)
    shares = [Shard(k, count).select(every) for k in range(count)]
    flat = [t.name for share in shares for t in share]
    assert sorted(flat) == sorted(t.name for t in every)
    assert len(flat) == len(set(flat))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced by count


def test_shard_parses_k_of_n_counting_from_zero_and_refuses_the_impossible() -> None:
    assert Shard.parse("2/4") == Shard(2, 4)
    for bad in ("4/4", "1/0", "-1/3", "a/b", "2"):
        with pytest.raises(ConfigError) as info:
            Shard.parse(bad)
        assert info.value.exit_code is ExitCode.USAGE


def test_shards_take_their_index_from_job_completion_index() -> None:
    assert Shard.from_environment(5, {"JOB_COMPLETION_INDEX": "3"}) == Shard(3, 5)
    with pytest.raises(ConfigError, match="needs JOB_COMPLETION_INDEX"):
        Shard.from_environment(5, {})
    with pytest.raises(ConfigError, match="does not exist"):
        Shard.from_environment(2, {"JOB_COMPLETION_INDEX": "2"})
