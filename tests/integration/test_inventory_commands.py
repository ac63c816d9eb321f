"""`keyward inventory|dependents|findings` on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _inventory_db import *  # noqa: F403
from _inventory_db import Cli

from keyward.inventory.service import Inventory

pytestmark = pytest.mark.integration

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:api"


def _add(cli: Cli, name: str, *opts: str) -> None:
    rc, _, err = cli("inventory", "add", name, *opts)
    assert rc == 0, err


def test_add_list_show_update_remove_round_trip(cli: Cli) -> None:
    _add(
        cli,
        "prod/db",
        "--kind", "postgres-password", "--owner", "alice", "--team", "payments",
        "--contact", "alice@example.com", "--tag", "env=prod", "--max-age", "90d",
        "--store", "vault", "--reference", "secret/data/prod/db",
    )  # fmt: skip
    _add(cli, "ci/token", "--kind", "random", "--owner", "bob")
    listed = cli.json("inventory", "list")
    assert [s["name"] for s in listed] == ["ci/token", "prod/db"]
    db = next(s for s in listed if s["name"] == "prod/db")
    assert db["tags"] == {"env": "prod"} and db["max_age_seconds"] == 90 * 86400
    assert [s["name"] for s in cli.json("inventory", "list", "--owner", "alice")] == ["prod/db"]

    rc, out, _ = cli("inventory", "show", "prod/db")
    assert rc == 0 and "alice@example.com" in out and "90d" in out

    rc, _, err = cli(
        "inventory", "update", "prod/db", "--owner", "carol", "--schedule", "0 3 * * 1"
    )
    assert rc == 0, err
    shown = cli.json("inventory", "show", "prod/db")
    assert shown["secret"]["owner"] == "carol"
    assert shown["secret"]["schedule"] == "0 3 * * 1"
    actions = [e["action"] for e in shown["audit"]]
    assert actions == ["secret.update", "secret.add"]
    assert shown["audit"][0]["detail"] == {"changed": ["owner", "schedule"]}

    rc, _, _ = cli("inventory", "remove", "prod/db", "--yes")
    assert rc == 0
    assert [s["name"] for s in cli.json("inventory", "list")] == ["ci/token"]


def test_update_rename_moves_the_secret_to_its_new_name(cli: Cli) -> None:
    _add(cli, "prod/a", "--owner", "alice")
    rc, _, err = cli("inventory", "update", "prod/a", "--rename", "prod/b")
    assert rc == 0, err
    assert [s["name"] for s in cli.json("inventory", "list")] == ["prod/b"]
    assert cli.json("inventory", "show", "prod/b")["secret"]["owner"] == "alice"


def test_overdue_follows_max_age_and_schedule(cli: Cli) -> None:
    old = (datetime.now(UTC) - timedelta(days=100)).date().isoformat()
    recent = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    _add(cli, "old", "--max-age", "90d", "--created", old)
    _add(cli, "fresh", "--max-age", "90d", "--created", recent)
    _add(cli, "weekly", "--schedule", "0 0 * * *", "--last-rotated", recent)
    _add(cli, "nopolicy", "--created", old)
    overdue = cli.json("inventory", "list", "--overdue")
    assert sorted(s["name"] for s in overdue) == ["old", "weekly"]
    rc, _, _ = cli("inventory", "update", "old", "--rotated-now")
    assert rc == 0
    assert [s["name"] for s in cli.json("inventory", "list", "--overdue")] == ["weekly"]


def test_report_in_json_csv_and_text(cli: Cli) -> None:
    now = datetime.now(UTC)
    for i, (owner, team, days) in enumerate(
        [("alice", "a", 10), ("alice", "a", 400), ("bob", "b", 100), (None, None, 1000)]
    ):
        opts = ["--max-age", "90d", "--created", (now - timedelta(days=days)).isoformat()]
        if owner:
            opts += ["--owner", owner, "--team", team]
        _add(cli, f"s{i}", *opts)
    doc = cli.json("inventory", "report")
    assert doc["secrets"] == 4 and doc["overdue_count"] == 3
    assert [o["name"] for o in doc["overdue"]] == ["s3", "s1", "s2"]
    hist = {h["bucket"]: h["secrets"] for h in doc["age_histogram"]}
    assert hist == {
        "< 30 days": 1,
        "30-90 days": 0,
        "90-180 days": 1,
        "180-365 days": 0,
        "1-2 years": 1,
        "> 2 years": 1,
    }
    owners = {g["key"]: (g["secrets"], g["overdue"]) for g in doc["by_owner"]}
    assert owners == {"alice": (2, 1), "bob": (1, 1), "(none)": (1, 1)}
    teams = {g["key"]: g["secrets"] for g in doc["by_team"]}
    assert teams == {"a": 2, "b": 1, "(none)": 1}
    # posture: what each secret's own columns tell is refreshed by `inventory add`; the
    # breaches across secrets by a full refresh (--refresh)
    assert (doc["breaches"]["long-lived"], doc["breaches"]["no-owner"]) == (3, 1)
    doc = cli.json("inventory", "report", "--refresh")
    assert doc["breaches"] == {
        "leaked": 0, "reused": 0, "duplicated": 0, "long-lived": 3, "no-owner": 1,
        "no-policy": 0, "unused": 0, "cross-environment": 0,
    }  # fmt: skip

    rc, out, _ = cli("inventory", "report", "--format", "csv")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["key"] for r in rows if r["section"] == "overdue"} == {"s1", "s2", "s3"}
    assert (
        next(r for r in rows if r["section"] == "owner" and r["key"] == "alice")["secrets"] == "2"
    )
    breaches = {r["key"]: r["secrets"] for r in rows if r["section"] == "breach"}
    assert breaches["long-lived"] == "3" and breaches["leaked"] == "0"

    rc, out, _ = cli("inventory", "report")
    assert rc == 0 and "4 secrets" in out and "3 overdue" in out and "By team" in out


def test_dependents_add_list_remove(cli: Cli) -> None:
    _add(cli, "prod/key", "--kind", "aws-iam-access-key")
    dep = cli.json(
        "dependents", "add", "prod/key", "--target", ARN, "--variable", "AWS_SECRET_ACCESS_KEY"
    )
    assert dep["region"] == "eu-west-1" and dep["kind"] == "aws-lambda"
    rc, _, err = cli(
        "dependents", "add", "prod/key", "--target", ARN, "--variable", "AWS_SECRET_ACCESS_KEY"
    )
    assert rc == 2 and "already a dependent" in err
    listed = cli.json("dependents", "list", "prod/key")
    assert [(d["target"], d["variable"]) for d in listed] == [(ARN, "AWS_SECRET_ACCESS_KEY")]
    rc, _, _ = cli("dependents", "remove", str(dep["id"]))
    assert rc == 0
    assert cli.json("dependents", "list") == []


def test_unknown_names_and_bad_values_are_usage_errors(cli: Cli) -> None:
    for args, text in [
        (("inventory", "show", "nope"), "No secret named 'nope'"),
        (("inventory", "add", "x", "--max-age", "ninety"), "is not a duration"),
        (("inventory", "add", "x", "--schedule", "every monday"), "cron"),
        (("inventory", "add", "x", "--created", "yesterday"), "is not a date"),
        (("dependents", "add", "nope", "--target", ARN), "No secret named"),
        (
            ("dependents", "add", "nope", "--kind", "lambda-env", "--target", ARN),
            "There is no dependent kind 'lambda-env' (installed: aws-lambda)",
        ),
        (("findings", "ignore", "999", "--reason", "r"), "No finding with id 999"),
        (("dependents", "remove", "999"), "No dependent with id 999"),
    ]:
        rc, _, err = cli(*args)
        assert rc == 2, (args, err)
        assert text in err and "Traceback" not in err
        assert err.count("\n") == 1
    _add(cli, "dup")
    rc, _, err = cli("inventory", "add", "dup")
    assert rc == 2 and "already in the inventory" in err


def test_value_from_stdin_is_fingerprinted_never_stored(cli: Cli, inventory: Inventory) -> None:
    rc, _, err = cli(
        "inventory", "add", "stdin-secret", "--value-stdin", stdin="s3cr3t-v@lue-123\n"
    )
    assert rc == 0, err
    (version,) = inventory.versions("stdin-secret")
    assert version.fingerprint is not None and len(version.fingerprint) == 64
    assert "s3cr3t" not in json.dumps(cli.json("inventory", "show", "stdin-secret"))


def test_inventory_commands_refuse_a_corrupt_or_unreachable_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import free_port

    bad = tmp_path / "inventory.db"
    bad.write_bytes(b"garbage" * 1000)
    port = free_port()
    run = Cli(capsys)
    for url, text in [
        (f"sqlite:///{bad}", "not a valid SQLite database"),
        (f"postgresql://u:pw-secret@127.0.0.1:{port}/x", f"127.0.0.1:{port}"),
    ]:
        monkeypatch.setenv("KEYWARD_DATABASE_URL", url)
        for args in (("inventory", "list"), ("findings", "list"), ("inventory", "report")):
            rc, out, err = run(*args)
            assert rc == 3, (args, err)
            assert text in err and err.count("\n") == 1 and "pw-secret" not in err + out
    assert bad.read_bytes() == b"garbage" * 1000
