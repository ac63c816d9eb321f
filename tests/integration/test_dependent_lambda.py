"""aws-lambda dependent against the moto server: environment updates, verify, rollback."""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from keyward.core.errors import ExitCode
from keyward.core.redaction import Fingerprinter
from keyward.providers import AwsCredentials, AwsSettings, Providers
from keyward.rotation.dependents.aws_lambda import VERSION_VARIABLE, LambdaEnvironmentDependent
from keyward.rotation.errors import DependentDrift, DependentError, DependentNotFound
from keyward.rotation.protocols import (
    Dependent,
    DependentMode,
    DependentSnapshot,
    DependentTarget,
    EnvBinding,
    HeldState,
    SecretValue,
    VersionedSecret,
)
from keyward.rotation.registry import PluginContext, load_dependent

pytestmark = pytest.mark.integration

FP = Fingerprinter(b"lambda-test-fingerprint-key!")
OLD = VersionedSecret(
    "app/aws",
    "v-old",
    SecretValue(
        {"access_key_id": "AKIAOLDOLDOLDOLD0001", "secret_access_key": "old-Secret-1x2y3z"}
    ),
)
NEW = VersionedSecret(
    "app/aws",
    "v-new",
    SecretValue(
        {"access_key_id": "AKIANEWNEWNEWNEW0002", "secret_access_key": "new-Secret-9q8w7e"}
    ),
)
BINDINGS = (
    EnvBinding("AWS_ACCESS_KEY_ID", "access_key_id"),
    EnvBinding("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    return buf.getvalue()


@dataclass
class Lambdas:
    client: Any
    role: str

    def make(self, name: str, env: dict[str, str] | None = None) -> DependentTarget:
        self.client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role,
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
            Environment={
                "Variables": env
                if env is not None
                else {
                    "AWS_ACCESS_KEY_ID": OLD.value["access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": OLD.value["secret_access_key"],
                    "LOG_LEVEL": "info",
                }
            },
        )
        return DependentTarget("aws-lambda", name, BINDINGS, region="us-east-1")

    def env(self, name: str, qualifier: str | None = None) -> dict[str, str]:
        kw = {"Qualifier": qualifier} if qualifier else {}
        cfg = self.client.get_function_configuration(FunctionName=name, **kw)
        return dict(cfg.get("Environment", {}).get("Variables", {}))

    def set_env(self, name: str, env: dict[str, str]) -> None:
        self.client.update_function_configuration(FunctionName=name, Environment={"Variables": env})


@pytest.fixture
def lam(aws: Any) -> Iterator[Lambdas]:
    iam = boto3.client("iam", region_name="us-east-1")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(trust))
    yield Lambdas(boto3.client("lambda", region_name="us-east-1"), role["Role"]["Arn"])


@pytest.fixture
def dep(lam: Lambdas) -> LambdaEnvironmentDependent:
    return LambdaEnvironmentDependent(lambda region: lam.client, FP, wait_delay=1)


def test_registry_builds_the_dependent_and_it_satisfies_the_protocol(aws: Any) -> None:
    ctx = PluginContext(Providers(AwsSettings(region="us-east-1")), FP)
    d = load_dependent("aws-lambda", ctx)
    assert isinstance(d, Dependent) and d.kind == "aws-lambda"


def test_update_changes_only_the_bound_variables_and_verifies(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    target = lam.make("fn-one")
    snap = dep.prepare(target, OLD, NEW)
    assert [v.state for v in snap.variables] == [HeldState.OLD, HeldState.OLD]
    lam.set_env("fn-one", {**lam.env("fn-one"), "ADDED_MEANWHILE": "1"})  # a concurrent edit
    dep.update(snap, NEW)
    dep.verify(snap, NEW)
    env = lam.env("fn-one")
    assert env == {
        "AWS_ACCESS_KEY_ID": NEW.value["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": NEW.value["secret_access_key"],
        "LOG_LEVEL": "info",
        "ADDED_MEANWHILE": "1",
    }


def test_plan_names_the_function_and_variables_and_changes_nothing(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    target = lam.make("fn-plan")
    before = lam.env("fn-plan")
    text = "\n".join(dep.plan(target))
    assert "UpdateFunctionConfiguration Lambda function fn-plan in us-east-1" in text
    assert "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY" in text
    assert lam.env("fn-plan") == before


def test_update_is_idempotent(lam: Lambdas, dep: LambdaEnvironmentDependent) -> None:
    target = lam.make("fn-idem")
    snap = dep.prepare(target, OLD, NEW)
    dep.update(snap, NEW)
    modified = lam.client.get_function_configuration(FunctionName="fn-idem")["LastModified"]
    time.sleep(0.01)
    dep.update(snap, NEW)
    again = lam.client.get_function_configuration(FunctionName="fn-idem")["LastModified"]
    assert again == modified  # no second UpdateFunctionConfiguration


def test_twenty_functions_are_updated_verified_and_rolled_back(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    targets = [lam.make(f"fn-{i:02d}") for i in range(20)]
    before = {t.resource: lam.env(t.resource) for t in targets}
    started = time.perf_counter()
    snaps = [DependentSnapshot.from_dict(dep.prepare(t, OLD, NEW).to_dict()) for t in targets]
    for s in snaps:
        dep.update(s, NEW)
        dep.verify(s, NEW)
    updated = time.perf_counter() - started
    assert all(
        lam.env(t.resource)["AWS_ACCESS_KEY_ID"] == NEW.value["access_key_id"] for t in targets
    )
    for s in snaps:
        dep.rollback(s, OLD)
    assert {t.resource: lam.env(t.resource) for t in targets} == before
    print(f"20 functions prepared+updated+verified in {updated:.2f}s")


def test_a_retried_prepare_after_update_still_rolls_back_to_the_old_value(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    target = lam.make("fn-retry")
    dep.update(dep.prepare(target, OLD, NEW), NEW)  # crash before the snapshot was persisted
    snap = dep.prepare(target, OLD, NEW)
    assert {v.state for v in snap.variables} == {HeldState.NEW}
    dep.rollback(snap, OLD)
    assert lam.env("fn-retry")["AWS_SECRET_ACCESS_KEY"] == OLD.value["secret_access_key"]


def test_a_variable_holding_an_unknown_value_is_refused(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    target = lam.make(
        "fn-drift", {"AWS_ACCESS_KEY_ID": "AKIASOMETHINGELSE000", "AWS_SECRET_ACCESS_KEY": "zzz"}
    )
    with pytest.raises(DependentDrift) as err:
        dep.prepare(target, OLD, NEW)
    text = err.value.diagnostics()
    assert "Variable AWS_ACCESS_KEY_ID of Lambda function fn-drift" in text
    assert "AKIASOMETHINGELSE000" not in text and "zzz" not in text
    assert lam.env("fn-drift")["AWS_SECRET_ACCESS_KEY"] == "zzz"


def test_absent_variables_are_added_and_removed_again_on_rollback(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    target = lam.make("fn-absent", {"LOG_LEVEL": "debug"})
    snap = dep.prepare(target, OLD, NEW)
    dep.update(snap, NEW)
    dep.verify(snap, NEW)
    dep.rollback(snap, OLD)
    assert lam.env("fn-absent") == {"LOG_LEVEL": "debug"}


def test_a_deleted_function_is_a_clear_error_naming_it(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    target = lam.make("fn-gone")
    snap = dep.prepare(target, OLD, NEW)
    lam.client.delete_function(FunctionName="fn-gone")
    for call in (lambda: dep.update(snap, NEW), lambda: dep.rollback(snap, OLD)):
        with pytest.raises(DependentNotFound) as err:
            call()
        assert "Lambda function fn-gone in us-east-1 no longer exists" in err.value.diagnostics()
        assert err.value.exit_code is ExitCode.USAGE
    with pytest.raises(DependentNotFound):
        dep.prepare(target, OLD, NEW)


def test_verify_notices_a_function_changed_behind_its_back(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    target = lam.make("fn-tamper")
    snap = dep.prepare(target, OLD, NEW)
    dep.update(snap, NEW)
    lam.set_env("fn-tamper", {**lam.env("fn-tamper"), "AWS_SECRET_ACCESS_KEY": "changed"})
    with pytest.raises(DependentError, match="AWS_SECRET_ACCESS_KEY") as err:
        dep.verify(snap, NEW)
    assert "changed" not in str(err.value).replace("changed the function", "")


def test_reference_mode_bumps_the_version_variable_and_restores_it(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    lam.make("fn-ref", {"SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:app/aws"})
    target = DependentTarget("aws-lambda", "fn-ref", mode=DependentMode.REFERENCE)
    snap = dep.prepare(target, OLD, NEW)
    dep.update(snap, NEW)
    dep.verify(snap, NEW)
    assert lam.env("fn-ref")[VERSION_VARIABLE] == "v-new"
    dep.rollback(snap, OLD)
    assert VERSION_VARIABLE not in lam.env("fn-ref")
    # a second rotation restores the previous marker, not absence
    lam.set_env("fn-ref", {**lam.env("fn-ref"), VERSION_VARIABLE: "v-old"})
    snap2 = dep.prepare(target, OLD, NEW)
    dep.update(snap2, NEW)
    dep.rollback(snap2, OLD)
    assert lam.env("fn-ref")[VERSION_VARIABLE] == "v-old"


def test_alias_moves_to_a_published_version_and_back(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    lam.make("fn-alias")
    v1 = lam.client.publish_version(FunctionName="fn-alias")["Version"]
    lam.client.create_alias(FunctionName="fn-alias", Name="live", FunctionVersion=v1)
    target = DependentTarget("aws-lambda", "fn-alias", BINDINGS, region="us-east-1", alias="live")
    snap = dep.prepare(target, OLD, NEW)
    assert snap.alias_version == v1
    dep.update(snap, NEW)
    dep.update(snap, NEW)  # idempotent: no second publish
    dep.verify(snap, NEW)
    live = lam.client.get_alias(FunctionName="fn-alias", Name="live")["FunctionVersion"]
    assert live != v1
    assert lam.env("fn-alias", live)["AWS_SECRET_ACCESS_KEY"] == NEW.value["secret_access_key"]
    versions = lam.client.list_versions_by_function(FunctionName="fn-alias")["Versions"]
    assert len(versions) == 3  # $LATEST, v1, one new version
    dep.rollback(snap, OLD)
    assert lam.client.get_alias(FunctionName="fn-alias", Name="live")["FunctionVersion"] == v1


def test_rollback_refuses_a_store_value_that_is_not_what_the_function_held(
    lam: Lambdas, dep: LambdaEnvironmentDependent
) -> None:
    target = lam.make("fn-wrong-old")
    snap = dep.prepare(target, OLD, NEW)
    dep.update(snap, NEW)
    impostor = VersionedSecret("app/aws", "v-old", NEW.value.replace(access_key_id="AKIAX"))
    with pytest.raises(DependentError, match="does not hold what variable"):
        dep.rollback(snap, impostor)
    with pytest.raises(DependentError, match="held version v-old"):
        dep.rollback(snap, NEW)


def test_snapshots_and_logs_never_contain_a_secret_value(
    lam: Lambdas, dep: LambdaEnvironmentDependent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="keyward")
    target = lam.make("fn-quiet")
    snap = dep.prepare(target, OLD, NEW)
    doc = json.dumps(snap.to_dict())
    dep.update(snap, NEW)
    dep.verify(snap, NEW)
    dep.rollback(snap, OLD)
    text = doc + repr(snap) + caplog.text
    for v in (*OLD.value.fields.values(), *NEW.value.fields.values()):
        assert v not in text
    assert FP.fingerprint(OLD.value["secret_access_key"]) in doc


# --------------------------------------------------------------- the whole sequence
def _drive(
    store: Any, rot: Any, dep: LambdaEnvironmentDependent, name: str, targets: list[Any]
) -> tuple[str, list[dict[str, Any]]]:
    """The sequence from keyward.rotation.protocols, as the state machine will drive it.

    Returns the outcome and the persisted snapshots (what the state machine would store).
    """
    from keyward.rotation.protocols import RotationContext, new_token

    c = RotationContext(new_token(), datetime.now(UTC))
    cur = store.read_current(name)
    pending = store.put_pending(name, rot.create(cur.value, c), c.token)
    new = store.read_version(name, pending)
    persisted: list[dict[str, Any]] = []
    try:
        rot.set(cur.value, new.value)
        rot.test(new.value)
        for t in targets:
            persisted.append(dep.prepare(t, cur, new).to_dict())
            snap = DependentSnapshot.from_dict(persisted[-1])
            dep.update(snap, new)
            dep.verify(snap, new)
    except Exception:
        for doc in reversed(persisted):
            try:
                dep.rollback(DependentSnapshot.from_dict(doc), cur)
            except DependentNotFound:
                pass  # recorded by the state machine; nothing left to restore
        rot.rollback(cur.value, new.value, c)
        store.discard_pending(name, c.token)
        return "rolled-back", persisted
    store.promote(name, pending)
    deactivated_at = datetime.now(UTC)
    rot.deactivate(cur.value, new.value)
    assert rot.revoke(cur.value, new.value, deactivated_at).outcome.value == "revoked"
    return "finished", persisted


@pytest.fixture
def iam_world(aws: Any, lam: Lambdas, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """keyward as an IAM admin user, an app user with one key stored in Secrets Manager,
    20 functions holding that key; credential checking on."""
    from tests.integration._moto_patches import fix_get_request_signatures, reject_inactive_keys

    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="keyward")
    iam.put_user_policy(
        UserName="keyward",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    admin = iam.create_access_key(UserName="keyward")["AccessKey"]
    iam.create_user(UserName="app")
    key = iam.create_access_key(UserName="app")["AccessKey"]
    value = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    sm.create_secret(Name="app/aws", SecretString=json.dumps(value))
    targets = [
        lam.make(
            f"svc-{i:02d}",
            {
                "AWS_ACCESS_KEY_ID": value["access_key_id"],
                "AWS_SECRET_ACCESS_KEY": value["secret_access_key"],
                "SERVICE": f"svc-{i:02d}",
            },
        )
        for i in range(20)
    ]
    fix_get_request_signatures(monkeypatch)
    reject_inactive_keys(monkeypatch)
    aws.set_auth(True)

    def client(service: str, creds: Any = None) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            aws_access_key_id=creds.access_key_id if creds else admin["AccessKeyId"],
            aws_secret_access_key=creds.secret_access_key if creds else admin["SecretAccessKey"],
        )

    yield client, targets, value


def test_one_iam_key_in_twenty_functions_rotates_end_to_end(iam_world: Any) -> None:
    from keyward.rotation.rotators.aws_iam import IamAccessKeyRotator
    from keyward.rotation.stores.aws_secretsmanager import SecretsManagerStore

    client, targets, old = iam_world
    store = SecretsManagerStore(client("secretsmanager"))
    rot = IamAccessKeyRotator(client("iam"), lambda c: client("sts", c), test_delay=0)
    dep = LambdaEnvironmentDependent(lambda region: client("lambda"), FP, wait_delay=1)
    started = time.perf_counter()
    outcome, _ = _drive(store, rot, dep, "app/aws", targets)
    took = time.perf_counter() - started
    assert outcome == "finished"
    new = store.read_current("app/aws").value
    assert new["access_key_id"] != old["access_key_id"]
    keys = client("iam").list_access_keys(UserName="app")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [new["access_key_id"]]
    fn = client("lambda")
    for t in targets:
        env = fn.get_function_configuration(FunctionName=t.resource)["Environment"]["Variables"]
        assert env["AWS_SECRET_ACCESS_KEY"] == new["secret_access_key"]
        assert env["SERVICE"] == t.resource
    print(f"IAM key + 20 functions rotated end to end in {took:.2f}s")


def test_a_dependent_failing_half_way_rolls_everything_back(iam_world: Any) -> None:
    from keyward.rotation.rotators.aws_iam import IamAccessKeyRotator
    from keyward.rotation.stores.aws_secretsmanager import SecretsManagerStore

    client, targets, old = iam_world
    store = SecretsManagerStore(client("secretsmanager"))
    rot = IamAccessKeyRotator(client("iam"), lambda c: client("sts", c), test_delay=0)
    fn = client("lambda")
    before = {
        t.resource: fn.get_function_configuration(FunctionName=t.resource)["Environment"]
        for t in targets
    }
    fn.delete_function(FunctionName="svc-10")  # the 11th dependent is gone
    dep = LambdaEnvironmentDependent(lambda region: client("lambda"), FP, wait_delay=1)
    outcome, persisted = _drive(store, rot, dep, "app/aws", targets)
    assert outcome == "rolled-back" and len(persisted) == 10
    cur = store.read_current("app/aws").value
    assert cur.fields == old
    d = store.describe("app/aws")
    assert d.pending is None and d.previous is None
    keys = client("iam").list_access_keys(UserName="app")["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(old["access_key_id"], "Active")]
    for t in targets:
        if t.resource != "svc-10":
            env = fn.get_function_configuration(FunctionName=t.resource)["Environment"]
            assert env == before[t.resource]
    sts = client("sts", AwsCredentials(old["access_key_id"], old["secret_access_key"]))
    assert sts.get_caller_identity()["Arn"].endswith(":user/app")
