"""The deployment files: the image's build context holds only what it needs, the image has
git, the systemd unit's user comes from sysusers.d and the unit is hardened (checked with
systemd's own tools where they are installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "keyward-daemon.service"


def _docker_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker matches it (Go filepath.Match plus ``**``)."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negated
    return not excluded


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        rules.append((negated, _docker_regex(pattern.strip("/"))))
    return rules


def test_the_image_build_context_holds_the_package_and_never_a_venv_git_or_env() -> None:
    rules = _dockerignore()
    for path in (
        ".venv/lib/python3.11/site-packages/x.py", ".ci-venv/bin/python", ".git/config",
        ".env", "keyward.toml", "tests/unit/test_deploy.py", "benchmarks/.corpus/a/b.py",
        "keyward/__pycache__/cli.cpython-311.pyc", "site/index.html", "deploy/Dockerfile",
    ):  # fmt: skip
        assert not _in_context(path, rules), path
    for path in (
        "pyproject.toml", "README.md", "keyward/__init__.py", "keyward/rules/aws.toml",
        "keyward/data/known-examples.toml", "migrations/env.py",
    ):  # fmt: skip
        assert _in_context(path, rules), path
    # every COPY from the context reads files the context has
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists() and _in_context(source, rules), source


def test_the_image_installs_git_for_history_and_staged_scans() -> None:
    final = (DEPLOY / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert re.search(r"apt-get install -y --no-install-recommends git\b", final)
    assert "safe.directory" in final  # a mounted repository belongs to another UID


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_runs_as_the_sysusers_user_with_no_capabilities() -> None:
    settings = _unit_settings()
    sysusers = (DEPLOY / "systemd" / "keyward.sysusers").read_text()
    (entry,) = [ln.split() for ln in sysusers.splitlines() if ln.startswith("u ")]
    assert settings["User"] == [entry[1]] and settings["Group"] == [entry[1]]
    assert settings["CapabilityBoundingSet"] == [""] and settings["AmbientCapabilities"] == [""]
    for key in (
        "ProtectClock", "RestrictNamespaces", "LockPersonality", "ProtectKernelLogs",
        "RestrictSUIDSGID", "MemoryDenyWriteExecute", "PrivateUsers",
    ):  # fmt: skip
        assert settings[key] == ["true"], key
    assert "@system-service" in settings["SystemCallFilter"]


needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or shutil.which("systemd-sysusers") is None,
    reason="systemd (systemd-analyze, systemd-sysusers) is not installed here",
)


@needs_systemd
def test_systemd_rates_the_unit_ok_with_no_unknown_settings() -> None:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=20", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # --threshold=20: exit non-zero when the exposure is above 2.0 (of 10; "OK" is below 3)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "Overall exposure level" in proc.stdout
    exposure = float(re.search(r"exposure level for \S+: ([\d.]+)", proc.stdout).group(1))  # type: ignore[union-attr]
    assert exposure <= 2.0
    assert "Unknown" not in proc.stderr and "Failed to parse" not in proc.stderr, proc.stderr


@needs_systemd
def test_systemd_sysusers_creates_the_daemon_user_from_the_shipped_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    proc = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", "-"],
        input=(DEPLOY / "systemd" / "keyward.sysusers").read_text(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (user,) = (tmp_path / "etc" / "passwd").read_text().splitlines()
    name, _, uid, gid, _, home, shell = user.split(":")
    assert (name, home, shell) == ("keyward", "/var/lib/keyward", "/usr/sbin/nologin")
    assert 0 < int(uid) < 1000 and uid == gid  # a system user with its own group
