"""``keyward adopt`` on moto (credential checking on): a key hardcoded in Lambda environments
becomes a secret in Secrets Manager, with its dependents, rotated and referenced; refusals
leave nothing half-applied; no value reaches any output, log, table or audit event."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration._adopt_world import TOKEN_FN, AdoptWorld, build_adopt_world
from tests.integration._inventory_db import Cli, sqlite_template  # noqa: F401

pytestmark = pytest.mark.integration
NAME = "prod/orders/aws"


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:  # noqa: F811
    path = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def world(aws: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AdoptWorld:
    return build_adopt_world(aws, sqlite_url, tmp_path, monkeypatch, functions=3)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def scan(cli: Cli) -> str:
    rc, out, err = cli("scan", "--aws-lambda", "--region", "us-east-1", "--record")
    assert rc == 1, err  # findings
    return out + err


def findings(world: AdoptWorld) -> list[dict[str, Any]]:
    engine = sa.create_engine(world.db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, rule_id, resource, variable, secret_id, version_id, state "
                "FROM findings ORDER BY id"
            )
        )
        out = [dict(r._mapping) for r in rows]
    engine.dispose()
    return out


def key_finding(world: AdoptWorld, fn: str = "orders-0") -> int:
    return next(
        f["id"]
        for f in findings(world)
        if f["rule_id"] == "aws-access-key-id" and f["resource"].endswith(f":function:{fn}")
    )


def table_dump(world: AdoptWorld) -> str:
    engine = sa.create_engine(world.db_url)
    with engine.connect() as conn:
        names = [
            r[0] for r in conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type='table'"))
        ]
        text = "\n".join(repr(list(conn.execute(sa.text(f'SELECT * FROM "{n}"')))) for n in names)
    engine.dispose()
    return text


def rows(world: AdoptWorld, sql: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(world.db_url)
    with engine.connect() as conn:
        out = [dict(r._mapping) for r in conn.execute(sa.text(sql))]
    engine.dispose()
    return out


def test_scan_then_adopt_rotate_reference_ends_with_the_pair_stored_rotated_and_referenced(
    world: AdoptWorld, cli: Cli
) -> None:
    outputs = [scan(cli)]
    fid = key_finding(world)
    rc, out, err = cli(
        "--debug", "adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME,
        "--owner", "alice", "--team", "payments", "--rotate", "--reference", "--format", "json",
    )  # fmt: skip
    outputs.append(out + err)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["secret"] == NAME and doc["kind"] == "aws-iam-access-key"
    assert doc["fields"] == ["access_key_id", "secret_access_key"]
    assert doc["rotation"]["state"] in ("finished", "retiring"), doc["rotation"]
    arn = doc["reference"]
    assert arn.startswith("arn:aws:secretsmanager:us-east-1:")
    # the pair is in Secrets Manager, rotated: a new key, the leaked one gone
    current = world.secret(NAME)
    assert set(current) == {"access_key_id", "secret_access_key"}
    assert current["access_key_id"] != world.key["access_key_id"]
    active = [k for k, status in world.keys() if status == "Active"]
    assert active == [current["access_key_id"]]
    assert world.key["access_key_id"] not in [k for k, _ in world.keys()]
    tags = world.client("secretsmanager").describe_secret(SecretId=NAME)["Tags"]
    assert {"Key": "owner", "Value": "alice"} in tags
    assert {"Key": "team", "Value": "payments"} in tags
    # every function that held it now references the secret, and was bumped by the rotation
    sm_version = world.client("secretsmanager").describe_secret(SecretId=NAME)
    current_version = next(
        v for v, st in sm_version["VersionIdsToStages"].items() if "AWSCURRENT" in st
    )
    assert sorted(doc["referenced"]) == sorted(
        f"arn:aws:lambda:us-east-1:123456789012:function:{fn}" for fn in world.functions
    )
    for fn in world.functions:
        env = world.env_of(fn)
        assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env, fn
        assert env["KEYWARD_SECRET_ARN"] == arn
        assert env["KEYWARD_SECRET_VERSION"] == current_version
        assert env["SERVICE"] == fn
    assert world.env_of(TOKEN_FN)["GITHUB_TOKEN"] == world.token  # untouched
    # the inventory: the secret, reference dependents, fields, linked findings, audit
    (secret,) = rows(world, "SELECT * FROM secrets")
    assert (secret["name"], secret["store"], secret["reference"]) == (
        NAME, "aws-secretsmanager", arn,
    )  # fmt: skip
    assert secret["owner"] == "alice" and secret["kind"] == "aws-iam-access-key"
    deps = rows(world, "SELECT target, variable, attributes, origin FROM dependents")
    assert len(deps) == len(world.functions)
    assert all(json.loads(d["attributes"])["mode"] == "reference" for d in deps)
    assert {d["variable"] for d in deps} == {"KEYWARD_SECRET_ARN"}
    fields = rows(world, "SELECT field FROM secret_fields ORDER BY field")
    assert {f["field"] for f in fields} >= {"access_key_id", "secret_access_key"}
    linked = [f for f in findings(world) if f["rule_id"] == "aws-access-key-id"]
    assert len(linked) == len(world.functions)
    assert all(f["secret_id"] == secret["id"] and f["version_id"] for f in linked)
    # the rotation revoked the leaked key at once (grace 0s): its findings are remediated
    assert {f["state"] for f in linked} == {"remediated"}, linked
    actions = [r["action"] for r in rows(world, "SELECT action FROM audit_events ORDER BY id")]
    assert "secret.adopted" in actions
    assert actions.count("dependent.reference") == len(world.functions)
    assert "rotation.finish" in actions or any(a.startswith("rotation.") for a in actions)
    # a later scan --record discovers the same reference dependents: kept, none added/missing
    outputs.append(scan(cli))
    again = rows(world, "SELECT target, variable, attributes, status FROM dependents")
    assert sorted((d["target"], d["variable"]) for d in again) == sorted(
        (d["target"], d["variable"]) for d in deps
    )
    assert {d["status"] for d in again} == {"active"}
    assert all(json.loads(d["attributes"])["mode"] == "reference" for d in again)
    # no value anywhere: outputs, logs, tables (old and new key alike)
    leaked = [
        world.key["secret_access_key"], world.key["access_key_id"],
        current["secret_access_key"], current["access_key_id"],
    ]  # fmt: skip
    assert "now references" in err  # --debug: keyward's own logs on stderr
    for value in leaked:
        for text in outputs:
            assert value not in text
    # access key ids are identifiers the rotation journal keeps (its notes); secrets never
    tables = table_dump(world)
    assert world.key["secret_access_key"] not in tables
    assert current["secret_access_key"] not in tables


def test_adopt_without_flags_records_value_dependents_and_changes_no_function(
    world: AdoptWorld, cli: Cli
) -> None:
    scan(cli)
    fid = key_finding(world, "orders-1")
    rc, out, err = cli("adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME)
    assert rc == 0, err
    assert f"Adopted finding {fid}" in out and "holds it by value" in out
    assert world.secret(NAME) == world.key  # the pair as one JSON secret, not rotated
    for fn in world.functions:
        env = world.env_of(fn)
        assert env["AWS_ACCESS_KEY_ID"] == world.key["access_key_id"]
        assert "KEYWARD_SECRET_ARN" not in env
    deps = rows(world, "SELECT target, variable, attributes, origin, status FROM dependents")
    assert len(deps) == 2 * len(world.functions)
    assert {(d["variable"], json.loads(d["attributes"])["field"]) for d in deps} == {
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    }
    assert {d["origin"] for d in deps} == {"discovered"}
    scan(cli)  # discovery of a later scan --record finds the very same dependents
    again = rows(world, "SELECT target, variable, status FROM dependents")
    assert sorted((d["target"], d["variable"]) for d in again) == sorted(
        (d["target"], d["variable"]) for d in deps
    )
    assert {d["status"] for d in again} == {"active"}
    (version,) = rows(world, "SELECT id, stage, leaked_at FROM secret_versions")
    assert version["stage"] == "current" and version["leaked_at"] is not None
    assert world.key["secret_access_key"] not in out + err


def test_adopting_a_finding_whose_function_was_deleted_says_so_and_writes_nothing(
    world: AdoptWorld, cli: Cli
) -> None:
    scan(cli)
    fid = key_finding(world, "orders-0")
    world.client("lambda").delete_function(FunctionName="orders-0")
    rc, out, err = cli(
        "adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME, "--rotate",
        "--reference",
    )  # fmt: skip
    assert rc == 3, (out, err)
    message = err.strip().splitlines()
    assert len(message) == 1 and "no longer exists (deleted since the scan)" in message[0]
    assert_nothing_applied(world)


def test_adopting_a_value_changed_since_the_scan_is_refused_and_writes_nothing(
    world: AdoptWorld, cli: Cli
) -> None:
    scan(cli)
    fid = key_finding(world, "orders-2")
    env = world.env_of("orders-2")
    env["AWS_SECRET_ACCESS_KEY"] = "x" * 40  # the other half changed
    world.set_env("orders-2", env)
    rc, out, err = cli(
        "adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME, "--rotate",
        "--reference",
    )  # fmt: skip
    assert rc == 3, (out, err)
    assert "is no longer at" in err and "other half of its key pair" in err
    assert_nothing_applied(world)


def test_a_name_the_store_already_has_is_refused_before_any_change(
    world: AdoptWorld, cli: Cli
) -> None:
    scan(cli)
    world.client("secretsmanager").create_secret(Name=NAME, SecretString="someone else's")
    fid = key_finding(world)
    rc, _out, err = cli(
        "adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME, "--reference"
    )
    assert rc == 2, err
    assert "already has a secret named" in err
    assert world.secret(NAME) == {"value": "someone else's"}
    assert rows(world, "SELECT id FROM secrets") == []
    (event,) = rows(world, "SELECT * FROM audit_events WHERE action = 'secret.adopt'")
    assert event["outcome"] == "refused" and event["subject"] == NAME
    assert "already has a secret named" in json.loads(event["detail"])["reason"]
    assert world.env_of("orders-0")["AWS_ACCESS_KEY_ID"] == world.key["access_key_id"]


def test_rotate_of_a_kind_without_rotator_is_refused_but_plain_adoption_works(
    world: AdoptWorld, cli: Cli
) -> None:
    scan(cli)
    fid = next(f["id"] for f in findings(world) if f["rule_id"].startswith("github"))
    rc, _out, err = cli(
        "adopt", str(fid), "--store", "aws-secretsmanager", "--name", "ci/github", "--rotate"
    )
    assert rc == 2, err
    assert "no rotator" in err and "without --rotate" in err
    assert world.secret_names() == []
    rc, out, err = cli(
        "adopt", str(fid), "--store", "aws-secretsmanager", "--name", "ci/github",
        "--format", "json",
    )  # fmt: skip
    assert rc == 0, err
    assert json.loads(out)["kind"] == "generic"
    assert world.secret("ci/github") == {"value": world.token}  # a plain string secret
    assert world.token not in out + err


def test_a_finding_already_adopted_is_refused(world: AdoptWorld, cli: Cli) -> None:
    scan(cli)
    fid = key_finding(world)
    assert cli("adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME)[0] == 0
    rc, _out, err = cli("adopt", str(fid), "--store", "aws-secretsmanager", "--name", "other")
    assert rc == 2 and f"is already the secret {NAME!r}" in err


def test_a_value_a_store_already_keeps_is_refused(world: AdoptWorld, cli: Cli) -> None:
    scan(cli)
    world.client("secretsmanager").create_secret(Name="app/aws", SecretString=json.dumps(world.key))
    rc, _out, err = cli("discover", "aws-secretsmanager", "--region", "us-east-1",
                        "--fingerprint-values")  # fmt: skip
    assert rc == 0, err
    fid = key_finding(world)
    rc, _out, err = cli("adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME)
    assert rc == 2, err
    assert "already" in err and "app/aws" in err and "keyward rotate" in err
    assert world.secret_names() == ["app/aws"]


def assert_nothing_applied(world: AdoptWorld) -> None:
    assert world.secret_names() == []
    assert rows(world, "SELECT id FROM secrets") == []
    assert rows(world, "SELECT id FROM dependents") == []
    assert [k for k, status in world.keys()] == [world.key["access_key_id"]]
    for fn in world.functions:
        try:
            env = world.env_of(fn)
        except Exception:
            continue  # the deleted one
        assert "KEYWARD_SECRET_ARN" not in env


def test_an_inventory_failure_after_the_store_write_names_what_exists_in_the_store(
    world: AdoptWorld, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyward.adopt import service
    from keyward.inventory.errors import DatabaseUnavailable

    scan(cli)
    fid = key_finding(world)

    def fail(*_a: Any, **_k: Any) -> None:
        raise DatabaseUnavailable("The inventory database at db.acme.internal is unreachable")

    monkeypatch.setattr(service, "record_adoption", fail)
    rc, _out, err = cli(
        "adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME, "--rotate",
        "--reference",
    )  # fmt: skip
    assert rc == 3, err
    (line,) = err.strip().splitlines()
    arn = world.client("secretsmanager").describe_secret(SecretId=NAME)["ARN"]
    assert f"was created in aws-secretsmanager as {arn}" in line
    assert "inventory could not record it (The inventory database" in line
    assert f"keyward inventory add {NAME}" in line
    # nothing else was changed: no function switched, no rotation, the leaked key untouched
    assert [k for k, _ in world.keys()] == [world.key["access_key_id"]]
    for fn in world.functions:
        assert world.env_of(fn)["AWS_ACCESS_KEY_ID"] == world.key["access_key_id"]
    assert world.key["secret_access_key"] not in err


def test_a_function_changed_during_the_switch_stops_it_and_says_which_were_switched(
    world: AdoptWorld, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyward.rotation.dependents.aws_lambda import LambdaEnvironmentDependent

    scan(cli)
    fid = key_finding(world, "orders-0")
    original = LambdaEnvironmentDependent.switch_to_reference
    calls: list[str] = []

    def racing(self: Any, target: Any, held: Any, reference: Any) -> bool:
        calls.append(target.resource)
        if len(calls) == 2:  # someone edits the second function meanwhile
            fn = target.resource.rsplit(":", 1)[1]
            env = world.env_of(fn)
            env["AWS_SECRET_ACCESS_KEY"] = "y" * 40
            world.set_env(fn, env)
        return bool(original(self, target, held, reference))

    monkeypatch.setattr(LambdaEnvironmentDependent, "switch_to_reference", racing)
    rc, _out, err = cli(
        "adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME, "--rotate",
        "--reference",
    )  # fmt: skip
    assert rc == 3, err
    (line,) = err.strip().splitlines()
    first, second = (c.rsplit(":", 1)[1] for c in calls[:2])
    assert f"switching {calls[1]} to a reference failed" in line
    assert f"functions switched: {calls[0]}" in line
    # the first one references the secret, the second is untouched, no rotation happened
    assert "KEYWARD_SECRET_ARN" in world.env_of(first)
    assert world.env_of(second)["AWS_ACCESS_KEY_ID"] == world.key["access_key_id"]
    assert "KEYWARD_SECRET_ARN" not in world.env_of(second)
    assert [k for k, _ in world.keys()] == [world.key["access_key_id"]]
    deps = rows(world, "SELECT target, variable, attributes FROM dependents")
    modes = {(d["target"], json.loads(d["attributes"]).get("mode", "value")) for d in deps}
    assert (calls[0], "reference") in modes and (calls[1], "value") in modes
    assert rows(world, "SELECT id FROM rotations") == []


def test_a_postgres_password_next_to_its_user_and_host_is_adopted_and_rotated(
    world: AdoptWorld, cli: Cli, postgres_url: str
) -> None:
    import uuid

    import psycopg
    from psycopg import sql

    role, old = f"kw_{uuid.uuid4().hex[:10]}", "Vd8qLw2ZxT5nPb7Rk3Hs"
    admin = psycopg.connect(postgres_url, autocommit=True)
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(old)))  # fmt: skip

    def verifier() -> str:
        row = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        return str(row.fetchone()[0])  # type: ignore[index]

    try:
        before = verifier()
        with world.config.open("a") as fh:
            fh.write(f'[rotation.rotators.postgres-password]\nadmin_url = "{postgres_url}"\n')
        fn_role = world.client("iam").get_role(RoleName="fn-role")["Role"]["Arn"]
        dbname = postgres_url.rsplit("/", 1)[1]
        env = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": role, "PGDATABASE": dbname,
               "PGPASSWORD": old, "SERVICE": "reports"}  # fmt: skip
        from tests.integration._rotation_world import _zip

        world.client("lambda").create_function(
            FunctionName="reports", Runtime="python3.12", Role=fn_role,
            Handler="handler.handler", Code={"ZipFile": _zip()}, Environment={"Variables": env},
        )  # fmt: skip
        scan(cli)
        fid = next(
            f["id"]
            for f in findings(world)
            if f["variable"] == "PGPASSWORD" and f["resource"].endswith(":function:reports")
        )
        rc, out, err = cli(
            "adopt", str(fid), "--store", "aws-secretsmanager", "--name", "reports/db",
            "--rotate", "--format", "json",
        )  # fmt: skip
        assert rc == 0, err
        doc = json.loads(out)
        assert doc["kind"] == "postgres-password"
        assert doc["fields"] == ["dbname", "host", "password", "port", "username"]
        assert doc["rotation"]["state"] in ("finished", "retiring"), doc["rotation"]
        current = world.secret("reports/db")
        assert current["username"] == role and current["password"] != old
        assert verifier() != before  # ALTER ROLE ... PASSWORD reached the server
        held = world.env_of("reports")
        assert held["PGPASSWORD"] == current["password"]  # the dependent was updated
        assert held["PGUSER"] == role and held["PGHOST"] == "127.0.0.1"
        bound = {(d["variable"], json.loads(d["attributes"]).get("field"))
                 for d in rows(world, "SELECT variable, attributes FROM dependents")}  # fmt: skip
        assert bound == {("PGPASSWORD", "password"), ("PGUSER", "username")}
        for value in (old, current["password"]):
            assert value not in out + err
            assert value not in table_dump(world)
    finally:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role + "_clone")))
        admin.close()


def test_a_lambda_token_adopted_into_vault_is_referenced_by_its_path(
    world: AdoptWorld, cli: Cli, openbao: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    import hvac

    monkeypatch.setenv("VAULT_ADDR", openbao.addr)
    monkeypatch.setenv("VAULT_TOKEN", openbao.token)
    for var in ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    scan(cli)
    fid = next(f["id"] for f in findings(world) if f["rule_id"].startswith("github"))
    name = f"adopt-{uuid.uuid4().hex[:8]}/github"
    rc, out, err = cli(
        "adopt", str(fid), "--store", "vault-kv", "--name", name, "--team", "ci", "--reference"
    )
    assert rc == 0, err
    assert "now loads it itself (KEYWARD_SECRET_PATH" in out
    env = world.env_of(TOKEN_FN)
    assert "GITHUB_TOKEN" not in env
    assert env["KEYWARD_SECRET_PATH"] == f"secret/{name}"
    assert env["KEYWARD_SECRET_VERSION"] == "1"
    bao = hvac.Client(url=openbao.addr, token=openbao.token)
    data = bao.secrets.kv.v2.read_secret_version(
        path=name, mount_point="secret", raise_on_deleted_version=True
    )["data"]
    assert data["data"] == {"value": world.token}
    assert data["metadata"]["custom_metadata"]["team"] == "ci"
    # Vault has no AWS account: the function's own is recorded on its dependent
    (dep,) = rows(world, "SELECT account, variable FROM dependents")
    assert dep == {"account": "123456789012", "variable": "KEYWARD_SECRET_PATH"}
    assert world.token not in out + err


def test_a_published_version_holding_the_value_is_named_not_made_a_dependent(
    world: AdoptWorld, cli: Cli
) -> None:
    version = world.client("lambda").publish_version(FunctionName="orders-0")["Version"]
    rc, _out, err = cli(
        "scan", "--aws-lambda", "--region", "us-east-1", "--all-versions", "--record"
    )
    assert rc == 1, err
    fid = key_finding(world, "orders-1:$LATEST")
    rc, _out, err = cli(
        "adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME, "--reference"
    )
    assert rc == 0, err
    assert f"function:orders-0:{version} is a published version: it keeps the value" in err
    targets = {d["target"] for d in rows(world, "SELECT target FROM dependents")}
    assert targets == {
        f"arn:aws:lambda:us-east-1:123456789012:function:{fn}" for fn in world.functions
    }
    assert "KEYWARD_SECRET_ARN" in world.env_of("orders-0")  # $LATEST switched


def test_a_failed_rotation_leaves_the_adoption_whole_and_says_so(
    world: AdoptWorld, cli: Cli
) -> None:
    scan(cli)
    fid = key_finding(world)
    world.client("iam").create_access_key(UserName="app")  # IAM allows two keys: no room
    rc, _out, err = cli(
        "adopt", str(fid), "--store", "aws-secretsmanager", "--name", NAME, "--rotate"
    )
    assert rc == 3, err  # a step after the store write failed
    (line,) = err.strip().splitlines()
    assert f"{NAME} was adopted (arn:aws:secretsmanager:" in line
    assert "but its rotation failed" in line and f"keyward rotate {NAME}" in line
    # adopted as it was: the leaked value still current in the store and in the functions
    assert world.secret(NAME) == world.key
    (secret,) = rows(world, "SELECT name FROM secrets")
    assert secret["name"] == NAME
    assert len(rows(world, "SELECT id FROM dependents")) == 2 * len(world.functions)
    for fn in world.functions:
        assert world.env_of(fn)["AWS_SECRET_ACCESS_KEY"] == world.key["secret_access_key"]
    assert world.key["secret_access_key"] not in err
