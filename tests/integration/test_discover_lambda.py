"""Dependents are discovered, not typed: per-field fingerprints written by rotation and
discovery, and `keyward discover aws-lambda` against the moto server, on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration._inventory_db import *  # noqa: F403
from tests.integration._inventory_db import Cli
from tests.integration._rotation_world import SECRET, World, build_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(aws: Any, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return build_world(aws, db_url, tmp_path, monkeypatch, functions=2)


def _db_dump(db_url: str) -> str:
    """Every row of every table, as text (to prove no value was written anywhere)."""
    from keyward.inventory.db import open_database
    from keyward.inventory.models import Base

    db = open_database(url=db_url)
    try:
        with db.session() as s:
            return "\n".join(
                repr(tuple(row))
                for t in Base.metadata.sorted_tables
                for row in s.execute(t.select())
            )
    finally:
        db.close()


def test_rotation_records_each_field_and_a_later_leak_of_the_new_key_links_back(
    world: World, cli: Cli, tmp_path: Path
) -> None:
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 0, err
    new = world.assert_consistent()
    versions = cli.json("inventory", "show", SECRET)["versions"]
    by_stage = {v["stage"]: v for v in versions}
    assert set(by_stage["current"]["fields"]) == {"access_key_id", "secret_access_key"}
    assert set(by_stage["retired"]["fields"]) == {"access_key_id", "secret_access_key"}
    assert by_stage["current"]["fields"] != by_stage["retired"]["fields"]

    # the new secret key alone, leaked later: linked to the secret by its field fingerprint
    leak = tmp_path / "leak"
    leak.mkdir()
    (leak / "settings.py").write_text(f'aws_secret_access_key = "{new["secret_access_key"]}"\n')
    rc, _, err = cli("scan", str(leak), "--engine", "re", "--record", "--exit-zero")
    assert rc == 0, err
    (finding,) = cli.json("findings", "list")
    assert finding["rule_id"] == "aws-secret-access-key"
    assert finding["secret"] == SECRET and finding["owner"] == "alice"

    from keyward.cli.common import fingerprint_key
    from keyward.core.config import load_config
    from keyward.core.redaction import Fingerprinter
    from keyward.inventory.db import open_database
    from keyward.inventory.fields import fields_by_fingerprint

    fp = Fingerprinter(fingerprint_key(load_config())).fingerprint(new["secret_access_key"])
    db = open_database(url=world.db_url)
    try:
        with db.session() as s:
            (match,) = fields_by_fingerprint(s, [fp], current_only=True)[fp]
    finally:
        db.close()
    assert (match.secret, match.field, match.stage, match.current) == (
        SECRET, "secret_access_key", "current", True,
    )  # fmt: skip
    dump = _db_dump(world.db_url)
    # (access key ids are public identifiers, kept by design; the secret halves never)
    for key in (new, world.old):
        assert key["secret_access_key"] not in dump


def test_rotation_never_updates_a_missing_dependent(world: World, cli: Cli) -> None:
    from keyward.inventory.db import open_database
    from keyward.inventory.models import Dependent, DependentStatus

    db = open_database(url=world.db_url)
    try:
        with db.session() as s:
            s.execute(
                sa.update(Dependent)
                .where(Dependent.target == "svc-01")
                .values(status=DependentStatus.MISSING)
            )
    finally:
        db.close()
    rc, out, err = cli("rotate", SECRET, "--dry-run")
    assert rc == 0, err
    assert "svc-00" in out and "svc-01" not in out
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 0, err
    new = world.current()
    assert world.env_of("svc-00")["AWS_SECRET_ACCESS_KEY"] == new["secret_access_key"]
    # the missing one was left alone (it still holds the old, now revoked, key)
    assert world.env_of("svc-01")["AWS_SECRET_ACCESS_KEY"] == world.old["secret_access_key"]
