"""No raw secret value reaches any output, log or error, unless --reveal asks for it."""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scanutil import github_token, kw_token, make_ruleset, write_rules

rnd = random.Random(42)
AWS_ID = "AKIA" + "".join(rnd.choice(string.ascii_uppercase + "234567") for _ in range(16))
AWS_SECRET = "".join(rnd.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))


def planted(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "repo"
    root.mkdir()
    block = make_ruleset(tmp_path).by_id()["kw-test-block"].positive[0]
    secrets = [github_token(11), kw_token(12), AWS_ID, AWS_SECRET]
    (root / "settings.py").write_text(
        f"GITHUB = '{secrets[0]}'\nOTHER = \"{secrets[1]}\"\n"
        f"aws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n"
    )
    (root / "key.pem").write_text(block + "\n")
    body = block.splitlines()[1]
    return root, [*secrets, body]


def keyward(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYWARD_FINGERPRINT_KEY": "ab" * 32}
    return subprocess.run(
        [sys.executable, "-m", "keyward", "--debug", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def leaked(text: str, secrets: list[str]) -> list[str]:
    """Secrets (or any 12-character piece of one) that appear in ``text``."""
    out = []
    for s in secrets:
        pieces = {s[i : i + 12] for i in range(0, max(1, len(s) - 11))}
        if any(p in text for p in pieces):
            out.append(s[:4] + "…")
    return out


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "csv"])
def test_no_output_format_or_debug_log_contains_a_raw_value(tmp_path: Path, fmt: str) -> None:
    root, secrets = planted(tmp_path)
    rules = write_rules(tmp_path)
    proc = keyward("scan", ".", "--rules", str(rules), "-f", fmt, "-v", cwd=root)
    assert proc.returncode == 1, proc.stderr
    assert "DEBUG" in proc.stderr  # --debug logging was on
    for name in ("AWS", "github", "kw-test-token", "kw-test-block"):
        assert name.lower() in proc.stdout.lower() or fmt == "csv"
    assert leaked(proc.stdout, secrets) == []
    assert leaked(proc.stderr, secrets) == []


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "csv"])
def test_reveal_prints_raw_values(tmp_path: Path, fmt: str) -> None:
    root, secrets = planted(tmp_path)
    rules = write_rules(tmp_path)
    proc = keyward("scan", ".", "--rules", str(rules), "-f", fmt, "--reveal", cwd=root)
    assert proc.returncode == 1
    for s in secrets[:4]:  # the AWS secret key too (the key id's companion)
        assert s in proc.stdout
    assert leaked(proc.stderr, secrets) == []


def test_baseline_files_hold_hashes_only(tmp_path: Path) -> None:
    root, secrets = planted(tmp_path)
    proc = keyward("baseline", "create", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert leaked((root / ".secrets.baseline").read_text(), secrets) == []
    assert leaked(proc.stdout + proc.stderr, secrets) == []


def test_values_that_carry_raw_text_keep_it_out_of_their_repr() -> None:
    from keyward.scan.model import Chunk, Finding, Location, Severity
    from keyward.scan.sources.aws_lambda import CodePackage
    from keyward.scan.sources.env import KeyValue
    from keyward.scan.sources.git import FileDiff

    raw = github_token(7)
    values = [
        Chunk(f"token = {raw}", Location(path="a.py")),
        Finding("r", Severity.HIGH, Location(path="a.py"), "…", "0" * 64, secret=raw),
        KeyValue("TOKEN", raw, 1, 7),
        FileDiff("a.py", [(f"token = {raw}".encode(), 1, 1)]),
        CodePackage("arn:aws:lambda:x", "eu-west-1", f"https://s3/p.zip?X-Amz-Signature={raw}", 1),
    ]
    for value in values:
        assert raw not in repr(value), type(value).__name__
