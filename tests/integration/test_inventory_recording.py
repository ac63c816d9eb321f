"""`keyward scan --record`: findings across scans, linking and ownership, on both databases."""

from __future__ import annotations

import os
import random
import string
import subprocess
import zlib
from pathlib import Path

import pytest
from _inventory_db import *  # noqa: F403
from _inventory_db import Cli

from keyward.cli.common import fingerprint_key
from keyward.core.config import Config
from keyward.core.redaction import Fingerprinter
from keyward.inventory.db import Database
from keyward.inventory.recording import record_findings
from keyward.inventory.service import Inventory
from keyward.scan.engine_spec import EngineSpec
from keyward.scan.model import Chunk, Location
from keyward.scan.result import ScanResult
from keyward.scan.validators import base62

pytestmark = pytest.mark.integration

TARGET = "files:/srv/app"


def aws_key_id(rng: random.Random) -> str:
    return "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


def aws_secret(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))


def github_token(rng: random.Random) -> str:
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + base62(zlib.crc32(body.encode("ascii")), 6)


@pytest.fixture
def fp() -> Fingerprinter:
    return Fingerprinter(fingerprint_key(Config()))


def scan(files: dict[str, str]) -> ScanResult:
    engine = EngineSpec(fingerprint_key=fingerprint_key(Config()), backend="re").build()
    chunks = [Chunk(text, Location(path=path)) for path, text in files.items()]
    return ScanResult(findings=[f for c in chunks for f in engine.scan(c)]).finish(0.0)


def record(db: Database, files: dict[str, str], target: str = TARGET, **kw: object) -> object:
    fpr = Fingerprinter(fingerprint_key(Config()))
    return record_findings(db, scan(files).findings, target, fingerprinter=fpr, **kw)  # type: ignore[arg-type]


def states(inv: Inventory) -> dict[str, str]:
    return {f"{f.path}:{f.rule_id}": f.state for f in inv.list_findings(limit=None).findings}


def test_rescan_updates_last_seen_and_line_without_duplicating(
    database: Database, inventory: Inventory
) -> None:
    token = github_token(random.Random(1))
    record(database, {"a.py": f"t = '{token}'\n"})
    (first,) = inventory.list_findings().findings
    record(database, {"a.py": f"# moved down\n\nt = '{token}'\n"})
    (again,) = inventory.list_findings().findings
    assert again.id == first.id
    assert again.line == 3 and first.line == 1
    assert again.last_seen_at > first.last_seen_at
    assert again.first_seen_at == first.first_seen_at


def test_finding_not_seen_in_full_scan_is_resolved_and_reopens_when_back(
    database: Database, inventory: Inventory
) -> None:
    rng = random.Random(2)
    t1, t2 = github_token(rng), github_token(rng)
    record(database, {"a.py": f"x = '{t1}'\n", "b.py": f"y = '{t2}'\n"})
    record(database, {"a.py": f"x = '{t1}'\n", "b.py": "y = None\n"}, target="files:/other")
    summary = record(database, {"a.py": f"x = '{t1}'\n", "b.py": "y = None\n"})
    assert summary.resolved == 1  # type: ignore[attr-defined]
    by_target = {(f.target, f.path): f.state for f in inventory.list_findings(state=None).findings}
    assert by_target == {
        (TARGET, "a.py"): "open",
        (TARGET, "b.py"): "resolved",
        ("files:/other", "a.py"): "open",
    }
    record(database, {"a.py": "x = None\n"}, full=False)  # partial scans resolve nothing
    assert states(inventory)["a.py:github-pat-classic"] == "open"
    record(database, {"a.py": f"x = '{t1}'\n", "b.py": f"y = '{t2}'\n"})
    assert states(inventory)["b.py:github-pat-classic"] == "open"


def test_ignored_finding_stays_ignored_across_rescans(
    database: Database, inventory: Inventory
) -> None:
    token = github_token(random.Random(3))
    record(database, {"a.py": f"x = '{token}'\n"})
    (f,) = inventory.list_findings().findings
    assert inventory.ignore_findings([f.id], "test fixture") == 1
    record(database, {"a.py": f"x = '{token}'\n"})
    record(database, {"a.py": "nothing\n"})
    record(database, {"a.py": f"x = '{token}'\n"})
    (after,) = inventory.list_findings(state="ignored").findings
    assert after.id == f.id and after.state_reason == "test fixture"
    assert inventory.list_findings(state="open").findings == ()


def test_inline_allowed_finding_is_recorded_as_ignored(
    database: Database, inventory: Inventory
) -> None:
    token = github_token(random.Random(4))
    record(database, {"a.py": f"x = '{token}'  # keyward: allow\n"})
    (f,) = inventory.list_findings(state=None).findings
    assert f.state == "ignored" and f.state_reason == "suppressed (inline)"


def test_leak_links_to_the_secret_whose_version_it_matches(
    database: Database, inventory: Inventory, fp: Fingerprinter
) -> None:
    rng = random.Random(5)
    known, unknown = github_token(rng), github_token(rng)
    inventory.add_secret("ci/token", "random", owner="alice", fingerprint=fp.fingerprint(known))
    record(database, {"a.py": f"x = '{known}'\n", "b.py": f"y = '{unknown}'\n"})
    linked = {f.path: (f.secret, f.owner) for f in inventory.list_findings().findings}
    assert linked["a.py"] == ("ci/token", "alice")
    assert linked["b.py"][0] is None
    # a version recorded later links the earlier leak, and owner changes follow
    inventory.add_secret("other", "random", owner="bob")
    inventory.add_version("other", fingerprint=fp.fingerprint(unknown))
    inventory.update_secret("ci/token", owner="carol")
    linked = {f.path: (f.secret, f.owner) for f in inventory.list_findings().findings}
    assert linked == {"a.py": ("ci/token", "carol"), "b.py": ("other", "bob")}
    assert [f.path for f in inventory.list_findings(owner="bob").findings] == ["b.py"]


def test_leaked_access_key_id_links_to_the_inventoried_iam_key(
    database: Database, inventory: Inventory, fp: Fingerprinter
) -> None:
    rng = random.Random(6)
    key_id, secret = aws_key_id(rng), aws_secret(rng)
    inventory.add_secret(
        "iam/deploy", "aws-iam-access-key", owner="ops", store="aws-iam", reference=key_id
    )
    inventory.add_version(
        "iam/deploy", identifier=key_id, identifier_fingerprint=fp.fingerprint(key_id)
    )
    text = f'aws_access_key_id = "{key_id}"\naws_secret_access_key = "{secret}"\n'
    record(database, {"creds.py": text})
    (f,) = inventory.list_findings().findings
    assert (f.rule_id, f.secret, f.owner) == ("aws-access-key-id", "iam/deploy", "ops")
    detail = inventory.show("iam/deploy")
    assert detail.open_findings == 1


def test_manual_link_and_unlink(database: Database, inventory: Inventory) -> None:
    record(database, {"a.py": f"x = '{github_token(random.Random(7))}'\n"})
    (f,) = inventory.list_findings().findings
    inventory.add_secret("manual", "random", owner="dana")
    assert inventory.link_finding(f.id, "manual").owner == "dana"
    assert inventory.link_finding(f.id, None).secret is None


def _git(repo: Path, *args: str, email: str = "dev@example.com") -> None:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_EMAIL": email,
    }
    subprocess.run(["git", *args], cwd=repo, check=True, env=env, capture_output=True)


def test_scan_record_sets_owner_from_codeowners_else_git_blame(cli: Cli, git_repo: Path) -> None:
    rng = random.Random(8)
    (git_repo / ".github").mkdir()
    (git_repo / ".github" / "CODEOWNERS").write_text("*.py @org/payments\n/docs/ @org/docs\n")
    (git_repo / "app.py").write_text(f"token = '{github_token(rng)}'\n")
    (git_repo / "notes.txt").write_text("old = 1\n")
    _git(git_repo, "add", "-A")
    _git(git_repo, "commit", "-qm", "one")
    (git_repo / "notes.txt").write_text(f"old = 1\ntoken = '{github_token(rng)}'\n")
    _git(git_repo, "commit", "-qam", "two", email="mallory@example.com")

    rc, _, err = cli("scan", str(git_repo), "--engine", "re", "--record", "--format", "json")
    assert rc == 1, err  # findings
    assert "recorded 2 findings" in err and "2 new" in err
    owners = {f["path"]: (f["owner"], f["author"]) for f in cli.json("findings", "list")}
    assert owners == {
        "app.py": ("@org/payments", "dev@example.com"),
        "notes.txt": ("mallory@example.com", "mallory@example.com"),
    }
    mine = cli.json("findings", "list", "--state", "open", "--owner", "@org/payments")
    assert [f["path"] for f in mine] == ["app.py"]

    (git_repo / "notes.txt").write_text("old = 1\n")
    rc, _, err = cli("scan", str(git_repo), "--engine", "re", "--record", "--exit-zero")
    assert rc == 0 and "1 resolved" in err
    resolved = cli.json("findings", "list", "--state", "resolved")
    assert [f["path"] for f in resolved] == ["notes.txt"]


def test_scan_git_history_record_owns_findings_by_codeowners_else_commit_author(
    cli: Cli, git_repo: Path
) -> None:
    rng = random.Random(9)
    (git_repo / "CODEOWNERS").write_text("/infra/ @org/infra\n")
    (git_repo / "infra").mkdir()
    (git_repo / "infra" / "deploy.sh").write_text(f"export T={github_token(rng)}\n")
    (git_repo / "app.txt").write_text(f"t = {github_token(rng)}\n")
    _git(git_repo, "add", "-A")
    _git(git_repo, "commit", "-qm", "leak", email="eve@example.com")
    (git_repo / "app.txt").write_text("t = None\n")  # gone from HEAD, still in history
    _git(git_repo, "commit", "-qam", "remove")

    rc, _, err = cli("scan", "--git", str(git_repo), "--engine", "re", "--record", "--exit-zero")
    assert rc == 0, err
    assert f"git:{git_repo.resolve()}" in err
    found = {f["path"]: (f["source"], f["owner"]) for f in cli.json("findings", "list")}
    assert found == {
        "infra/deploy.sh": ("git", "@org/infra"),
        "app.txt": ("git", "eve@example.com"),
    }

    # staged scans record without resolving anything
    (git_repo / "new.txt").write_text(f"t = {github_token(rng)}\n")
    _git(git_repo, "add", "new.txt")
    rc, _, err = cli("scan", "--staged", str(git_repo), "--engine", "re", "--record", "--exit-zero")
    assert rc == 0, err
    assert "0 resolved" in err
    assert len(cli.json("findings", "list")) == 3


def test_low_findings_are_recorded_only_when_asked_and_never_resolved_by_a_default_scan(
    database: Database, inventory: Inventory
) -> None:
    from keyward.scan.model import Confidence

    token = github_token(random.Random(9))
    files = {"a.py": f"t = '{token}'\n", "b.py": 'db_password = "AnotherStrongPass!"\n'}
    result = scan(files)
    assert sorted((f.rule_id, f.confidence) for f in result.findings) == [
        ("generic-password", Confidence.LOW),
        ("github-pat-classic", Confidence.HIGH),
    ]
    fpr = Fingerprinter(fingerprint_key(Config()))

    def record_at(threshold: Confidence) -> object:
        result.min_confidence = threshold
        return record_findings(
            database, result.confident, TARGET, fingerprinter=fpr, min_confidence=threshold
        )

    record_at(Confidence.MEDIUM)  # the default: the low finding is not recorded
    assert states(inventory) == {"a.py:github-pat-classic": "open"}
    record_at(Confidence.LOW)  # `scan --record --min-confidence low`
    found = {f.rule_id: f for f in inventory.list_findings(limit=None).findings}
    assert (found["generic-password"].confidence, found["generic-password"].state) == (
        "low",
        "open",
    )
    assert found["github-pat-classic"].confidence == "high"
    summary = record_at(Confidence.MEDIUM)  # a default scan did not look for low findings
    assert summary.resolved == 0  # type: ignore[attr-defined]
    assert states(inventory) == {"a.py:github-pat-classic": "open", "b.py:generic-password": "open"}
    result.findings = [f for f in result.findings if f.rule_id != "generic-password"]
    record_at(Confidence.LOW)  # a low scan that no longer sees it resolves it
    assert states(inventory)["b.py:generic-password"] == "resolved"


def test_the_recorded_line_counts_as_the_report_does(cli: Cli, tmp_path: Path) -> None:
    rng = random.Random(9)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.py").write_text(f"x = '{github_token(rng)}'  # keyward: allow\n")
    (tree / "b.py").write_text(f"y = '{github_token(rng)}'\n")
    rc, out, err = cli("scan", str(tree), "--engine", "re", "--record")
    assert rc == 1, err
    assert "1 finding in 2 files (1 allowed inline)" in out
    assert "recorded 1 finding and 1 suppressed as ignored" in err, err
