"""aws-iam-access-key against the moto server with credential checking on.

keyward runs as an IAM user with an allow-all policy; the rotated user is a separate IAM user.
moto accepts Inactive keys, so tests that need real AWS behaviour patch that (TESTING.md).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from keyward.core.errors import ExitCode
from keyward.core.redaction import Fingerprinter, redact
from keyward.providers import AwsCredentials, AwsSettings, Providers
from keyward.rotation.errors import CredentialRejected, ProviderDenied, RotatorConflict
from keyward.rotation.protocols import (
    RetireOutcome,
    RotationContext,
    Rotator,
    SecretValue,
    new_token,
)
from keyward.rotation.registry import PluginContext, load_rotator
from keyward.rotation.rotators.aws_iam import (
    NOTE_CREATED,
    NOTE_KEYS_BEFORE,
    IamAccessKeyRotator,
)
from keyward.rotation.stores.aws_secretsmanager import SecretsManagerStore
from tests.integration._moto_patches import reject_inactive_keys

pytestmark = pytest.mark.integration


@dataclass
class Env:
    aws: Any
    admin: AwsCredentials
    user: str
    current: SecretValue

    def client(self, service: str, creds: AwsCredentials | None = None) -> Any:
        c = creds or self.admin
        return boto3.client(
            service,
            region_name="us-east-1",
            aws_access_key_id=c.access_key_id,
            aws_secret_access_key=c.secret_access_key,
        )

    def rotator(self, **kw: Any) -> IamAccessKeyRotator:
        kw.setdefault("test_attempts", 2)
        kw.setdefault("test_delay", 0.0)
        return IamAccessKeyRotator(
            self.client("iam"), lambda creds: self.client("sts", creds), **kw
        )

    def keys(self) -> dict[str, str]:
        meta = self.client("iam").list_access_keys(UserName=self.user)["AccessKeyMetadata"]
        return {k["AccessKeyId"]: k["Status"] for k in meta}

    def works(self, value: SecretValue) -> bool:
        creds = AwsCredentials(value["access_key_id"], value["secret_access_key"])
        try:
            self.client("sts", creds).get_caller_identity()
        except ClientError:
            return False
        return True


def _make_user(iam: Any, name: str, policy_actions: list[str]) -> AwsCredentials:
    iam.create_user(UserName=name)
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": policy_actions, "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(doc))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return AwsCredentials(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture
def env(aws: Any) -> Iterator[Env]:
    iam = boto3.client("iam", region_name="us-east-1")
    admin = _make_user(iam, "keyward-admin", ["*"])
    user = f"app-{uuid.uuid4().hex[:8]}"
    cur = _make_user(iam, user, ["sts:GetCallerIdentity"])
    aws.set_auth(True)
    yield Env(
        aws,
        admin,
        user,
        SecretValue(
            {"access_key_id": cur.access_key_id, "secret_access_key": cur.secret_access_key}
        ),
    )


def ctx() -> RotationContext:
    return RotationContext(new_token(), datetime.now(UTC) - timedelta(seconds=1))


def test_registry_builds_the_rotator_and_it_satisfies_the_protocol(aws: Any) -> None:
    clients = Providers(AwsSettings(region="us-east-1"))
    rot = load_rotator("aws-iam-access-key", PluginContext(clients, Fingerprinter(b"k" * 32)))
    assert isinstance(rot, Rotator) and rot.kind == "aws-iam-access-key"


def test_full_rotation_with_secrets_manager_retires_the_old_key(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    reject_inactive_keys(monkeypatch)
    sm = env.client("secretsmanager")
    sm.create_secret(Name="app/aws", SecretString=json.dumps(dict(env.current.fields)))
    store = SecretsManagerStore(sm)
    rot = env.rotator()
    c = ctx()
    cur = store.read_current("app/aws")
    new_value = rot.create(cur.value, c)
    pending = store.put_pending("app/aws", new_value, c.token)
    new = store.read_version("app/aws", pending)
    rot.set(cur.value, new.value)
    rot.test(new.value)
    assert len(env.keys()) == 2
    store.promote("app/aws", pending)
    deactivated_at = datetime.now(UTC)
    rot.deactivate(cur.value, new.value)
    rot.deactivate(cur.value, new.value)  # idempotent
    assert env.keys()[cur.value["access_key_id"]] == "Inactive"
    assert env.works(new.value)
    retired = rot.revoke(cur.value, new.value, deactivated_at)
    assert retired.outcome is RetireOutcome.REVOKED
    assert not env.works(cur.value)
    assert env.keys() == {new.value["access_key_id"]: "Active"}
    again = rot.revoke(cur.value, new.value, deactivated_at)
    assert again.outcome is RetireOutcome.ALREADY_GONE


def test_a_deactivated_key_is_refused_but_kept_until_revoke(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    reject_inactive_keys(monkeypatch)
    rot = env.rotator()
    new = rot.create(env.current, ctx())
    rot.deactivate(env.current, new)
    assert not env.works(env.current)
    assert env.works(new)
    assert env.keys()[env.current["access_key_id"]] == "Inactive"


def test_a_user_with_two_active_keys_is_refused_with_a_clear_message(env: Env) -> None:
    other = env.client("iam").create_access_key(UserName=env.user)["AccessKey"]
    with pytest.raises(RotatorConflict) as err:
        env.rotator().create(env.current, RotationContext(new_token(), datetime.now(UTC)))
    text = err.value.diagnostics()
    assert f"IAM user {env.user} already has two access keys" in text
    assert "never deletes an active key" in text
    assert other["AccessKeyId"] not in text and other["SecretAccessKey"] not in text
    assert err.value.exit_code is ExitCode.USAGE
    assert len(env.keys()) == 2


def test_an_inactive_second_key_is_deleted_only_when_policy_allows(env: Env) -> None:
    iam = env.client("iam")
    other = iam.create_access_key(UserName=env.user)["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName=env.user, AccessKeyId=other, Status="Inactive")
    c = RotationContext(new_token(), datetime.now(UTC))
    with pytest.raises(RotatorConflict) as err:
        env.rotator().create(env.current, c)
    assert "set delete_inactive_key = true" in err.value.diagnostics()
    new = env.rotator(delete_inactive_key=True).create(env.current, c)
    keys = env.keys()
    assert other not in keys and keys[new["access_key_id"]] == "Active"
    assert keys[env.current["access_key_id"]] == "Active"


def test_create_after_an_interrupted_create_replaces_the_unstored_key(env: Env) -> None:
    c = ctx()
    # an earlier create recorded the keys it saw, made a key, and the process died inside
    # CreateAccessKey (before its id was recorded) so the store never saw its secret
    c.notes.record(NOTE_KEYS_BEFORE, env.current["access_key_id"])
    orphan = env.client("iam").create_access_key(UserName=env.user)["AccessKey"]["AccessKeyId"]
    new = env.rotator().create(env.current, c)
    keys = env.keys()
    assert orphan not in keys
    assert set(keys) == {env.current["access_key_id"], new["access_key_id"]}
    assert c.notes.get(NOTE_CREATED) == new["access_key_id"]  # recorded the moment it returned


def test_create_never_deletes_a_key_a_person_made_after_the_rotation_started(env: Env) -> None:
    c = ctx()  # this rotation never called CreateAccessKey: nothing of it can exist
    person = env.client("iam").create_access_key(UserName=env.user)["AccessKey"]["AccessKeyId"]
    with pytest.raises(RotatorConflict, match="already has two access keys"):
        env.rotator().create(env.current, c)
    assert set(env.keys()) == {env.current["access_key_id"], person}


def test_rollback_deletes_only_the_recorded_key_never_one_a_person_made(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    rot = env.rotator()
    c = ctx()
    new = rot.create(env.current, c)  # its id recorded at once; the value never stored
    iam = env.client("iam")
    iam.delete_access_key(UserName=env.user, AccessKeyId=new["access_key_id"])  # gone anyway
    person = iam.create_access_key(UserName=env.user)["AccessKey"]["AccessKeyId"]
    rot.rollback(env.current, None, c)
    assert set(env.keys()) == {env.current["access_key_id"], person}


def test_rollback_with_an_unknown_new_key_and_several_candidates_names_them_and_deletes_none(
    env: Env,
) -> None:
    c = ctx()
    c.notes.record(NOTE_KEYS_BEFORE, env.current["access_key_id"])  # died inside the create
    iam = env.client("iam")
    old_id = env.current["access_key_id"]
    iam.delete_access_key(UserName=env.user, AccessKeyId=old_id)  # someone replaced it by hand
    made = [iam.create_access_key(UserName=env.user)["AccessKey"]["AccessKeyId"] for _ in "ab"]
    rot = env.rotator(user_name=env.user)
    with pytest.raises(RotatorConflict) as err:
        rot.rollback(env.current, None, c)
    text = err.value.diagnostics()
    assert "2 never-used keys were created since the rotation started" in text
    assert all(redact(k) in text for k in made) and not any(k in text for k in made)
    assert set(env.keys()) == set(made)


def test_test_step_rejects_a_key_that_does_not_work(env: Env) -> None:
    rot = env.rotator()
    new = rot.create(env.current, ctx())
    env.client("iam").delete_access_key(UserName=env.user, AccessKeyId=new["access_key_id"])
    with pytest.raises(CredentialRejected, match="refused by sts:GetCallerIdentity") as err:
        rot.test(new)
    assert new["secret_access_key"] not in err.value.diagnostics()


def test_revoke_keeps_a_key_that_was_used_after_deactivation(env: Env) -> None:
    rot = env.rotator()
    new = rot.create(env.current, ctx())
    rot.deactivate(env.current, new)
    deactivated_at = datetime.now(UTC) - timedelta(seconds=2)
    env.works(env.current)  # moto accepts the inactive key and records the use
    retired = rot.revoke(env.current, new, deactivated_at)
    assert retired.outcome is RetireOutcome.KEPT_IN_USE
    assert "after it was deactivated" in retired.detail
    assert env.current["access_key_id"] in env.keys()


def test_revoke_keeps_a_key_that_was_reactivated(env: Env) -> None:
    rot = env.rotator()
    new = rot.create(env.current, ctx())
    rot.deactivate(env.current, new)
    env.client("iam").update_access_key(
        UserName=env.user, AccessKeyId=env.current["access_key_id"], Status="Active"
    )
    retired = rot.revoke(env.current, new, datetime.now(UTC) + timedelta(minutes=1))
    assert retired.outcome is RetireOutcome.KEPT_IN_USE and "re-activated" in retired.detail


def test_rollback_deletes_the_new_key_and_keeps_the_current_one(env: Env) -> None:
    rot = env.rotator()
    c = ctx()
    new = rot.create(env.current, c)
    rot.rollback(env.current, new, c)
    rot.rollback(env.current, new, c)  # idempotent
    assert env.keys() == {env.current["access_key_id"]: "Active"}
    assert env.works(env.current)


def test_rollback_without_a_stored_value_removes_keys_made_since_the_start(env: Env) -> None:
    rot = env.rotator()
    c = ctx()
    rot.create(env.current, c)  # the value never reached the store
    rot.rollback(env.current, None, c)
    assert env.keys() == {env.current["access_key_id"]: "Active"}


def test_a_missing_permission_names_the_denied_action(env: Env) -> None:
    weak = _make_user_as_admin(env, ["iam:ListAccessKeys", "iam:GetAccessKeyLastUsed"])
    rot = IamAccessKeyRotator(
        env.client("iam", weak), lambda creds: env.client("sts", creds), user_name=env.user
    )
    with pytest.raises(ProviderDenied) as err:
        rot.create(env.current, ctx())
    assert "AWS denied iam:CreateAccessKey on IAM user" in err.value.diagnostics()
    assert err.value.exit_code is ExitCode.BACKEND


def _make_user_as_admin(env: Env, actions: list[str]) -> AwsCredentials:
    return _make_user(env.client("iam"), f"weak-{uuid.uuid4().hex[:6]}", actions)


def test_no_secret_access_key_in_logs_plans_or_reprs(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="keyward")
    rot = env.rotator()
    c = ctx()
    new = rot.create(env.current, c)
    rot.test(new)
    rot.deactivate(env.current, new)
    rot.revoke(env.current, new, datetime.now(UTC))
    text = caplog.text + repr(new) + repr(rot) + "\n".join(rot.plan(env.current))
    for value in (env.current, new):
        assert value["secret_access_key"] not in text
        assert value["access_key_id"] not in text  # ids are shown redacted
    assert "created access key" in caplog.text
