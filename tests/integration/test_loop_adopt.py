"""The loop from a key found only hardcoded (no store): ``adopt --rotate --reference``
(issue "close the loop", part 5).

On the moto server with credential checking on: an IAM user's key pair is hardcoded in four
Lambda functions over two regions, four more functions are unrelated; no store keeps the key.
``scan --aws-lambda --record`` records four unlinked findings; adopting one of them with
``--rotate --reference`` must end with the key in Secrets Manager, rotated (the leaked key
deleted at once), the four functions referencing the new secret instead of holding a value,
and the four findings remediated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Moto
from tests.integration._inventory_db import sqlite_template  # noqa: F401
from tests.integration._loop_world import (
    HOME,
    OTHER,
    SM_NAME,
    UNRELATED,
    VALUE,
    LoopWorld,
    Steps,
    as_json,
    build_loop_world,
    sqlite_copy,
)

pytestmark = pytest.mark.integration

N = 4
HOLDERS = VALUE[:N]
OTHERS = UNRELATED[:N]
REGION_ARGS = ("--region", HOME, "--region", OTHER)
KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass
class Chain(Steps):
    """The chain's steps (see :class:`Steps`)."""

    world: LoopWorld

    def findings(self) -> list[dict[str, Any]]:
        return self.world.sql("SELECT * FROM findings ORDER BY id")

    def scanned(self) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            rc, _out, err = self.cli("scan", "--aws-lambda", *REGION_ARGS, "--record")
            assert rc == 1, err
            return self.findings()

        return list(self._once("scanned", run))

    def adopted(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            findings = self.scanned()
            first = min(f["id"] for f in findings if f["rule_id"] == "aws-access-key-id")
            rc, out, err = self.cli(
                "adopt", str(first), "--store", "aws-secretsmanager", "--name", SM_NAME,
                "--owner", "carol", "--rotate", "--reference", "--format", "json",
            )  # fmt: skip
            secret = self.world.sql("SELECT * FROM secrets WHERE store = 'aws-secretsmanager'")
            rotations = self.world.sql("SELECT * FROM rotations ORDER BY id")
            return {"rc": rc, "out": out, "err": err, "finding": first, "secrets": secret,
                    "rotations": rotations, "findings": self.findings()}  # fmt: skip

        return dict(self._once("adopted", run))


@pytest.fixture(scope="module")
def chain(
    moto_server: Moto,
    sqlite_template: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Chain]:
    moto_server.reset()
    tmp = tmp_path_factory.mktemp("loop-adopt")
    with pytest.MonkeyPatch.context() as mp:
        world = build_loop_world(
            moto_server.endpoint, sqlite_copy(sqlite_template, tmp), tmp, mp, n=N, stored=False
        )
        moto_server.set_auth(True)
        try:
            yield Chain(world)
        finally:
            moto_server.set_auth(False)
            moto_server.reset()


def test_the_scan_records_the_hardcoded_key_unlinked(chain: Chain) -> None:
    findings = chain.scanned()
    keys = [f for f in findings if f["rule_id"] == "aws-access-key-id"]
    assert len(keys) == N, findings
    assert all(f["secret_id"] is None and f["state"] == "open" for f in keys)


def test_adopt_rotate_reference_keeps_the_key_in_secrets_manager_rotated(chain: Chain) -> None:
    a = chain.adopted()
    assert a["rc"] == 0, a["err"]
    (secret,) = a["secrets"]
    assert secret["kind"] == "aws-iam-access-key" and secret["owner"] == "carol"
    assert len(a["rotations"]) == 1, a["rotations"]
    w = chain.world
    cur = w.current()  # the new secret in Secrets Manager, under the adopted name
    assert cur["access_key_id"] != w.old["access_key_id"]
    assert w.works(cur)
    assert not any("AWSPENDING" in s for s in w.stages().values())


def test_after_adopt_the_functions_reference_the_secret_instead_of_holding_the_key(
    chain: Chain,
) -> None:
    a = chain.adopted()
    assert a["rc"] == 0, a["err"]
    w = chain.world
    arn = w.client("secretsmanager").describe_secret(SecretId=SM_NAME)["ARN"]
    version = w.current_version_id()
    old_and_new = {*w.old.values(), *w.current().values()}
    for fn in HOLDERS:
        env = w.env_of(fn)
        assert not set(env.values()) & old_and_new, fn  # no value held any more
        assert not set(env) & set(KEY_VARIABLES), (fn, env)
        assert arn in env.values() or SM_NAME in env.values(), (fn, env)
        assert env.get("KEYWARD_SECRET_VERSION") == version, (fn, env)
        assert env["SERVICE"] == fn
    for fn in OTHERS:
        assert "KEYWARD_SECRET_VERSION" not in w.env_of(fn), fn
    deps = w.sql("SELECT * FROM dependents")
    assert len({d["target"] for d in deps}) == N, deps
    assert all((as_json(d["attributes"]) or {}).get("mode") == "reference" for d in deps), deps


def test_after_adopt_the_leaked_key_is_deleted_at_once(chain: Chain) -> None:
    a = chain.adopted()
    (rotation,) = a["rotations"]
    assert rotation["state"] == "finished", rotation  # not kept for the grace period
    w = chain.world
    cur = w.current()
    assert w.keys() == [(cur["access_key_id"], "Active")]
    assert not w.works(w.old)


def test_after_adopt_the_four_findings_are_remediated(chain: Chain) -> None:
    a = chain.adopted()
    (rotation,) = a["rotations"]
    keys = [f for f in a["findings"] if f["rule_id"] == "aws-access-key-id"]
    assert len(keys) == N
    for f in keys:
        assert f["state"] == "remediated", f
        assert f["remediated_rotation_id"] == rotation["id"]


def test_after_adopt_a_rescan_finds_no_key_in_any_function(chain: Chain) -> None:
    chain.adopted()
    rc, out, err = chain.cli("scan", "--aws-lambda", *REGION_ARGS, "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert not (doc["findings"] if isinstance(doc, dict) else doc)


def test_no_output_of_the_adopt_chain_shows_a_key(chain: Chain) -> None:
    chain.adopted()
    w = chain.world
    values = [w.old["secret_access_key"], w.current()["secret_access_key"]]
    for text in chain.printed:
        for value in values:
            assert value not in text
