"""detect-secrets plugins as an extra detector set, with a team's custom plugin file.

The custom plugin file is written by the test and referenced from a detect-secrets baseline's
``plugins_used`` with ``path: file://...``, exactly as detect-secrets teams do.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyward.core.errors import ConfigError
from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine
from keyward.scan.model import Chunk, Location
from keyward.scan.plugins_ds import rule_id_for, with_detect_secrets
from keyward.scan.rules import load_rules

ACME = "acme_tok_5f0c2e9b7a1d4c3e8b6a9f21"
ACME_2 = "acme_tok_0d9e8c7b6a5f4e3d2c1b0a99"
AWS_KEY = "AKIAQYLPMN5HHHFPZAM2"

PLUGIN = '''
import re
from pathlib import Path

from detect_secrets.plugins.base import RegexBasedDetector


class AcmeTokenDetector(RegexBasedDetector):
    """Our internal tokens."""

    secret_type = "Acme Internal Token"
    denylist = [re.compile(r"(acme_tok_[0-9a-f]{24})")]

    def verify(self, secret):
        Path(__file__).with_name("VERIFY_CALLED").write_text("yes")
        return super().verify(secret)
'''


def _team_repo(tmp_path: Path, *, baseline_results: dict[str, object] | None = None) -> Path:
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    (repo / "src").mkdir()
    (repo / "tools" / "acme_plugin.py").write_text(PLUGIN)
    (repo / "src" / "app.py").write_text(
        f'ACME_TOKEN = "{ACME}"\n'
        f'OTHER = "{ACME_2}"  # pragma: allowlist secret\n'
        f"aws_access_key_id = {AWS_KEY}\n"
    )
    baseline = {
        "version": "1.5.0",
        "plugins_used": [
            {"name": "AWSKeyDetector"},
            {"name": "AcmeTokenDetector", "path": "file://tools/acme_plugin.py"},
        ],
        "filters_used": [],
        "results": baseline_results or {},
        "generated_at": "2026-01-01T00:00:00Z",
    }
    (repo / ".secrets.baseline").write_text(json.dumps(baseline, indent=2))
    return repo


def _keyward(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyward", *args[:1], "--engine", "re", *args[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ),
        timeout=120,
    )


def test_rule_ids_are_a_stable_kebab_form_of_the_secret_type() -> None:
    assert rule_id_for("Acme Internal Token") == "detect-secrets-acme-internal-token"
    assert rule_id_for("AWS Access Key") == "detect-secrets-aws-access-key"
    assert rule_id_for("Base64 High Entropy String") == (
        "detect-secrets-base64-high-entropy-string"
    )


def test_custom_plugin_from_the_baseline_finds_its_secret_type(tmp_path: Path) -> None:
    repo = _team_repo(tmp_path)
    proc = _keyward(
        ["scan", "src", "--detect-secrets-plugins", "--baseline", ".secrets.baseline",
         "--format", "json"],
        repo,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    findings = json.loads(proc.stdout)["findings"]
    acme = [f for f in findings if f["rule"] == "detect-secrets-acme-internal-token"]
    assert len(acme) == 1  # the second one is allowed inline
    assert acme[0]["line"] == 1 and acme[0]["column"] == 15
    assert ACME not in proc.stdout
    # keyward's own rule and detect-secrets' AWSKeyDetector found the same key: reported once
    aws = [f for f in findings if f["line"] == 3]
    assert [f["rule"] for f in aws] == ["aws-access-key-id"]
    # detect-secrets' own verification never ran (no network from plugins)
    assert not (repo / "tools" / "VERIFY_CALLED").exists()


def test_plugins_are_off_by_default_and_detect_secrets_is_not_imported(tmp_path: Path) -> None:
    repo = _team_repo(tmp_path)
    code = (
        "import sys\n"
        "from keyward.cli import main\n"
        "try:\n"
        "    main(['scan', '--engine', 're', 'src', '--baseline', '.secrets.baseline',"
        " '--format', 'json'])\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "sys.stderr.write('DS=%s RC=%s' % ('detect_secrets' in sys.modules, rc))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, timeout=120
    )
    assert "DS=False RC=1" in proc.stderr, proc.stderr
    rules = {f["rule"] for f in json.loads(proc.stdout)["findings"]}
    assert not any(r.startswith("detect-secrets-") for r in rules)


def test_config_key_turns_plugins_on(tmp_path: Path) -> None:
    repo = _team_repo(tmp_path)
    (repo / "keyward.toml").write_text(
        '[scan]\ndetect_secrets_plugins = true\nbaseline = ".secrets.baseline"\n'
    )
    proc = _keyward(["scan", "src", "--format", "json"], repo)
    rules = {f["rule"] for f in json.loads(proc.stdout)["findings"]}
    assert "detect-secrets-acme-internal-token" in rules
    off = _keyward(["scan", "src", "--no-detect-secrets-plugins", "--format", "json"], repo)
    assert "detect-secrets-acme-internal-token" not in {
        f["rule"] for f in json.loads(off.stdout)["findings"]
    }


def test_team_baseline_entry_suppresses_the_plugin_finding(tmp_path: Path) -> None:
    entry = {
        "type": "Acme Internal Token",
        "filename": "src/app.py",
        "hashed_secret": hashlib.sha1(ACME.encode()).hexdigest(),
        "is_verified": False,
        "line_number": 1,
    }
    repo = _team_repo(tmp_path, baseline_results={"src/app.py": [entry]})
    proc = _keyward(
        ["scan", ".", "--detect-secrets-plugins", "--baseline", ".secrets.baseline",
         "--format", "json", "--exclude", "tools/"],
        repo,
    )  # fmt: skip
    rules = [f["rule"] for f in json.loads(proc.stdout)["findings"]]
    assert "detect-secrets-acme-internal-token" not in rules
    assert "aws-access-key-id" in rules


def test_sarif_describes_plugin_rules_with_the_plugin_type(tmp_path: Path) -> None:
    repo = _team_repo(tmp_path)
    proc = _keyward(
        ["scan", "src", "--detect-secrets-plugins", "--baseline", ".secrets.baseline",
         "--format", "sarif"],
        repo,
    )  # fmt: skip
    driver = json.loads(proc.stdout)["runs"][0]["tool"]["driver"]
    rule = next(r for r in driver["rules"] if r["id"] == "detect-secrets-acme-internal-token")
    assert "Acme Internal Token" in rule["shortDescription"]["text"]


def test_missing_plugin_file_is_a_one_sentence_usage_error(tmp_path: Path) -> None:
    repo = _team_repo(tmp_path)
    (repo / "tools" / "acme_plugin.py").unlink()
    proc = _keyward(
        ["scan", "src", "--detect-secrets-plugins", "--baseline", ".secrets.baseline"], repo
    )
    assert proc.returncode == 2
    assert "acme_plugin.py does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bridge_runs_every_builtin_plugin_without_a_baseline() -> None:
    engine = Engine(load_rules(), Fingerprinter(b"k" * 32), backend="re")
    wrapped = with_detect_secrets(engine, Fingerprinter(b"k" * 32))
    names = {p.name for p in wrapped.bridge.plugins}
    assert {"KeywordDetector", "PrivateKeyDetector", "Base64HighEntropyString"} <= names
    chunk = Chunk('db_password = "Zr8!qLw2#Vn5$Kp9"\n', Location(path="settings.py"))
    found = wrapped.scan(chunk)
    assert any(f.rule_id == "detect-secrets-secret-keyword" for f in found)


def test_unknown_plugin_name_is_refused(tmp_path: Path) -> None:
    baseline = tmp_path / ".secrets.baseline"
    baseline.write_text(json.dumps({"plugins_used": [{"name": "NoSuchDetector"}]}))
    engine = Engine(load_rules(), Fingerprinter(b"k" * 32), backend="re")
    with pytest.raises(ConfigError, match="NoSuchDetector"):
        with_detect_secrets(engine, Fingerprinter(b"k" * 32), baseline=baseline)
