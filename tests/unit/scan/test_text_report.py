"""The scan's text report: user data shown literally, colour as asked, aligned columns, git
context in brief, private keys by type, paths as the user typed them."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scanutil import github_token

from keyward.cli import main
from keyward.core.redaction import redact
from keyward.scan.model import Finding, Location, Severity, SourceKind
from keyward.scan.report import OutputFormat, to_string
from keyward.scan.report.text import render_text
from keyward.scan.result import ScanResult

# Names rich would read as markup ([id], [slug], [bold]) or emoji codes (:secret:)
MARKUP_NAMES = ["pages/[id].js", "app/[slug]/page.tsx", "x:secret:y.py", "lib/[bold]x[/bold].py"]
ANSI = re.compile(r"\x1b\[")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def finding(path: str, line: int = 1, **loc: object) -> Finding:
    kind = loc.pop("kind", SourceKind.FILE)
    location = Location(kind=kind, path=path, line=line, column=5, **loc)  # type: ignore[arg-type]
    return Finding("github-pat-classic", Severity.HIGH, location, "ghp_…m1IL", f"fp{path}{line}")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_scan_report_shows_markup_and_emoji_lookalike_names_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in MARKUP_NAMES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"t = '{github_token(1)}'\n")
    os.chdir(tmp_path)
    code, out, _ = run(capsys, "scan", ".", "--no-color")
    assert code == 1
    groups = [ln for ln in out.splitlines() if ln and not ln.startswith(" ")][:-1]
    assert sorted(groups) == sorted(MARKUP_NAMES)
    assert "㊙" not in out


def test_scan_report_colour_follows_no_color_and_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    result = ScanResult(findings=[finding("a.py")]).finish(0.0)

    def rendered(color: bool | None) -> str:
        out = Terminal()
        render_text(result, out, color=color)
        return out.getvalue()

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert ANSI.search(rendered(None))  # a terminal gets colour
    monkeypatch.setenv("NO_COLOR", "1")
    assert not ANSI.search(rendered(None))  # https://no-color.org: no ANSI styles at all
    assert ANSI.search(rendered(True))  # --color wins over the environment
    monkeypatch.delenv("NO_COLOR")
    assert not ANSI.search(rendered(False))


def test_scan_report_columns_line_up_across_files_and_line_numbers() -> None:
    result = ScanResult(
        findings=[
            finding("a.py", 7),
            finding("b.py", 1234),
            Finding(
                "aws-access-key-id", Severity.CRITICAL,
                Location(path="b.py", line=2000, column=12), "AKIA…WXYZ", "fp3",
            ),
        ]
    ).finish(0.0)  # fmt: skip
    rows = [ln for ln in to_string(result, OutputFormat.TEXT, color=False).splitlines()
            if ln.startswith("  ")]  # fmt: skip
    assert len(rows) == 3
    for word in ("high", "github-pat-classic", "ghp_…m1IL", "confidence"):
        starts = {r.index(word) for r in rows if word in r}
        assert len(starts) == 1, (word, rows)
    assert rows[2].index("critical") == rows[0].index("high")


def test_git_findings_name_the_author_without_mail_and_say_whether_still_at_head() -> None:
    author = "Mallory Example <mallory.example@a-rather-long-domain.example.com>"
    common = {"kind": SourceKind.GIT, "commit": "9f1c2ab04d1e" + "0" * 28, "author": author}
    result = ScanResult(
        findings=[
            finding("a.py", 1, **common).with_(still_present=True),
            finding("a.py", 2, **common).with_(still_present=False),
        ]
    ).finish(0.0)
    text = to_string(result, OutputFormat.TEXT, color=False)
    assert "mallory.example@" not in text and "by Mallory Example" in text
    lines = text.splitlines()
    assert lines[1].endswith("commit 9f1c2ab04d1e by Mallory Example, "
                             "still present at HEAD")  # fmt: skip
    assert lines[2].endswith("no longer in HEAD")
    assert max(len(ln) for ln in lines[:3]) < 130


def test_private_keys_preview_their_type_never_their_dashes() -> None:
    body = "MIIEpAIBAAKCAQEAV3+bu+4PLKp+U35AkfEAa9XGFpxm2mXTlOFY4QPzq9jTyAeD\nsGxzgluwjUEfYA=="
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    assert redact(pem) == "RSA PRIVATE KEY…YA=="
    escaped = pem.replace("\n", "\\n")  # as in JSON
    assert redact(escaped) == "RSA PRIVATE KEY…YA=="
    assert redact("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"
                  ) == "OPENSSH PRIVATE KEY…"  # a short body shows none of itself  # fmt: skip


@pytest.mark.parametrize(
    ("given", "display", "shown"),
    [
        ("flask-3.0.3", "docs/config.rst", "flask-3.0.3/docs/config.rst"),
        (".", "docs/config.rst", "docs/config.rst"),
        ("dist/flask.tar.gz", "flask.tar.gz!flask/config.py", "dist/flask.tar.gz!flask/config.py"),
    ],
)
def test_text_paths_start_with_the_path_given_as_grep_prints_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, display: str, shown: str
) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path(given)
    if given.endswith(".gz"):
        root.parent.mkdir(parents=True)
        root.write_bytes(b"")
    else:
        root.mkdir(exist_ok=True)
    result = ScanResult(findings=[finding(display)], roots=[root]).finish(0.0)
    assert to_string(result, OutputFormat.TEXT, color=False).splitlines()[0] == shown
