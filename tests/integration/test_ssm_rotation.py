"""A random value in SSM Parameter Store, rotated end to end on the moto server.

Two Lambda dependents: one holds the value in a variable (value mode), one loads the parameter
itself (reference mode: ``KEYWARD_SECRET_VERSION`` names the version, an SSM selector label).
A poller reads the parameter as consumers do (``GetParameter(name)``, the latest version) while
keyward rotates it, uninterrupted and SIGKILLed at every step boundary and between the store's
provider calls, then resumed or rolled back: no read returns a value before it was tested, and
afterwards one value is current and every dependent is on it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from tests.integration._inventory_db import Cli, sqlite_template  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_crash_driver.py")
SECRET = "app/signing"
PARAM = "/app/signing-key"
REGION = "us-east-1"
OLD = "old-signing-key-" + "0123456789abcdef0123456789abcdef"


@dataclass
class SsmWorld:
    db_url: str
    env: dict[str, str]
    ssm: Any
    lam: Any

    def latest(self) -> str:
        return str(self.ssm.get_parameter(Name=PARAM, WithDecryption=True)["Parameter"]["Value"])

    def env_of(self, fn: str) -> dict[str, str]:
        cfg = self.lam.get_function_configuration(FunctionName=fn)
        return dict(cfg.get("Environment", {}).get("Variables", {}))

    def staging_left(self) -> bool:
        found = self.ssm.describe_parameters(
            ParameterFilters=[{"Key": "Name", "Values": [f"/keyward-staging{PARAM}"]}]
        )
        return bool(found["Parameters"])

    def versions(self) -> list[int]:
        return [int(v["Version"]) for v in self.ssm.get_parameter_history(Name=PARAM)["Parameters"]]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql))]
        finally:
            engine.dispose()

    def state(self) -> str:
        return str(self.query("SELECT state FROM rotations ORDER BY id DESC LIMIT 1")[0][0])

    def tested_at(self) -> datetime | None:
        rows = self.query(
            "SELECT at FROM audit_events WHERE action = 'rotation.test' AND outcome = 'ok' "
            "ORDER BY id DESC LIMIT 1"
        )
        if not rows:
            return None
        at = rows[0][0]
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at

    def assert_consistent(self) -> str:
        """One current value; both dependents on it; no staging parameter left behind."""
        cur = self.latest()
        assert not self.staging_left()
        assert self.env_of("signer")["SIGNING_KEY"] == cur
        ref = self.env_of("verifier")
        assert ref["SIGNING_KEY_PARAM"] == PARAM
        if cur != OLD:  # the reference names the current version, a readable selector
            label = ref["KEYWARD_SECRET_VERSION"]
            assert label.startswith("keyward-")
            sel = self.ssm.get_parameter(Name=f"{PARAM}:{label}", WithDecryption=True)
            assert sel["Parameter"]["Value"] == cur
        else:
            assert "KEYWARD_SECRET_VERSION" not in ref
        return cur


@dataclass
class Poller:
    world: SsmWorld
    reads: list[tuple[datetime, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Poller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        client = boto3.client("ssm", region_name=REGION, endpoint_url=self.world.env[
            "AWS_ENDPOINT_URL"])  # fmt: skip
        while not self._stop.is_set():
            try:
                got = client.get_parameter(Name=PARAM, WithDecryption=True)
                self.reads.append((datetime.now(UTC), str(got["Parameter"]["Value"])))
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            time.sleep(0.005)

    def check(self, final: str) -> None:
        assert not self.errors, self.errors[:3]
        assert self.reads
        strangers = [at for at, v in self.reads if v not in (OLD, final)]
        assert not strangers, strangers[:3]
        if final != OLD:
            tested = self.world.tested_at()
            assert tested is not None
            assert not [at for at, v in self.reads if v == final and at < tested]


@pytest.fixture
def world(
    aws: Any,
    sqlite_template: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> SsmWorld:
    from keyward.inventory.db import open_database
    from keyward.inventory.service import Inventory
    from tests.integration._rotation_world import _zip

    db = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, db)
    db_url = f"sqlite:///{db}"
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=PARAM, Value=OLD, Type="SecureString", KeyId="alias/app-keys")
    iam = boto3.client("iam", region_name=REGION)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
    role = iam.create_role(RoleName="ssm-fn-role", AssumeRolePolicyDocument=json.dumps(trust))
    lam = boto3.client("lambda", region_name=REGION)
    for fn, env in (("signer", {"SIGNING_KEY": OLD}), ("verifier", {"SIGNING_KEY_PARAM": PARAM})):
        lam.create_function(
            FunctionName=fn, Runtime="python3.12", Role=role["Role"]["Arn"],
            Handler="handler.handler", Code={"ZipFile": _zip()},
            Environment={"Variables": env},
        )  # fmt: skip
    arn = ssm.get_parameter(Name=PARAM)["Parameter"]["ARN"]
    inv = Inventory(open_database(url=db_url), actor="tester")
    inv.add_secret(SECRET, "random", store="aws-ssm", reference=arn)  # as discovery records it
    inv.add_dependent(SECRET, "aws-lambda", "signer", variable="SIGNING_KEY", region=REGION)
    inv.add_dependent(SECRET, "aws-lambda", "verifier", region=REGION)  # reference mode
    inv.db.close()
    config = tmp_path / "keyward.toml"
    config.write_text(
        '[rotation]\ngrace_period = "0s"\nlease_ttl = "60s"\n'
        "[rotation.dependents.aws-lambda]\nwait_delay = 1\n"
    )
    for k, v in {"KEYWARD_DATABASE_URL": db_url, "KEYWARD_CONFIG": str(config),
                 "KEYWARD_ACTOR": "tester"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    return SsmWorld(db_url, dict(os.environ), ssm, lam)


def test_an_ssm_secret_rotates_with_value_and_reference_dependents(
    world: SsmWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(capsys)
    with Poller(world) as poller:
        rc, out, err = cli("rotate", SECRET)
        assert rc == 0, err
        time.sleep(0.05)
    cur = world.assert_consistent()
    assert cur != OLD and len(cur) == 48
    assert cur not in out + err and OLD not in out + err
    assert world.state() == "finished" and world.versions() == [1, 2]
    hist = world.ssm.get_parameter_history(Name=PARAM)["Parameters"]
    assert hist[-1]["KeyId"] == "alias/app-keys"  # the parameter's own key
    assert "current" in hist[-1]["Labels"] and "previous" in hist[0]["Labels"]
    poller.check(cur)
    # and rotating again moves the labels along
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 0, err
    assert world.assert_consistent() not in (cur, OLD) and world.versions() == [1, 2, 3]


ENGINE = [
    ("create:stored", "rollback", False), ("test:after", "resume", True),
    ("dependents:inside:1", "rollback", False), ("dependents:inside:2", "resume", True),
    ("finish:before", "rollback", False), ("finish:after", "rollback", True),
]  # fmt: skip
STORE = [
    ("PutParameter", "rollback", False),  # the staged value
    ("PutParameter#2", "resume", True),  # the promote write
    ("PutParameter#2", "rollback", True),  # ... found current: completed instead
    ("LabelParameterVersion", "rollback", True),
    ("LabelParameterVersion#2", "resume", True),
    ("DeleteParameter", "resume", True),
]
CASES = [({"KEYWARD_TEST_CRASH_AT": p}, p, t, r) for p, t, r in ENGINE] + [
    ({"KEYWARD_TEST_CRASH_AFTER_CALL": c}, f"after {c}", t, r) for c, t, r in STORE
]


@pytest.mark.parametrize(
    ("env", "where", "then", "rotated"), CASES, ids=[f"{w}-{t}" for _e, w, t, _r in CASES]
)
def test_sigkill_anywhere_then_resume_or_rollback_leaves_one_value_everywhere(
    world: SsmWorld,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    where: str,
    then: str,
    rotated: bool,
) -> None:
    cli = Cli(capsys)
    with Poller(world) as poller:
        proc = subprocess.run(
            [sys.executable, str(DRIVER), "rotate", SECRET],
            env={**world.env, **env, "PYTHONPATH": str(ROOT)},
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
        rc, _out, err = cli("rotations", then, "1")
        assert rc == 0, err
        time.sleep(0.05)
    cur = world.latest()
    assert (cur != OLD) is rotated, where
    assert world.state() == ("finished" if rotated else "rolled_back"), where
    assert world.versions() == ([1, 2] if rotated else [1]), where  # never a second write
    poller.check(cur)
    if then == "rollback" and rotated and world.staging_left():
        # The rollback found the value current and completed the rotation without calling
        # promote (the engine's part of issue 10 §2), so the labels and the staging parameter
        # wait: readers are already right (above), and the next rotation finishes it first.
        rc, _out, err = cli("rotate", SECRET)
        assert rc == 0, err
        assert world.versions() == [1, 2, 3]
    world.assert_consistent()
