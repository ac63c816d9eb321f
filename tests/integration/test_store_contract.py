"""One contract, every SecretStore: Secrets Manager and SSM Parameter Store (moto server) and
Vault KV v2 (OpenBao).

Each test runs against both stores through the same :class:`Harness`; store-specific tests
(restricted credentials, expiring tokens, interrupted writes) sit at the end.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from keyward.core.config import Config
from keyward.core.errors import (
    StoreAuthError,
    StoreConflict,
    StoreNotFound,
    StoreUnavailable,
)
from keyward.core.redaction import Fingerprinter
from keyward.providers import Providers, VaultSettings
from keyward.rotation.protocols import SecretStore, SecretValue, new_token
from keyward.rotation.registry import PluginContext, load_store
from keyward.rotation.stores.aws_secretsmanager import SecretsManagerStore
from keyward.rotation.stores.aws_ssm import ParameterStore
from keyward.rotation.stores.vault_kv import VaultKVStore
from tests.conftest import enable_kv2

pytestmark = pytest.mark.integration

PLANTED = "planted-Secret-Value-3f9a1c77e2"


@dataclass
class Harness:
    kind: str
    store: SecretStore
    seed: Callable[[str, dict[str, str] | str], None]
    raw: Any  # the provider client, for checks behind the store's back
    restricted: Callable[[str], SecretStore]  # a store whose credentials may only read one secret
    unreachable: Callable[[], SecretStore]
    unknown_version: Callable[[], str] = new_token  # a version id the store never gave
    root: str = ""  # SSM parameter names with a path begin with "/"

    def path(self, name: str) -> str:
        return f"{self.root}{name}"

    def name(self) -> str:
        return self.path(f"app/{uuid.uuid4().hex[:10]}")


def _aws_harness(aws: Any) -> Harness:
    import boto3

    sm = boto3.client("secretsmanager", region_name="us-east-1")

    def seed(name: str, value: dict[str, str] | str) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        sm.create_secret(Name=name, SecretString=text)

    def restricted(name: str) -> SecretStore:
        iam = boto3.client("iam", region_name="us-east-1")
        user = f"reader-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    "Resource": "*",  # moto evaluates actions, not resource ARNs
                }
            ],
        }
        iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        aws.set_auth(True)
        client = boto3.client(
            "secretsmanager",
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        return SecretsManagerStore(client)

    def unreachable() -> SecretStore:
        from botocore.config import Config

        client = boto3.client(
            "secretsmanager",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{_closed_port()}",
            config=Config(retries={"max_attempts": 1}, connect_timeout=1),
        )
        return SecretsManagerStore(client)

    return Harness("aws-secretsmanager", SecretsManagerStore(sm), seed, sm, restricted, unreachable)


def _vault_harness(openbao: Any) -> Harness:
    import hvac

    root = hvac.Client(url=openbao.addr, token=openbao.token)

    def seed(name: str, value: dict[str, str] | str) -> None:
        data = {"value": value} if isinstance(value, str) else value
        root.secrets.kv.v2.create_or_update_secret(path=name, secret=data, mount_point="secret")

    def restricted(name: str) -> SecretStore:
        policy = f"""
        path "secret/data/{name}" {{ capabilities = ["read"] }}
        path "secret/metadata/{name}" {{ capabilities = ["read"] }}
        """
        pname = f"read-{uuid.uuid4().hex[:8]}"
        root.sys.create_or_update_policy(name=pname, policy=policy)
        token = root.auth.token.create(policies=[pname], ttl="5m")["auth"]["client_token"]
        return VaultKVStore(hvac.Client(url=openbao.addr, token=token))

    def unreachable() -> SecretStore:
        return VaultKVStore(hvac.Client(url=f"http://127.0.0.1:{_closed_port()}", token="x"))

    return Harness(
        "vault-kv", VaultKVStore(root), seed, root, restricted, unreachable, lambda: "999"
    )


def _ssm_harness(aws: Any) -> Harness:
    import boto3

    ssm = boto3.client("ssm", region_name="us-east-1")

    def seed(name: str, value: dict[str, str] | str) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        ssm.put_parameter(Name=name, Value=text, Type="SecureString")

    def restricted(name: str) -> SecretStore:
        iam = boto3.client("iam", region_name="us-east-1")
        user = f"reader-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["ssm:GetParameter", "ssm:GetParameterHistory"],
                    "Resource": "*",  # moto evaluates actions, not resource ARNs
                }
            ],
        }
        iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        aws.set_auth(True)
        client = boto3.client(
            "ssm",
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        return ParameterStore(lambda _region: client)

    def unreachable() -> SecretStore:
        from botocore.config import Config

        client = boto3.client(
            "ssm",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{_closed_port()}",
            config=Config(retries={"max_attempts": 1}, connect_timeout=1),
        )
        return ParameterStore(lambda _region: client)

    return Harness(
        "aws-ssm",
        ParameterStore(lambda _region: ssm),
        seed,
        ssm,
        restricted,
        unreachable,
        lambda: f"keyward-{new_token()}",
        root="/",
    )


def _closed_port() -> int:
    from tests.conftest import free_port

    return free_port()


@pytest.fixture(params=["aws-secretsmanager", "vault-kv", "aws-ssm"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "aws-secretsmanager":
        yield _aws_harness(request.getfixturevalue("aws"))
    elif request.param == "aws-ssm":
        yield _ssm_harness(request.getfixturevalue("aws"))
    else:
        yield _vault_harness(request.getfixturevalue("openbao"))


DB = {"username": "app", "password": "old-Password-0001"}
NEW = {"username": "app", "password": "new-Password-0002"}


def _seeded(h: Harness, value: dict[str, str] | str = DB) -> str:
    name = h.name()
    h.seed(name, value)
    return name


# ------------------------------------------------------------------------- contract
def test_store_satisfies_the_protocol(h: Harness) -> None:
    assert isinstance(h.store, SecretStore)
    assert h.store.kind == h.kind


def test_read_current_returns_the_seeded_fields_and_a_version(h: Harness) -> None:
    name = _seeded(h)
    cur = h.store.read_current(name)
    assert cur.value.fields == DB
    assert cur.version
    d = h.store.describe(name)
    assert d.exists and d.current == cur.version and d.pending is None and d.previous is None


def test_plan_names_the_calls_and_changes_nothing(h: Harness) -> None:
    name = _seeded(h)
    before = h.store.describe(name)
    steps = h.store.plan(name)
    assert len(steps) >= 2 and all(name in step for step in steps)
    assert h.store.describe(name) == before


def test_describe_of_a_missing_secret_says_it_does_not_exist(h: Harness) -> None:
    assert h.store.describe(h.path("app/does-not-exist")).exists is False


def test_reading_a_missing_secret_raises_store_not_found(h: Harness) -> None:
    with pytest.raises(StoreNotFound):
        h.store.read_current(h.path("app/does-not-exist"))
    with pytest.raises(StoreNotFound):
        h.store.put_pending(h.path("app/does-not-exist"), SecretValue(NEW), new_token())


def test_put_pending_leaves_current_unchanged_and_is_readable_by_version(h: Harness) -> None:
    name = _seeded(h)
    before = h.store.read_current(name)
    token = new_token()
    pending = h.store.put_pending(name, SecretValue(NEW), token)
    assert h.store.read_current(name).value.fields == DB
    assert h.store.read_current(name).version == before.version
    assert h.store.read_version(name, pending).value.fields == NEW
    d = h.store.describe(name)
    assert d.pending == pending and d.pending_token == token and d.current == before.version


def test_put_pending_retried_with_the_same_token_returns_the_same_version(h: Harness) -> None:
    name = _seeded(h)
    token = new_token()
    first = h.store.put_pending(name, SecretValue(NEW), token)
    again = h.store.put_pending(name, SecretValue(NEW), token)
    assert again == first
    d = h.store.describe(name)
    assert d.pending == first


def test_a_reused_token_with_a_different_value_is_refused(h: Harness) -> None:
    name = _seeded(h)
    token = new_token()
    pending = h.store.put_pending(name, SecretValue(NEW), token)
    with pytest.raises(StoreConflict, match="different value"):
        h.store.put_pending(name, SecretValue({**NEW, "password": "other-Value-9"}), token)
    assert h.store.read_version(name, pending).value.fields == NEW


def test_a_second_rotation_cannot_start_while_one_is_pending(h: Harness) -> None:
    name = _seeded(h)
    h.store.put_pending(name, SecretValue(NEW), new_token())
    with pytest.raises(StoreConflict, match="another rotation"):
        h.store.put_pending(name, SecretValue(NEW), new_token())


def test_promote_makes_pending_current_and_keeps_the_previous_version(h: Harness) -> None:
    name = _seeded(h)
    old = h.store.read_current(name)
    token = new_token()
    pending = h.store.put_pending(name, SecretValue(NEW), token)
    h.store.promote(name, pending)
    cur = h.store.read_current(name)
    assert cur.version == pending and cur.value.fields == NEW
    d = h.store.describe(name)
    assert d.current == pending and d.previous == old.version
    assert d.pending is None and d.pending_token is None
    assert h.store.read_version(name, old.version).value.fields == DB


def test_promote_is_idempotent(h: Harness) -> None:
    name = _seeded(h)
    token = new_token()
    pending = h.store.put_pending(name, SecretValue(NEW), token)
    h.store.promote(name, pending)
    h.store.promote(name, pending)
    assert h.store.read_current(name).version == pending


def test_promote_of_an_unknown_version_raises_store_not_found(h: Harness) -> None:
    name = _seeded(h)
    with pytest.raises(StoreNotFound):
        h.store.promote(name, h.unknown_version())


def test_discard_pending_keeps_current_and_is_idempotent(h: Harness) -> None:
    name = _seeded(h)
    token = new_token()
    h.store.put_pending(name, SecretValue(NEW), token)
    h.store.discard_pending(name, token)
    h.store.discard_pending(name, token)
    d = h.store.describe(name)
    assert d.pending is None and d.pending_token is None
    assert h.store.read_current(name).value.fields == DB
    # the secret can be rotated again afterwards
    token2 = new_token()
    v2 = h.store.put_pending(name, SecretValue(NEW), token2)
    h.store.promote(name, v2)
    assert h.store.read_current(name).value.fields == NEW


def test_discard_with_a_token_that_wrote_nothing_is_a_no_op(h: Harness) -> None:
    name = _seeded(h)
    before = h.store.describe(name)
    h.store.discard_pending(name, new_token())
    assert h.store.describe(name) == before


def test_discard_after_promote_is_refused(h: Harness) -> None:
    name = _seeded(h)
    token = new_token()
    pending = h.store.put_pending(name, SecretValue(NEW), token)
    h.store.promote(name, pending)
    with pytest.raises(StoreConflict, match="already current"):
        h.store.discard_pending(name, token)
    assert h.store.read_current(name).value.fields == NEW


def test_two_rotations_in_a_row_move_previous_along(h: Harness) -> None:
    name = _seeded(h)
    v0 = h.store.read_current(name).version
    v1 = h.store.put_pending(name, SecretValue(NEW), t1 := new_token())
    h.store.promote(name, v1)
    third = {"username": "app", "password": "third-Password-0003"}
    v2 = h.store.put_pending(name, SecretValue(third), new_token())
    assert h.store.describe(name).previous == v0
    h.store.promote(name, v2)
    d = h.store.describe(name)
    assert (d.current, d.previous) == (v2, v1)
    assert h.store.read_version(name, v1).value.fields == NEW
    assert t1


def test_list_secrets_finds_secrets_under_a_prefix(h: Harness) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [h.path(f"svc{tag}/a"), h.path(f"svc{tag}/b"), h.path(f"svc{tag}/deep/c")]
    for n in names:
        h.seed(n, DB)
    h.seed(h.path(f"other{tag}/x"), DB)
    h.store.put_pending(names[0], SecretValue(NEW), new_token())  # staging is never listed
    found = sorted(h.store.list_secrets(h.path(f"svc{tag}")))
    assert found == sorted(names)


def test_a_plain_string_secret_is_the_single_field_value(h: Harness) -> None:
    name = _seeded(h, "just-a-signing-key-0123456789")
    assert h.store.read_current(name).value.fields == {"value": "just-a-signing-key-0123456789"}
    token = new_token()
    v = h.store.put_pending(name, SecretValue.single("next-signing-key-9876543210"), token)
    h.store.promote(name, v)
    assert h.store.read_current(name).value["value"] == "next-signing-key-9876543210"


def test_restricted_credentials_name_the_denied_action(h: Harness) -> None:
    name = _seeded(h)
    limited = h.restricted(name)
    assert limited.read_current(name).value.fields == DB
    with pytest.raises(StoreAuthError) as denied:
        limited.put_pending(name, SecretValue(NEW), new_token())
    text = denied.value.diagnostics()
    assert (
        ("denied secretsmanager:PutSecretValue" in text)
        or ("denied read staging metadata on secret/metadata/keyward-staging/secret/" in text)
        or ("denied ssm:PutParameter on parameter '/keyward-staging/app/" in text)
    )
    assert name in text
    assert denied.value.exit_code == 3


def test_an_unreachable_store_raises_store_unavailable(h: Harness) -> None:
    with pytest.raises(StoreUnavailable) as err:
        h.unreachable().read_current("app/x")
    assert err.value.exit_code == 3


def test_no_secret_value_reaches_logs_reprs_or_errors(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # keyward's own loggers at DEBUG (botocore's DEBUG logging prints request bodies; the CLI
    # and daemon configure only the "keyward" logger, so it stays off)
    caplog.set_level(logging.DEBUG, logger="keyward")
    secret = {"username": "app", "password": PLANTED}
    name = _seeded(h, secret)
    token = new_token()
    seen: list[str] = []
    cur = h.store.read_current(name)
    seen += [repr(cur), str(cur), repr(cur.value)]
    pending = h.store.put_pending(name, SecretValue({"password": PLANTED + "-new"}), token)
    try:
        h.store.put_pending(name, SecretValue({"password": PLANTED + "-other"}), token)
    except StoreConflict as exc:
        seen.append(exc.diagnostics())
    h.store.promote(name, pending)
    seen.append(repr(h.store.describe(name)))
    for text in [*seen, caplog.text]:
        assert PLANTED not in text
    assert "password" in repr(cur.value)  # field names are shown, values are not


# -------------------------------------------------------------- Secrets Manager only
def test_secretsmanager_keeps_json_types_of_other_fields(aws: Any) -> None:
    h = _aws_harness(aws)
    name = h.name()
    h.seed(name, json.dumps({"host": "db", "port": 5432, "password": "old-Password-0001"}))  # type: ignore[arg-type]
    cur = h.store.read_current(name)
    assert cur.value["port"] == "5432"
    v = h.store.put_pending(name, cur.value.replace(password="new-Password-0002"), new_token())
    h.store.promote(name, v)
    # (moto answers an unqualified GetSecretValue with the first version, so ask for the stage)
    resp = h.raw.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    raw = json.loads(resp["SecretString"])
    assert raw == {"host": "db", "port": 5432, "password": "new-Password-0002"}


def test_secretsmanager_staging_labels_follow_the_aws_convention(aws: Any) -> None:
    h = _aws_harness(aws)
    name = _seeded(h)
    old = h.store.read_current(name).version
    token = new_token()
    v = h.store.put_pending(name, SecretValue(NEW), token)
    assert v == token
    stages = h.raw.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages[token] == ["AWSPENDING"] and stages[old] == ["AWSCURRENT"]
    h.store.promote(name, v)
    stages = h.raw.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages[token] == ["AWSCURRENT"] and stages[old] == ["AWSPREVIOUS"]


# ------------------------------------------------------------------------ Vault only
def test_vault_token_that_expires_mid_rotation_gives_a_clear_auth_error(openbao: Any) -> None:
    import hvac

    root = hvac.Client(url=openbao.addr, token=openbao.token)
    h = _vault_harness(openbao)
    name = _seeded(h)
    policy = _path_policy(name)
    root.sys.create_or_update_policy(name="only-" + name.replace("/", "-"), policy=policy)
    token = root.auth.token.create(
        policies=["only-" + name.replace("/", "-")], ttl="2s", renewable=False
    )["auth"]["client_token"]
    store = VaultKVStore(hvac.Client(url=openbao.addr, token=token))
    with pytest.raises(StoreAuthError, match="denied"):  # the policy names only this path
        store.read_current(_seeded(h))
    v = store.put_pending(name, SecretValue(NEW), new_token())
    time.sleep(2.2)
    with pytest.raises(StoreAuthError, match="expired or been revoked") as err:
        store.promote(name, v)
    assert err.value.exit_code == 3
    assert h.store.read_current(name).value.fields == DB  # nothing changed


def test_vault_approle_login_through_clients_and_the_registry(openbao: Any) -> None:
    import hvac

    root = hvac.Client(url=openbao.addr, token=openbao.token)
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    h = _vault_harness(openbao)
    name = _seeded(h)
    root.sys.create_or_update_policy(
        name="approle-rw",
        policy='path "secret/*" { capabilities = ["create", "read", "update", "list"] }',
    )
    root.auth.approle.create_or_update_approle("keyward", token_policies=["approle-rw"])
    role_id = root.auth.approle.read_role_id("keyward")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("keyward")["data"]["secret_id"]
    settings = VaultSettings(addr=openbao.addr, role_id=role_id, secret_id=secret_id)
    clients = Providers(vault=settings)
    ctx = PluginContext(clients, Fingerprinter(b"k" * 32))
    store = load_store("vault-kv", ctx, {"mount": "secret"})
    assert store.read_current(name).value.fields == DB
    assert "secret_id" not in repr(clients) or secret_id not in repr(clients)


def test_vault_the_documented_minimal_policy_is_enough_for_a_whole_rotation(
    openbao: Any,
) -> None:
    import hvac

    root = hvac.Client(url=openbao.addr, token=openbao.token)
    h = _vault_harness(openbao)
    name = _seeded(h)
    pname = "min-" + name.replace("/", "-")
    root.sys.create_or_update_policy(
        name=pname,
        policy=_path_policy(name),
    )
    token = root.auth.token.create(policies=[pname], ttl="5m")["auth"]["client_token"]
    store = VaultKVStore(hvac.Client(url=openbao.addr, token=token))
    t1 = new_token()
    store.put_pending(name, SecretValue(NEW), t1)
    store.discard_pending(name, t1)
    v = store.put_pending(name, SecretValue(NEW), new_token())
    store.promote(name, v)
    assert store.read_current(name).value.fields == NEW
    assert store.read_version(name, str(store.describe(name).previous)).value.fields == DB


def _path_policy(name: str) -> str:
    """The shipped policy's lines (deploy/policies/vault-keyward.hcl), narrowed to one secret:
    read and write the secret's path; stage, record and destroy under keyward-staging/."""
    staging = f"keyward-staging/secret/{name}"
    return f"""
    path "secret/data/{name}"        {{ capabilities = ["create", "read", "update"] }}
    path "secret/metadata/{name}"    {{ capabilities = ["read"] }}
    path "secret/data/{staging}"     {{ capabilities = ["create", "read", "update"] }}
    path "secret/metadata/{staging}" {{ capabilities = ["create", "read", "update"] }}
    path "secret/destroy/{staging}"  {{ capabilities = ["update"] }}
    """


def test_secretsmanager_through_the_registry_honours_aws_endpoint_url(aws: Any) -> None:
    h = _aws_harness(aws)
    name = _seeded(h)
    ctx = PluginContext(Providers.from_config(Config()), Fingerprinter(b"k" * 32))
    store = load_store("aws-secretsmanager", ctx, {"region": "us-east-1"})
    assert store.read_current(name).value.fields == DB


def test_secretsmanager_a_promote_interrupted_between_its_two_calls_is_completed(
    aws: Any,
) -> None:
    h = _aws_harness(aws)
    name = _seeded(h)
    old = h.store.read_current(name).version
    token = new_token()
    v = h.store.put_pending(name, SecretValue(NEW), token)
    # the first half of promote, then a crash
    h.raw.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v, RemoveFromVersionId=old
    )
    d = h.store.describe(name)
    assert (d.current, d.pending, d.previous) == (v, v, old)  # the stray label is shown
    assert d.pending_token is None  # ... but not as another rotation's unfinished put
    h.store.promote(name, v)  # resuming finish completes it
    d = h.store.describe(name)
    assert (d.current, d.pending, d.pending_token) == (v, None, None)
    stages = h.raw.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages[v] == ["AWSCURRENT"]
    # and even without that, the next rotation is not blocked by the stale label
    h.raw.update_secret_version_stage(SecretId=name, VersionStage="AWSPENDING", MoveToVersionId=v)
    assert h.store.describe(name).pending == v
    v2 = h.store.put_pending(name, SecretValue(DB), new_token())
    h.store.promote(name, v2)
    assert h.store.read_current(name).value.fields == DB


def test_vault_addr_token_and_namespace_come_from_the_environment(
    openbao: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hvac

    ns = f"team-{uuid.uuid4().hex[:6]}"
    path = f"app/{uuid.uuid4().hex[:8]}"
    root = hvac.Client(url=openbao.addr, token=openbao.token)
    root.adapter.post(f"/v1/sys/namespaces/{ns}", json={})
    in_ns = hvac.Client(url=openbao.addr, token=openbao.token, namespace=ns)
    enable_kv2(in_ns, "secret")
    in_ns.secrets.kv.v2.create_or_update_secret(path=path, secret=DB, mount_point="secret")
    monkeypatch.setenv("VAULT_ADDR", openbao.addr)
    monkeypatch.setenv("VAULT_TOKEN", openbao.token)
    monkeypatch.setenv("VAULT_NAMESPACE", ns)
    ctx = PluginContext(Providers.from_config(Config()), Fingerprinter(b"k" * 32))
    store = load_store("vault-kv", ctx)
    assert store.read_current(path).value.fields == DB
    v = store.put_pending(path, SecretValue(NEW), new_token())
    store.promote(path, v)
    assert store.read_current(path).value.fields == NEW
    assert VaultKVStore(root).describe(path).exists is False  # not in the root namespace


def test_vault_approle_logs_in_again_when_its_token_expires_mid_rotation(openbao: Any) -> None:
    import hvac

    root = hvac.Client(url=openbao.addr, token=openbao.token)
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    h = _vault_harness(openbao)
    name = _seeded(h)
    root.sys.create_or_update_policy(
        name="approle-short",
        policy='path "secret/*" { capabilities = ["create", "read", "update", "list"] }',
    )
    root.auth.approle.create_or_update_approle(
        "short", token_policies=["approle-short"], token_ttl="2s", token_max_ttl="2s"
    )
    role_id = root.auth.approle.read_role_id("short")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("short")["data"]["secret_id"]
    settings = VaultSettings(addr=openbao.addr, role_id=role_id, secret_id=secret_id)
    clients = Providers(vault=settings)
    store = load_store("vault-kv", PluginContext(clients, Fingerprinter(b"k" * 32)))
    first_token = clients.vault.client().token
    v = store.put_pending(name, SecretValue(NEW), new_token())
    time.sleep(2.2)
    store.promote(name, v)  # the token expired in between: a fresh AppRole login finishes it
    assert clients.vault.client().token != first_token
    assert store.read_current(name).value.fields == NEW
