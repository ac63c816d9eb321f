"""A finding of a secret's current version makes it leaked (``scan --record``), on both
databases: the version's ``leaked_at`` (once), the finding's ``version_id``, the ``on_leak``
policy, the ``leak.detected`` audit event; an older version is history only; remediated
findings stay remediated when found again."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from _inventory_db import *  # noqa: F403
from _inventory_db import Cli
from test_inventory_recording import aws_key_id, aws_secret, github_token, scan

from keyward.cli.common import fingerprint_key
from keyward.core.config import Config
from keyward.core.redaction import Fingerprinter
from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.leaks import LeakPolicy, remediate_version
from keyward.inventory.recording import RecordSummary, record_findings
from keyward.inventory.service import Inventory

pytestmark = pytest.mark.integration

TARGET = "files:/srv/app"
CAN_ROTATE = LeakPolicy(None, frozenset({"random"}), frozenset({"vault", "vault-kv"}))


@pytest.fixture
def fp() -> Fingerprinter:
    return Fingerprinter(fingerprint_key(Config()))


def record(
    db: Database, files: dict[str, str], policy: LeakPolicy | None = None, **kw: Any
) -> RecordSummary:
    fpr = Fingerprinter(fingerprint_key(Config()))
    return record_findings(
        db, scan(files).findings, kw.pop("target", TARGET), fingerprinter=fpr,
        leak_policy=policy, **kw,
    )  # fmt: skip


def leak_events(inv: Inventory, name: str) -> list[Any]:
    return [e for e in inv.audit_events(name, limit=100) if e.action == "leak.detected"]


def test_a_finding_of_the_current_version_marks_it_leaked_once_and_audits_where(
    database: Database, inventory: Inventory, fp: Fingerprinter
) -> None:
    token = github_token(random.Random(11))
    inventory.add_secret(
        "ci/token", "random", store="vault", reference="ci/token", fingerprint=fp.fingerprint(token)
    )
    summary = record(database, {"a.py": f"x = '{token}'\n", "b/c.py": f"y = '{token}'\n"},
                     CAN_ROTATE)  # fmt: skip
    (leak,) = summary.leaks
    (version,) = inventory.versions("ci/token")
    assert version.leaked_at is not None and leak.version_id == version.id
    assert leak.on_leak is m.OnLeak.ROTATE and leak.action == "rotate" and leak.problem is None
    found = inventory.list_findings().findings
    assert {f.version_id for f in found} == {version.id}
    assert sorted(leak.findings) == sorted(f.id for f in found)
    assert {w["path"] for w in leak.where} == {"a.py", "b/c.py"}
    assert "due for rotation now" in leak.sentence()
    (event,) = leak_events(inventory, "ci/token")
    assert event.outcome == "ok" and event.detail["findings"] == list(leak.findings)
    assert {w["path"] for w in event.detail["where"]} == {"a.py", "b/c.py"}
    assert token not in json.dumps(event.detail) and token not in leak.sentence()
    # found again (and again elsewhere): first seen stays, nothing is reported twice
    again = record(database, {"a.py": f"x = '{token}'\n", "d.py": f"z = '{token}'\n"}, CAN_ROTATE)
    assert again.leaks == ()
    assert inventory.versions("ci/token")[0].leaked_at == version.leaked_at
    assert len(leak_events(inventory, "ci/token")) == 1


def test_a_finding_of_an_older_version_is_linked_but_sets_off_nothing(
    database: Database, inventory: Inventory, fp: Fingerprinter
) -> None:
    rng = random.Random(12)
    old, cur = github_token(rng), github_token(rng)
    inventory.add_secret("ci/token", "random", store="vault", reference="ci/token")
    retired = inventory.add_version("ci/token", fingerprint=fp.fingerprint(old), stage="retired")
    inventory.add_version("ci/token", fingerprint=fp.fingerprint(cur), stage="current")
    summary = record(database, {"a.py": f"x = '{old}'\n"}, CAN_ROTATE)
    assert summary.leaks == () and summary.linked == 1
    (f,) = inventory.list_findings().findings
    assert (f.secret, f.version_id) == ("ci/token", retired.id)
    assert leak_events(inventory, "ci/token") == []
    by_id = {v.id: v for v in inventory.versions("ci/token")}
    assert by_id[retired.id].leaked_at is not None  # history: when it was first found
    assert all(v.leaked_at is None for v in by_id.values() if v.id != retired.id)


def test_the_policy_is_the_secrets_own_else_the_configured_default_else_rotate_if_rotatable(
    database: Database, inventory: Inventory, fp: Fingerprinter
) -> None:
    rng = random.Random(13)
    tokens = {name: github_token(rng) for name in ("rotatable", "no-store", "own-alert")}
    inventory.add_secret("rotatable", "random", store="vault", reference="r",
                         fingerprint=fp.fingerprint(tokens["rotatable"]))  # fmt: skip
    inventory.add_secret("no-store", "random", fingerprint=fp.fingerprint(tokens["no-store"]))
    inventory.add_secret("own-alert", "random", store="vault", reference="o",
                         fingerprint=fp.fingerprint(tokens["own-alert"]))  # fmt: skip
    with database.session() as s:
        s.execute(sa.update(m.Secret).where(m.Secret.name == "own-alert").values(on_leak="alert"))
    files = {f"{n}.py": f"x = '{t}'\n" for n, t in tokens.items()}
    by_name = {leak.secret: leak for leak in record(database, files, CAN_ROTATE).leaks}
    assert {n: leak.on_leak.value for n, leak in by_name.items()} == {
        "rotatable": "rotate",
        "no-store": "alert",
        "own-alert": "alert",
    }
    # a configured default applies to secrets without their own policy, even unrotatable
    # ones: then one sentence says keyward cannot, and the audit event is "refused"
    inventory.add_secret(
        "forced", "unknown-kind", fingerprint=fp.fingerprint(token := github_token(rng))
    )
    forced = LeakPolicy(m.OnLeak.ROTATE, CAN_ROTATE.rotators, CAN_ROTATE.stores)
    (leak,) = record(database, {"f.py": f"x = '{token}'\n"}, forced, target="files:/f").leaks
    assert leak.on_leak is m.OnLeak.ROTATE and leak.action == "alert"
    assert "no rotator for its kind 'unknown-kind' is installed" in leak.sentence()
    (event,) = leak_events(inventory, "forced")
    assert event.outcome == "refused" and event.detail["problem"] == leak.problem


def test_a_value_matching_a_field_of_a_version_links_to_that_version(
    database: Database, inventory: Inventory, fp: Fingerprinter
) -> None:
    rng = random.Random(14)
    key_id, secret = aws_key_id(rng), aws_secret(rng)
    inventory.add_secret("prod/aws", "aws-iam-access-key", store="aws-secretsmanager",
                         reference="app/aws", owner="ops")  # fmt: skip
    version = inventory.add_version("prod/aws", fingerprint="0" * 64, identifier="v1")
    with database.session() as s:
        sid = s.scalar(sa.select(m.Secret.id).where(m.Secret.name == "prod/aws"))
        assert sid is not None
        for field, value in (("access_key_id", key_id), ("secret_access_key", secret)):
            s.add(m.SecretField(version_id=version.id, secret_id=sid, field=field,
                                fingerprint=fp.fingerprint(value)))  # fmt: skip
    text = f'aws_access_key_id = "{key_id}"\naws_secret_access_key = "{secret}"\n'
    (leak,) = record(database, {"creds.py": text}).leaks
    assert leak.secret == "prod/aws" and leak.version_id == version.id
    assert all(f.version_id == version.id and f.owner == "ops"
               for f in inventory.list_findings().findings)  # fmt: skip


def test_remediated_findings_stay_remediated_and_new_ones_of_the_revoked_value_start_so(
    database: Database, inventory: Inventory, fp: Fingerprinter
) -> None:
    rng = random.Random(15)
    old, new = github_token(rng), github_token(rng)
    inventory.add_secret("ci/token", "random", store="vault", reference="ci/token",
                         fingerprint=fp.fingerprint(old))  # fmt: skip
    (leak,) = record(database, {"a.py": f"x = '{old}'\n"}, CAN_ROTATE).leaks
    with database.session() as s:  # what a rotation does when it revokes the leaked version
        s.execute(sa.update(m.SecretVersion).values(stage="retired"))
        done = remediate_version(s, leak.version_id, 7, m.utcnow())
    inventory.add_version("ci/token", fingerprint=fp.fingerprint(new), stage="current")
    assert done == list(leak.findings)
    (f,) = inventory.list_findings().findings
    assert f.state == "remediated" and f.remediated_rotation_id == 7 and f.remediated_at
    # the revoked value is found again, there and elsewhere: nothing reopens or leaks
    again = record(database, {"a.py": f"x = '{old}'\n", "b.py": f"y = '{old}'\n"}, CAN_ROTATE)
    assert again.leaks == ()
    states = {f.path: (f.state, f.remediated_rotation_id) for f in
              inventory.list_findings(state=None).findings}  # fmt: skip
    assert states == {"a.py": ("remediated", 7), "b.py": ("remediated", 7)}
    # a full scan without it resolves nothing remediated either
    record(database, {"a.py": "x = None\n"}, CAN_ROTATE)
    assert {f.state for f in inventory.list_findings(state=None).findings} == {"remediated"}
    assert len(leak_events(inventory, "ci/token")) == 1
    # the report counts them, in every format
    import io

    from keyward.inventory.report import build_report, render_csv, render_json, render_text
    from keyward.inventory.report_html import render_html

    report = build_report(database)
    assert report.findings["remediated"] == 2 and report.findings["open"] == 0
    assert json.loads(render_json(report))["findings"]["remediated"] == 2
    assert "findings,remediated,,,2," in render_csv(report).replace("\r", "")
    text = io.StringIO()
    render_text(report, text, color=False)
    assert "0 open, 0 ignored, 0 resolved, 2 remediated" in text.getvalue()
    html = render_html(report)
    assert '<div class="value" id="remediated-findings">2</div>' in html
    assert "2 remediated" in html


def test_scan_record_says_which_secret_leaked_tells_the_webhook_and_show_has_it(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_rotation_faults import Hook

    token = github_token(random.Random(16))
    hook = Hook()
    monkeypatch.setenv("KEYWARD_WEBHOOK_URL", hook.url)
    try:
        rc, _out, err = cli(
            "inventory",
            "add",
            "ci/token",
            "--kind",
            "random",
            "--store",
            "vault",
            "--reference",
            "ci/token",
            "--value-stdin",
            stdin=token,
        )
        assert rc == 0, err
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "a.py").write_text(f"x = '{token}'\n")
        rc, _out, err = cli("scan", str(tree), "--engine", "re", "--record")
        assert rc == 1, err
        (line,) = [x for x in err.splitlines() if "leaked" in x]
        assert (
            "'ci/token' leaked: its current version is in 1 finding (#1); it is due for "
            "rotation now" in line
        ), line
        (event,) = hook.events
        assert event["event"] == "leak.detected" and event["secret"] == "ci/token"
        assert event["findings"] == [1] and event["action"] == "rotate"
        assert event["where"][0]["path"] == "a.py"
        shown = cli.json("inventory", "show", "ci/token")
        assert shown["leak"]["on_leak"] == "rotate" and shown["leak"]["own"] is None
        assert shown["leak"]["leaked_at"] and shown["leak"]["findings"] == [1]
        rc, out, err = cli("inventory", "show", "ci/token")
        assert "LEAKED since" in out and "#1" in out and "on leak:      rotate (default)" in out
        assert cli("inventory", "update", "ci/token", "--on-leak", "alert")[0] == 0
        assert cli.json("inventory", "show", "ci/token")["leak"]["on_leak"] == "alert"
        for text in (json.dumps(hook.events), err, out, json.dumps(shown)):
            assert token not in text
        (found,) = cli.json("findings", "list", "--state", "all")
        assert found["version_id"] and found["state"] == "open"
        assert cli.json("findings", "list", "--state", "remediated") == []
    finally:
        hook.close()


def test_leaked_secrets_are_claimed_by_policy_oldest_leak_first_and_only_once(
    database: Database, inventory: Inventory, fp: Fingerprinter
) -> None:
    from datetime import timedelta

    from keyward.inventory.rotations import RotationRepository
    from keyward.rotation.ports import AuditEntry, RotationDetail

    rng = random.Random(17)
    names = ("first", "second", "own-alert", "no-rotator", "in-flight")
    tokens = {n: github_token(rng) for n in names}
    for n, t in tokens.items():
        kind = "github-token" if n == "no-rotator" else "random"
        inventory.add_secret(n, kind, store="vault-kv", reference=n,
                             fingerprint=fp.fingerprint(t))  # fmt: skip
    inventory.update_secret("own-alert", on_leak="alert")
    repo = RotationRepository(database, actor="t")
    inflight = repo.rotatable("in-flight")
    repo.start(inflight, RotationDetail(token="t", store="vault-kv", store_name="in-flight"),
               AuditEntry("rotation.start"))  # fmt: skip
    # "second" (added after "first") leaks first
    record(database, {"a.py": f"x = '{tokens['second']}'\n"}, CAN_ROTATE, target="files:/1")
    rest = {f"{n}.py": f"x = '{tokens[n]}'\n" for n in names if n != "second"}
    record(database, rest, CAN_ROTATE, target="files:/2")
    ttl = timedelta(minutes=5)
    kinds, stores = ["random"], ["vault-kv"]
    claimed = repo.claim_leaked("me", ttl, kinds=kinds, stores=stores)
    assert [c.secret for c in claimed] == ["second", "first"]  # oldest leak first
    assert claimed[0].findings and "leak: its current version was found" in claimed[0].reason()
    assert repo.claim_leaked("other", ttl, kinds=kinds, stores=stores) == ()  # leased now
    # a configured default of alert leaves secrets without their own policy alone
    for c in claimed:
        repo.release_lease(f"rotate:{c.secret_id}", "me")
    assert repo.claim_leaked("me", ttl, on_leak="alert", kinds=kinds, stores=stores) == ()
    inventory.update_secret("own-alert", on_leak="rotate")
    got = repo.claim_leaked("me", ttl, on_leak="alert", kinds=kinds, stores=stores)
    assert [c.secret for c in got] == ["own-alert"]
    # what no plugin can rotate is never claimed (its default policy is alert); with its own
    # policy of rotate it is named for the daemon to say so once
    assert repo.leaked_unrotatable(kinds, stores) == ()
    inventory.update_secret("no-rotator", on_leak="rotate")
    assert "no-rotator" not in [c.secret for c in repo.claim_leaked("x", ttl, kinds=kinds,
                                                                      stores=stores)]  # fmt: skip
    (stuck,) = repo.leaked_unrotatable(kinds, stores)
    assert stuck.secret == "no-rotator"


def test_the_daemon_says_once_that_it_cannot_rotate_a_leaked_secret_and_goes_on(
    database: Database,
    inventory: Inventory,
    fp: Fingerprinter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    from datetime import timedelta

    from keyward.inventory.rotations import RotationRepository
    from keyward.rotation.scheduler import Metrics, Worker

    token = github_token(random.Random(18))
    inventory.add_secret("ci/token", "github-token", store="vault-kv", reference="ci/token",
                         fingerprint=fp.fingerprint(token), on_leak="rotate")  # fmt: skip
    record(database, {"a.py": f"x = '{token}'\n"})

    def no_engine(stop: Any) -> Any:
        raise AssertionError("nothing is claimed, so no engine is built")

    repo = RotationRepository(database, actor="daemon")
    worker = Worker(repo, no_engine, "w1", lease_ttl=timedelta(minutes=1), metrics=Metrics())
    with caplog.at_level(logging.WARNING, logger="keyward.rotation.scheduler"):
        assert worker.run_once() == [] and worker.run_once() == []
    (said,) = [r.getMessage() for r in caplog.records if "ci/token" in r.getMessage()]
    assert "its policy is to rotate it, but no installed rotator or secret store plugin" in said
    assert token not in said
    assert repo.list() == ()


def test_a_version_discovered_after_the_scan_links_its_findings_and_marks_the_leak(
    database: Database, inventory: Inventory, fp: Fingerprinter
) -> None:
    from keyward.inventory.discovery import Discovered, DiscoveredVersion, Scan, import_discovered

    rng = random.Random(19)
    key_id, secret = aws_key_id(rng), aws_secret(rng)
    text = f'aws_access_key_id = "{key_id}"\naws_secret_access_key = "{secret}"\n'
    assert record(database, {"creds.py": text}).leaks == ()  # nothing known yet
    found = Scan("aws-iam")
    found.items.append(
        Discovered(
            store="aws-iam", reference=key_id, name="iam/deploy", kind="aws-iam-access-key",
            versions=(DiscoveredVersion(identifier=key_id, stage="current",
                                        identifier_fingerprint=fp.fingerprint(key_id)),),
        )
    )  # fmt: skip
    import_discovered(database, found, actor="tester")
    (version,) = inventory.versions("iam/deploy")
    assert version.leaked_at is not None
    (f,) = inventory.list_findings().findings
    assert (f.secret, f.version_id) == ("iam/deploy", version.id)
    (event,) = leak_events(inventory, "iam/deploy")
    assert event.detail["findings"] == [f.id] and key_id not in json.dumps(event.detail)
    # discovering it again changes nothing and says nothing more
    import_discovered(database, found, actor="tester")
    assert len(leak_events(inventory, "iam/deploy")) == 1
