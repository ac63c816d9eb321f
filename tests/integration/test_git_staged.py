"""`keyward scan --staged` and the staged source: only what the next commit adds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _git_helpers import Git, engine_for_tests, mint_aws_key_id, mint_github_token

from keyward.scan.engine import Engine
from keyward.scan.model import SourceKind
from keyward.scan.sources.staged import StagedSource

OLD = mint_github_token(11)
NEW = mint_github_token(12)
UNSTAGED = mint_github_token(13)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return engine_for_tests()


@pytest.fixture
def git(git_repo: Path) -> Git:
    return Git(git_repo)


def staged_findings(git: Git, engine: Engine, files: list[str] | None = None):  # type: ignore[no-untyped-def]
    source = StagedSource(git.root, files)
    return [f for c in source.chunks() for f in engine.scan(c)]


def test_only_added_lines_are_scanned_with_new_file_line_numbers(git: Git, engine: Engine) -> None:
    git.write("app.py", f'a = 1\nOLD = "{OLD}"\nb = 2\n')
    git.commit("old secret, already in history")
    git.write("app.py", f'a = 1\nOLD = "{OLD}"\nb = 2\nc = 3\nNEW = "{NEW}"\n')
    git("add", "app.py")
    git.write("app.py", f'a = 1\nOLD = "{OLD}"\nb = 2\nc = 3\nNEW = "{NEW}"\nU = "{UNSTAGED}"\n')

    [f] = staged_findings(git, engine)
    assert f.location.kind is SourceKind.STAGED
    assert (f.location.path, f.location.line, f.location.column) == ("app.py", 5, 8)
    assert f.secret == NEW


def test_inline_allow_on_the_added_line_suppresses(git: Git, engine: Engine) -> None:
    git.write("t.py", f'TOKEN = "{NEW}"  # keyward: allow\n')
    git("add", "t.py")
    [f] = staged_findings(git, engine)
    assert f.suppressed_by == "inline"


def test_staged_binary_file_and_initial_commit(git: Git, engine: Engine) -> None:
    key = mint_aws_key_id(3)
    git.write("blob.bin", b"\x00\x00" + f"key={key}".encode() + b"\x00")
    git("add", "blob.bin")  # no commit yet: the index is compared with the empty tree
    [f] = staged_findings(git, engine)
    assert (f.rule_id, f.location.path, f.location.line) == ("aws-access-key-id", "blob.bin", 0)


def test_named_files_limit_the_scan_and_unstaged_named_files_are_read_whole(
    git: Git, engine: Engine
) -> None:
    git.write("committed.py", f'X = "{OLD}"\n')
    git.commit("base")
    git.write("a.py", f'A = "{NEW}"\n')
    git.write("b.py", f'B = "{UNSTAGED}"\n')
    git("add", "a.py", "b.py")

    only_b = staged_findings(git, engine, ["b.py"])
    assert [f.location.path for f in only_b] == ["b.py"]
    # `pre-commit run --all-files` names files with nothing staged: they are scanned whole
    whole = staged_findings(git, engine, ["committed.py"])
    assert [(f.location.path, f.location.line) for f in whole] == [("committed.py", 1)]


def test_cli_staged_honours_the_baseline(git: Git) -> None:
    git.write("README", "x\n")
    git.commit("base")
    git.write("conf.py", f'TOKEN = "{NEW}"\n')
    git("add", "conf.py")
    cmd = [sys.executable, "-m", "keyward", "scan", "--staged", "--format", "json"]
    first = subprocess.run(cmd, cwd=git.root, capture_output=True, text=True)
    assert first.returncode == 1, first.stderr
    [f] = json.loads(first.stdout)["findings"]
    assert (f["path"], f["line"], f["source"]) == ("conf.py", 1, "staged")
    assert NEW not in first.stdout

    created = subprocess.run(
        [sys.executable, "-m", "keyward", "baseline", "create"],
        cwd=git.root,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    second = subprocess.run(
        [*cmd, "--baseline", ".secrets.baseline"], cwd=git.root, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(second.stdout)["findings"] == []


def test_hook_and_scan_staged_read_a_baseline_in_a_subdirectory_the_same_way(git: Git) -> None:
    """Both run one request through one runner: baseline paths are relative to the baseline's
    own directory, as `keyward baseline create` run there writes them."""
    git.write("README", "x\n")
    git.commit("base")
    git.write("svc/keys.py", f'TOKEN = "{NEW}"\n')
    git("add", "svc/keys.py")
    created = subprocess.run(
        [sys.executable, "-m", "keyward", "baseline", "create"],
        cwd=git.root / "svc",
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    assert '"keys.py"' in (git.root / "svc" / ".secrets.baseline").read_text()
    base = ["--baseline", "svc/.secrets.baseline"]
    for cmd in (["scan", "--staged", "-f", "json", *base], ["hook", *base, "svc/keys.py"]):
        proc = subprocess.run(
            [sys.executable, "-m", "keyward", *cmd], cwd=git.root, capture_output=True, text=True
        )
        assert proc.returncode == 0, (cmd, proc.stdout + proc.stderr)
    git.write("svc/keys.py", f'TOKEN = "{NEW}"\nOTHER = "{UNSTAGED}"\n')
    git("add", "svc/keys.py")
    for cmd in (["scan", "--staged", "-f", "json", *base], ["hook", *base, "svc/keys.py"]):
        proc = subprocess.run(
            [sys.executable, "-m", "keyward", *cmd], cwd=git.root, capture_output=True, text=True
        )
        assert proc.returncode == 1, (cmd, proc.stdout + proc.stderr)
        assert "svc/keys.py" in proc.stdout + proc.stderr and UNSTAGED not in proc.stdout


def test_cli_options_that_need_git_are_refused_without_it(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "keyward", "scan", "--since", "HEAD~1", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "--since needs --git" in proc.stderr


def test_added_lines_of_a_dotenv_file_are_read_as_variables(git: Git, engine: Engine) -> None:
    from keyward.scan.variables import match_with_variables

    git.write(".env", "A=1\nB=2\n")
    git.commit("base")
    git.write(
        ".env", "A=1\nB=2\nDB_PASSWORD=hunter2-Prod-88\nSAFE_PASSWORD=Kq7#vLp2x # keyward: allow\n"
    )
    git("add", ".env")
    source = StagedSource(git.root)
    found = [f for c in source.chunks() for f in match_with_variables(engine, c)]
    [f] = [f for f in found if f.suppressed_by is None]
    assert f.rule_id == "secret-named-variable"
    loc = f.location
    assert (loc.kind, loc.path, loc.line, loc.column, loc.variable) == (
        SourceKind.STAGED,
        ".env",
        3,
        13,
        "DB_PASSWORD",
    )
    assert [g.location.variable for g in found if g.suppressed_by == "inline"] == ["SAFE_PASSWORD"]


def test_config_excludes_apply_to_the_hook_and_staged_scans(git: Git) -> None:
    git.write("keyward.toml", '[scan]\nexclude = ["fixtures/"]\n')
    git.write("fixtures/fake.py", f'T = "{NEW}"\n')
    git("add", "fixtures/fake.py")
    hook = subprocess.run(
        [sys.executable, "-m", "keyward", "hook", "fixtures/fake.py"],
        cwd=git.root,
        capture_output=True,
        text=True,
    )
    assert hook.returncode == 0, hook.stderr
    staged = subprocess.run(
        [sys.executable, "-m", "keyward", "scan", "--staged", "-f", "json"],
        cwd=git.root,
        capture_output=True,
        text=True,
    )
    assert staged.returncode == 0, staged.stdout + staged.stderr


def test_hook_on_files_with_nothing_staged_does_not_claim_a_blocked_commit(git: Git) -> None:
    # `pre-commit run --all-files` with nothing staged: the named files are scanned whole
    git.write("README", "x\n")
    git.commit("base")
    git.write("conf.py", f'TOKEN = "{NEW}"\n')
    git("add", "conf.py")
    hook = [sys.executable, "-m", "keyward", "hook"]
    staged = subprocess.run([*hook, "conf.py"], cwd=git.root, capture_output=True, text=True)
    assert staged.returncode == 1 and "commit blocked" in staged.stderr  # staged: blocked
    git.commit("the token")
    whole = subprocess.run([*hook, "conf.py"], cwd=git.root, capture_output=True, text=True)
    assert whole.returncode == 1, whole.stderr
    assert "commit blocked" not in whole.stderr and "staged changes" not in whole.stderr
    assert "not staged" in whole.stderr and "conf.py:1" in whole.stderr
