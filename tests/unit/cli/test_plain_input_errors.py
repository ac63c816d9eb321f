"""Plain user mistakes and malformed input (found by hand and by fuzzing) are one sentence
and the usage exit code, never ``internal error``: a config that is not UTF-8 or too deeply
nested, a device or a NUL byte where a file is named, a baseline or rule file nested a thousand
deep, a daemon interval that is a word, a region or endpoint that is not one."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyward.cli import main

TOKEN = "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"  # GitHub format with a valid checksum
NESTED_TOML = "a = " + "{b = " * 2000 + "1" + "}" * 2000 + "\n"
RULE = """[[rules]]
id = "x-token"
description = "x"
regex = 'xtok_(?P<secret>[a-z0-9]{20})'
keywords = ["xtok_"]
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "app.py").write_text(f"T = '{TOKEN}'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEYWARD_FINGERPRINT_KEY", "ab" * 32)
    return tmp_path


CASES: dict[str, tuple[bytes | str, tuple[str, ...], str]] = {
    # name: (keyward.toml content, command, words the sentence must contain)
    "config-not-utf8": (b'[scan]\nexclude = ["\xff\xfe"]\n', ("scan", "."), "not UTF-8"),
    "config-nested": (NESTED_TOML, ("scan", "."), "nested"),
    "rules-path-nul": ('[scan]\nrules = ["a\\u0000b.toml"]\n', ("scan", "."), "NUL"),
    "baseline-path-nul": ('[scan]\nbaseline = "a\\u0000b"\n', ("scan", "."), "NUL"),
    "rules-dev-zero": ('[scan]\nrules = ["/dev/zero"]\n', ("scan", "."), "not a regular file"),
    "baseline-dev-zero": ('[scan]\nbaseline = "/dev/zero"\n', ("scan", "."), "not a regular file"),
    "baseline-nested": ('[scan]\nbaseline = "nested.json"\n', ("scan", "."), "nested"),
    "rules-nested": ('[scan]\nrules = ["nested.toml"]\n', ("scan", "."), "nested"),
    "rules-check-nested": ("", ("rules", "check", "nested.toml"), "nested"),
    "daemon-interval-word": (
        '[daemon]\ninterval = "soon"\n',
        ("daemon", "--once"),
        "daemon.interval",
    ),
    "exclude-bang": ('[scan]\nexclude = ["!"]\n', ("scan", "."), "'!'"),
    # (a+)+ against 'a'*30+'!' ran for minutes: refused before it is ever run
    "rules-check-backtracking": ("", ("rules", "check", "evil.toml"), "Rule evil-nested"),
    "scan-re-backtracking": (
        "",
        ("scan", ".", "--engine", "re", "--rules", "evil.toml"),
        "exponential time",
    ),
    "allowlist-backtracking": ("", ("rules", "check", "evil-allow.toml"), "allowlist regex"),
}
EVIL = """[[rules]]
id = "evil-nested"
description = "x"
regex = '(?P<secret>(a+)+$)'
keywords = ["a"]
[rules.examples]
positive = ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"]
"""


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_is_one_sentence_and_exit_2(
    case: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, command, words = CASES[case]
    config = project / "keyward.toml"
    config.write_bytes(content.encode() if isinstance(content, str) else content)
    (project / "nested.json").write_text("[" * 100_000)
    (project / "evil.toml").write_text(EVIL)
    (project / "evil-allow.toml").write_text(RULE + "[rules.allowlist]\nregexes = ['(x|xx)+y']\n")
    (project / "nested.toml").write_text(RULE + "allowlist = " + NESTED_TOML.split("= ", 1)[1])
    code, _, err = run(capsys, *command)
    assert code == 2, err
    assert err.startswith("keyward: error: ") and err.count("\n") == 1, err
    assert words in err, err


def test_exclude_option_bang_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "scan", ".", "--exclude", "!")
    assert code == 2 and "--exclude" in err and "internal error" not in err, err


def test_twenty_thousand_excludes_are_refused_at_once_and_two_thousand_scan(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    globs = ", ".join(f'"dir{i}/**/*.log"' for i in range(20_000))
    (project / "keyward.toml").write_text(f"[scan]\nexclude = [{globs}]\n")
    code, _, err = run(capsys, "scan", ".")
    assert code == 2 and "20,000 exclude patterns" in err and "broader globs" in err, err
    globs = ", ".join(f'"dir{i}/**/*.log"' for i in range(2_000))
    (project / "keyward.toml").write_text(f'[scan]\nexclude = [{globs}, "app.py"]\n')
    code, out, err = run(capsys, "scan", ".", "--format", "json")
    assert code == 2 and "2,001" in err  # one over
    (project / "keyward.toml").write_text(f"[scan]\nexclude = [{globs}]\n")
    code, out, err = run(capsys, "scan", ".", "--format", "json")
    assert code == 1 and "app.py" in out, err


def test_a_region_that_is_not_one_names_it(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    code, _, err = run(capsys, "scan", "--aws-lambda", "--region", "not a region")
    assert code == 2 and "'not a region' is not an AWS region name" in err, err


def test_an_endpoint_url_that_is_not_one_names_the_variable(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "notaurl")
    code, _, err = run(capsys, "scan", "--aws-lambda", "--region", "us-east-1")
    assert code == 2 and "AWS_ENDPOINT_URL" in err and "internal error" not in err, err


@pytest.mark.parametrize(
    "command",
    [("db", "downgrade", "base"), ("inventory", "remove", "prod/db")],
    ids=["db-downgrade", "inventory-remove"],
)
def test_a_confirmation_without_a_terminal_asks_for_yes_and_changes_nothing(
    command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "KEYWARD_DATABASE_URL": f"sqlite:///{tmp_path / 'inv.db'}"}
    keyward = [sys.executable, "-m", "keyward"]
    added = subprocess.run([*keyward, "inventory", "add", "prod/db"], env=env, text=True,
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    assert added.returncode == 0, added.stderr
    result = subprocess.run([*keyward, *command], env=env, text=True, capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--yes" in result.stderr and result.stderr.startswith("keyward: error: ")
    listed = subprocess.run([*keyward, "inventory", "list"], env=env, text=True,
                            capture_output=True, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    assert "prod/db" in listed.stdout, listed.stderr
