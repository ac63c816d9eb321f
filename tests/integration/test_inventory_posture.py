"""Posture: every breach computed from fingerprints and metadata, stored idempotently, listed,
shown and counted; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from _inventory_db import *  # noqa: F403
from _inventory_db import Cli

from keyward.core.redaction import Fingerprinter
from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.models import Breach
from keyward.inventory.posture import PostureSettings, parse_breaches, refresh
from keyward.inventory.service import Inventory

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FP = Fingerprinter(b"k" * 32).fingerprint
SHARED = "planted-Sh4red-passw0rd-91"  # a value two secrets hold; never stored, never shown
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:"


def _fields(db: Database, name: str, fields: dict[str, str], **version: Any) -> int:
    """A current version of ``name`` with a keyed fingerprint per field (as discovery and
    rotation record them); returns the version id."""
    with db.session() as s:
        sid = s.scalar(sa.select(m.Secret.id).where(m.Secret.name == name))
        assert sid is not None
        v = m.SecretVersion(secret_id=sid, stage=version.pop("stage", "current"), **version)
        s.add(v)
        s.flush()
        for field, value in fields.items():
            s.add(m.SecretField(version_id=v.id, secret_id=sid, field=field, fingerprint=FP(value)))
        return v.id


def _dependent(db: Database, name: str, function: str, **attributes: str) -> None:
    with db.session() as s:
        sid = s.scalar(sa.select(m.Secret.id).where(m.Secret.name == name))
        s.add(
            m.Dependent(
                secret_id=sid,
                kind="aws-lambda",
                target=ARN + function,
                variable="DB_PASSWORD",
                attributes={"mode": "value", **attributes},
                origin=m.DependentOrigin.DISCOVERED,
            )
        )


def _stored(db: Database) -> dict[tuple[str, str], tuple[datetime, dict[str, Any]]]:
    with db.session() as s:
        rows = s.execute(
            sa.select(
                m.Secret.name, m.SecretBreach.breach, m.SecretBreach.since, m.SecretBreach.detail
            ).join(m.Secret, m.Secret.id == m.SecretBreach.secret_id)
        )
        return {(n, Breach(b).value): (since, detail) for n, b, since, detail in rows}


def _has(db: Database, breach: Breach) -> set[str]:
    return {n for n, b in _stored(db) if b == breach.value}


def test_metadata_breaches_long_lived_no_owner_no_policy_unused(
    database: Database, inventory: Inventory
) -> None:
    day = timedelta(days=1)
    add = inventory.add_secret
    add("overdue", "random", owner="alice", max_age_seconds=90 * 86400, created_at=NOW - 100 * day)
    add("fresh", "random", owner="alice", max_age_seconds=90 * 86400, created_at=NOW - 10 * day)
    add("old-no-policy", "random", owner="bob", created_at=NOW - 400 * day)
    add("young-no-policy", "random", owner=" ", team="ops", created_at=NOW - 40 * day)
    add("idle", "random", owner="carol", max_age_seconds=90 * 86400, created_at=NOW - day)
    add("busy", "random", owner="carol", max_age_seconds=90 * 86400, created_at=NOW - day)
    add("never-known", "random", owner="carol", max_age_seconds=90 * 86400, created_at=NOW)
    add("retired", "random", created_at=NOW - 900 * day)
    inventory.update_secret("idle", last_used_at=NOW - 120 * day)
    inventory.update_secret("busy", last_used_at=NOW - 5 * day)
    inventory.update_secret("retired", status="retired")

    summary = refresh(database, NOW, PostureSettings(unused_days=90))
    stored = _stored(database)
    assert _has(database, Breach.LONG_LIVED) == {"overdue", "old-no-policy"}
    assert _has(database, Breach.NO_OWNER) == {"young-no-policy"}
    assert _has(database, Breach.NO_POLICY) == {"old-no-policy", "young-no-policy"}
    assert _has(database, Breach.UNUSED) == {"idle"}  # an unknown last use is not "unused"
    assert not {n for n, _ in stored} & {"retired"}  # a retired secret has no breach
    since, detail = stored["overdue", "long-lived"]
    assert since == NOW - 10 * day and detail == {"max_age_days": 90}
    since, detail = stored["old-no-policy", "long-lived"]
    assert since == NOW - 35 * day and detail == {"limit_days": 365}
    since, detail = stored["idle", "unused"]
    assert since == NOW - 30 * day and detail == {"unused_days": 90}
    assert stored["young-no-policy", "no-owner"][1] == {"team": "ops"}
    assert summary.counts[Breach.LONG_LIVED] == 2 and summary.added == len(stored)
    # a shorter threshold from the configuration makes "busy" unused too
    refresh(database, NOW, PostureSettings(unused_days=3))
    assert _has(database, Breach.UNUSED) == {"idle", "busy"}


def test_leaked_is_a_leaked_current_version_as_the_daemon_sees_it(
    database: Database, inventory: Inventory
) -> None:
    for name in ("by-version", "placed-copy", "old-version-leaked"):
        inventory.add_secret(name, "random", owner="alice", max_age_seconds=86400 * 30)
    leaked = _fields(database, "by-version", {"password": "v1"}, leaked_at=NOW - timedelta(days=2))
    # the current value found where a rotation put it: linked to the version, not a leak
    # (keyward.inventory.leaks leaves leaked_at unset), so no breach either
    placed = _fields(database, "placed-copy", {"password": "v2"})
    _fields(database, "old-version-leaked", {"password": "v4"}, stage="previous", leaked_at=NOW)
    _fields(database, "old-version-leaked", {"password": "v5"})
    with database.session() as s:
        ids = dict(s.execute(sa.select(m.Secret.name, m.Secret.id)).all())
        for i, (name, value, version, state) in enumerate(
            [
                ("by-version", "v1", leaked, "open"),
                ("by-version", "v1", leaked, "ignored"),
                ("placed-copy", "v2", placed, "open"),
            ]
        ):
            s.add(
                m.Finding(
                    identity=f"id{i}", target="files:/repo", rule_id="generic-password",
                    severity="high", source="file", path=f"app{i}.py", preview="v…",
                    fingerprint=FP(value), secret_id=ids[name], version_id=version,
                    state=m.FindingState(state), first_seen_at=NOW - timedelta(days=5),
                    last_seen_at=NOW,
                )
            )  # fmt: skip
    refresh(database, NOW)
    stored = _stored(database)
    assert _has(database, Breach.LEAKED) == {"by-version"}
    assert stored["by-version", "leaked"] == (
        NOW - timedelta(days=2),
        {"versions": [], "open_findings": 1},  # the ignored finding is not counted
    )


def test_duplicated_and_reused_from_shared_secret_fields(
    database: Database, inventory: Inventory
) -> None:
    add = inventory.add_secret
    add("vault/app", "postgres-password", store="vault-kv", reference="kv/app", owner="alice")
    add(
        "sm/app", "postgres-password", store="aws-secretsmanager", reference="arn:sm", owner="alice"
    )
    add("vault/other", "postgres-password", store="vault-kv", reference="kv/o", owner="bob")
    add("vault/same-user", "postgres-password", store="vault-kv", reference="kv/u", owner="dan")
    add("vault/rotated", "postgres-password", store="vault-kv", reference="kv/r", owner="erin")
    _fields(database, "vault/app", {"username": "app", "password": SHARED})
    _fields(database, "sm/app", {"username": "app", "password": SHARED})
    _fields(database, "vault/other", {"username": "x", "db_password": SHARED})
    # only the username in common: not a secret field, not a breach
    _fields(database, "vault/same-user", {"username": "app", "password": "own-1"})
    # the shared value only in a previous version: not current, not a breach
    _fields(database, "vault/rotated", {"password": SHARED}, stage="previous")
    _fields(database, "vault/rotated", {"password": "own-2"})

    refresh(database, NOW)
    stored = _stored(database)
    assert _has(database, Breach.DUPLICATED) == {"vault/app", "sm/app", "vault/other"}
    detail = stored["vault/app", "duplicated"][1]
    assert detail == {
        "secrets": ["sm/app", "vault/other"],
        "copies": 2,
        "stores": ["aws-secretsmanager", "vault-kv"],
        "fields": ["password"],
    }
    # alice's two copies are a duplicate; bob holding the same value makes it reused
    assert _has(database, Breach.REUSED) == {"vault/app", "sm/app", "vault/other"}
    assert stored["vault/other", "reused"][1] == {
        "secrets": ["sm/app", "vault/app"],
        "owners": ["alice"],
    }
    assert stored["sm/app", "reused"][1] == {"secrets": ["vault/other"], "owners": ["bob"]}


def test_reused_and_cross_environment_from_dependents(
    database: Database, inventory: Inventory
) -> None:
    for name in ("shared-db", "one-app", "no-tags"):
        inventory.add_secret(name, "postgres-password", owner="alice", max_age_seconds=86400)
    _dependent(database, "shared-db", "orders-prod", environment="prod", application="orders")
    _dependent(database, "shared-db", "orders-dev", environment="Dev", application="orders")
    _dependent(database, "shared-db", "billing", environment="prod", application="billing")
    _dependent(database, "one-app", "api-1", environment="prod", application="api")
    _dependent(database, "one-app", "api-2", environment="PROD", app="api")
    _dependent(database, "no-tags", "f1")
    _dependent(database, "no-tags", "f2")

    refresh(database, NOW)
    stored = _stored(database)
    assert _has(database, Breach.CROSS_ENVIRONMENT) == {"shared-db"}
    assert stored["shared-db", "cross-environment"][1] == {
        "environments": {"dev": ["orders-dev"], "prod": ["billing", "orders-prod"]}
    }
    assert _has(database, Breach.REUSED) == {"shared-db"}
    assert stored["shared-db", "reused"][1] == {
        "applications": {"billing": ["billing"], "orders": ["orders-dev", "orders-prod"]}
    }
    # a missing dependent is not used any more: it no longer counts
    with database.session() as s:
        s.execute(
            sa.update(m.Dependent)
            .where(m.Dependent.target == ARN + "orders-dev")
            .values(status=m.DependentStatus.MISSING)
        )
    refresh(database, NOW)
    assert _has(database, Breach.CROSS_ENVIRONMENT) == set()


def test_refresh_is_idempotent_keeps_since_and_drops_what_no_longer_holds(
    database: Database, inventory: Inventory
) -> None:
    inventory.add_secret("a", "random", created_at=NOW - timedelta(days=2))
    first = refresh(database, NOW)
    assert first.added == 2 and set(_stored(database)) == {("a", "no-owner"), ("a", "no-policy")}
    since = _stored(database)["a", "no-owner"][0]
    later = NOW + timedelta(days=3)
    again = refresh(database, later)
    assert (again.added, again.removed, again.updated) == (0, 0, 0)
    assert _stored(database)["a", "no-owner"][0] == since  # persists: since kept
    inventory.update_secret("a", owner="alice", max_age_seconds=86400)
    after = refresh(database, later)
    assert (after.added, after.removed) == (1, 2)
    assert set(_stored(database)) == {("a", "long-lived")}  # due a day after creation
    assert _stored(database)["a", "long-lived"][0] == NOW - timedelta(days=1)


def test_cli_lists_shows_and_counts_breaches_without_a_value(cli: Cli, db_url: str) -> None:
    old = (datetime.now(UTC) - timedelta(days=500)).isoformat()
    for name, owner in (("prod/a", "alice"), ("prod/b", "bob"), ("prod/c", None)):
        args = ["inventory", "add", name, "--store", "vault-kv", "--reference", name]
        args += ["--owner", owner] if owner else []
        args += ["--value-stdin"] if name != "prod/c" else ["--created", old]
        rc, _, err = cli(*args, stdin=SHARED + "\n")
        assert rc == 0, err
    rc, out, err = cli("inventory", "posture")
    assert rc == 0, err
    assert "2 reused, 2 duplicated, 1 long-lived, 1 no-owner, 3 no-policy" in out

    listed = cli.json("inventory", "list", "--breach", "duplicated", "--breach", "long-lived")
    assert {s["name"]: s["breaches"] for s in listed} == {
        "prod/a": ["reused", "duplicated", "no-policy"],
        "prod/b": ["reused", "duplicated", "no-policy"],
        "prod/c": ["long-lived", "no-owner", "no-policy"],
    }
    assert [s["name"] for s in cli.json("inventory", "list", "--breach", "no-owner")] == ["prod/c"]
    rc, out, err = cli("inventory", "list", "--breach", "reused,unused")
    assert rc == 0 and "prod/a" in out and "prod/c" not in out and "breaches" in out
    rc, _, err = cli("inventory", "list", "--breach", "leak")
    assert rc == 2 and "'leak' is not a posture breach" in err and "cross-environment" in err

    shown = cli.json("inventory", "show", "prod/a")
    assert [b["breach"] for b in shown["breaches"]] == ["reused", "duplicated", "no-policy"]
    assert shown["breaches"][0]["detail"] == {"secrets": ["prod/b"], "owners": ["bob"]}
    rc, out, _ = cli("inventory", "show", "prod/a")
    assert rc == 0 and "Posture breaches" in out and "same value as prod/b" in out
    rc, out, _ = cli("inventory", "show", "prod/c")
    assert rc == 0 and "no policy, not rotated since" in out and "(500 days ago)" in out

    doc = cli.json("inventory", "report")
    assert doc["breaches"] == {
        "leaked": 0, "reused": 2, "duplicated": 2, "long-lived": 1, "no-owner": 1,
        "no-policy": 3, "unused": 0, "cross-environment": 0,
    }  # fmt: skip
    rc, out, _ = cli("inventory", "report", "--format", "csv")
    rows = {
        r["key"]: r["secrets"] for r in csv.DictReader(io.StringIO(out)) if r["section"] == "breach"
    }
    assert rows["duplicated"] == "2" and rows["cross-environment"] == "0"
    rc, text, _ = cli("inventory", "report")
    assert "2 duplicated" in text

    # neither the value nor its fingerprint in any output or stored detail
    fingerprint = shown["versions"][0]["fingerprint"]
    outputs = [json.dumps(shown), json.dumps(listed), out, text, json.dumps(doc)]
    assert not any(SHARED in o for o in outputs)
    assert fingerprint not in json.dumps(shown["breaches"])
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        details = conn.execute(sa.text("SELECT detail FROM secret_breaches")).scalars().all()
    engine.dispose()
    assert details and not any(SHARED in str(d) or fingerprint in str(d) for d in details)


def test_breach_names_are_validated_and_documented() -> None:
    from keyward.cli.inventory import BREACH_NAMES

    assert BREACH_NAMES == ", ".join(b.value for b in Breach)
    assert parse_breaches(["leaked,no_owner", " Unused ", "leaked"]) == (
        Breach.LEAKED,
        Breach.NO_OWNER,
        Breach.UNUSED,
    )


def test_daemon_ticks_refresh_the_posture_and_expose_it_per_breach(
    database: Database, inventory: Inventory
) -> None:
    from datetime import timedelta as td

    from keyward.cli.compose import compose_rotation
    from keyward.core.config import Config
    from keyward.rotation.scheduler import Metrics, Worker

    parts = compose_rotation(Config({}), lambda: database, actor="daemon", holder="h1")
    calls: list[bool] = []

    def posture(refresh: bool) -> dict[str, int]:
        calls.append(refresh)
        return parts.refresh_posture() if refresh else parts.posture_counts()

    def no_engine(_stop: Any) -> Any:
        raise AssertionError("nothing is due: no engine is built")

    metrics = Metrics()
    worker = Worker(
        parts.inventory, no_engine, "h1", lease_ttl=td(seconds=60), metrics=metrics,
        posture=posture, posture_interval=3600,
    )  # fmt: skip
    inventory.add_secret("ownerless", "random", max_age_seconds=86400)
    worker.run_once()  # the first tick computes it
    inventory.add_secret("ownerless-too", "random", max_age_seconds=86400)
    worker.run_once()  # nothing rotated, interval not over: the stored counts are read

    def gauge(breach: str) -> float | None:
        return metrics.registry.get_sample_value("keyward_secrets_breaches", {"breach": breach})

    assert calls == [True, False] and gauge("no-owner") == 1 and gauge("leaked") == 0
    worker.posture_interval = 0
    worker.run_once()
    assert calls[-1] is True and gauge("no-owner") == 2
    text = metrics.render().decode()
    assert 'keyward_secrets_breaches{breach="cross-environment"} 0.0' in text
    assert 'keyward_secrets_breaches{breach="no-owner"} 2.0' in text


def test_discovered_copies_of_one_key_and_one_password_are_duplicated_and_reused(
    aws: Any, cli: Cli
) -> None:
    """On moto: an IAM access key and the same key pair kept in Secrets Manager by another
    team (reused and duplicated); one database password at two paths of one owner
    (duplicated only); the username they share is no breach."""
    import boto3

    iam = boto3.client("iam", region_name="us-east-1")
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    iam.create_user(UserName="app", Tags=[{"Key": "owner", "Value": "alice"}])
    key = iam.create_access_key(UserName="app")["AccessKey"]
    pair = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    sm.create_secret(
        Name="ci/aws", SecretString=json.dumps(pair), Tags=[{"Key": "owner", "Value": "bob"}]
    )
    db = json.dumps({"username": "app", "password": SHARED})
    for name in ("prod/db", "prod/db-copy"):
        sm.create_secret(Name=name, SecretString=db, Tags=[{"Key": "owner", "Value": "carol"}])
    sm.create_secret(
        Name="other/db",
        SecretString=json.dumps({"username": "app", "password": "own-value-1"}),
        Tags=[{"Key": "owner", "Value": "carol"}],
    )
    assert cli("discover", "aws-iam")[0] == 0
    rc, _, err = cli(
        "discover", "aws-secretsmanager", "--region", "us-east-1", "--fingerprint-values"
    )
    assert rc == 0, err

    listed = cli.json("inventory", "list", "--breach", "duplicated,reused")
    by_name = {s["name"]: s["breaches"] for s in listed}
    iam_key = next(n for n in by_name if n.startswith("aws-iam/"))
    assert by_name == {  # every breach of each (none has a rotation policy)
        iam_key: ["reused", "duplicated", "no-policy"],
        "aws-sm/us-east-1/ci/aws": ["reused", "duplicated", "no-policy"],
        "aws-sm/us-east-1/prod/db": ["duplicated", "no-policy"],
        "aws-sm/us-east-1/prod/db-copy": ["duplicated", "no-policy"],
    }
    shown = cli.json("inventory", "show", "aws-sm/us-east-1/ci/aws")
    details = {b["breach"]: b["detail"] for b in shown["breaches"]}
    assert details["duplicated"]["secrets"] == [iam_key]
    assert details["duplicated"]["fields"] == ["access_key_id"]
    assert details["duplicated"]["stores"] == ["aws-iam", "aws-secretsmanager"]
    assert details["reused"] == {"secrets": [iam_key], "owners": ["alice"]}
    text = json.dumps([listed, shown]) + cli("inventory", "show", iam_key)[1]
    assert key["SecretAccessKey"] not in text and SHARED not in text


def test_scan_record_refreshes_the_leaked_breach(cli: Cli, tmp_path: Any) -> None:
    import random
    import string
    import zlib

    from keyward.scan.validators import base62

    rng = random.Random(5)
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30))
    token = "ghp_" + body + base62(zlib.crc32(body.encode("ascii")), 6)
    rc, _, err = cli("inventory", "add", "ci/token", "--owner", "alice", "--value-stdin",
                     stdin=token + "\n")  # fmt: skip
    assert rc == 0, err
    assert cli("inventory", "posture")[0] == 0
    assert cli.json("inventory", "list", "--breach", "leaked") == []
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "deploy.py").write_text(f"TOKEN = '{token}'\n")
    rc, _, err = cli("scan", str(repo), "--record")
    assert rc == 1, err  # findings
    leaked = cli.json("inventory", "list", "--breach", "leaked")
    assert [s["name"] for s in leaked] == ["ci/token"]
    shown = cli.json("inventory", "show", "ci/token")
    (breach,) = [b for b in shown["breaches"] if b["breach"] == "leaked"]
    assert breach["detail"]["open_findings"] == 1 and token not in json.dumps(shown)


def test_unused_days_comes_from_the_configuration_and_a_bad_one_is_a_usage_error(
    cli: Cli, inventory: Inventory, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory.add_secret("idle", "random", owner="alice", max_age_seconds=86400 * 365)
    inventory.update_secret("idle", last_used_at=datetime.now(UTC) - timedelta(days=5))
    config = tmp_path / "keyward.toml"
    monkeypatch.setenv("KEYWARD_CONFIG", str(config))
    config.write_text("[inventory]\nunused_days = 3\n")
    assert cli.json("inventory", "posture")["breaches"]["unused"] == 1
    config.write_text("[inventory]\nunused_days = 30\n")
    assert cli.json("inventory", "posture")["breaches"]["unused"] == 0
    config.write_text('[inventory]\nunused_days = "soon"\n')
    rc, _, err = cli("inventory", "posture")
    assert rc == 2 and "unused_days" in err


def test_the_daemons_posture_interval_is_a_known_setting(tmp_path: Any) -> None:
    from keyward.core.config import load_config
    from keyward.core.errors import ConfigError

    path = tmp_path / "keyward.toml"
    path.write_text("[daemon]\nposture_interval = 60\n")
    assert load_config(path).number("daemon", "posture_interval", 300, minimum=0) == 60
    path.write_text("[daemon]\nposture_interval = -1\n")
    with pytest.raises(ConfigError, match="posture_interval"):
        load_config(path).number("daemon", "posture_interval", 300, minimum=0)


def test_two_refreshes_at_once_store_each_breach_once(
    database: Database, inventory: Inventory, db_url: str
) -> None:
    """Replicas (or a discovery next to the daemon) refreshing together on PostgreSQL: the
    second waits on the first's new rows, then leaves them be (ON CONFLICT DO NOTHING)."""
    import threading

    from keyward.inventory.posture import refresh_posture

    if not db_url.startswith("postgresql"):
        pytest.skip("row locks between writers: PostgreSQL (SQLite has one writer at a time)")
    inventory.add_secret("a", "random")
    errors: list[BaseException] = []

    def second() -> None:
        try:
            refresh(database, NOW)
        except BaseException as exc:  # reported below
            errors.append(exc)

    with database.session() as first:
        refresh_posture(first, NOW)  # inserted, not committed yet
        other = threading.Thread(target=second)
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive()  # waiting on the first's uncommitted rows
    other.join(timeout=30)
    assert not other.is_alive() and errors == []
    assert set(_stored(database)) == {("a", "no-owner"), ("a", "no-policy")}


def test_dependents_added_by_hand_carry_environment_and_application(cli: Cli) -> None:
    assert cli("inventory", "add", "prod/db", "--owner", "alice", "--max-age", "90d")[0] == 0
    for function, env, app in (("orders", "Prod", "orders"), ("orders-dev", "dev", "orders"),
                               ("billing", "prod", "billing")):  # fmt: skip
        rc, _, err = cli(
            "dependents", "add", "prod/db", "--target", ARN + function,
            "--variable", "DB_PASSWORD", "--environment", env, "--application", app,
        )  # fmt: skip
        assert rc == 0, err
    (first, *_) = cli.json("dependents", "list", "prod/db")
    assert first["attributes"] == {"environment": "prod", "application": "orders"}
    assert cli("inventory", "posture")[0] == 0
    details = {
        b["breach"]: b["detail"] for b in cli.json("inventory", "show", "prod/db")["breaches"]
    }
    assert details == {
        "reused": {"applications": {"billing": ["billing"], "orders": ["orders", "orders-dev"]}},
        "cross-environment": {
            "environments": {"dev": ["orders-dev"], "prod": ["billing", "orders"]}
        },
    }


def test_a_change_by_hand_refreshes_what_the_secrets_own_columns_tell(cli: Cli) -> None:
    def having(breach: str) -> list[str]:
        return [s["name"] for s in cli.json("inventory", "list", "--breach", breach)]

    assert cli("inventory", "add", "a", "--value-stdin", stdin=SHARED + "\n")[0] == 0
    assert having("no-owner") == ["a"] and having("no-policy") == ["a"]
    assert cli("inventory", "update", "a", "--owner", "alice", "--max-age", "90d")[0] == 0
    assert having("no-owner") == [] and having("no-policy") == []
    # a copy of its value is a breach across secrets: the next full refresh finds it
    rc, _, err = cli("inventory", "add", "b", "--owner", "bob", "--value-stdin",
                     stdin=SHARED + "\n")  # fmt: skip
    assert rc == 0, err
    assert having("duplicated") == []
    assert cli("inventory", "posture")[0] == 0
    assert having("duplicated") == ["a", "b"]
