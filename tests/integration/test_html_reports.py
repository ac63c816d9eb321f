"""The HTML reports (``scan --format html``, ``inventory report --format html``) opened in a
real headless Chromium (Debian's chromium and chromium-driver, through selenium): they load
without a console error and without fetching anything, show the same counts as the JSON
reports, keep their core tables with scripts switched off, and hold no planted value.

Skipped when Chromium, chromedriver or selenium is missing, unless KEYWARD_REQUIRE_CHROMIUM is
set (CI), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

GITHUB_TOKEN = "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"  # valid checksum, never a real one
AWS_PAIR = ("AKIAZ7VQ3MNB5XK2LR4P", "q8Nf2VbR7wXk4LmT9sYp3HdJ6gCz1aEu5KoWi0Ft")
DB_PASSWORD = "Zq8#vR2!mK9pL4@x"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


def _missing() -> str | None:
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def _browser(scripts: bool) -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        if os.environ.get("KEYWARD_REQUIRE_CHROMIUM"):
            pytest.fail(f"Chromium is required for the HTML report tests: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="keyward-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not scripts:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(
        options=options, service=Service(shutil.which("chromedriver") or "chromedriver")
    )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from _browser(scripts=True)


@pytest.fixture(scope="module")
def browser_without_scripts() -> Iterator[Any]:
    yield from _browser(scripts=False)


def _open(driver: Any, path: Path) -> list[dict[str, Any]]:
    """Load the page; return what it logged to the console."""
    driver.get_log("browser")  # drop what an earlier page left
    driver.get(path.as_uri())
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def _fetched(driver: Any) -> list[str]:
    """Every resource the page tried to load (none may: it is self-contained)."""
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })"
    )
    return list(entries)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from keyward.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return code, out


# ------------------------------------------------------------------------- scan
@pytest.fixture(scope="module")
def scan_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A tree with findings of several severities and confidences, in awkward file names,
    scanned to HTML and to JSON."""
    root = tmp_path_factory.mktemp("html-scan") / "project"
    files = {
        "pages/[id].js": f"const token = '{GITHUB_TOKEN}';\n",
        'src/<img src=x onerror="alert(1)">.py': f"KEY = '{GITHUB_TOKEN}'\n",
        "deploy/x:secret:y.env": (
            f"AWS_ACCESS_KEY_ID={AWS_PAIR[0]}\nAWS_SECRET_ACCESS_KEY={AWS_PAIR[1]}\n"
        ),
        "config/settings.py": f'DB_PASSWORD = "{DB_PASSWORD}"\n',
        "spec/fixtures/conf.py": 'password = "Winter2023!"\n',  # guessable, in tests: low
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    out = root.parent / "report.html"
    from keyward.cli import main

    env = {"KEYWARD_FINGERPRINT_KEY": "cd" * 32}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for args in (
            ["scan", str(root), "--min-confidence", "low", "-f", "html", "-o", str(out)],
            ["scan", str(root), "--min-confidence", "low", "-f", "json", "-o", str(out) + ".json"],
        ):
            with pytest.raises(SystemExit) as exc:
                main(args)
            assert exc.value.code == 1
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    doc = json.loads(Path(str(out) + ".json").read_text())
    return out, doc


def test_scan_html_holds_no_planted_value_and_loads_nothing(
    scan_report: tuple[Path, dict[str, Any]], browser: Any
) -> None:
    path, doc = scan_report
    text = path.read_text(encoding="utf-8")
    for planted in (GITHUB_TOKEN, *AWS_PAIR, DB_PASSWORD, "Winter2023!"):
        assert planted not in text
    assert "<img src=x" not in text  # a file name is text, never markup
    assert Counter(f["confidence"] for f in doc["findings"]) == {"high": 2, "medium": 3, "low": 1}
    assert _open(browser, path) == []  # no console error, no CSP violation
    assert _fetched(browser) == []


def test_scan_html_shows_the_counts_and_filters_them(
    scan_report: tuple[Path, dict[str, Any]], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    path, doc = scan_report
    findings = doc["findings"]
    by_severity = Counter(f["severity"] for f in findings)
    by_path = Counter(f["path"] for f in findings)
    assert _open(browser, path) == []
    find = browser.find_element
    assert find(By.ID, "total").text == str(len(findings))
    assert find(By.ID, "shown").text == str(len(findings))
    for severity, n in by_severity.items():
        cell = find(By.CSS_SELECTOR, f'#by-severity td[data-severity="{severity}"]')
        assert cell.text == str(n)
    sections = browser.find_elements(By.CSS_SELECTOR, "section.file")
    shown = {
        s.get_attribute("data-path"): int(s.find_element(By.CLASS_NAME, "file-count").text)
        for s in sections
    }
    prefix = str(path.parent / "project") + "/"
    assert shown == {prefix + p: n for p, n in by_path.items()}  # paths as given, escaped
    assert prefix + 'src/<img src=x onerror="alert(1)">.py' in shown

    # untick the most common severity: its rows, and files left empty, disappear
    severity, n = by_severity.most_common(1)[0]
    find(By.CSS_SELECTOR, f'#filters input[name="severity"][value="{severity}"]').click()
    assert find(By.ID, "shown").text == str(len(findings) - n)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.finding")
    assert sum(r.is_displayed() for r in rows) == len(findings) - n
    for s in sections:
        left = sum(
            1
            for f in findings
            if prefix + f["path"] == s.get_attribute("data-path") and f["severity"] != severity
        )
        assert s.is_displayed() == (left > 0)
        if left:
            assert s.find_element(By.CLASS_NAME, "file-count").text == str(left)
    low = find(By.CSS_SELECTOR, '#filters input[name="confidence"][value="low"]')
    low.click()
    expected = sum(1 for f in findings if f["severity"] != severity and f["confidence"] != "low")
    assert find(By.ID, "shown").text == str(expected)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_scan_html_lists_every_finding_with_scripts_disabled(
    scan_report: tuple[Path, dict[str, Any]], browser_without_scripts: Any
) -> None:
    from selenium.webdriver.common.by import By

    path, doc = scan_report
    driver = browser_without_scripts
    driver.get(path.as_uri())
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.finding")
    assert len(rows) == len(doc["findings"]) and all(r.is_displayed() for r in rows)
    assert not driver.find_element(By.ID, "filters").is_displayed()  # they need the script
    assert driver.find_element(By.ID, "total").text == str(len(doc["findings"]))
    previews = {r.find_elements(By.TAG_NAME, "td")[4].text for r in rows}
    assert previews == {f["preview"] for f in doc["findings"]}


# ------------------------------------------------------------------------- inventory
@pytest.fixture(scope="module")
def inventory_report(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dict[str, Any]]]:
    from datetime import UTC, datetime, timedelta

    from keyward.cli import main
    from keyward.inventory.db import connect
    from keyward.inventory.migrate import upgrade_to

    base = tmp_path_factory.mktemp("html-inventory")
    url = f"sqlite:///{base / 'inventory.db'}"
    db = connect(url)
    upgrade_to(db)
    db.close()
    env = {
        "KEYWARD_DATABASE_URL": url,
        "KEYWARD_FINGERPRINT_KEY": "cd" * 32,
        "KEYWARD_ACTOR": "tester",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    now = datetime.now(UTC)

    def run(*args: str, stdin: str | None = None) -> None:
        import io

        saved = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            main(list(args))
        except SystemExit as exc:
            assert not exc.code, args
        finally:
            sys.stdin = saved

    try:
        secrets = [
            # name, owner, team, age in days, max age
            ("prod/db", "alice", "payments", 400, "90d"),
            ("prod/api", "alice", "payments", 10, "90d"),
            ("prod/<script>alert(1)</script>", "bob", "<b>platform</b>", 200, "30d"),
            ("ci/token", "bob", "<b>platform</b>", 800, None),
            ("legacy/key", None, None, 1000, None),
            ("new/key", None, "payments", 5, None),
        ]
        for name, owner, team, days, max_age in secrets:
            opts = ["--created", (now - timedelta(days=days)).isoformat()]
            opts += ["--owner", owner] if owner else []
            opts += ["--team", team] if team else []
            opts += ["--max-age", max_age] if max_age else []
            run("inventory", "add", name, *opts)
        run("inventory", "add", "stdin/secret", "--value-stdin", stdin="planted-S3cret-v@lue-77\n")
        html = base / "inventory.html"
        run("inventory", "report", "--refresh", "--format", "html", "-o", str(html))
        run("inventory", "report", "--format", "json", "-o", str(base / "inventory.json"))
        yield html, json.loads((base / "inventory.json").read_text())
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _chart(driver: Any, chart_id: str) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    values = {}
    for row in driver.find_elements(By.CSS_SELECTOR, f"#{chart_id} g.row"):
        texts = row.find_elements(By.TAG_NAME, "text")
        values[row.get_attribute("data-label")] = texts[-1].text
    return values


def test_inventory_html_charts_show_the_reports_numbers(
    inventory_report: tuple[Path, dict[str, Any]], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    path, doc = inventory_report
    text = path.read_text(encoding="utf-8")
    assert "planted-S3cret-v@lue-77" not in text and "<script>alert" not in text
    assert "<script" not in text  # nothing to run: the whole page reads without scripts
    assert _open(browser, path) == [] and _fetched(browser) == []

    find = browser.find_element
    assert find(By.ID, "secrets").text == str(doc["secrets"]) == "7"
    assert find(By.ID, "overdue-count").text == str(doc["overdue_count"])
    assert find(By.ID, "no-policy").text == str(doc["no_policy"])
    assert _chart(browser, "age-histogram") == {
        h["bucket"]: str(h["secrets"]) for h in doc["age_histogram"]
    }
    late_teams = {g["key"]: str(g["overdue"]) for g in doc["by_team"] if g["overdue"]}
    assert _chart(browser, "overdue-by-team") == late_teams
    assert late_teams == {"payments": "1", "<b>platform</b>": "1"}
    late_owners = {g["key"]: str(g["overdue"]) for g in doc["by_owner"] if g["overdue"]}
    assert _chart(browser, "overdue-by-owner") == late_owners
    breaches = _chart(browser, "breach-chart")
    # long-lived: past their policy (prod/db, the <script> one) or a year old without one
    assert doc["breaches"]["long-lived"] == 4 and breaches["long-lived"] == "4"
    assert breaches["no owner"] == str(doc["breaches"]["no-owner"]) == "3"
    assert breaches["no rotation policy"] == str(doc["breaches"]["no-policy"]) == "4"
    assert breaches["leaked"] == "0" and doc["breaches"]["leaked"] == 0  # posture computed
    names = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#overdue td:first-child")]
    assert "prod/<script>alert(1)</script>" in names


def test_inventory_html_reads_the_same_with_scripts_disabled(
    inventory_report: tuple[Path, dict[str, Any]], browser_without_scripts: Any
) -> None:
    from selenium.webdriver.common.by import By

    path, doc = inventory_report
    driver = browser_without_scripts
    driver.get(path.as_uri())
    assert driver.find_element(By.ID, "secrets").text == str(doc["secrets"])
    assert _chart(driver, "age-histogram") == {
        h["bucket"]: str(h["secrets"]) for h in doc["age_histogram"]
    }
    rows = driver.find_elements(By.CSS_SELECTOR, "#overdue tbody tr")
    assert len(rows) == doc["overdue_count"] and all(r.is_displayed() for r in rows)
