"""The pre-commit hook with real git commits: the pre-commit framework and a plain git hook.

The framework test builds its `.pre-commit-config.yaml` from this repository's own
`.pre-commit-hooks.yaml` (id, entry, pass_filenames, stages...). It runs as a `repo: local`
hook with `language: system` so no virtualenv is built and nothing is downloaded: the entry
`keyward hook` is found on PATH, exactly as pre-commit runs it in its own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _git_helpers import Git, git_env, mint_github_token

from keyward.cli.hook import HOOK_MARKER

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = mint_github_token(21)
VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture
def git(git_repo: Path) -> Git:
    g = Git(git_repo)
    g.write("README", "hello\n")
    g.commit("base")
    return g


def commit(git: Git, tmp_path: Path, message: str) -> subprocess.CompletedProcess[str]:
    env = git_env(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
    )
    return subprocess.run(
        ["git", "commit", "-m", message],
        cwd=git.root,
        env=env,
        capture_output=True,
        text=True,
    )


def test_pre_commit_hooks_file_declares_the_keyward_hook() -> None:
    [hook] = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "keyward"
    assert hook["entry"] == "keyward hook"
    assert hook["language"] == "python"


def test_pre_commit_framework_blocks_then_allows_the_commit(git: Git, tmp_path: Path) -> None:
    [hook] = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())
    local = {**hook, "language": "system"}
    config = {"repos": [{"repo": "local", "hooks": [local]}]}
    git.write(".pre-commit-config.yaml", yaml.safe_dump(config))
    git("add", ".pre-commit-config.yaml")
    subprocess.run(
        [str(Path(VENV_BIN) / "pre-commit"), "install"],
        cwd=git.root,
        env=git_env(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home")),
        check=True,
        capture_output=True,
    )

    git.write("src/settings.py", f'DEBUG = False\nGITHUB_TOKEN = "{TOKEN}"\n')
    git("add", "src/settings.py")
    blocked = commit(git, tmp_path, "add settings")
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, out
    assert "src/settings.py:2" in out
    assert "github-pat-classic" in out
    assert "keyward: allow" in out and "keyward baseline update" in out
    assert TOKEN not in out

    git.write("src/settings.py", f'DEBUG = False\nGITHUB_TOKEN = "{TOKEN}"  # keyward: allow\n')
    git("add", "src/settings.py")
    allowed = commit(git, tmp_path, "add settings")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert git("log", "-1", "--format=%s") == "add settings"


def test_installed_plain_hook_blocks_then_allows(git: Git, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "keyward", "hook", "install"],
        cwd=git.root,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    hook = git.root / ".git" / "hooks" / "pre-commit"
    assert HOOK_MARKER in hook.read_text() and os.access(hook, os.X_OK)

    git.write("deploy.env", f"GITHUB_TOKEN={TOKEN}\n")
    git("add", "deploy.env")
    blocked = commit(git, tmp_path, "deploy config")
    assert blocked.returncode == 1
    assert "deploy.env:1" in blocked.stderr

    git("rm", "-q", "--cached", "deploy.env")
    git.write("notes.txt", "nothing secret here\n")
    git("add", "notes.txt")
    assert commit(git, tmp_path, "notes").returncode == 0


def test_install_refuses_a_foreign_hook_unless_forced(git: Git) -> None:
    hook = git.root / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text("#!/bin/sh\necho team hook\n")
    cmd = [sys.executable, "-m", "keyward", "hook", "install"]

    refused = subprocess.run(cmd, cwd=git.root, capture_output=True, text=True)
    assert refused.returncode == 2
    assert "not written by keyward" in refused.stderr and "--force" in refused.stderr
    assert hook.read_text() == "#!/bin/sh\necho team hook\n"

    forced = subprocess.run([*cmd, "--force"], cwd=git.root, capture_output=True, text=True)
    assert forced.returncode == 0, forced.stderr
    assert HOOK_MARKER in hook.read_text()
    assert (hook.parent / "pre-commit.keyward-backup").read_text().endswith("team hook\n")
    # our own hook is simply rewritten
    again = subprocess.run(cmd, cwd=git.root, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


def test_hook_outside_a_repository_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "keyward", "hook"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "not a git repository" in proc.stderr and "Traceback" not in proc.stderr


def test_hook_honours_the_repository_baseline(git: Git) -> None:
    git.write("legacy/keys.py", f'OLD_TOKEN = "{TOKEN}"\n')
    git("add", "legacy/keys.py")
    hook = [sys.executable, "-m", "keyward", "hook", "legacy/keys.py"]
    assert subprocess.run(hook, cwd=git.root, capture_output=True).returncode == 1
    created = subprocess.run(
        [sys.executable, "-m", "keyward", "baseline", "create"],
        cwd=git.root,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    passed = subprocess.run(hook, cwd=git.root, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stderr


def test_plain_hook_sees_what_commit_a_and_commit_paths_would_commit(
    git: Git, tmp_path: Path
) -> None:
    """`git commit -a` / `git commit FILE` commit from a temporary index (GIT_INDEX_FILE)."""
    subprocess.run([sys.executable, "-m", "keyward", "hook", "install"], cwd=git.root, check=True)
    git.write("README", f"hello\ntoken {TOKEN}\n")  # tracked, modified, not staged
    env = git_env(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for args in (["commit", "-a", "-m", "all"], ["commit", "-m", "one", "README"]):
        proc = subprocess.run(["git", *args], cwd=git.root, env=env, capture_output=True, text=True)
        assert proc.returncode == 1, (args, proc.stdout + proc.stderr)
        assert "README:2" in proc.stderr
