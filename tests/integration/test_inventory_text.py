"""The inventory's text renderers show user data literally (no rich markup, no emoji codes),
fit the terminal's width, and tell findings of different targets apart."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from _inventory_db import *  # noqa: F403
from _inventory_db import Cli

pytestmark = pytest.mark.integration

TOKEN = "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"  # GitHub format with a valid checksum
SM_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"
LAMBDA_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:[api]:secret:"
FILES = ["pages/[id].js", "app/[slug]/page.tsx", "x:secret:y.py"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_every_inventory_text_renderer_shows_names_as_they_are(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "prod/[db]:secret:"
    for args in (
        ("inventory", "add", name, "--store", "aws-secretsmanager", "--reference", SM_ARN,
         "--owner", "[bold]alice[/bold]", "--team", ":fire:", "--tag", "app=[web]",
         "--max-age", "1d", "--created", "2020-01-01"),
        ("dependents", "add", name, "--target", LAMBDA_ARN, "--variable", "DB_[PASS]"),
    ):  # fmt: skip
        rc, _, err = cli(*args)
        assert rc == 0, err
    repo = tmp_path / "repo"
    for file in FILES:
        (repo / file).parent.mkdir(parents=True, exist_ok=True)
        (repo / file).write_text(f"t = '{TOKEN}'\n")
    monkeypatch.chdir(repo)
    rc, _, err = cli("scan", ".", "--record", "--target", "web:[main]")
    assert rc == 1, err

    outputs = {}
    for args in (
        ("inventory", "list"),
        ("inventory", "show", name),
        ("inventory", "report"),
        ("dependents", "list"),
        ("findings", "list"),
    ):
        rc, out, err = cli(*args)
        assert rc == 0, (args, err)
        assert "㊙" not in out and "🔥" not in out, args
        outputs[args[:2]] = out
    assert SM_ARN in outputs["inventory", "show"]
    assert "[bold]alice[/bold]" in outputs["inventory", "show"]
    assert "app=[web]" in outputs["inventory", "show"]
    for key in (("inventory", "list"), ("inventory", "report"), ("inventory", "show")):
        assert name in outputs[key] and ":fire:" in outputs[key], key
    dependents = outputs["dependents", "list"]
    assert LAMBDA_ARN in dependents and "DB_[PASS]" in dependents
    findings = outputs["findings", "list"]
    for file in FILES:
        assert f"{file}:1" in findings, file
    assert findings.count("web:[main]") == len(FILES)  # the target column


def test_inventory_tables_fit_a_100_column_terminal(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(2):
        rc, _, err = cli(
            "inventory", "add", f"prod/payments/{'long-name-' * 3}{i}",
            "--owner", "someone.with.a.long.address@example.com", "--team", "payments-platform",
            "--store", "aws-secretsmanager", "--max-age", "90d",
        )  # fmt: skip
        assert rc == 0, err
    monkeypatch.setenv("COLUMNS", "100")  # a terminal 100 columns wide
    monkeypatch.setenv("NO_COLOR", "1")
    captured = sys.stdout
    for args in (("inventory", "list"), ("inventory", "report")):
        terminal = Terminal()
        monkeypatch.setattr(sys, "stdout", terminal)
        rc, _, _ = cli(*args)
        assert rc == 0
        widest = max(len(line) for line in terminal.getvalue().splitlines())
        assert widest <= 100, (args, widest)
    # a pipe: never wrapped (whatever COLUMNS says), one row per line
    monkeypatch.setattr(sys, "stdout", captured)
    monkeypatch.setenv("COLUMNS", "80")
    rc, out, _ = cli("inventory", "list")
    assert sum(1 for line in out.splitlines() if "prod/payments/" in line) == 2


def test_rules_list_shows_a_user_rule_file_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "my[rules].toml"
    rules.write_text(
        "[[rules]]\n"
        'id = "acme-token"\n'
        'description = "ACME [bold]token[/bold] :secret:"\n'
        'severity = "high"\n'
        "regex = '''\\b(?P<secret>acme_[A-Za-z0-9]{32})\\b'''\n"
        'keywords = ["acme_"]\n'
        "examples.positive = ['t = \"acme_AbCdEfGhIjKlMnOpQrStUvWxYz012345\"']\n"
        "examples.negative = ['acme_short']\n"
    )
    rc, out, err = Cli(capsys)("rules", "list", "--rules", str(rules))
    assert rc == 0, err
    assert "ACME [bold]token[/bold] :secret:" in out and "my[rules].toml" in out
