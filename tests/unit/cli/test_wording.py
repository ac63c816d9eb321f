"""Messages read as sentences: counts agree with their nouns, a summary does not offer what
was just done."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyward.cli import main
from keyward.core.text import plural

TOKEN = "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"  # GitHub format with a valid checksum
RULE = """[[rules]]
id = "acme-token"
description = "Acme token"
regex = 'acme_(?P<secret>[a-z0-9]{24})'
keywords = ["acme_"]
[rules.examples]
positive = ["key = acme_k3j9x2m7q4w8z1v6b5n0c2l8"]
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


def test_plural() -> None:
    assert [plural(1, "rule"), plural(0, "rule"), plural(2, "entry", "entries")] == [
        "1 rule", "0 rules", "2 entries",
    ]  # fmt: skip


def test_rules_check_counts_one_rule_one_example(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "acme.toml").write_text(RULE)
    code, out, err = run(capsys, "rules", "check", "acme.toml")
    assert code == 0, err
    assert "acme.toml: 1 rule, 1 example, 0 problems" in out


def test_baseline_create_counts_one_entry_in_one_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "baseline", "create")
    assert code == 0, err
    assert "wrote 1 entry for 1 file to" in out


def test_verbose_summary_does_not_offer_verbose(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "blob.bin").write_bytes(b"\0\1\2" * 100)
    _, out, _ = run(capsys, "scan", ".", "--no-progress")
    assert "1 skipped (--verbose lists them)" in out
    _, out, err = run(capsys, "scan", ".", "--no-progress", "--verbose")
    assert "skipped blob.bin" in err
    assert "1 skipped" in out and "--verbose lists them" not in out


def test_this_repository_scans_itself_clean_as_the_readme_says() -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    assert "scans itself with `keyward scan .`" in (root / "README.md").read_text()
    env = {**os.environ, "KEYWARD_FINGERPRINT_KEY": "ab" * 32}
    result = subprocess.run(
        [sys.executable, "-m", "keyward", "scan", ".", "--no-progress"],
        cwd=root, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("0 findings in ")
