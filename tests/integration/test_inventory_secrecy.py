"""No raw secret value reaches the inventory: plant values every way keyward can record them,
then search the SQLite file (and its WAL) and a pg_dump of the PostgreSQL database."""

from __future__ import annotations

import random
import string
import subprocess
import uuid
import zlib
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest
from _inventory_db import *  # noqa: F403
from _inventory_db import Cli
from conftest import Bao, Moto
from sqlalchemy.engine import make_url

from keyward.scan.validators import base62

pytestmark = pytest.mark.integration


def _token(rng: random.Random) -> str:
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + base62(zlib.crc32(body.encode("ascii")), 6)


def _database_bytes(db_url: str) -> bytes:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        return b"".join(
            p.read_bytes() for p in path.parent.glob(path.name + "*") if p.suffix != ".lock"
        )
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(
        ["pg_dump", "--no-owner", "--dbname", libpq], capture_output=True, check=True
    ).stdout


def test_no_planted_value_is_stored_anywhere(
    aws: Moto,
    openbao: Bao,
    cli: Cli,
    db_url: str,
    git_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(uuid.uuid4().int)
    planted: dict[str, str] = {}

    # 1. a value given on stdin to `inventory add`
    planted["stdin"] = "stdin-" + uuid.uuid4().hex
    rc, _, err = cli("inventory", "add", "manual", "--value-stdin", stdin=planted["stdin"])
    assert rc == 0, err

    # 2. IAM keys: discovered, then leaked in code together with the secret key
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="deploy")
    key: dict[str, Any] = iam.create_access_key(UserName="deploy")["AccessKey"]
    planted["aws_secret"] = key["SecretAccessKey"]
    cli.json("discover", "aws-iam")

    # 3. Secrets Manager values, fingerprinted by discovery
    planted["sm_password"] = "smpw-" + uuid.uuid4().hex
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="prod/db",
        SecretString=f'{{"username": "app", "password": "{planted["sm_password"]}"}}',
    )
    cli.json("discover", "aws-secretsmanager", "--fingerprint-values")

    # 4. Vault values, fingerprinted by discovery
    monkeypatch.setenv("VAULT_ADDR", openbao.addr)
    monkeypatch.setenv("VAULT_TOKEN", openbao.token)
    prefix = f"s{uuid.uuid4().hex[:8]}"
    planted["vault_password"] = "vaultpw-" + uuid.uuid4().hex
    hvac.Client(url=openbao.addr, token=openbao.token).secrets.kv.v2.create_or_update_secret(
        path=f"{prefix}/svc", secret={"password": planted["vault_password"]}, mount_point="secret"
    )
    cli.json("discover", "vault", "--path", prefix, "--fingerprint-values")

    # 5. a scan that finds all of it (and a GitHub token) and records it
    planted["github"] = _token(rng)
    (git_repo / "app.py").write_text(
        f'aws_access_key_id = "{key["AccessKeyId"]}"\n'
        f'aws_secret_access_key = "{planted["aws_secret"]}"\n'
        f'GITHUB_TOKEN = "{planted["github"]}"\n'
        f'password = "{planted["sm_password"]}"\n'
        f'db_password = "{planted["vault_password"]}"\n'
        f'secret_token = "{planted["stdin"]}"\n'
    )
    rc, _, err = cli("scan", str(git_repo), "--engine", "re", "--record", "--exit-zero")
    assert rc == 0, err
    findings = cli.json("findings", "list")
    assert len(findings) >= 4
    linked = {f["secret"] for f in findings if f["secret"]}
    assert f"aws-iam/deploy/{key['AccessKeyId']}" in linked
    assert "aws-sm/us-east-1/prod/db" in linked

    # everything readable from the inventory, as a person or a machine would read it
    outputs = [
        cli("findings", "list", "--state", "all", "--format", "json")[1],
        cli("inventory", "list", "--format", "json")[1],
        cli("inventory", "report", "--format", "json")[1],
        *(
            cli("inventory", "show", s["name"], "--format", "json")[1]
            for s in cli.json("inventory", "list")
        ),
    ]
    stored = _database_bytes(db_url)
    # the search sees the data: the (public) access key id is stored as the key's reference
    assert key["AccessKeyId"].encode() in stored
    for label, value in planted.items():
        assert value.encode() not in stored, f"{label} is stored in the database"
        for out in outputs:
            assert value not in out, f"{label} is shown by a command"
