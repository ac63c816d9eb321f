"""A world to close the loop in: find -> own -> rotate -> update dependents -> retire.

On the moto server, with credential checking on (and inactive keys refused):

* keyward runs as the IAM user ``keyward`` (allowed everything);
* the IAM user ``app`` has one access key, kept in Secrets Manager (us-east-1) as the JSON pair
  ``{"access_key_id": ..., "secret_access_key": ...}`` under the name ``app/aws``, tagged
  ``keyward:kind = aws-iam-access-key`` and ``owner = alice`` (so discovery imports it as a
  rotatable IAM key);
* 30 Lambda functions over two regions (us-east-1 and eu-west-1):

  - ``pay-00`` .. ``pay-09`` hold the key pair hardcoded (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``): dependents *by value*;
  - ``ref-00`` .. ``ref-09`` name the secret: by ARN (both regions), by name (us-east-1 only:
    a name is resolved in the function's own region), or as a CloudFormation dynamic
    reference ``{{resolve:secretsmanager:...}}``: dependents *by reference*;
  - ``misc-00`` .. ``misc-09`` are unrelated, some with decoys that look like the secret's
    reference but are not (another secret's name that starts with ``app/aws``, an ARN of a
    secret that does not exist).

The inventory is empty until the test runs ``keyward discover``. Nothing here uses keyward: the
world is what a team has before it installs keyward.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]

ACCOUNT = "123456789012"  # moto's default account
HOME = "us-east-1"
OTHER = "eu-west-1"
REGIONS = (HOME, OTHER)
SM_NAME = "app/aws"
USER = "app"
GRACE = "7d"  # a normal rotation keeps the old key this long; a leaked one is revoked at once
FINGERPRINT_KEY = "6b" * 32  # the installation's key, fixed so the test can fingerprint too

VALUE = tuple(f"pay-{i:02d}" for i in range(10))
REFERENCE = tuple(f"ref-{i:02d}" for i in range(10))
UNRELATED = tuple(f"misc-{i:02d}" for i in range(10))


def region_of(fn: str) -> str:
    """Even-numbered functions live in us-east-1, odd ones in eu-west-1."""
    return HOME if int(fn[-2:]) % 2 == 0 else OTHER


def code_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    return buf.getvalue()


def _reference_env(fn: str, arn: str) -> dict[str, str]:
    """How ``ref-NN`` names the secret: ARN, name (in its own region only), dynamic reference."""
    i = int(fn[-2:])
    if region_of(fn) == HOME:
        forms = (
            {"CREDENTIALS_SECRET": SM_NAME},
            {"CREDENTIALS_SECRET_ARN": arn},
            {"AWS_KEY_SECRET_ID": SM_NAME},
            {"CREDENTIALS_SECRET_ARN": arn},
            {"AWS_KEYS": f"{{{{resolve:secretsmanager:{SM_NAME}:SecretString:access_key_id}}}}"},
        )
    else:
        forms = (
            {"CREDENTIALS_SECRET_ARN": arn},
            {"SECRET_ARN": arn},
            {"AWS_KEYS": f"{{{{resolve:secretsmanager:{arn}:SecretString}}}}"},
            {"CREDENTIALS_SECRET_ARN": arn},
            {"SECRET_ARN": arn},
        )
    return {**forms[i // 2], "SERVICE": fn}


def _unrelated_env(fn: str) -> dict[str, str]:
    i = int(fn[-2:])
    decoys = (
        {"STAGE": "prod"},
        {"OTHER_SECRET_ID": "app/aws-staging"},  # another secret whose name starts like ours
        {"LOG_LEVEL": "info"},
        {"OTHER_SECRET_ARN": f"arn:aws:secretsmanager:{HOME}:{ACCOUNT}:secret:app/aws-stg-AbCdEf"},
        {"TABLE": "orders"},
    )
    return {**decoys[i % len(decoys)], "SERVICE": fn}


def as_json(value: Any) -> Any:
    """A JSON column as read back: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def function_name(target: str) -> str:
    """A dependent's target (a function ARN, possibly with an alias, or a bare name)."""
    found = re.search(r"function:([^:]+)", target)
    return found.group(1) if found else target


@dataclass
class Steps:
    """A chain's steps over one world, each run once, in order, when a test first needs it;
    every output kept, to prove no value leaks."""

    world: Any
    done: dict[str, Any] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)

    def cli(self, *args: str) -> tuple[int, str, str]:
        rc, out, err = self.world.cli(*args)
        self.printed.append(out + err)
        return rc, out, err

    def _once(self, step: str, run: Any) -> Any:
        """``run()`` the first time; later the same result, or the same failure, at once."""
        if step not in self.done:
            try:
                self.done[step] = run()
            except BaseException as exc:
                self.done[step] = exc
                raise
        got = self.done[step]
        if isinstance(got, BaseException):
            pytest.fail(f"the step {step!r} failed in an earlier test: {got}"[:2000])
        return got


def run_cli(env: Mapping[str, str], *args: str) -> tuple[int, str, str]:
    """``keyward ARGS`` in this process with ``env`` added; (exit code, stdout, stderr)."""
    from keyward.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(list(args))
            rc = 0
        except SystemExit as exc:
            rc = int(exc.code or 0)
    return rc, out.getvalue(), err.getvalue()


def run_process(env: Mapping[str, str], *args: str) -> subprocess.Popen[str]:
    """``python -m keyward ARGS`` in a process of its own (a daemon, as it is deployed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "keyward", *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sql(db_url: str, query: str, **params: Any) -> list[dict[str, Any]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(query), params)]
    finally:
        engine.dispose()


@dataclass
class LoopWorld:
    endpoint: str
    admin: dict[str, str]  # keyward's own key
    old: dict[str, str]  # the key pair the chain starts with
    arn: str  # of the Secrets Manager secret ("" when the key is kept nowhere)
    db_url: str
    config: Path
    env: dict[str, str]  # what keyward runs with (apply with apply_env)
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ clients
    def client(self, service: str, region: str = HOME) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = boto3.client(
                service,
                region_name=region,
                endpoint_url=self.endpoint,
                aws_access_key_id=self.admin["access_key_id"],
                aws_secret_access_key=self.admin["secret_access_key"],
            )
        return self._clients[key]

    # ------------------------------------------------------------------ reading
    def current(self) -> dict[str, str]:
        doc = self.client("secretsmanager").get_secret_value(
            SecretId=SM_NAME, VersionStage="AWSCURRENT"
        )
        return dict(json.loads(doc["SecretString"]))

    def stages(self) -> dict[str, list[str]]:
        meta = self.client("secretsmanager").describe_secret(SecretId=SM_NAME)
        return dict(meta.get("VersionIdsToStages") or {})

    def current_version_id(self) -> str:
        (vid,) = [v for v, s in self.stages().items() if "AWSCURRENT" in s]
        return vid

    def keys(self) -> list[tuple[str, str]]:
        rows = self.client("iam").list_access_keys(UserName=USER)["AccessKeyMetadata"]
        return sorted((k["AccessKeyId"], k["Status"]) for k in rows)

    def env_of(self, fn: str) -> dict[str, str]:
        cfg = self.client("lambda", region_of(fn)).get_function_configuration(FunctionName=fn)
        return dict(cfg.get("Environment", {}).get("Variables", {}))

    def function_arn(self, fn: str) -> str:
        return f"arn:aws:lambda:{region_of(fn)}:{ACCOUNT}:function:{fn}"

    def works(self, key: Mapping[str, str]) -> bool:
        """STS accepts the key (moto answers an auth error code for a refused one)."""
        from botocore.exceptions import ClientError

        sts = boto3.client(
            "sts",
            region_name=HOME,
            endpoint_url=self.endpoint,
            aws_access_key_id=key["access_key_id"],
            aws_secret_access_key=key["secret_access_key"],
        )
        try:
            sts.get_caller_identity()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied"):
                return False
            raise
        return True

    def cli(self, *args: str) -> tuple[int, str, str]:
        return run_cli(self.env, *args)

    def sql(self, query: str, **params: Any) -> list[dict[str, Any]]:
        return sql(self.db_url, query, **params)

    def fingerprint(self, value: str) -> str:
        from keyward.core.redaction import Fingerprinter

        return Fingerprinter(bytes.fromhex(FINGERPRINT_KEY)).fingerprint(value)

    def apply_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            monkeypatch.delenv(var, raising=False)


def _admin_client(endpoint: str, service: str, region: str = HOME) -> Any:
    """A client while moto checks no credentials (building the world)."""
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _create_functions(endpoint: str, role: str, envs: Mapping[str, dict[str, str]]) -> None:
    """Every function, a region's functions in parallel (moto's server is threaded)."""
    code = code_zip()
    clients = {r: _admin_client(endpoint, "lambda", r) for r in REGIONS}

    def create(fn: str) -> None:
        clients[region_of(fn)].create_function(
            FunctionName=fn,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": code},
            Environment={"Variables": envs[fn]},
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, envs))


def build_loop_world(
    endpoint: str,
    db_url: str,
    tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    n: int = 10,
    stored: bool = True,
    extra_config: str = "",
) -> LoopWorld:
    """The world above on a (reset) moto server, with ``n`` functions of each sort; credential
    checking is switched on by the caller (``moto.set_auth(True)``) once it returns.

    ``stored=False``: the key is kept nowhere, only hardcoded (what ``keyward adopt`` is for);
    then there is no secret to name and no function references one."""
    from tests.integration._moto_patches import fix_get_request_signatures, reject_inactive_keys

    iam = _admin_client(endpoint, "iam")
    iam.create_user(UserName="keyward")
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                      "Resource": "*"}]}  # fmt: skip
    iam.put_user_policy(UserName="keyward", PolicyName="all", PolicyDocument=json.dumps(allow))
    a = iam.create_access_key(UserName="keyward")["AccessKey"]
    admin = {"access_key_id": a["AccessKeyId"], "secret_access_key": a["SecretAccessKey"]}
    iam.create_user(UserName=USER, Tags=[{"Key": "owner", "Value": "alice"}])
    k = iam.create_access_key(UserName=USER)["AccessKey"]
    old = {"access_key_id": k["AccessKeyId"], "secret_access_key": k["SecretAccessKey"]}
    arn = ""
    if stored:
        arn = _admin_client(endpoint, "secretsmanager").create_secret(
            Name=SM_NAME,
            SecretString=json.dumps(old),
            Tags=[
                {"Key": "keyward:kind", "Value": "aws-iam-access-key"},
                {"Key": "owner", "Value": "alice"},
            ],
        )["ARN"]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(trust))
    envs: dict[str, dict[str, str]] = {}
    for fn in VALUE[:n]:
        envs[fn] = {
            "AWS_ACCESS_KEY_ID": old["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": old["secret_access_key"],
            "SERVICE": fn,
        }
    if stored:
        envs |= {fn: _reference_env(fn, arn) for fn in REFERENCE[:n]}
    envs |= {fn: _unrelated_env(fn) for fn in UNRELATED[:n]}
    _create_functions(endpoint, role["Role"]["Arn"], envs)

    config = tmp / "keyward.toml"
    config.write_text(
        f'[rotation]\ngrace_period = "{GRACE}"\nlease_ttl = "60s"\n'
        "[rotation.rotators.aws-iam-access-key]\ntest_delay = 0\ntest_attempts = 2\n"
        "[rotation.dependents.aws-lambda]\nwait_delay = 1\n"
        # no configuration findings (environments under AWS's own key): only secrets
        "[aws_lambda]\ncheck_kms = false\n" + extra_config
    )
    env = {
        "KEYWARD_DATABASE_URL": db_url,
        "KEYWARD_CONFIG": str(config),
        "KEYWARD_ACTOR": "tester",
        "KEYWARD_FINGERPRINT_KEY": FINGERPRINT_KEY,
        # the data directory is the world's; the cache (compiled rules) stays the session's
        # (tests/conftest.py): building it is most of a first scan's time
        "KEYWARD_DATA_DIR": str(tmp / "data"),
        "AWS_ACCESS_KEY_ID": admin["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": admin["secret_access_key"],
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": HOME,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    fix_get_request_signatures(monkeypatch)
    reject_inactive_keys(monkeypatch)
    return LoopWorld(endpoint, admin, old, str(arn), db_url, config, env)


def sqlite_copy(template: Path, tmp: Path) -> str:
    """A migrated SQLite inventory (a copy of the session's template)."""
    db = tmp / "inventory.db"
    shutil.copyfile(template, db)
    return f"sqlite:///{db}"


@pytest.fixture(scope="module")
def loop_world(
    moto_server: Any, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoopWorld]:
    """One world per module (the moto server reset first, credential checking on)."""
    moto_server.reset()
    tmp = tmp_path_factory.mktemp("loop")
    with pytest.MonkeyPatch.context() as mp:
        world = build_loop_world(moto_server.endpoint, sqlite_copy(sqlite_template, tmp), tmp, mp)
        moto_server.set_auth(True)
        try:
            yield world
        finally:
            moto_server.set_auth(False)
            moto_server.reset()


# ------------------------------------------------------------------ Vault + PostgreSQL
# in Vault KV v2 under the mount "secret", below a folder of this run's own: the OpenBao server
# is the test session's, other tests' secrets stay in it, and discovery reads only this folder
PG_FOLDER = f"loop-{uuid.uuid4().hex[:8]}"
PG_PATH = f"{PG_FOLDER}/pg"
PG_VALUE = ("orders-api", "billing-api", "reports-api")  # DB_PASSWORD hardcoded
PG_REFERENCE = ("search-api", "mailer-api")  # name the Vault path
PG_UNRELATED = ("static-site",)


@contextlib.contextmanager
def migrated_postgres_database(admin_url: str) -> Iterator[str]:
    """A migrated inventory database of its own on the shared PostgreSQL server."""
    import psycopg

    from keyward.inventory.db import connect, normalize_url
    from keyward.inventory.migrate import upgrade_to

    name = f"keyward_loop_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = normalize_url(f"{admin_url.rsplit('/', 1)[0]}/{name}")
    try:
        db = connect(url)
        upgrade_to(db)
        db.close()
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class VaultPgWorld:
    """A PostgreSQL login's password kept in Vault KV (OpenBao), hardcoded in three Lambda
    functions (with the user name) and in a project's ``.env``, named by path in two more
    functions. Rotated with the alternating strategy: the new value is another login
    (``<user>_clone``), so the user name changes too and the old login is retired."""

    endpoint: str
    bao: Any  # tests.conftest.Bao
    pg: Any  # tests.integration._scram_postgres.ScramPostgres
    old: dict[str, str]
    project: Path  # holds .env with the password in a connection URL
    db_url: str
    env: dict[str, str]
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = _admin_client(self.endpoint, service)
        return self._clients[service]

    def kv(self) -> Any:
        import hvac

        return hvac.Client(url=self.bao.addr, token=self.bao.token).secrets.kv.v2

    def current(self) -> dict[str, str]:
        got = self.kv().read_secret_version(
            path=PG_PATH, mount_point="secret", raise_on_deleted_version=True
        )
        return dict(got["data"]["data"])

    def current_version(self) -> int:
        meta = self.kv().read_secret_metadata(path=PG_PATH, mount_point="secret")
        return int(meta["data"]["current_version"])

    def env_of(self, fn: str) -> dict[str, str]:
        cfg = self.client("lambda").get_function_configuration(FunctionName=fn)
        return dict(cfg.get("Environment", {}).get("Variables", {}))

    def cli(self, *args: str) -> tuple[int, str, str]:
        return run_cli(self.env, *args)

    def sql(self, query: str, **params: Any) -> list[dict[str, Any]]:
        return sql(self.db_url, query, **params)

    def fingerprint(self, value: str) -> str:
        from keyward.core.redaction import Fingerprinter

        return Fingerprinter(bytes.fromhex(FINGERPRINT_KEY)).fingerprint(value)


def build_vault_pg_world(endpoint: str, bao: Any, pg: Any, db_url: str, tmp: Path) -> VaultPgWorld:
    import secrets as _secrets

    import hvac

    password = "Pg-" + _secrets.token_urlsafe(18)
    user = pg.role(password)
    old = {"username": user, "password": password, "host": "127.0.0.1",
           "port": str(pg.port), "dbname": "postgres"}  # fmt: skip
    kv = hvac.Client(url=bao.addr, token=bao.token).secrets.kv.v2
    kv.create_or_update_secret(path=PG_PATH, secret=old, mount_point="secret")
    kv.update_metadata(
        path=PG_PATH,
        mount_point="secret",
        custom_metadata={"keyward:kind": "postgres-password", "owner": "bob"},
    )
    iam = _admin_client(endpoint, "iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
    role = iam.create_role(RoleName="pg-fn-role", AssumeRolePolicyDocument=json.dumps(trust))
    envs: dict[str, dict[str, str]] = {}
    for fn in PG_VALUE:
        envs[fn] = {"DB_USER": user, "DB_PASSWORD": password, "SERVICE": fn}
    envs[PG_REFERENCE[0]] = {"DB_SECRET_PATH": f"secret/{PG_PATH}", "SERVICE": PG_REFERENCE[0]}
    envs[PG_REFERENCE[1]] = {"DB_SECRET": f"secret/data/{PG_PATH}", "SERVICE": PG_REFERENCE[1]}
    envs[PG_UNRELATED[0]] = {"DB_SECRET": f"secret/{PG_PATH}-replica", "SERVICE": PG_UNRELATED[0]}
    code = code_zip()
    lam = _admin_client(endpoint, "lambda")
    for fn, variables in envs.items():
        lam.create_function(
            FunctionName=fn, Runtime="python3.12", Role=role["Role"]["Arn"],
            Handler="handler.handler", Code={"ZipFile": code},
            Environment={"Variables": variables},
        )  # fmt: skip
    project = tmp / "project"
    project.mkdir()
    (project / ".env").write_text(
        f"DATABASE_URL=postgresql://{user}:{password}@127.0.0.1:{pg.port}/postgres\n"
        "LOG_LEVEL=info\n"
    )
    config = tmp / "keyward.toml"
    config.write_text(
        f'[rotation]\ngrace_period = "{GRACE}"\nlease_ttl = "60s"\n'
        "[rotation.dependents.aws-lambda]\nwait_delay = 1\n[aws_lambda]\ncheck_kms = false\n"
        "[rotation.rotators.postgres-password]\n"
        f'admin_url = "{pg.admin_url}"\nstrategy = "alternating"\n'
    )
    env = {
        "KEYWARD_DATABASE_URL": db_url,
        "KEYWARD_CONFIG": str(config),
        "KEYWARD_ACTOR": "tester",
        "KEYWARD_FINGERPRINT_KEY": FINGERPRINT_KEY,
        "KEYWARD_DATA_DIR": str(tmp / "data"),
        "VAULT_ADDR": bao.addr,
        "VAULT_TOKEN": bao.token,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": HOME,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    return VaultPgWorld(endpoint, bao, pg, old, project, db_url, env)
