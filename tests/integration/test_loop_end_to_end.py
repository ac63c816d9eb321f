"""The whole loop on the moto server, credential checking on: find -> own -> rotate -> update
dependents -> retire -> remediated (issue "close the loop", part 5).

The world (tests/integration/_loop_world.py): an IAM user's key kept in Secrets Manager; 30
Lambda functions over two regions, 10 holding the key pair hardcoded, 10 naming the secret,
10 unrelated. The chain is driven through the real CLI, each step once per module (a
:class:`Chain` runs the steps a test needs, in order, and keeps what each step printed and
what the world looked like right after it), so each test asserts one claim of the issue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from keyward.inventory.fields import is_current_stage
from tests.integration._inventory_db import sqlite_template  # noqa: F401
from tests.integration._loop_world import (
    HOME,
    OTHER,
    REFERENCE,
    SM_NAME,
    UNRELATED,
    VALUE,
    LoopWorld,
    Steps,
    as_json,
    function_name,
    loop_world,  # noqa: F401
    region_of,
    run_process,
)

pytestmark = pytest.mark.integration

SECRET = f"aws-sm/{HOME}/{SM_NAME}"  # the name `discover aws-secretsmanager` gives it
REGION_ARGS = ("--region", HOME, "--region", OTHER)


@dataclass
class Chain(Steps):
    """The chain's steps (see :class:`Steps`)."""

    world: LoopWorld

    def dependents(self) -> list[dict[str, Any]]:
        rows = self.world.sql(
            "SELECT d.* FROM dependents d JOIN secrets s ON s.id = d.secret_id "
            "WHERE s.name = :name ORDER BY d.id",
            name=SECRET,
        )
        for r in rows:
            r["attributes"] = as_json(r["attributes"]) or {}
        return rows

    def findings(self) -> list[dict[str, Any]]:
        return self.world.sql("SELECT * FROM findings ORDER BY id")

    # ------------------------------------------------------------------ the steps
    def discovered(self) -> dict[str, Any]:
        """`discover aws-secretsmanager --fingerprint-values`, then `discover aws-lambda` twice."""

        def run() -> dict[str, Any]:
            rc, _out, err = self.cli(
                "discover", "aws-secretsmanager", "--fingerprint-values", "--region", HOME
            )
            assert rc == 0, err
            rc, out, err = self.cli("discover", "aws-lambda", *REGION_ARGS, "--format", "json")
            assert rc == 0, err
            first = json.loads(out)
            rows = self.dependents()
            rc, out, err = self.cli("discover", "aws-lambda", *REGION_ARGS, "--format", "json")
            assert rc == 0, err
            return {"first": first, "rows": rows, "again": json.loads(out),
                    "rows_again": self.dependents()}  # fmt: skip

        return dict(self._once("discovered", run))

    def scanned(self) -> dict[str, Any]:
        """`scan --aws-lambda --record` over both regions."""

        def run() -> dict[str, Any]:
            self.discovered()
            rc, out, err = self.cli(
                "scan", "--aws-lambda", *REGION_ARGS, "--record", "--format", "json"
            )
            secret = self.world.sql("SELECT * FROM secrets WHERE name = :n", n=SECRET)
            versions = self.world.sql(
                "SELECT v.* FROM secret_versions v JOIN secrets s ON s.id = v.secret_id "
                "WHERE s.name = :n ORDER BY v.id",
                n=SECRET,
            )
            return {"rc": rc, "out": out, "err": err, "findings": self.findings(),
                    "secret": secret[0], "versions": versions}  # fmt: skip

        return dict(self._once("scanned", run))

    def rotated(self) -> dict[str, Any]:
        """One daemon tick (a process of its own, as deployed; a later step ticks again)."""

        def run() -> dict[str, Any]:
            self.scanned()
            proc = run_process(self.world.env, "daemon", "--once", "--port", "0")
            out, err = proc.communicate(timeout=120)
            self.printed.append(out + err)
            ticks = [(proc.returncode, out, err)]
            rotations = self.world.sql(
                "SELECT r.* FROM rotations r JOIN secrets s ON s.id = r.secret_id "
                "WHERE s.name = :n ORDER BY r.id",
                n=SECRET,
            )
            for r in rotations:
                r["detail"] = as_json(r["detail"]) or {}
            return {"ticks": ticks, "rotations": rotations, "findings": self.findings()}

        return dict(self._once("rotated", run))

    def rescanned(self) -> dict[str, Any]:
        """`scan --aws-lambda` again (not recorded), after the rotation."""

        def run() -> dict[str, Any]:
            self.rotated()
            rc, out, err = self.cli("scan", "--aws-lambda", *REGION_ARGS, "--format", "json")
            return {"rc": rc, "out": out, "err": err}

        return dict(self._once("rescanned", run))

    def rescanned_recorded(self) -> dict[str, Any]:
        """`scan --aws-lambda --record` after the rotation (the value dependents hold the new
        key, where the rotation put it), then a daemon tick."""

        def run() -> dict[str, Any]:
            self.rescanned()
            scan = self.cli("scan", "--aws-lambda", *REGION_ARGS, "--record")
            tick = self.cli("daemon", "--once", "--port", "0")
            versions = self.world.sql(
                "SELECT v.* FROM secret_versions v JOIN secrets s ON s.id = v.secret_id "
                "WHERE s.name = :n ORDER BY v.id",
                n=SECRET,
            )
            rotations = self.world.sql("SELECT * FROM rotations")
            return {"scan": scan, "tick": tick, "versions": versions, "rotations": rotations,
                    "findings": self.findings()}  # fmt: skip

        return dict(self._once("rescanned_recorded", run))


@pytest.fixture(scope="module")
def chain(loop_world: LoopWorld) -> Iterator[Chain]:  # noqa: F811
    yield Chain(loop_world)


# ---------------------------------------------------------------------- 1. dependents
def test_discover_aws_lambda_finds_exactly_the_twenty_dependents(chain: Chain) -> None:
    rows = chain.discovered()["rows"]
    by_mode: dict[str, set[str]] = {"value": set(), "reference": set()}
    for r in rows:
        mode = "reference" if r["attributes"].get("mode") == "reference" else "value"
        by_mode[mode].add(function_name(r["target"]))
        assert r["kind"] == "aws-lambda"
        assert r["origin"] == "discovered" and r["status"] == "active", r
        assert r["region"] == region_of(function_name(r["target"])), r
    assert by_mode["value"] == set(VALUE), by_mode
    assert by_mode["reference"] == set(REFERENCE), by_mode
    assert not {function_name(r["target"]) for r in rows} & set(UNRELATED)
    # each value dependent names the field its variable holds
    fields = {
        (function_name(r["target"]), r["variable"], r["attributes"].get("field"))
        for r in rows
        if r["attributes"].get("mode") != "reference"
    }
    assert fields == {
        (fn, var, f)
        for fn in VALUE
        for var, f in (
            ("AWS_ACCESS_KEY_ID", "access_key_id"),
            ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
        )
    }


def test_discover_aws_lambda_says_what_it_added_then_that_it_kept_everything(
    chain: Chain,
) -> None:
    d = chain.discovered()
    first, again = d["first"], d["again"]
    rows = len(VALUE) * 2 + len(REFERENCE)  # a value dependent per variable of the pair
    assert (len(first["added"]), len(first["kept"]), len(first["missing"])) == (rows, 0, 0)
    assert {c["secret"] for c in first["added"]} == {SECRET}
    assert sorted(first["regions"]) == sorted([HOME, OTHER])
    assert first["functions"] == len(VALUE) + len(REFERENCE) + len(UNRELATED)
    assert (len(again["added"]), len(again["kept"]), len(again["missing"])) == (0, rows, 0)


def test_discover_aws_lambda_again_changes_nothing(chain: Chain) -> None:
    d = chain.discovered()
    strip = [{k: v for k, v in r.items() if k != "last_seen_at"} for r in d["rows"]]
    again = [{k: v for k, v in r.items() if k != "last_seen_at"} for r in d["rows_again"]]
    assert again == strip


# ---------------------------------------------------------------------- 2. the leak
def test_scan_record_links_the_ten_hardcoded_findings_and_marks_the_secret_leaked(
    chain: Chain,
) -> None:
    s = chain.scanned()
    assert s["rc"] == 1, s["err"]  # findings
    linked = [f for f in s["findings"] if f["secret_id"] == s["secret"]["id"]]
    assert sorted(function_name(f["resource"]) for f in linked) == sorted(VALUE)
    assert all(f["state"] == "open" for f in linked)
    current = [v for v in s["versions"] if is_current_stage(v["stage"])]
    assert current and all(v["leaked_at"] is not None for v in current), s["versions"]
    # every linked finding points at the leaked current version it matched
    leaked_ids = {v["id"] for v in current if v["leaked_at"] is not None}
    assert {f["version_id"] for f in linked} <= leaked_ids


# ---------------------------------------------------------------------- 3. the rotation
def test_the_daemon_rotates_the_leaked_secret_once(chain: Chain) -> None:
    r = chain.rotated()
    ((rc, _out, err),) = r["ticks"]
    assert rc == 0, err
    messages = [json.loads(line)["message"] for line in err.splitlines() if line.startswith("{")]
    assert any(m.startswith(f"Rotated '{SECRET}'") for m in messages), messages
    (rotation,) = r["rotations"]
    assert rotation["state"] == "finished", rotation  # not retiring: the leaked key is gone
    w = chain.world
    cur = w.current()
    assert cur["access_key_id"] != w.old["access_key_id"]
    assert w.works(cur)
    assert not any("AWSPENDING" in s for s in w.stages().values())


def test_every_value_dependent_holds_the_new_key(chain: Chain) -> None:
    chain.rotated()
    w = chain.world
    cur = w.current()
    for fn in VALUE:
        env = w.env_of(fn)
        assert env["AWS_ACCESS_KEY_ID"] == cur["access_key_id"], fn
        assert env["AWS_SECRET_ACCESS_KEY"] == cur["secret_access_key"], fn
        assert env["SERVICE"] == fn


def test_every_reference_dependent_was_bumped_and_verified(chain: Chain) -> None:
    r = chain.rotated()
    w = chain.world
    version = w.current_version_id()
    for fn in REFERENCE:
        env = w.env_of(fn)
        assert env.get("KEYWARD_SECRET_VERSION") == version, (fn, env)
        assert env["SERVICE"] == fn
    for fn in UNRELATED:
        assert "KEYWARD_SECRET_VERSION" not in w.env_of(fn), fn
    (rotation,) = r["rotations"]
    verified = [str(k) for k in rotation["detail"].get("verified", [])]
    assert len(verified) == len(VALUE) + len(REFERENCE), verified  # one target per function
    assert {function_name(k) for k in verified} == set(VALUE) | set(REFERENCE), verified


def test_the_leaked_key_is_deleted_at_once_not_after_the_grace_period(chain: Chain) -> None:
    chain.rotated()
    w = chain.world
    cur = w.current()
    assert w.keys() == [(cur["access_key_id"], "Active")]
    assert not w.works(w.old)


def test_the_ten_findings_are_remediated_by_that_rotation(chain: Chain) -> None:
    r = chain.rotated()
    (rotation,) = r["rotations"]
    secret_id = rotation["secret_id"]
    linked = [f for f in r["findings"] if f["secret_id"] == secret_id]
    assert sorted(function_name(f["resource"]) for f in linked) == sorted(VALUE)
    for f in linked:
        assert f["state"] == "remediated", f
        assert f["remediated_rotation_id"] == rotation["id"]
        assert f["remediated_at"] is not None


def test_a_rescan_finds_the_old_key_nowhere(chain: Chain) -> None:
    s = chain.rescanned()
    w = chain.world
    old = {w.fingerprint(w.old["access_key_id"]), w.fingerprint(w.old["secret_access_key"])}
    found = json.loads(s["out"])
    findings = found["findings"] if isinstance(found, dict) else found
    assert findings, s["err"]  # the value dependents hold the new key, hardcoded
    assert not {f["fingerprint"] for f in findings} & old
    for fn in (*VALUE, *REFERENCE, *UNRELATED):
        held = set(w.env_of(fn).values())
        assert not held & {w.old["access_key_id"], w.old["secret_access_key"]}, fn


def test_a_recorded_rescan_finds_the_new_key_where_the_rotation_put_it_and_sets_off_nothing(
    chain: Chain,
) -> None:
    r = chain.rescanned_recorded()
    rc, _out, err = r["scan"]
    assert rc == 1, err  # the value dependents hold the new key, hardcoded
    assert "leaked" not in err, err
    rc, _out, err = r["tick"]
    assert rc == 0, err
    assert len(r["rotations"]) == 1, r["rotations"]  # the daemon rotated it once, still
    current = [v for v in r["versions"] if is_current_stage(v["stage"])]
    assert current and all(v["leaked_at"] is None for v in current), r["versions"]
    new = [f for f in r["findings"] if f["state"] != "remediated"]
    assert sorted(function_name(f["resource"]) for f in new) == sorted(VALUE), new
    assert {f["version_id"] for f in new} <= {v["id"] for v in current}
    remediated = [f for f in r["findings"] if f["state"] == "remediated"]
    assert len(remediated) == len(VALUE)  # the old key's findings stay remediated


def test_no_output_of_the_chain_shows_a_key(chain: Chain) -> None:
    chain.rescanned_recorded()
    w = chain.world
    new = w.current()
    values = [w.old["secret_access_key"], new["secret_access_key"], w.old["access_key_id"],
              new["access_key_id"]]  # fmt: skip
    for text in chain.printed:
        for value in values:
            assert value not in text
    events = w.sql("SELECT detail FROM audit_events")
    for e in events:
        for value in values:
            assert value not in json.dumps(as_json(e["detail"]))
