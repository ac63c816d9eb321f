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
    rc, shown, _ = cli("inventory", "show", SECRET)  # field names, no value
    assert rc == 0 and "secret_access_key" in shown and new["secret_access_key"] not in shown

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


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # recording is tested on both above
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


# ------------------------------------------------------------- discover aws-lambda
EAST, WEST = "us-east-1", "eu-west-1"


def _lambda_world(aws: Any) -> dict[str, Any]:
    """Secrets in Secrets Manager and SSM, and functions in two regions that hold them by
    value, by reference, through an alias, or not at all."""
    import json

    import boto3

    from tests.integration._rotation_world import _zip

    iam = boto3.client("iam", region_name=EAST)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.create_user(UserName="app")
    key = iam.create_access_key(UserName="app")["AccessKey"]
    pair = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    password = "pw-" + "Zq8" * 10
    sm = boto3.client("secretsmanager", region_name=EAST)
    db_arn = sm.create_secret(
        Name="prod/db", SecretString=json.dumps({"username": "app", "password": password})
    )["ARN"]
    sm.create_secret(Name="app/aws", SecretString=json.dumps(pair))
    boto3.client("ssm", region_name=EAST).put_parameter(
        Name="/app/token", Value="tok-" + "x9" * 12, Type="SecureString"
    )

    def function(region: str, name: str, env: dict[str, str], **kw: Any) -> str:
        lam = boto3.client("lambda", region_name=region)
        return str(
            lam.create_function(
                FunctionName=name, Runtime="python3.12", Role=role["Arn"],
                Handler="handler.handler", Code={"ZipFile": _zip()},
                Environment={"Variables": env}, **kw,
            )["FunctionArn"]
        )  # fmt: skip

    arns = {
        "pair": function(
            EAST,
            "pair",
            {
                "AWS_ACCESS_KEY_ID": pair["access_key_id"],
                "AWS_SECRET_ACCESS_KEY": pair["secret_access_key"],
                "MODE": "x",
            },
            Tags={"Environment": "Prod"},
        ),
        "refs": function(
            EAST,
            "refs",
            {
                "DB_ARN": db_arn,
                "DB_PARTIAL_ARN": db_arn[:-7],
                "DB_NAME": "prod/db",
                "DB_RESOLVE": "{{resolve:secretsmanager:prod/db:SecretString:password}}",
                "TOKEN_PARAM": "/app/token",
                "VAULT_PATH": "secret/data/apps/billing",
            },
            Tags={"stage": "Staging"},
        ),
        "plain": function(EAST, "plain", {"DB_PASSWORD": password, "OTHER": "nothing"}),
        "west": function(WEST, "west", {"PASSWORD": password}, Tags={"env": "dev"}),
        "typed": function(EAST, "typed", {"UNRELATED": "hello"}),
        "nothing": function(EAST, "nothing", {"A": "b"}),
    }
    # an alias bound to a published version that holds the password ($LATEST no longer does)
    lam = boto3.client("lambda", region_name=EAST)
    arns["aliased"] = function(EAST, "aliased", {"DB_PASSWORD": password})
    version = lam.publish_version(FunctionName="aliased")["Version"]
    lam.create_alias(FunctionName="aliased", Name="live", FunctionVersion=version)
    lam.update_function_configuration(
        FunctionName="aliased", Environment={"Variables": {"DB_PASSWORD": "changed-elsewhere"}}
    )
    # an alias whose version holds what $LATEST holds: the dependent names the alias
    west = boto3.client("lambda", region_name=WEST)
    version = west.publish_version(FunctionName="west")["Version"]
    west.create_alias(FunctionName="west", Name="live", FunctionVersion=version)
    return {"arns": arns, "pair": pair, "password": password, "db_arn": db_arn}


def _keys(changes: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {
        (c["secret"], c["function"], c["variable"], c["mode"], c["field"], c["alias"])
        for c in changes
    }


def test_discover_aws_lambda_records_value_and_reference_dependents_idempotently(
    aws: Any, cli: Cli, db_url: str
) -> None:
    import boto3

    w = _lambda_world(aws)
    cli.json("discover", "aws-secretsmanager", "--region", EAST, "--fingerprint-values")
    cli.json("discover", "aws-ssm", "--region", EAST)
    rc, _, err = cli("inventory", "add", "billing", "--store", "vault",
                     "--reference", "secret/apps/billing")  # fmt: skip
    assert rc == 0, err
    rc, _, err = cli("dependents", "add", "aws-sm/us-east-1/prod/db", "--target", "typed",
                     "--variable", "DB_PASSWORD", "--region", EAST)  # fmt: skip
    assert rc == 0, err
    db, aws_key, token = (
        "aws-sm/us-east-1/prod/db",
        "aws-sm/us-east-1/app/aws",
        ("aws-ssm/us-east-1/app/token"),
    )

    first = cli.json("discover", "aws-lambda", "--region", EAST, "--region", WEST)
    assert first["functions"] == 7 and first["regions"] == [EAST, WEST]
    assert _keys(first["added"]) == {
        (aws_key, "pair", "AWS_ACCESS_KEY_ID", "value", "access_key_id", None),
        (aws_key, "pair", "AWS_SECRET_ACCESS_KEY", "value", "secret_access_key", None),
        (db, "refs", "DB_ARN", "reference", None, None),
        (db, "refs", "DB_PARTIAL_ARN", "reference", None, None),
        (db, "refs", "DB_NAME", "reference", None, None),
        (db, "refs", "DB_RESOLVE", "reference", "password", None),
        (token, "refs", "TOKEN_PARAM", "reference", None, None),
        ("billing", "refs", "VAULT_PATH", "reference", None, None),
        (db, "plain", "DB_PASSWORD", "value", "password", None),
        (db, "west", "PASSWORD", "value", "password", "live"),
        (db, "aliased", "DB_PASSWORD", "value", "password", "live"),
    }
    envs = {c["function"]: c["environment"] for c in first["added"]}
    assert (envs["pair"], envs["refs"], envs["west"], envs["plain"]) == (
        "prod", "staging", "dev", None,
    )  # fmt: skip
    (manual,) = first["kept"]  # typed by hand, not seen (its variable holds nothing): kept
    assert (manual["function"], manual["origin"], manual["seen"]) == ("typed", "manual", False)
    assert first["missing"] == []
    west = next(c for c in first["added"] if c["function"] == "west")
    assert west["region"] == WEST and west["target"] == w["arns"]["west"]

    listed = cli.json("dependents", "list")
    assert len(listed) == 12
    assert {d["origin"] for d in listed} == {"discovered", "manual"}
    assert all(d["status"] == "active" for d in listed)
    pair_rows = [d for d in listed if d["secret"] == aws_key]
    assert {d["attributes"]["field"] for d in pair_rows} == {"access_key_id", "secret_access_key"}
    assert all(d["last_seen_at"] for d in listed if d["origin"] == "discovered")

    # a second run changes nothing
    again = cli.json("discover", "aws-lambda", "--region", EAST, "--region", WEST)
    assert again["added"] == [] and again["missing"] == []
    assert len(again["kept"]) == 12
    assert len(cli.json("dependents", "list")) == 12

    # a function gone, a variable gone: missing (never deleted); the manual one is kept
    lam = boto3.client("lambda", region_name=EAST)
    lam.delete_function(FunctionName="plain")
    lam.update_function_configuration(
        FunctionName="refs", Environment={"Variables": {"DB_ARN": w["db_arn"]}}
    )
    rc, out, err = cli("discover", "aws-lambda", "--region", EAST, "--region", WEST)
    assert rc == 0, err
    assert "aws-lambda: 6 functions in 2 regions: 0 added, 6 kept, 6 missing" in out
    assert "[manual]" in out
    third = cli.json("discover", "aws-lambda", "--region", EAST, "--region", WEST)
    assert third["missing"] == []  # marked once
    listed = cli.json("dependents", "list")
    assert len(listed) == 12
    gone = {(d["target"].rsplit(":", 1)[-1], d["variable"]) for d in listed
            if d["status"] == "missing"}  # fmt: skip
    assert gone == {
        ("plain", "DB_PASSWORD"), ("refs", "DB_PARTIAL_ARN"), ("refs", "DB_NAME"),
        ("refs", "DB_RESOLVE"), ("refs", "TOKEN_PARAM"), ("refs", "VAULT_PATH"),
    }  # fmt: skip
    # only the regions listed may go missing: a run over the west alone keeps the east
    only_west = cli.json("discover", "aws-lambda", "--region", WEST)
    assert only_west["missing"] == [] and len(only_west["kept"]) == 1

    # it comes back: active again
    lam.update_function_configuration(
        FunctionName="refs",
        Environment={"Variables": {"DB_ARN": w["db_arn"], "DB_NAME": "prod/db"}},
    )
    back = cli.json("discover", "aws-lambda", "--region", EAST)
    assert [(c["variable"], c["reactivated"]) for c in back["added"]] == [("DB_NAME", True)]

    # no value anywhere: output, database
    dump = _db_dump(db_url)
    for value in (w["password"], w["pair"]["secret_access_key"], "tok-" + "x9" * 12):
        assert value not in dump
        assert value not in str(first) + str(again) + out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # recording is tested on both above
def test_scan_aws_lambda_record_discovers_the_dependents_too(aws: Any, cli: Cli) -> None:
    w = _lambda_world(aws)
    cli.json("discover", "aws-secretsmanager", "--region", EAST, "--fingerprint-values")
    rc, out, err = cli("scan", "--aws-lambda", "--region", EAST, "--engine", "re", "--record",
                       "--format", "json", "--exit-zero")  # fmt: skip
    assert rc == 0, err
    assert "aws-lambda: 6 functions in 1 region:" in err
    assert w["password"] not in out + err and w["pair"]["secret_access_key"] not in out + err
    listed = cli.json("dependents", "list")
    assert {(d["target"].rsplit(":", 1)[-1], d["variable"]) for d in listed} >= {
        ("pair", "AWS_ACCESS_KEY_ID"), ("pair", "AWS_SECRET_ACCESS_KEY"),
        ("plain", "DB_PASSWORD"), ("refs", "DB_ARN"), ("aliased", "DB_PASSWORD"),
    }  # fmt: skip
    # the findings in the functions link to the same secrets
    findings = cli.json("findings", "list")
    assert "aws-sm/us-east-1/app/aws" in {f["secret"] for f in findings}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # recording is tested on both above
def test_discovered_dependents_are_rotated_and_a_second_discovery_follows_the_new_key(
    world: World, cli: Cli
) -> None:
    import json

    for dep in cli.json("dependents", "list"):  # forget what was typed by hand
        assert cli("dependents", "remove", str(dep["id"]))[0] == 0
    rc, _, err = cli("inventory", "update", SECRET, "--value-stdin", stdin=json.dumps(world.old))
    assert rc == 0, err
    found = cli.json("discover", "aws-lambda")
    assert {(c["function"], c["variable"], c["field"]) for c in found["added"]} == {
        (fn, var, fld)
        for fn in ("svc-00", "svc-01")
        for var, fld in (("AWS_ACCESS_KEY_ID", "access_key_id"),
                         ("AWS_SECRET_ACCESS_KEY", "secret_access_key"))
    }  # fmt: skip
    rc, _, err = cli("rotate", SECRET)
    assert rc == 0, err
    world.assert_consistent()  # every function holds the new key
    again = cli.json("discover", "aws-lambda")  # matched by the fields rotation recorded
    assert again["added"] == [] and again["missing"] == [] and len(again["kept"]) == 4
    stages = [v["stage"] for v in cli.json("inventory", "show", SECRET)["versions"]]
    assert stages.count("current") == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # recording is tested on both above
def test_rotation_updates_value_dependents_and_bumps_reference_dependents_it_discovered(
    aws: Any, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from tests.integration._rotation_world import _zip

    config = tmp_path / "keyward.toml"
    config.write_text('[rotation]\ngrace_period = "0s"\n[rotation.dependents.aws-lambda]\n'
                      "wait_delay = 1\n")  # fmt: skip
    monkeypatch.setenv("KEYWARD_CONFIG", str(config))
    old = "sig-" + "Q7" * 20
    arn = boto3.client("secretsmanager", region_name=EAST).create_secret(
        Name="app/signing", SecretString=old
    )["ARN"]
    role = boto3.client("iam", region_name=EAST).create_role(
        RoleName="fn", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=EAST)
    for name, env in (("holder", {"SIGNING_KEY": old}), ("reader", {"SIGNING_ARN": arn})):
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=role,
                            Handler="handler.handler", Code={"ZipFile": _zip()},
                            Environment={"Variables": env})  # fmt: skip
    version = lam.publish_version(FunctionName="holder")["Version"]
    lam.create_alias(FunctionName="holder", Name="live", FunctionVersion=version)
    cli.json("discover", "aws-secretsmanager", "--region", EAST, "--fingerprint-values")
    secret = "aws-sm/us-east-1/app/signing"
    assert cli("inventory", "update", secret, "--kind", "random")[0] == 0
    found = cli.json("discover", "aws-lambda", "--region", EAST)
    assert _keys(found["added"]) == {
        (secret, "holder", "SIGNING_KEY", "value", "value", "live"),
        (secret, "reader", "SIGNING_ARN", "reference", None, None),
    }

    rc, out, err = cli("rotate", secret)
    assert rc == 0, err
    current = boto3.client("secretsmanager", region_name=EAST).get_secret_value(
        SecretId=arn, VersionStage="AWSCURRENT"
    )
    new = current["SecretString"]
    assert new != old

    def env(name: str, qualifier: str | None = None) -> dict[str, str]:
        kw = {"Qualifier": qualifier} if qualifier else {}
        conf = lam.get_function_configuration(FunctionName=name, **kw)
        return dict(conf["Environment"]["Variables"])

    assert env("holder")["SIGNING_KEY"] == new
    assert env("holder", "live")["SIGNING_KEY"] == new  # a version published, the alias moved
    assert env("reader") == {"SIGNING_ARN": arn, "KEYWARD_SECRET_VERSION": current["VersionId"]}
    assert old not in out + err and new not in out + err


def test_a_region_not_listed_or_a_function_partly_read_marks_nothing_missing(
    inventory: Any,
) -> None:
    from keyward.inventory.dependents import record_dependents
    from keyward.inventory.discovery.aws_lambda import (
        FunctionListing,
        ObservedFunction,
        ObservedVariable,
    )

    acct, arn = "111111111111", "arn:aws:lambda:eu-west-1:111111111111:function:api"
    inventory.add_secret("db", "generic", fingerprint="f0", fields={"password": "fp-pw"})
    held = ObservedFunction(arn, "api", WEST, acct, variables=(ObservedVariable("PW", "fp-pw"),))
    first = record_dependents(inventory.db, [FunctionListing(WEST, acct, functions=[held])])
    assert [(c.variable, c.field) for c in first.added] == [("PW", "password")]

    def status() -> str:
        (dep,) = inventory.list_dependents("db")
        return dep.status

    # the listing was denied: nothing there may go missing
    denied = FunctionListing(WEST, acct, listed=False, warnings=["Lambda denied ListFunctions"])
    assert record_dependents(inventory.db, [denied]).missing == ()
    # the function was listed but its aliases could not be read: not missing either
    partly = ObservedFunction(arn, "api", WEST, acct, complete=False)
    assert record_dependents(inventory.db, [FunctionListing(WEST, acct, functions=[partly])]
                             ).missing == ()  # fmt: skip
    # another account's listing of the same region says nothing about this one
    other = FunctionListing(WEST, "222222222222", home=False)
    assert record_dependents(inventory.db, [other]).missing == ()
    assert status() == "active"
    gone = record_dependents(inventory.db, [FunctionListing(WEST, acct)])
    assert [c.variable for c in gone.missing] == ["PW"] and status() == "missing"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the lookups are SQL: both above
def test_only_secret_fields_bind_functions_findings_and_copies_of_a_database_secret(
    aws: Any, cli: Cli, db_url: str, tmp_path: Path
) -> None:
    """A PostgreSQL secret as Secrets Manager's rotation templates keep it ({engine, host,
    username, password, dbname, port}): functions that merely hold its host, port or database
    name are no dependents, a finding of its host leaks nothing, another team's secret on the
    same host is no copy; the function holding the password is, with its DB_USER (an
    alternating rotation switches the login), and a DB_USER alone binds nothing."""
    import json

    import boto3

    from keyward.cli.common import fingerprint_key
    from keyward.core.config import load_config
    from keyward.core.redaction import Fingerprinter
    from tests.integration._rotation_world import _zip

    host, password = "orders-db.cluster-c9x2.us-east-1.rds.amazonaws.com", "pw-Lk4vQ9zR2xW7mN3p"
    pg = {"engine": "postgres", "host": host, "username": "orders_app", "password": password,
          "dbname": "orders", "port": "5432"}  # fmt: skip
    sm = boto3.client("secretsmanager", region_name=EAST)
    sm.create_secret(Name="prod/orders", SecretString=json.dumps(pg),
                     Tags=[{"Key": "owner", "Value": "alice"}])  # fmt: skip
    reports = {**pg, "username": "reports_ro", "password": "pw-" + "Rt7" * 9}
    sm.create_secret(Name="prod/reports", SecretString=json.dumps(reports),
                     Tags=[{"Key": "owner", "Value": "bob"}])  # fmt: skip
    iam = boto3.client("iam", region_name=EAST)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    lam = boto3.client("lambda", region_name=EAST)
    for name, env in {
        "web": {"PORT": "5432", "DB_HOST": host, "DB_NAME": "orders", "DEBUG": "true"},
        "etl": {"PGHOST": host, "PGPORT": "5432", "PGDATABASE": "orders", "ENGINE": "postgres"},
        "audit": {"DB_USER": "orders_app", "DB_HOST": host},  # the login alone: not the secret
        "app": {"DB_PASSWORD": password, "DB_USER": "orders_app", "DB_HOST": host,
                "DB_PORT": "5432"},
    }.items():  # fmt: skip
        lam.create_function(
            FunctionName=name, Runtime="python3.12", Role=role["Arn"],
            Handler="handler.handler", Code={"ZipFile": _zip()},
            Environment={"Variables": env},
        )  # fmt: skip
    cli.json("discover", "aws-secretsmanager", "--region", EAST, "--fingerprint-values")
    orders = "aws-sm/us-east-1/prod/orders"
    shown = cli.json("inventory", "show", orders)["versions"]
    # every field is fingerprinted (the password alone binds by its value)
    assert set(shown[0]["fields"]) == set(pg)

    found = cli.json("discover", "aws-lambda", "--region", EAST)
    assert _keys(found["added"]) == {
        (orders, "app", "DB_PASSWORD", "value", "password", None),
        (orders, "app", "DB_USER", "value", "username", None),
    }
    assert {d["variable"] for d in cli.json("dependents", "list")} == {"DB_PASSWORD", "DB_USER"}

    # a finding whose value is the host: no link to the secret, nothing leaked
    leak = tmp_path / "leak"
    leak.mkdir()
    (leak / "settings.py").write_text(f'db_password = "{host}"\n')
    low = ("--engine", "re", "--record", "--exit-zero", "--min-confidence", "low")
    rc, _, err = cli("scan", str(leak), *low)
    assert rc == 0, err
    (finding,) = cli.json("findings", "list")
    fp = Fingerprinter(fingerprint_key(load_config())).fingerprint
    assert finding["fingerprint"] == fp(host)  # the host, as the secret's field has it
    assert finding["secret"] is None
    # nor when a secret on that host is discovered after the scan found it
    sm.create_secret(
        Name="prod/orders-replica",
        SecretString=json.dumps({**reports, "password": "pw-Rq8vW2zK5xN7mL4t"}),
    )
    cli.json("discover", "aws-secretsmanager", "--region", EAST, "--fingerprint-values")
    (finding,) = cli.json("findings", "list")
    assert finding["secret"] is None
    # ...and the password found the same way is the secret's (the check above can fail)
    (leak / "settings.py").write_text(f'db_password = "{password}"\n')
    rc, _, err = cli("scan", str(leak), *low)
    assert rc == 0, err
    linked = [f for f in cli.json("findings", "list") if f["fingerprint"] == fp(password)]
    assert [f["secret"] for f in linked] == [orders]

    # posture: two teams' secrets on one host, with one engine, port and database, are no
    # copies of each other (their passwords differ); only the password found leaks prod/orders
    listed = cli.json("inventory", "list", "--breach", "duplicated,reused,leaked")
    assert {s["name"]: s["breaches"] for s in listed} == {orders: ["leaked", "no-policy"]}
    text = json.dumps([found, listed, shown]) + _db_dump(db_url)
    assert password not in text and reports["password"] not in text
