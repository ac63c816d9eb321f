"""``keyward scan --targets``: what cannot be combined with it is one usage error, scanning
nothing; the report prefixes each finding's path with its target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyward.cli import main

TOKEN = "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"  # GitHub format with a valid checksum


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        (["."], "PATHS cannot be combined with --targets"),
        (["--git", "--region", "eu-west-1"], "--git, --region cannot be combined with --targets"),
        (["--shard", "1/2", "--shards", "2"], "Give either --shard K/N or --shards N, not both"),
        (["--shard", "2/2"], "Shard 2/2 does not exist"),
    ],
)
def test_what_cannot_go_with_targets_is_one_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], sentence: str
) -> None:
    (tmp_path / "t.txt").write_text(f"{tmp_path}\n")
    code, out, err = run(capsys, "scan", "--targets", str(tmp_path / "t.txt"), *extra)
    assert code == 2
    assert sentence in err and "shard 0/" not in err  # nothing was scanned
    assert out == ""


def test_shard_without_targets_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "scan", ".", "--shard", "0/2")
    assert code == 2 and "--shard and --shards apply to --targets" in err


def test_a_bad_targets_line_scans_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "t.txt").write_text(f"{tmp_path}\naws-lambda:eu-west-1\n")
    code, out, err = run(capsys, "scan", "--targets", str(tmp_path / "t.txt"))
    assert code == 2 and f"{tmp_path / 't.txt'}:2: an aws-lambda target is" in err
    assert out == ""


def test_the_report_names_each_finding_under_its_target(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.py").write_text(f"GITHUB = '{TOKEN}'\n")
    targets = tmp_path / "t.txt"
    targets.write_text("one\ntwo  # the same file name in another target\n")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, out, err = run(
            capsys, "scan", "--targets", "t.txt", "-j", "1", "-f", "json", "--engine", "re"
        )
    finally:
        os.chdir(cwd)
    assert code == 1  # findings
    paths = sorted(f["path"] for f in json.loads(out)["findings"])
    assert paths == [f"{tmp_path}/one/config.py", f"{tmp_path}/two/config.py"]
    assert f"files:{tmp_path}/one: 1 finding in" in err
    assert TOKEN not in out + err
