"""The pre-commit path stays light: no cloud, Vault, database or scheduler libraries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from _git_helpers import Git, mint_github_token

FORBIDDEN = ("boto3", "botocore", "hvac", "sqlalchemy", "apscheduler", "psycopg")


def imported_modules(stderr: str) -> set[str]:
    """Top-level module names from `python -X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", line)
        if m:
            names.add(m.group(1).split(".")[0])
    return names


def test_hook_imports_no_cloud_vault_database_or_scheduler_library(git_repo: Path) -> None:
    git = Git(git_repo)
    git.write("a.py", f'TOKEN = "{mint_github_token(31)}"\n')
    git("add", "a.py")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keyward", "hook", "a.py"],
        cwd=git.root,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # it really scanned and blocked
    names = imported_modules(proc.stderr)
    assert "keyward" in names
    assert not names & set(FORBIDDEN), sorted(names & set(FORBIDDEN))
    assert "rich" not in names  # plain text output on this path
    # pre-commit's plain `keyward hook FILE...` is read without click or the click application
    assert "click" not in names
    full = {m.group(1) for m in re.finditer(r"\|\s+(keyward\.\S+)", proc.stderr)}
    assert "keyward.cli.app" not in full and "keyward.cli.hook" not in full
    # nor the file walker, its archive readers or pathspec (no exclude globs configured)
    assert "pathspec" not in names


def test_hook_without_excludes_imports_no_file_walker(git_repo: Path) -> None:
    git = Git(git_repo)
    git.write("a.py", "x = 1\n")
    git("add", "a.py")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keyward", "hook", "a.py"],
        cwd=git.root,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    full = {m.group(1) for m in re.finditer(r"\|\s+(keyward\.\S+)", proc.stderr)}
    assert "keyward.scan.sources.staged" in full  # it did scan the staged change
    assert "keyward.scan.sources.files" not in full


def test_staged_scan_imports_no_cloud_vault_database_or_scheduler_library(
    git_repo: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keyward", "scan", "--staged", "-f", "json"],
        cwd=git_repo,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = imported_modules(proc.stderr)
    assert not names & set(FORBIDDEN), sorted(names & set(FORBIDDEN))


def test_a_warm_hook_run_reads_no_toml_and_builds_no_click(git_repo: Path, tmp_path: Path) -> None:
    """With the caches warm (a second commit), rules and keyward's known public values come
    from the rule cache, and zxcvbn's word ranks (the password is judged) from their own: no
    TOML parser, no importlib.resources, no click, no logging, no zxcvbn."""
    import os

    git = Git(git_repo)
    git.write("a.py", f'TOKEN = "{mint_github_token(32)}"\nPASSWORD = "Xq7#vLp2x9Tz"\n')
    git("add", "a.py")
    env = {**os.environ, "KEYWARD_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-X", "importtime", "-m", "keyward", "hook", "a.py"]
    runs = [subprocess.run(cmd, cwd=git.root, capture_output=True, text=True, env=env)]
    runs.append(subprocess.run(cmd, cwd=git.root, capture_output=True, text=True, env=env))
    assert [r.returncode for r in runs] == [1, 1], runs[1].stderr[-2000:]
    first, second = (imported_modules(r.stderr) for r in runs)
    assert {"tomllib", "zxcvbn"} <= first  # the cold run parsed the rules, ranked the words
    # logging: imported when something logs; zxcvbn: its word ranks are in the cache too
    light = {"tomllib", "click", "logging", "zxcvbn"}
    assert not second & light, sorted(second & light)
    assert "importlib.resources" not in {
        m.group(1) for m in re.finditer(r"\|\s+(importlib\.\S+)", runs[1].stderr)
    }
    blocked = [r.stderr[r.stderr.index("keyward: commit blocked") :] for r in runs]
    assert blocked[0] == blocked[1] and "a.py:1  github-pat-classic" in blocked[1]
