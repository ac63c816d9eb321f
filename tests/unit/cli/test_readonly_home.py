"""A read-only data directory or HOME (read-only containers, locked-down CI): a scan that
records nothing still works, with one warning that its fingerprints are not stable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TOKEN = "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"  # GitHub format with a valid checksum


def _keyward(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYWARD_", "XDG_"))}
    env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "keyward", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def _unwritable_home(tmp_path: Path) -> Path:
    # A path under a regular file: no directory can be made there, whoever runs the test
    # (chmod does not stop root; this does).
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return blocker / "home"


def test_scan_without_a_writable_home_reports_findings_and_warns_once(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(f'TOKEN = "{TOKEN}"\n')
    result = _keyward(_unwritable_home(tmp_path), "scan", ".", "--format", "json", cwd=project)
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [f["rule"] for f in findings] == ["github-pat-classic"]
    assert findings[0]["fingerprint"]
    warnings = [line for line in result.stderr.splitlines() if "fingerprint" in line]
    assert len(warnings) == 1 and "KEYWARD_FINGERPRINT_KEY" in warnings[0], result.stderr
    assert "warning:" in warnings[0] and "error" not in result.stderr


def test_recording_without_a_writable_home_is_one_sentence(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(f'TOKEN = "{TOKEN}"\n')
    result = _keyward(_unwritable_home(tmp_path), "scan", ".", "--record", cwd=project)
    assert result.returncode in (2, 3)
    assert result.stderr.startswith("keyward: error: ") and result.stderr.count("\n") == 1
    assert "internal error" not in result.stderr and TOKEN not in result.stderr
