"""Fault injection: a refusing store, a network drop to the store, an IAM user with two keys,
a Vault token revoked mid-rotation, a PostgreSQL password rotation, the webhook, and a check
that no raw secret value reaches logs, audit events, the database or command output."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import hvac
import psycopg
import pytest
import sqlalchemy as sa

from keyward.inventory import models as m
from keyward.inventory.rotations import RotationRepository
from keyward.rotation import engine as engine_mod
from keyward.rotation.ports import rotation_lease
from tests.integration._inventory_db import Cli, sqlite_template  # noqa: F401
from tests.integration._rotation_world import REGION, SECRET, SM_NAME, aws_rotates_it, build_world
from tests.integration.test_rotation_engine import audit, rotation_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:  # noqa: F811
    path = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def at_checkpoint(monkeypatch: pytest.MonkeyPatch, point: str, action: Any) -> None:
    def checkpoint(self: Any, p: str) -> None:
        if p == point:
            action()

    monkeypatch.setattr(engine_mod.RotationEngine, "checkpoint", checkpoint)


# ------------------------------------------------------------------ the AWS store refuses
def test_a_store_that_refuses_the_write_rolls_back_and_names_the_denied_action(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=3)
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Action": "secretsmanager:PutSecretValue", "Resource": "*"}
        ],
    }
    world.client("iam").put_user_policy(
        UserName="keyward", PolicyName="deny-put", PolicyDocument=json.dumps(deny)
    )
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 3, err
    assert "PutSecretValue" in err and "rolled back" in err
    assert err.count("\n") == 1
    assert world.assert_consistent() == world.old
    assert world.keys() == [(world.old["access_key_id"], "Active")]  # the new key was revoked
    assert rotation_rows(world)[0]["state"] == "rolled_back"
    assert ("rotation.create", "failed") in audit(world)


DENIED = [
    ("secretsmanager:PutSecretValue", "create", "old"),
    ("iam:CreateAccessKey", "create", "old"),
    ("lambda:UpdateFunctionConfiguration", "dependents", "old"),
    ("secretsmanager:UpdateSecretVersionStage", "finish", "old"),
    ("iam:UpdateAccessKey", "retire", "rotated"),
]


@pytest.mark.parametrize(("action", "step", "expect"), DENIED, ids=[a for a, _, _ in DENIED])
def test_a_denied_action_at_any_step_is_named_and_the_state_completes_once_allowed(
    aws: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
    action: str,
    step: str,
    expect: str,
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=3)
    iam = world.client("iam")
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": action, "Resource": "*"}],
    }
    iam.put_user_policy(UserName="keyward", PolicyName="deny", PolicyDocument=json.dumps(deny))
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 3, err
    assert action.split(":")[1] in err and err.count("\n") == 1, err
    assert f"rotation.{step}" in {a for a, o in audit(world) if o == "failed"}
    (row,) = rotation_rows(world)
    iam.delete_user_policy(UserName="keyward", PolicyName="deny")
    if row["state"] not in ("rolled_back", "finished"):  # could not complete while denied
        rc, _out, err = cli("rotations", "resume", "1")
        assert rc == 0, err
    cur = world.assert_consistent()
    (row,) = rotation_rows(world)
    if expect == "old":
        assert cur == world.old and row["state"] == "rolled_back"
    else:
        assert cur != world.old and row["state"] == "finished"
        assert world.keys() == [(cur["access_key_id"], "Active")]


def test_a_denied_poll_inside_the_lambda_waiter_is_reported_as_denied(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    # function_updated_v2 polls lambda:GetFunction; denied, the waiter gives up with the
    # denial as its last response (it was once reported as "LastUpdateStatus is Successful")
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=1)
    iam = world.client("iam")
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "lambda:GetFunction", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="keyward", PolicyName="deny", PolicyDocument=json.dumps(deny))
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 3, err
    assert "AWS denied lambda:GetFunction on Lambda function svc-00 in us-east-1" in err, err
    assert "AccessDenied" in err, err
    assert "LastUpdateStatus" not in err and err.count("\n") == 1, err
    iam.delete_user_policy(UserName="keyward", PolicyName="deny")
    rc, _out, err = cli("rotations", "rollback", "1")
    assert rc == 0, err
    assert world.assert_consistent() == world.old


# ------------------------------------------------------------- the network to the store drops
class Proxy:
    """A TCP forwarder to moto that can be cut (connections reset, new ones refused)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.open = True
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.open = False
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def store_proxy(aws: Any) -> Iterator[Proxy]:
    proxy = Proxy(int(aws.endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


def test_the_network_to_the_store_dropping_mid_rotation_is_rolled_back_once_it_returns(
    aws: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
    store_proxy: Proxy,
) -> None:
    world = build_world(
        aws,
        sqlite_url,
        tmp_path,
        monkeypatch,
        functions=3,
        extra_config="[rotation.aws]\nmax_attempts = 1\nconnect_timeout = 1\nread_timeout = 2\n",
    )
    # only Secrets Manager goes through the proxy (botocore's per-service endpoint variable)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{store_proxy.port}")
    at_checkpoint(monkeypatch, "dependents:inside:2", store_proxy.cut)
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 3, err
    assert "rollback could not finish" in err and "keyward rotations rollback 1" in err
    (row,) = rotation_rows(world)
    assert row["state"] == "rolling_back"
    store_proxy.restore()
    monkeypatch.setattr(engine_mod.RotationEngine, "checkpoint", lambda self, p: None)
    rc, _out, err = cli("rotations", "rollback", "1")
    assert rc == 0, err
    assert world.assert_consistent() == world.old
    assert rotation_rows(world)[0]["state"] == "rolled_back"
    actions = audit(world)
    assert ("rotation.finish", "failed") in actions
    assert ("rotation.rollback", "failed") in actions and ("rotation.rollback", "ok") in actions


def test_a_store_down_before_any_rotation_exists_never_suggests_resuming(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    world = build_world(
        aws, sqlite_url, tmp_path, monkeypatch, functions=1,
        extra_config="[rotation.aws]\nmax_attempts = 0\nconnect_timeout = 1\n",
    )  # fmt: skip
    port = socket.socket()
    port.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    monkeypatch.setenv(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{port.getsockname()[1]}"
    )
    try:
        rc, _out, err = cli("rotate", SECRET)
    finally:
        port.close()
    assert rc == 3, err
    assert "Cannot reach AWS" in err and err.count("\n") == 1, err
    assert "resume" not in err, err  # there is no rotation to resume
    assert rotation_rows(world) == []
    assert "No rotations." in cli("rotations", "list")[1]


def test_under_debug_a_failed_rotation_still_exits_with_its_documented_code(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=1)
    world.client("lambda").delete_function(FunctionName="svc-00")
    rc, _out, err = cli("--debug", "rotate", SECRET)
    assert rc == 2, err  # DependentNotFound, as without --debug (the traceback is not 1)
    assert "Traceback (most recent call last)" in err and "RotationFailed" in err
    assert err.rstrip().splitlines()[-1].startswith("keyward: error: Rotation 1 of 'prod/aws'")
    assert world.old["secret_access_key"] not in err
    assert world.current() == world.old
    assert world.keys() == [(world.old["access_key_id"], "Active")]


def test_the_network_dropping_inside_the_lambda_waiter_is_one_sentence(
    aws: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
    store_proxy: Proxy,
) -> None:
    # (it once printed botocore's own text with the request URL: the waiter was outside the
    # provider boundary)
    from keyward.rotation.dependents.aws_lambda import LambdaEnvironmentDependent

    world = build_world(
        aws, sqlite_url, tmp_path, monkeypatch, functions=1,
        extra_config="[rotation.aws]\nmax_attempts = 0\nconnect_timeout = 1\n",
    )  # fmt: skip
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{store_proxy.port}")
    wait = LambdaEnvironmentDependent._wait
    cuts: list[str] = []

    def cut_once(self: Any, target: Any) -> None:
        if cuts:
            return wait(self, target)
        cuts.append(target.resource)
        store_proxy.cut()  # the update went through; the waiter's poll cannot connect
        try:
            return wait(self, target)
        finally:
            store_proxy.restore()

    monkeypatch.setattr(LambdaEnvironmentDependent, "_wait", cut_once)
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 3, err
    (line,) = err.splitlines()
    assert "for lambda:GetFunction on Lambda function svc-00 in us-east-1" in line, line
    assert "/2015-03-31/functions" not in line and "botocore" not in line, line
    assert "rolled back" in line
    assert world.assert_consistent() == world.old


# ----------------------------------------------- a secret Secrets Manager rotates itself
def test_a_secret_aws_rotates_itself_is_refused_naming_its_lambda_until_taken_over(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=1)
    arn = aws_rotates_it(world)
    stages_before = world.stages()
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 2, err
    (line,) = err.splitlines()
    assert f"already rotated by AWS Secrets Manager's rotation with the Lambda {arn}" in line
    assert "--take-over" in line
    assert rotation_rows(world) == [] and world.stages() == stages_before
    assert world.keys() == [(world.old["access_key_id"], "Active")]
    rc, out, _err = cli("rotate", SECRET, "--dry-run")
    assert rc == 0 and "refused unless --take-over" in out and arn in out
    assert ("rotation.start", "failed") in audit(world)
    # once due, the daemon's claim skips it for an hour instead of being refused (and
    # auditing it) at every tick
    inv = world.inventory()
    try:
        with inv.db.session() as s:  # overdue by a day
            s.execute(sa.update(m.Secret).values(rotation_due_at=m.utcnow() - timedelta(days=1)))
        repo = RotationRepository(inv.db, actor="daemon")
        assert repo.claim_due_secrets("h", timedelta(minutes=1)) == ()
        assert repo.claim_due_secrets("h", timedelta(minutes=1), failed_backoff=timedelta(0)) == (
            SECRET,
        )
        repo.release_lease(rotation_lease(repo.rotatable(SECRET).id), "h")
    finally:
        inv.db.close()

    rc, out, err = cli("rotate", SECRET, "--take-over")
    assert rc == 0, err
    meta = world.client("secretsmanager").describe_secret(SecretId=SM_NAME)
    assert not meta["RotationEnabled"]  # AWS's rotation was cancelled first
    cur = world.assert_consistent()  # and AWS's abandoned AWSPENDING is gone too
    assert cur != world.old
    inv = world.inventory()
    try:
        events = inv.audit_events(SECRET, limit=100)
    finally:
        inv.db.close()
    (taken,) = [e for e in events if e.action == "rotation.take-over"]
    assert taken.outcome == "ok" and taken.actor == "tester"
    assert arn in json.dumps(taken.detail) and "CancelRotateSecret" in json.dumps(taken.detail)


# --------------------------------------------------------------- an IAM user with two keys
def test_an_iam_user_with_two_active_keys_is_refused_in_one_sentence(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=2)
    world.client("iam").create_access_key(UserName="app")
    keys_before = world.keys()
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 2, err
    assert "already has two access keys" in err and err.count("\n") == 1
    assert world.keys() == keys_before
    assert world.current() == world.old
    assert rotation_rows(world)[0]["state"] == "rolled_back"


# --------------------------------------------------------------------------- the webhook
class Hook:
    def __init__(self, status: int = 200) -> None:
        events: list[dict[str, Any]] = []
        self.events = events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_webhook_receives_success_and_failure_events_without_values(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    hook = Hook()
    try:
        cfg = f'webhook_url = "{hook.url}"\n'
        world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=2)
        world.config.write_text(
            world.config.read_text().replace("[rotation]\n", "[rotation]\n" + cfg, 1)
        )
        rc, _out, err = cli("rotate", SECRET)
        assert rc == 0, err
        assert [e["event"] for e in hook.events] == ["rotation.finished", "rotation.retired"]
        assert hook.events[0]["secret"] == SECRET and hook.events[0]["error"] is None
        world.client("lambda").delete_function(FunctionName="svc-01")
        rc, _out, err = cli("rotate", SECRET)
        assert rc == 2
        last = hook.events[-1]
        assert last["event"] == "rotation.rolled_back" and "svc-01" in last["error"]
        text = json.dumps(hook.events)
        for v in (world.old["secret_access_key"], world.current()["secret_access_key"]):
            assert v not in text
    finally:
        hook.close()


@pytest.mark.parametrize("status", [500, None])
def test_a_failing_or_unreachable_webhook_never_breaks_a_rotation(
    aws: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
    status: int | None,
) -> None:
    hook = Hook(status or 500)
    url = hook.url
    if status is None:
        hook.close()  # nothing listens any more
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=1)
    world.config.write_text(
        world.config.read_text().replace("[rotation]\n", f'[rotation]\nwebhook_url = "{url}"\n')
    )
    rc, _out, err = cli("rotate", SECRET)
    assert rc == 0, err
    assert world.assert_consistent() != world.old
    if status:
        hook.close()


# ---------------------------------------------------------------- no value leaks anywhere
def test_no_raw_secret_value_in_logs_audit_database_or_output(
    aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    world = build_world(aws, sqlite_url, tmp_path, monkeypatch, functions=3)
    outputs = []
    for args in (
        ("--debug", "rotate", SECRET, "--dry-run"),
        ("--debug", "rotate", SECRET),
        ("rotations", "list"),
        ("rotations", "show", "1", "--format", "json"),
        ("inventory", "show", SECRET),
    ):
        rc, out, err = cli(*args)
        assert rc == 0, err
        outputs.append(out + err)
    world.client("lambda").delete_function(FunctionName="svc-02")  # and a failed one
    rc, out, err = cli("rotate", SECRET)
    assert rc == 2
    outputs.append(out + err)
    new = world.current()
    db_path = sqlite_url.removeprefix("sqlite:///")
    con = sqlite3.connect(db_path)
    dump = "\n".join(con.iterdump())
    con.close()
    audit_text = json.dumps(audit(world))
    secrets = [world.old["secret_access_key"], new["secret_access_key"]]
    for where, text in (("output+logs", "\n".join(outputs)), ("database", dump),
                        ("audit", audit_text)):  # fmt: skip
        for value in secrets:
            assert value not in text, where
    assert "DEBUG" in "\n".join(outputs) or "keyward:" in "\n".join(outputs)


# ------------------------------------------------------------ OpenBao: token revoked midway
@pytest.fixture
def vault_world(
    openbao: Any, aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    from keyward.inventory.db import open_database
    from keyward.inventory.service import Inventory
    from keyward.rotation.protocols import new_token

    root = hvac.Client(url=openbao.addr, token=openbao.token)
    path = f"app/signing-{new_token()[:8]}"
    root.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"value": "s" * 48}, mount_point="secret"
    )
    staging = f"keyward-staging/secret/{path}"  # where the pending value waits
    policy = (
        f'path "secret/data/{path}" {{ capabilities = ["create", "read", "update"] }}\n'
        f'path "secret/metadata/{path}" {{ capabilities = ["read"] }}\n'
        f'path "secret/data/{staging}" {{ capabilities = ["create", "read", "update"] }}\n'
        f'path "secret/metadata/{staging}" {{ capabilities = ["create", "read", "update"] }}\n'
        f'path "secret/destroy/{staging}" {{ capabilities = ["update"] }}\n'
    )
    root.sys.create_or_update_policy(name=f"kw-{path[-8:]}", policy=policy)

    def token() -> str:
        t = root.auth.token.create(policies=[f"kw-{path[-8:]}"], ttl="1h", no_default_policy=True)
        return str(t["auth"]["client_token"])

    from tests.integration._rotation_world import _zip

    iam = boto3.client("iam", region_name=REGION)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
    role = iam.create_role(RoleName="signer-role", AssumeRolePolicyDocument=json.dumps(trust))
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="signer", Runtime="python3.12", Role=role["Role"]["Arn"],
        Handler="handler.handler", Code={"ZipFile": _zip()},
        Environment={"Variables": {"SIGNING_KEY_PATH": f"secret/{path}"}},
    )  # fmt: skip
    inv = Inventory(open_database(url=sqlite_url), actor="tester")
    inv.add_secret("app/signing", "random", store="vault", reference=f"secret/data/{path}")
    # no variable: the function loads the secret itself (reference mode)
    inv.add_dependent("app/signing", "aws-lambda", "signer", region=REGION)
    inv.db.close()
    config = tmp_path / "keyward.toml"
    config.write_text(
        '[rotation]\ngrace_period = "0s"\n[rotation.dependents.aws-lambda]\nwait_delay = 1\n'
    )
    for k, v in {
        "KEYWARD_DATABASE_URL": sqlite_url,
        "KEYWARD_CONFIG": str(config),
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": token(),
    }.items():
        monkeypatch.setenv(k, v)
    return root, path, token


def test_vault_rotation_with_a_token_limited_to_the_secret_path(vault_world: Any, cli: Cli) -> None:
    root, path, _ = vault_world
    before = root.secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]["value"]
    rc, out, err = cli("rotate", "app/signing")
    assert rc == 0, err
    latest = root.secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )["data"]  # what readers of the path get: the latest version, now current
    value, current = latest["data"]["value"], str(latest["metadata"]["version"])
    assert value != before and len(value) == 48 and current == "2"
    assert before not in out + err and value not in out + err
    env = signer_env()
    assert env["KEYWARD_SECRET_VERSION"] == current  # new environments load the new version
    assert env["SIGNING_KEY_PATH"] == f"secret/{path}"


def test_a_vault_token_revoked_mid_rotation_leaves_a_state_a_new_token_rolls_back(
    vault_world: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, path, token = vault_world
    import os

    at_checkpoint(
        monkeypatch,
        "test:before",
        lambda: root.auth.token.revoke(os.environ["VAULT_TOKEN"]),
    )
    rc, _out, err = cli("rotate", "app/signing")
    assert rc == 3, err
    assert "expired or been revoked" in err and err.count("\n") == 1
    monkeypatch.setattr(engine_mod.RotationEngine, "checkpoint", lambda self, p: None)
    monkeypatch.setenv("VAULT_TOKEN", token())
    rc, out, err = cli("rotations", "list", "--in-flight")
    assert "rolling_back" in out
    rc, out, err = cli("rotations", "rollback", "1")
    assert rc == 0, err
    meta = root.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")["data"]
    assert list(meta["versions"]) == ["1"]  # the secret's path never gained a version
    value = root.secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]["value"]
    assert value == "s" * 48
    assert "KEYWARD_SECRET_VERSION" not in signer_env()  # the function was restored


def signer_env() -> dict[str, str]:
    cfg = boto3.client("lambda", region_name=REGION).get_function_configuration(
        FunctionName="signer"
    )
    return dict(cfg["Environment"]["Variables"])


# --------------------------------------------------------- PostgreSQL: the password rotates
def test_a_postgres_role_password_rotates_old_refused_new_accepted(
    aws: Any,
    postgres_url: str,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    import uuid

    from psycopg import sql

    from keyward.inventory.db import open_database
    from keyward.inventory.service import Inventory
    from keyward.rotation.rotators.postgres import verifier_matches

    role = f"kw_{uuid.uuid4().hex[:10]}"
    old_password = "Old-password-" + uuid.uuid4().hex[:12]
    admin = psycopg.connect(postgres_url, autocommit=True)
    admin.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(old_password)
        )
    )
    try:
        sm = boto3.client("secretsmanager", region_name=REGION)
        value = {"username": role, "password": old_password, "host": "127.0.0.1", "port": "5432",
                 "dbname": postgres_url.rsplit("/", 1)[1]}  # fmt: skip
        sm.create_secret(Name="app/db", SecretString=json.dumps(value))
        inv = Inventory(open_database(url=sqlite_url), actor="tester")
        inv.add_secret("prod/db", "postgres-password", store="aws-secretsmanager",
                       reference="app/db")  # fmt: skip
        inv.db.close()
        config = tmp_path / "keyward.toml"
        config.write_text(
            '[rotation]\ngrace_period = "0s"\n'
            f'[rotation.rotators.postgres-password]\nadmin_url = "{postgres_url}"\n'
        )
        monkeypatch.setenv("KEYWARD_DATABASE_URL", sqlite_url)
        monkeypatch.setenv("KEYWARD_CONFIG", str(config))
        rc, out, err = cli("rotate", "prod/db")
        assert rc == 0, err
        new = json.loads(
            sm.get_secret_value(SecretId="app/db", VersionStage="AWSCURRENT")["SecretString"]
        )
        assert new["password"] != old_password
        row = admin.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
        ).fetchone()
        assert row is not None
        assert verifier_matches(new["password"], row[0])  # new accepted
        assert not verifier_matches(old_password, row[0])  # old refused
        assert old_password not in out + err and new["password"] not in out + err
    finally:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.close()
