"""The command line: version, help with examples everywhere, error boundary, exit codes,
config precedence, progress only on a terminal, bad input never crashes."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from keyward import __version__
from keyward.cli import cli, main

TOKEN = "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"  # GitHub format with a valid checksum


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def sub(*args: str, cwd: Path | None = None, timeout: float = 120, **kw: object):  # type: ignore[no-untyped-def]
    env = {**os.environ, "KEYWARD_FINGERPRINT_KEY": "ab" * 32, **kw.pop("env", {})}  # type: ignore[dict-item]
    env.pop("CI", None) if kw.pop("no_ci", False) else None
    return subprocess.run(
        [sys.executable, "-m", "keyward", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,  # type: ignore[arg-type]
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert (code, out.strip()) == (0, f"keyward, version {__version__}")


def test_python_dash_m_keyward_works() -> None:
    proc = sub("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


def walk(group: click.Group, ctx: click.Context, prefix: list[str]) -> Iterator[list[str]]:
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        yield [*prefix, name]
        if isinstance(cmd, click.Group):
            yield from walk(cmd, ctx, [*prefix, name])


def test_every_command_and_subcommand_help_shows_examples() -> None:
    runner = CliRunner()
    paths = list(walk(cli, click.Context(cli), []))
    assert ["scan"] in paths and ["baseline", "create"] in paths and ["rules", "check"] in paths
    for path in [[], *paths]:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Examples:" in result.output, f"keyward {' '.join(path)} --help has no examples"


@pytest.mark.parametrize("path", [[], ["scan"]])
def test_exit_codes_are_documented_in_help(path: list[str]) -> None:
    out = CliRunner().invoke(cli, [*path, "--help"]).output
    assert "Exit codes: 0 no findings, 1 findings, 2 usage or configuration error" in out


def test_errors_are_one_sentence_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    plain = sub("scan", str(tmp_path / "missing"))
    assert plain.returncode == 2
    assert plain.stderr == (
        f"keyward: error: The path {tmp_path / 'missing'} does not exist. "
        "Check the path and try again.\n"
    )
    debug = sub("--debug", "scan", str(tmp_path / "missing"))
    assert debug.returncode == 2  # the same documented code, not the traceback's 1
    assert "Traceback (most recent call last)" in debug.stderr and "SourceError" in debug.stderr
    assert debug.stderr.endswith(plain.stderr)  # and the sentence after it


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("regex = '''(?P<secret>abc[''' ", "invalid regex"),
        ("regex = '''abc[0-9]{8}'''", "no named group 'secret'"),
    ],
)
def test_a_bad_rule_file_exits_2_naming_the_rule_and_its_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: str, problem: str
) -> None:
    rules = tmp_path / "bad.toml"
    rules.write_text(f'[[rules]]\nid = "acme-key"\ndescription = "Acme"\n{rule}\n')
    code, out, err = run(capsys, "scan", str(tmp_path), "--rules", str(rules))
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith("keyward: error: Rule acme-key in ") and problem in line
    code, _, err = run(capsys, "rules", "check", str(rules))
    assert code == 2 and "acme-key" in err


def test_internal_errors_are_scrubbed_of_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyward.scan import runner

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError(f"unexpected value {TOKEN} in buffer")

    monkeypatch.setattr(runner, "run_scan", boom)
    code, _, err = run(capsys, "scan", str(tmp_path))
    assert code == 2
    assert "internal error: RuntimeError" in err and TOKEN not in err and "ghp_" in err


# ------------------------------------------------------------------ configuration precedence
@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "big.py").write_text(f"T = '{TOKEN}'\n" + "#" * 400)
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "lib.py").write_text(f"T = '{TOKEN}'\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def paths_found(out: str) -> list[str]:
    return sorted({f["path"] for f in json.loads(out)["findings"]})


def test_config_file_settings_apply(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "keyward.toml").write_text('[scan]\nexclude = ["vendor/"]\nmax_file_size = "200"\n')
    code, out, err = run(capsys, "scan", "-f", "json", "-v")
    assert code == 0 and paths_found(out) == []
    assert "keyward: skipped big.py: larger than --max-file-size" in err


def test_pyproject_tool_keyward_table_is_read(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text('[tool.keyward.scan]\nexclude = ["big.py"]\n')
    _, out, _ = run(capsys, "scan", "-f", "json")
    assert paths_found(out) == ["vendor/lib.py"]


def test_cli_beats_env_beats_config_file(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "keyward.toml").write_text('[scan]\nmax_file_size = "200"\n')
    assert paths_found(run(capsys, "scan", "-f", "json")[1]) == ["vendor/lib.py"]
    monkeypatch.setenv("KEYWARD_MAX_FILE_SIZE", "1M")
    assert paths_found(run(capsys, "scan", "-f", "json")[1]) == ["big.py", "vendor/lib.py"]
    out = run(capsys, "scan", "-f", "json", "--max-file-size", "100")[1]
    assert paths_found(out) == ["vendor/lib.py"]


def test_config_rules_and_baseline_are_relative_to_the_config_file(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = project / "conf"
    conf.mkdir()
    (conf / "acme.toml").write_text(
        '[[rules]]\nid = "acme-key"\ndescription = "Acme key"\n'
        "regex = '''(?P<secret>acme_[0-9a-f]{24})'''\nkeywords = [\"acme_\"]\n"
    )
    (project / "acme.py").write_text("K = 'acme_9f86d081884c7d659a2feaa0'\n")
    (conf / "keyward.toml").write_text('[scan]\nrules = ["acme.toml"]\nbaseline = "known.json"\n')
    (conf / "known.json").write_text('{"results": {}}')
    monkeypatch.setenv("KEYWARD_CONFIG", str(conf / "keyward.toml"))
    _, out, _ = run(capsys, "scan", "-f", "json")
    assert "acme-key" in {f["rule"] for f in json.loads(out)["findings"]}
    (conf / "known.json").write_text("{not json")
    code, _, err = run(capsys, "scan")
    assert code == 2 and "known.json is not valid JSON" in err


def test_invalid_config_values_are_one_sentence_errors(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "keyward.toml").write_text('[scan]\nexclude = "x"\nmax_file_size = "lots"\n')
    code, _, err = run(capsys, "scan")
    assert code == 2 and "'lots' is not a size" in err
    (project / "keyward.toml").write_text("[scan\n")
    code, _, err = run(capsys, "scan")
    assert code == 2 and "is not valid TOML" in err


# ---------------------------------------------------------------------------- progress
def test_piped_stderr_gets_no_progress_output(project: Path) -> None:
    proc = sub("scan", ".", "--no-color", cwd=project, no_ci=True)
    assert proc.returncode == 1 and proc.stderr == ""


def _stderr_on_a_terminal(cwd: Path, env: dict[str, str]) -> str:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "keyward", "scan", ".", "-j", "1"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=slave, env=env,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_is_drawn_only_on_a_terminal_outside_ci(project: Path) -> None:
    for i in range(300):
        (project / f"f{i}.py").write_text("x = 1\n" * 2000)
    env = {**os.environ, "KEYWARD_FINGERPRINT_KEY": "ab" * 32, "TERM": "xterm"}
    env.pop("CI", None)
    assert "scanning" in _stderr_on_a_terminal(project, env)
    assert _stderr_on_a_terminal(project, {**env, "CI": "true"}) == ""


# ------------------------------------------------------------------------- bad input
def test_a_named_fifo_is_skipped_with_a_warning_and_never_blocks(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    proc = sub("scan", str(tmp_path / "pipe"), timeout=60)
    assert proc.returncode == 0
    assert proc.stderr == "keyward: warning: skipped pipe: not a regular file\n"


def test_a_fifo_inside_a_tree_never_blocks(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "a.py").write_text(f"T = '{TOKEN}'\n")
    proc = sub("scan", str(tmp_path), "-v", timeout=60)
    assert proc.returncode == 1
    assert "keyward: skipped pipe: not a regular file" in proc.stderr


def test_a_symlink_loop_and_a_broken_symlink_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "broken").symlink_to(tmp_path / "gone")
    proc = sub("scan", str(tmp_path), "-v")
    assert proc.returncode == 0
    assert "skipped broken: broken symlink" in proc.stderr
    assert "skipped loop: symlink loop" in proc.stderr


def test_an_unreadable_file_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    """Tests run as root, which reads anything: the scan runs without the capabilities that
    bypass file permissions (so a mode-000 file is unreadable, as for any other user)."""
    (tmp_path / "ok.py").write_text(f"T = '{TOKEN}'\n")
    locked = tmp_path / "locked.py"
    locked.write_text(f"T = '{TOKEN}'\n")
    locked.chmod(0)
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed" / "inner.py").write_text(f"T = '{TOKEN}'\n")
    (tmp_path / "closed").chmod(0)
    setpriv = (
        ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
        if os.geteuid() == 0
        else []  # an ordinary user cannot read a mode-000 file anyway
    )
    env = {**os.environ, "KEYWARD_FINGERPRINT_KEY": "ab" * 32}
    proc = subprocess.run(
        [*setpriv, sys.executable, "-m", "keyward", "scan", str(tmp_path), "-f", "json"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "keyward: warning: skipped locked.py: cannot read: Permission denied" in proc.stderr
    assert "keyward: warning: skipped closed/: cannot list directory: Permission denied" in (
        proc.stderr
    )
    assert [f["path"] for f in json.loads(proc.stdout)["findings"]] == ["ok.py"]
    assert "Traceback" not in proc.stderr


def _run_counting_reads(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run keyward in a subprocess; also return how many bytes it read through read()
    (``rchar`` of /proc/self/io): the direct measure of whether a file was read whole."""
    code = (
        "import sys\nfrom keyward.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "finally:\n    lines = open('/proc/self/io').read().splitlines()\n"
        "    io = dict(line.split(': ') for line in lines)\n"
        "    sys.stderr.write(f'RCHAR={io[\"rchar\"]}\\n')\n"
    )
    env = {**os.environ, "KEYWARD_FINGERPRINT_KEY": "ab" * 32}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
        timeout=300, env=env,
    )  # fmt: skip
    read = int(proc.stderr.rsplit("RCHAR=", 1)[1].split()[0])
    return proc, read


def test_sparse_2gb_file_is_skipped_and_a_raised_limit_never_reads_it_whole(tmp_path: Path) -> None:
    with (tmp_path / "huge.img").open("wb") as fh:
        fh.truncate(2 * 1024**3)
    with (tmp_path / "sparse.img").open("wb") as fh:
        fh.truncate(200 * 1024**2)
    proc, read = _run_counting_reads("scan", ".", "-v", "--max-file-size", "256M", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "skipped huge.img: larger than --max-file-size" in proc.stderr
    assert "skipped sparse.img: binary file" in proc.stderr
    assert read < 50 * 1024**2, f"{read} bytes read: the sparse file was read"
    too_big = sub("scan", ".", "--max-file-size", "3G", cwd=tmp_path)
    assert too_big.returncode == 2
    assert too_big.stderr.startswith("keyward: error: --max-file-size may be at most 256M")


def test_a_50mb_single_line_file_is_scanned_to_the_end(tmp_path: Path) -> None:
    filler = b"lorem ipsum dolor sit amet, " * (50 * 1024**2 // 28)
    (tmp_path / "one-line.txt").write_bytes(filler + f" key={TOKEN} ".encode() + b"tail")
    args = ("scan", ".", "-f", "json", "--max-file-size", "100M")
    proc, _ = _run_counting_reads(*args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    (finding,) = json.loads(proc.stdout)["findings"]
    assert (finding["line"], finding["column"]) == (1, len(filler) + 6)


def test_a_missing_path_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "scan", str(tmp_path / "nope"))
    assert (code, out) == (2, "") and "does not exist" in err


def test_every_option_and_argument_free_option_of_every_command_has_help_text() -> None:
    ctx = click.Context(cli)
    missing = []
    for path in walk(cli, ctx, []):
        group: click.Command = cli
        for name in path:
            assert isinstance(group, click.Group)
            found = group.get_command(ctx, name)
            assert found is not None
            group = found
        missing.extend(
            f"keyward {' '.join(path)} {param.opts[0]}"
            for param in group.params
            if isinstance(param, click.Option) and not param.hidden and not param.help
        )
    assert missing == []
