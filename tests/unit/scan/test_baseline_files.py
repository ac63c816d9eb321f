"""Baselines in detect-secrets' format: create, update, suppress, no churn, real detect-secrets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scanutil import github_token

from keyward.core.errors import BaselineError
from keyward.scan.baseline import load_baseline

AWS_ID = "AKIAQYLPMN5HFIQR7XPA"  # random, AWS key id format


def keyward(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyward", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KEYWARD_FINGERPRINT_KEY": "ab" * 32},
    )


def findings(proc: subprocess.CompletedProcess[str]) -> list[tuple[str, str, int]]:
    doc = json.loads(proc.stdout)
    return [(f["rule"], f["path"], f["line"]) for f in doc["findings"]]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(f"TOKEN = '{github_token(1)}'\n")
    (tmp_path / "config.py").write_text(f"GH = '{github_token(2)}'\n")
    return tmp_path


def test_scan_with_a_baseline_reports_only_new_findings(repo: Path) -> None:
    created = keyward("baseline", "create", cwd=repo)
    assert created.returncode == 0, created.stderr
    assert keyward("scan", "--baseline", ".secrets.baseline", cwd=repo).returncode == 0
    (repo / "src" / "new.py").write_text(f"NEW = '{github_token(3)}'\n")
    proc = keyward("scan", "--baseline", ".secrets.baseline", "-f", "json", cwd=repo)
    assert proc.returncode == 1
    assert findings(proc) == [("github-pat-classic", "src/new.py", 1)]
    assert json.loads(proc.stdout)["stats"]["suppressed_baseline"] == 2


def test_baseline_paths_are_relative_to_the_baseline_file(repo: Path) -> None:
    keyward("baseline", "create", cwd=repo)
    doc = json.loads((repo / ".secrets.baseline").read_text())
    assert sorted(doc["results"]) == ["config.py", "src/app.py"]
    # scanning a subdirectory (from another working directory) still matches the entries
    proc = keyward("scan", str(repo / "src"), "--baseline", str(repo / ".secrets.baseline"),
                   cwd=repo.parent)  # fmt: skip
    assert proc.returncode == 0, proc.stdout


def test_moved_lines_cause_no_churn_and_update_keeps_audit_flags(repo: Path) -> None:
    keyward("baseline", "create", cwd=repo)
    path = repo / ".secrets.baseline"
    doc = json.loads(path.read_text())
    doc["results"]["config.py"][0]["is_secret"] = False  # audited: a false positive
    path.write_text(json.dumps(doc))
    app = repo / "src" / "app.py"
    app.write_text("# moved down\n\n\n" + app.read_text())
    assert keyward("scan", "--baseline", ".secrets.baseline", cwd=repo).returncode == 0
    updated = keyward("baseline", "update", cwd=repo)
    assert updated.returncode == 0, updated.stderr
    assert "0 added, 0 removed, 2 kept" in updated.stdout
    new = json.loads(path.read_text())
    assert new["results"]["config.py"][0]["is_secret"] is False
    assert new["results"]["src/app.py"][0]["line_number"] == 4
    assert (
        new["results"]["src/app.py"][0]["hashed_secret"]
        == (doc["results"]["src/app.py"][0]["hashed_secret"])
    )
    (repo / "config.py").write_text("GH = os.environ['GH']\n")
    assert "0 added, 1 removed, 1 kept" in keyward("baseline", "update", cwd=repo).stdout


def test_create_refuses_to_overwrite_without_force(repo: Path) -> None:
    keyward("baseline", "create", cwd=repo)
    again = keyward("baseline", "create", cwd=repo)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert keyward("baseline", "create", "--force", cwd=repo).returncode == 0


def test_the_baseline_file_itself_is_never_scanned(repo: Path) -> None:
    keyward("baseline", "create", cwd=repo)
    proc = keyward("scan", "--baseline", ".secrets.baseline", "-f", "json", "-v", cwd=repo)
    assert ".secrets.baseline" not in proc.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"version": "1.5.0", "results": {"a.py": [{"type": "X", "hashed', "not valid JSON"),
        ('{"name": "my-package", "version": "1.0.0"}', "is not a detect-secrets baseline"),
        ("[1, 2, 3]", "is not a detect-secrets baseline"),
        ('{"results": {"a.py": [{"type": "X"}]}}', "without a hashed_secret"),
    ],
    ids=["truncated", "foreign-json", "json-array", "entry-without-hash"],
)
def test_a_truncated_or_foreign_baseline_is_a_one_sentence_error(
    repo: Path, content: str, message: str
) -> None:
    (repo / "bad.baseline").write_text(content)
    with pytest.raises(BaselineError, match=message):
        load_baseline(repo / "bad.baseline")
    proc = keyward("scan", "--baseline", "bad.baseline", cwd=repo)
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("keyward: error: The baseline bad.baseline") and message in line
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(shutil.which("detect-secrets") is None, reason="detect-secrets not installed")
def test_a_baseline_written_by_detect_secrets_loads_and_suppresses(repo: Path) -> None:
    (repo / "aws.py").write_text(f"key_id = '{AWS_ID}'\n")
    made = subprocess.run(
        ["detect-secrets", "scan", "--all-files"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    (repo / ".secrets.baseline").write_text(made.stdout)
    ds = json.loads(made.stdout)
    types = {e["type"] for entries in ds["results"].values() for e in entries}
    assert {"GitHub Token", "AWS Access Key"} <= types, made.stdout
    before = keyward("scan", "-f", "json", cwd=repo)
    assert {r for r, _, _ in findings(before)} >= {"github-pat-classic", "aws-access-key-id"}
    after = keyward("scan", "--baseline", ".secrets.baseline", "-f", "json", cwd=repo)
    assert findings(after) == [], after.stdout
    assert after.returncode == 0
    # update keeps detect-secrets' own entries (and type names) for the secrets it held. (Its
    # "GitHub Token" entry hashes only the "ghp" prefix, a detect-secrets 1.x quirk; the same
    # token's "Base64 High Entropy String" entry is the one that matches the full value.)
    assert keyward("baseline", "update", cwd=repo).returncode == 0
    updated = json.loads((repo / ".secrets.baseline").read_text())
    kept = {(e["filename"], e["type"]) for entries in updated["results"].values() for e in entries}
    assert ("aws.py", "AWS Access Key") in kept
    assert ("src/app.py", "Base64 High Entropy String") in kept
    assert all(t in types for _, t in kept)


def test_iac_findings_match_the_baseline_when_a_subdirectory_is_scanned(tmp_path: Path) -> None:
    from keyward.scan.baseline import file_key
    from keyward.scan.model import Location, SourceKind

    (tmp_path / "svc").mkdir()
    key = file_key([tmp_path / "svc"], tmp_path)
    for kind in (SourceKind.FILE, SourceKind.IAC):
        loc = Location(kind=kind, path="serverless.yml", line=8, resource="hello")
        assert key(loc) == "svc/serverless.yml", kind
