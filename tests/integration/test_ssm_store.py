"""SSM Parameter Store: the parameter only ever gains a version when that version is current.

Readers call ``GetParameter(name)`` and get the latest version; the pending value waits in a
keyward-owned staging parameter and reaches the parameter at promote, labelled. Interrupted
promotes are recognised by value; a write by someone else is never overwritten. Against the
moto server.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from keyward.core.config import Config
from keyward.core.errors import StoreConflict, StoreError
from keyward.core.redaction import Fingerprinter
from keyward.providers import Providers
from keyward.rotation.protocols import SecretValue, new_token
from keyward.rotation.registry import PluginContext, load_store
from keyward.rotation.stores.aws_ssm import ParameterStore, split_arn

pytestmark = pytest.mark.integration

DB = {"username": "app", "password": "old-Password-0001"}
NEW = {"username": "app", "password": "new-Password-0002"}


@pytest.fixture
def ssm(aws: Any) -> Any:
    return boto3.client("ssm", region_name="us-east-1")


def seeded(ssm: Any, value: dict[str, Any] | str = DB, **kw: Any) -> str:
    name = f"/app/{uuid.uuid4().hex[:10]}"
    text = value if isinstance(value, str) else json.dumps(value)
    ssm.put_parameter(Name=name, Value=text, Type=kw.pop("Type", "SecureString"), **kw)
    return name


def reader(ssm: Any, name: str) -> tuple[int, dict[str, Any]]:
    """What a reader gets: GetParameter(name), the latest version."""
    p = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    return int(p["Version"]), json.loads(p["Value"])


def history(ssm: Any, name: str) -> list[dict[str, Any]]:
    return list(ssm.get_parameter_history(Name=name)["Parameters"])


def staging_exists(ssm: Any, name: str) -> bool:
    return bool(ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [f"/keyward-staging{name}"]}]
    )["Parameters"])  # fmt: skip


def test_readers_never_see_the_pending_value_and_labels_mark_current_and_previous(
    ssm: Any,
) -> None:
    name = seeded(ssm)
    store = ParameterStore(lambda _r: ssm)
    token = new_token()
    pending = store.put_pending(name, SecretValue(NEW), token)
    assert pending == f"keyward-{token}"
    assert reader(ssm, name) == (1, DB) and len(history(ssm, name)) == 1
    assert staging_exists(ssm, name)
    assert store.read_version(name, pending).value.fields == NEW
    d = store.describe(name)
    assert (d.current, d.previous, d.pending, d.pending_token) == ("1", None, pending, token)
    store.promote(name, pending)
    assert reader(ssm, name) == (2, NEW)
    labels = {int(v["Version"]): sorted(v.get("Labels", [])) for v in history(ssm, name)}
    assert labels == {1: ["previous"], 2: sorted(["current", pending])}
    assert not staging_exists(ssm, name)
    # the label is a selector a reference-mode function can read
    got = ssm.get_parameter(Name=f"{name}:{pending}", WithDecryption=True)["Parameter"]
    assert json.loads(got["Value"]) == NEW
    d = store.describe(name)
    assert (d.current, d.previous, d.pending, d.pending_token) == (pending, "1", None, None)


def test_a_promote_interrupted_after_its_write_is_labelled_without_a_second_version(
    ssm: Any,
) -> None:
    name = seeded(ssm)
    store = ParameterStore(lambda _r: ssm)
    token = new_token()
    pending = store.put_pending(name, SecretValue(NEW), token)
    staged = ssm.get_parameter(Name=f"/keyward-staging{name}", WithDecryption=True)
    # promote's PutParameter, then a crash before the labels
    ssm.put_parameter(Name=name, Value=staged["Parameter"]["Value"], Type="SecureString",
                      Overwrite=True)  # fmt: skip
    d = store.describe(name)
    assert (d.current, d.pending, d.pending_token) == (pending, None, None)
    with pytest.raises(StoreConflict, match="already current"):
        store.discard_pending(name, token)  # a rollback must go forward instead
    store.promote(name, pending)
    store.promote(name, pending)
    assert [int(v["Version"]) for v in history(ssm, name)] == [1, 2]
    assert store.read_current(name).version == pending


def test_a_write_outside_keyward_during_the_rotation_is_never_overwritten(ssm: Any) -> None:
    name = seeded(ssm)
    store = ParameterStore(lambda _r: ssm)
    token = new_token()
    pending = store.put_pending(name, SecretValue(NEW), token)
    ssm.put_parameter(Name=name, Value='{"password": "manual"}', Type="SecureString",
                      Overwrite=True)  # fmt: skip
    with pytest.raises(StoreConflict, match="outside keyward"):
        store.promote(name, pending)
    assert store.read_version(name, pending).value.fields == NEW
    store.discard_pending(name, token)
    assert reader(ssm, name) == (2, {"password": "manual"})
    assert not staging_exists(ssm, name)


def test_only_current_and_previous_keep_keyward_labels(ssm: Any) -> None:
    name = seeded(ssm)
    store = ParameterStore(lambda _r: ssm)
    ids = []
    for i in range(3):
        v = store.put_pending(name, SecretValue({**NEW, "password": f"p-{i}-value"}), new_token())
        store.promote(name, v)
        ids.append(v)
    labels = {int(v["Version"]): sorted(v.get("Labels", [])) for v in history(ssm, name)}
    assert labels == {1: [], 2: [], 3: sorted([ids[1], "previous"]),
                      4: sorted([ids[2], "current"])}  # fmt: skip
    assert store.describe(name).previous == ids[1]
    assert store.read_version(name, ids[1]).value["password"] == "p-1-value"


def test_kms_key_and_json_types_are_kept(ssm: Any) -> None:
    name = seeded(ssm, {"host": "db", "port": 5432, "password": "x-old"}, KeyId="alias/app")
    store = ParameterStore(lambda _r: ssm)
    cur = store.read_current(name)
    v = store.put_pending(name, cur.value.replace(password="y-new"), new_token())
    staged = history(ssm, f"/keyward-staging{name}")[-1]
    assert staged["KeyId"] == "alias/app" and staged["Type"] == "SecureString"
    store.promote(name, v)
    assert reader(ssm, name)[1] == {"host": "db", "port": 5432, "password": "y-new"}
    assert history(ssm, name)[-1]["KeyId"] == "alias/app"
    # a configured key wins
    other = ParameterStore(lambda _r: ssm, kms_key_id="alias/keyward")
    other.promote(name, other.put_pending(name, SecretValue.single("plain-next"), new_token()))
    assert history(ssm, name)[-1]["KeyId"] == "alias/keyward"


def test_a_plain_parameter_that_is_not_secure_is_refused(ssm: Any) -> None:
    name = seeded(ssm, "not-secret", Type="String")
    with pytest.raises(StoreError, match="SecureString") as err:
        ParameterStore(lambda _r: ssm).put_pending(name, SecretValue.single("x"), new_token())
    assert "--type SecureString" in err.value.diagnostics()


def test_an_arn_names_the_region_and_the_parameter(aws: Any) -> None:
    west = boto3.client("ssm", region_name="eu-west-1")
    name = f"/app/{uuid.uuid4().hex[:8]}"
    west.put_parameter(Name=name, Value=json.dumps(DB), Type="SecureString")
    arn = west.get_parameter(Name=name)["Parameter"]["ARN"]
    assert split_arn(arn) == ("eu-west-1", name)
    assert split_arn("arn:aws:ssm:us-east-1:123456789012:parameter/single") == (
        "us-east-1", "single",
    )  # fmt: skip
    ctx = PluginContext(Providers.from_config(Config()), Fingerprinter(b"k" * 32))
    store = load_store("aws-ssm", ctx, {"region": "us-east-1"})
    assert store.read_current(arn).value.fields == DB
    store.promote(arn, store.put_pending(arn, SecretValue(NEW), new_token()))
    assert (
        json.loads(west.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]) == NEW
    )


def test_a_reserved_or_empty_setting_is_a_config_error() -> None:
    from keyward.core.errors import ConfigError

    with pytest.raises(ConfigError, match="reserved"):
        ParameterStore(lambda _r: None, current_label="keyward-x")
    with pytest.raises(ConfigError, match="staging_prefix"):
        ParameterStore(lambda _r: None, staging_prefix="/")
