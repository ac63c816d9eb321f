"""Bad input on the loop (issue "close the loop", part 5): each is one clear sentence or a single
rotation, never a half-applied state.

* two daemons (separate processes, on PostgreSQL) see the same leak: one rotation;
* a secret marked leaked whose rotator is missing: said in one sentence, nothing changes.

(Adopting a finding whose function was deleted or whose value changed since the scan is
covered by tests/integration/test_adopt*.py.)
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ADMIN_URL, Moto, free_port
from tests.integration._loop_world import (
    HOME,
    OTHER,
    REFERENCE,
    SM_NAME,
    VALUE,
    LoopWorld,
    build_loop_world,
    migrated_postgres_database,
    run_process,
)

pytestmark = pytest.mark.integration

N = 2
SECRET = f"aws-sm/{HOME}/{SM_NAME}"
REGION_ARGS = ("--region", HOME, "--region", OTHER)


@pytest.fixture
def world(
    aws: Moto, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LoopWorld]:
    """The loop's world with two functions of each sort, its inventory on PostgreSQL."""
    with migrated_postgres_database(POSTGRES_ADMIN_URL) as db_url:
        w = build_loop_world(aws.endpoint, db_url, tmp_path, monkeypatch, n=N)
        aws.set_auth(True)  # the aws fixture switches it off again
        yield w


def leak(world: LoopWorld) -> None:
    """Own the secret and its dependents, then record the scan that finds it hardcoded."""
    for args in (
        ("discover", "aws-secretsmanager", "--fingerprint-values", "--region", HOME),
        ("discover", "aws-lambda", *REGION_ARGS),
    ):
        rc, _out, err = world.cli(*args)
        assert rc == 0, err
    rc, _out, err = world.cli("scan", "--aws-lambda", *REGION_ARGS, "--record")
    assert rc == 1, err
    (secret,) = world.sql("SELECT id FROM secrets WHERE name = :n", n=SECRET)
    leaked = world.sql(
        "SELECT id FROM secret_versions WHERE secret_id = :s AND leaked_at IS NOT NULL",
        s=secret["id"],
    )
    assert leaked, "the scan did not mark the secret leaked"


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_two_daemons_seeing_the_same_leak_rotate_it_once(world: LoopWorld) -> None:
    leak(world)
    ports = [free_port(), free_port()]
    procs = [run_process(world.env, "daemon", "--interval", "0.2", "--port", str(p)) for p in ports]
    try:
        deadline = time.monotonic() + 90
        finished_ticks: list[float] | None = None
        while time.monotonic() < deadline:
            rows = world.sql("SELECT state FROM rotations")
            if rows and all(r["state"] == "finished" for r in rows):
                ticks = [_metric(p, "keyward_ticks_total") for p in ports]
                if finished_ticks is None:
                    finished_ticks = ticks
                # both daemons ticked at least three more times after the rotation finished
                elif all(t >= f + 3 for t, f in zip(ticks, finished_ticks, strict=True)):
                    break
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.1)
        else:
            pytest.fail(f"no finished rotation, or the daemons stopped ticking: {rows}")
    finally:
        outputs = []
        for p in procs:
            p.terminate()
            outputs.append(p.communicate(timeout=30))
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    rotations = world.sql("SELECT * FROM rotations")
    assert len(rotations) == 1, rotations
    starts = world.sql("SELECT actor FROM audit_events WHERE action = 'rotation.start'")
    assert len(starts) == 1, starts
    cur = world.current()
    assert world.keys() == [(cur["access_key_id"], "Active")]
    for fn in VALUE[:N]:
        assert world.env_of(fn)["AWS_ACCESS_KEY_ID"] == cur["access_key_id"], fn
    for fn in REFERENCE[:N]:
        assert world.env_of(fn)["KEYWARD_SECRET_VERSION"] == world.current_version_id(), fn
    findings = world.sql("SELECT state FROM findings WHERE secret_id IS NOT NULL")
    assert findings and {f["state"] for f in findings} == {"remediated"}
    for _out, err in outputs:
        for value in (world.old["secret_access_key"], cur["secret_access_key"]):
            assert value not in err
