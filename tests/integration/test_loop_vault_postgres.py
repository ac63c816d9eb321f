"""The loop with a Vault secret and a PostgreSQL password (issue "close the loop", part 5).

A PostgreSQL login (on a private cluster that really checks passwords) has its password kept in
Vault KV v2 on the OpenBao dev server; three Lambda functions hold the password hardcoded, two
name the Vault path, one is unrelated; a project's ``.env`` holds it in a connection URL. The
inventory is on PostgreSQL. Through the real CLI: discover the secret (with fingerprints) and
its dependents, scan the functions and the project (recorded: the secret is leaked), rotate the
leaked secrets from a terminal (``rotate --leaked``; the alternating strategy, so the user name
changes too), then check the world and scan again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from keyward.inventory.fields import is_current_stage
from tests.conftest import POSTGRES_ADMIN_URL, Moto
from tests.integration._loop_world import (
    PG_FOLDER,
    PG_PATH,
    PG_REFERENCE,
    PG_UNRELATED,
    PG_VALUE,
    Steps,
    VaultPgWorld,
    as_json,
    build_vault_pg_world,
    function_name,
    migrated_postgres_database,
)
from tests.integration._scram_postgres import ScramPostgres, scram_postgres  # noqa: F401

pytestmark = pytest.mark.integration

SECRET = f"vault/secret/{PG_PATH}"  # the name `discover vault` gives it


@dataclass
class Chain(Steps):
    """The chain's steps (see :class:`Steps`)."""

    world: VaultPgWorld

    def secret(self) -> dict[str, Any]:
        (row,) = self.world.sql("SELECT * FROM secrets WHERE name = :n", n=SECRET)
        return row

    def versions(self) -> list[dict[str, Any]]:
        return self.world.sql(
            "SELECT v.* FROM secret_versions v JOIN secrets s ON s.id = v.secret_id "
            "WHERE s.name = :n ORDER BY v.id",
            n=SECRET,
        )

    def findings(self) -> list[dict[str, Any]]:
        return self.world.sql("SELECT * FROM findings ORDER BY id")

    def rotations(self) -> list[dict[str, Any]]:
        return self.world.sql("SELECT * FROM rotations ORDER BY id")

    def discovered(self) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            rc, _out, err = self.cli(
                "discover",
                "vault",
                "--mount",
                "secret",
                "--path",
                PG_FOLDER,
                "--fingerprint-values",
            )
            assert rc == 0, err
            rc, _out, err = self.cli("discover", "aws-lambda", "--region", "us-east-1")
            assert rc == 0, err
            rows = self.world.sql(
                "SELECT d.* FROM dependents d JOIN secrets s ON s.id = d.secret_id "
                "WHERE s.name = :n ORDER BY d.id",
                n=SECRET,
            )
            for r in rows:
                r["attributes"] = as_json(r["attributes"]) or {}
            return rows

        return list(self._once("discovered", run))

    def scanned(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            self.discovered()
            lam = self.cli("scan", "--aws-lambda", "--region", "us-east-1", "--record")
            files = self.cli("scan", str(self.world.project), "--record")
            return {"lambda": lam, "files": files, "findings": self.findings(),
                    "versions": self.versions()}  # fmt: skip

        return dict(self._once("scanned", run))

    def rotated(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            self.scanned()
            first = self.cli("rotate", "--leaked")
            again = self.cli("rotate", "--leaked")
            return {"first": first, "again": again, "rotations": self.rotations(),
                    "findings": self.findings()}  # fmt: skip

        return dict(self._once("rotated", run))

    def rescanned(self) -> dict[str, Any]:
        """The project still holds the old password (keyward never edits a user's files)."""

        def run() -> dict[str, Any]:
            self.rotated()
            files = self.cli("scan", str(self.world.project), "--record")
            tick = self.cli("daemon", "--once", "--port", "0")
            return {"files": files, "tick": tick, "findings": self.findings(),
                    "versions": self.versions(), "rotations": self.rotations()}  # fmt: skip

        return dict(self._once("rescanned", run))


@pytest.fixture(scope="module")
def chain(
    moto_server: Moto,
    openbao: Any,
    scram_postgres: ScramPostgres,  # noqa: F811
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Chain]:
    moto_server.reset()
    try:
        with migrated_postgres_database(POSTGRES_ADMIN_URL) as db_url:
            world = build_vault_pg_world(
                moto_server.endpoint, openbao, scram_postgres, db_url,
                tmp_path_factory.mktemp("loop-vault"),
            )  # fmt: skip
            yield Chain(world)
    finally:
        moto_server.reset()


def test_discovery_finds_the_value_and_reference_dependents_of_the_vault_secret(
    chain: Chain,
) -> None:
    rows = chain.discovered()
    value = {function_name(r["target"]) for r in rows if r["attributes"].get("mode") != "reference"}
    ref = {function_name(r["target"]) for r in rows if r["attributes"].get("mode") == "reference"}
    assert value == set(PG_VALUE), rows
    assert ref == set(PG_REFERENCE), rows
    # DB_USER holds the user name: a field too (an alternating rotation changes it)
    fields = {
        (function_name(r["target"]), r["variable"], r["attributes"].get("field"))
        for r in rows
        if function_name(r["target"]) in PG_VALUE
    }
    assert fields == {
        (fn, var, f)
        for fn in PG_VALUE
        for var, f in (("DB_USER", "username"), ("DB_PASSWORD", "password"))
    }


def test_the_function_and_env_file_findings_link_and_mark_the_secret_leaked(
    chain: Chain,
) -> None:
    s = chain.scanned()
    for rc, _out, err in (s["lambda"], s["files"]):
        assert rc == 1, err
    secret_id = chain.secret()["id"]
    linked = [f for f in s["findings"] if f["secret_id"] == secret_id]
    where = sorted(function_name(f["resource"]) if f["resource"] else f["path"] for f in linked)
    assert where == sorted([*PG_VALUE, ".env"]), linked
    (env_file,) = [f for f in linked if f["path"] == ".env"]
    assert env_file["rule_id"] == "postgres-connection-url"
    current = [v for v in s["versions"] if is_current_stage(v["stage"])]
    assert current and all(v["leaked_at"] is not None for v in current), s["versions"]


def test_rotate_leaked_rotates_it_once_and_the_old_password_no_longer_logs_in(
    chain: Chain,
) -> None:
    r = chain.rotated()
    rc, _out, err = r["first"]
    assert rc == 0, err
    rc, _out, err = r["again"]
    assert rc == 0, err  # nothing leaked any more
    (rotation,) = r["rotations"]
    assert rotation["state"] == "finished", rotation
    w = chain.world
    cur = w.current()
    assert cur["password"] != w.old["password"]
    assert w.pg.login(cur["username"], cur["password"])
    assert not w.pg.login(w.old["username"], w.old["password"])


def test_value_dependents_hold_the_new_password_and_reference_ones_were_bumped(
    chain: Chain,
) -> None:
    chain.rotated()
    w = chain.world
    cur = w.current()
    for fn in PG_VALUE:
        env = w.env_of(fn)
        assert env["DB_PASSWORD"] == cur["password"], fn
        # the alternating strategy switched logins: the user name is a field that changed too
        assert env["DB_USER"] == cur["username"] != w.old["username"], fn
        assert env["SERVICE"] == fn
    for fn in PG_REFERENCE:
        assert w.env_of(fn).get("KEYWARD_SECRET_VERSION") == str(w.current_version()), fn
    for fn in PG_UNRELATED:
        assert "KEYWARD_SECRET_VERSION" not in w.env_of(fn)


def test_the_function_and_env_file_findings_are_remediated(chain: Chain) -> None:
    r = chain.rotated()
    (rotation,) = r["rotations"]
    linked = [f for f in r["findings"] if f["secret_id"] == rotation["secret_id"]]
    assert len(linked) == len(PG_VALUE) + 1
    for f in linked:
        assert f["state"] == "remediated", f
        assert f["remediated_rotation_id"] == rotation["id"]


def test_finding_the_revoked_password_again_reopens_and_triggers_nothing(chain: Chain) -> None:
    r = chain.rescanned()
    rc, _out, err = r["files"]
    assert rc in (0, 1), err
    (rotation,) = r["rotations"]  # still the one rotation
    env_findings = [f for f in r["findings"] if f["path"] and f["path"].endswith(".env")]
    assert env_findings and all(f["state"] == "remediated" for f in env_findings), env_findings
    current = [v for v in r["versions"] if is_current_stage(v["stage"])]
    assert current and all(v["leaked_at"] is None for v in current), r["versions"]
    assert rotation["state"] == "finished"


def test_no_output_of_the_chain_shows_a_password(chain: Chain) -> None:
    chain.rescanned()
    w = chain.world
    values = [w.old["password"], w.current()["password"]]
    for text in chain.printed:
        for value in values:
            assert value not in text
    for e in w.sql("SELECT detail FROM audit_events"):
        for value in values:
            assert value not in json.dumps(as_json(e["detail"]))
