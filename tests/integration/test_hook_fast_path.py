"""`keyward hook FILE...` without click: the plain case pre-commit runs is read from argv and
answered exactly as the click application answers it; anything else goes to click.

Every case runs twice, through the console entry point (`keyward.cli.main`) and through the
click application alone (`keyward.cli.app.main`), and the two must agree byte for byte on
stdout, stderr and the exit code; a marker file says whether click was imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _git_helpers import Git, git_env, mint_github_token

from keyward.cli.hookrun import HookArgs, hook_args

TOKEN = mint_github_token(41)
OTHER = mint_github_token(42)

DRIVER = """\
import sys
marker, which = sys.argv.pop(1), sys.argv.pop(1)
try:
    if which == "entry":
        from keyward.cli import main
    else:
        from keyward.cli.app import main
    main(sys.argv[1:])
finally:
    with open(marker, "w") as fh:
        fh.write("click" if "click" in sys.modules else "plain")
"""


# ------------------------------------------------------------------ what is read here
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["hook"], HookArgs()),
        (["hook", "a.py", "b/c.py"], HookArgs(files=("a.py", "b/c.py"))),
        (["hook", "--all-staged", "a.py"], HookArgs(files=("a.py",), all_staged=True)),
        (
            ["hook", "--baseline", "one", "a.py", "--baseline=two"],
            HookArgs(files=("a.py",), baseline=Path("two")),
        ),
        (
            ["hook", "--rules", "r.toml", "a.py", "--rules=s.toml"],
            HookArgs(files=("a.py",), rule_files=(Path("r.toml"), Path("s.toml"))),
        ),
    ],
)
def test_the_documented_hook_arguments_are_read_without_click(
    argv: list[str], expected: HookArgs
) -> None:
    assert hook_args(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["scan", "--staged"],
        ["--debug", "hook"],
        ["--config", "keyward.toml", "hook"],
        ["hook", "install"],
        ["hook", "install", "--force"],
        ["hook", "scan", "a.py"],
        ["hook", "--help"],
        ["hook", "-h"],
        ["hook", "a.py", "--help"],
        ["hook", "--debug", "a.py"],
        ["hook", "--"],
        ["hook", "--", "a.py"],
        ["hook", "-"],
        ["hook", "-x.py"],
        ["hook", "--baseline"],
        ["hook", "--baseline", "--rules", "r.toml"],
        ["hook", "--all-staged=yes"],
        ["hook", "--all", "a.py"],
        ["hook", "--bogus", "a.py"],
    ],
)
def test_anything_else_goes_to_click(argv: list[str]) -> None:
    assert hook_args(argv) is None


def test_values_click_refuses_go_to_click(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("adir").mkdir()
    assert hook_args(["hook", "--baseline", "adir"]) is None  # "is a directory"
    assert hook_args(["hook", "--rules", "adir"]) == HookArgs(rule_files=(Path("adir"),))
    assert hook_args(["hook", "adir"]) == HookArgs(files=("adir",))
    monkeypatch.setenv("_KEYWARD_COMPLETE", "bash_complete")  # shell completion
    assert hook_args(["hook", "a.py"]) is None


# ------------------------------------------------------------------ both paths, one answer
@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Git:
    root = tmp_path_factory.mktemp("fast") / "repo"
    root.mkdir()
    git = Git(root)
    git("init", "-q", "-b", "main")
    git.write("README", "hello\n")
    git.commit("base")
    git.write("a.py", f'TOKEN = "{TOKEN}"\n')
    git.write("clean.py", "x = 1\n")
    git.write("sub/b.py", f'OTHER = "{OTHER}"  # keyward: allow\n')
    git("add", "a.py", "clean.py", "sub/b.py")
    git.write("bad-rules.toml", "[[rules]]\nid = 'Not Kebab'\n")
    git.write("adir/keep", "")
    return git


def both(cwd: Path, *args: str, tmp: Path) -> tuple[tuple[int, str, str], str]:
    """(exit code, stdout, stderr) of both paths, which must agree; and whether the entry
    point imported click ("click") or not ("plain")."""
    answers = []
    imported = []
    for which in ("entry", "app"):
        marker = tmp / f"marker-{which}"
        proc = subprocess.run(
            [sys.executable, "-c", DRIVER, str(marker), which, *args],
            cwd=cwd,
            env=git_env(KEYWARD_CACHE_DIR=str(tmp / "cache"), COLUMNS="80"),
            capture_output=True,
            text=True,
        )
        answers.append((proc.returncode, proc.stdout, proc.stderr))
        imported.append(marker.read_text())
    assert answers[0] == answers[1], (args, answers)
    assert imported[1] == "click"
    return answers[0], imported[0]


@pytest.mark.parametrize(
    ("args", "code", "path"),
    [
        (["hook", "clean.py"], 0, "plain"),
        (["hook", "a.py", "clean.py"], 1, "plain"),
        (["hook"], 1, "plain"),
        (["hook", "--all-staged", "clean.py"], 1, "plain"),
        (["hook", "sub/b.py", "--baseline", "missing.baseline"], 2, "plain"),
        (["hook", "--rules=bad-rules.toml", "clean.py"], 2, "plain"),
        (["hook", "--baseline", "adir", "a.py"], 2, "click"),
        (["hook", "--bogus", "a.py"], 2, "click"),
        (["hook", "--baseline"], 2, "click"),
        (["hook", "--help"], 0, "click"),
    ],
)
def test_both_paths_give_the_same_output_and_exit_code(
    repo: Git, tmp_path: Path, args: list[str], code: int, path: str
) -> None:
    (rc, out, err), imported = both(repo.root, *args, tmp=tmp_path)
    assert (rc, imported) == (code, path), err
    if rc == 1:
        assert "a.py:1" in err and "github-pat-classic" in err and TOKEN not in out + err
    if "bad-rules.toml" in " ".join(args):
        assert "keyward: error: Rule 1 in bad-rules.toml has no valid id" in err


def test_both_paths_agree_on_a_bad_config_file_and_outside_a_repository(
    repo: Git, tmp_path: Path
) -> None:
    (rc, _, err), imported = both(tmp_path, "hook", "a.py", tmp=tmp_path)
    assert (rc, imported) == (2, "plain") and "not a git repository" in err
    (repo.root / "keyward.toml").write_text("[scan\n")
    try:
        (rc, _, err), imported = both(repo.root, "hook", "a.py", tmp=tmp_path)
    finally:
        os.unlink(repo.root / "keyward.toml")
    assert (rc, imported) == (2, "plain") and err.startswith("keyward: error: ")


def test_a_blocked_commit_costs_two_git_processes(repo: Git, tmp_path: Path) -> None:
    """`rev-parse` (where is the repository) and one `diff --cached`, whose files also say
    which findings are in the staged changes (no third `diff --cached --name-only`)."""
    import shutil

    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "git.log"
    real = shutil.which("git")
    (shim / "git").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755)
    env = git_env(
        PATH=f"{shim}{os.pathsep}{os.environ['PATH']}", KEYWARD_CACHE_DIR=str(tmp_path / "c")
    )
    cmd = [sys.executable, "-m", "keyward", "hook", "a.py", "clean.py"]
    subprocess.run(cmd, cwd=repo.root, env=env, capture_output=True)  # a cold cache
    log.unlink()
    proc = subprocess.run(cmd, cwd=repo.root, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "commit blocked: 1 secret in the staged changes" in proc.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 2, calls
    assert calls[0].endswith("rev-parse --git-dir --show-toplevel")
    assert " diff --cached " in calls[1] and "--name-only" not in calls[1]


GC_SPY = """\
import gc, sys
import keyward.cli.settings as settings
import keyward.scan.runner as runner
seen = []
light, run = settings.light_engine_spec, runner.run_scan
def spy_light(*a, **k):
    seen.append(("start-up", gc.isenabled()))
    return light(*a, **k)
def spy_run(*a, **k):
    seen.append(("scan", gc.isenabled()))
    return run(*a, **k)
settings.light_engine_spec, runner.run_scan = spy_light, spy_run
from keyward.cli import main
try:
    main(sys.argv[1:])
finally:
    print(seen)
"""


def test_the_plain_hook_collects_no_garbage_during_start_up_only(repo: Git) -> None:
    """Cyclic garbage collection is off while modules, rules and the engine load, and on
    again for the scan (a large staged change must not grow without bound)."""
    proc = subprocess.run(
        [sys.executable, "-c", GC_SPY, "hook", "a.py"],
        cwd=repo.root,
        env=git_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip() == "[('start-up', False), ('scan', True)]"
