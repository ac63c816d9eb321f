"""AWS Secrets Manager as a :class:`~keyward.rotation.protocols.SecretStore`.

Stages are Secrets Manager's own staging labels: ``AWSCURRENT``, ``AWSPREVIOUS`` and
``AWSPENDING``. keyward drives them itself and never calls ``RotateSecret``:

* put pending: ``PutSecretValue(ClientRequestToken=token, VersionStages=["AWSPENDING"])``; the
  version id *is* the token. A retry with the same token is checked here (the stored value must
  be the same), because some implementations accept a reused token with a different value.
* promote: ``UpdateSecretVersionStage(AWSCURRENT, MoveToVersionId=new, RemoveFromVersionId=old)``
  (the old one becomes ``AWSPREVIOUS``), then remove ``AWSPENDING`` from the new version.
* discard: remove ``AWSPENDING``; the version loses all labels and Secrets Manager deprecates it.

Values: a ``SecretString`` holding a JSON object maps to its fields (numbers and booleans are
kept as text and written back with their original JSON type); any other string is the single
field ``value`` and is written back as a plain string.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from keyward.core.errors import StoreConflict, StoreError, StoreNotFound
from keyward.providers.aws import AwsService, aws_errors
from keyward.providers.errors import STORE_ERRORS
from keyward.rotation.protocols import (
    CreatedSecret,
    SecretDescription,
    SecretValue,
    VersionedSecret,
)

if TYPE_CHECKING:
    from keyward.rotation.registry import PluginContext

log = logging.getLogger(__name__)

CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
PENDING = "AWSPENDING"

R = TypeVar("R")


def decode(secret_string: str) -> tuple[SecretValue, dict[str, Any] | None]:
    """Fields of a ``SecretString`` and, for JSON objects, the original object (its types)."""
    try:
        doc = json.loads(secret_string)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return SecretValue.single(secret_string), None
    fields = {
        str(k): v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        for k, v in doc.items()
    }
    return SecretValue(fields), doc


def encode(value: SecretValue, template: Mapping[str, Any] | None, plain: bool) -> str:
    """Serialise ``value``: plain when it is the single field ``value`` of a plain secret,
    otherwise a JSON object whose non-string fields keep the type they had in ``template``."""
    if plain and set(value.fields) == {"value"}:
        return value["value"]
    out: dict[str, Any] = {}
    for k, v in value.fields.items():
        before = (template or {}).get(k)
        if before is not None and not isinstance(before, str):
            try:
                out[k] = json.loads(v)
                continue
            except ValueError:
                pass
        out[k] = v
    return json.dumps(out)


class SecretsManagerStore:
    """Secrets in one AWS region, addressed by name or ARN."""

    kind = "aws-secretsmanager"

    def __init__(self, client: Any, *, region: str | None = None) -> None:
        self._client = client
        self.region = region

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> SecretsManagerStore:
        region = options.get("region")
        return cls(context.clients.aws.client(AwsService.SECRETS_MANAGER, region), region=region)

    def __repr__(self) -> str:
        return f"SecretsManagerStore(region={self.region!r})"

    # ------------------------------------------------------------------ calls
    def _call(self, action: str, name: str, fn: Callable[..., R], **kwargs: Any) -> R:
        with aws_errors(f"secretsmanager:{action}", f"secret {name!r}", STORE_ERRORS):
            return fn(**kwargs)

    def _stages(self, name: str) -> tuple[dict[str, list[str]], dict[str, Any]]:
        meta = self._call("DescribeSecret", name, self._client.describe_secret, SecretId=name)
        if meta.get("DeletedDate"):
            raise StoreNotFound(
                f"Secret {name!r} is scheduled for deletion",
                hint="Restore it (RestoreSecret) or point keyward at another secret",
            )
        return dict(meta.get("VersionIdsToStages") or {}), meta

    @staticmethod
    def _find(stages: Mapping[str, list[str]], label: str) -> str | None:
        for version, labels in stages.items():
            if label in labels:
                return version
        return None

    def _get(self, name: str, **selector: str) -> tuple[VersionedSecret, dict[str, Any] | None]:
        resp = self._call(
            "GetSecretValue", name, self._client.get_secret_value, SecretId=name, **selector
        )
        if "SecretString" not in resp:
            raise StoreError(
                f"Secret {name!r} holds binary data, which keyward does not rotate",
                hint="Store the value as a string (SecretString)",
            )
        value, doc = decode(resp["SecretString"])
        return VersionedSecret(name, str(resp["VersionId"]), value), doc

    # --------------------------------------------------------------- protocol
    def plan(self, name: str) -> tuple[str, ...]:
        return (
            f"secretsmanager:PutSecretValue {name} (AWSPENDING, ClientRequestToken = token)",
            f"secretsmanager:UpdateSecretVersionStage {name}: AWSCURRENT -> new version, "
            "old version -> AWSPREVIOUS",
            f"secretsmanager:UpdateSecretVersionStage {name}: remove AWSPENDING",
        )

    def describe(self, name: str) -> SecretDescription:
        try:
            stages, meta = self._stages(name)
        except StoreNotFound:
            return SecretDescription(name=name, exists=False)
        pending = self._find(stages, PENDING)
        current = self._find(stages, CURRENT)
        # AWSPENDING on the AWSCURRENT version: a promote stopped between its two calls. It
        # is shown (pending == current: promote() finishes it), but as no unfinished put, so
        # no one takes it for another rotation's leftover and rolls the current value back.
        unfinished_put = pending is not None and pending != current
        return SecretDescription(
            name=name,
            exists=True,
            ref=str(meta.get("ARN", "")),
            current=current,
            previous=self._find(stages, PREVIOUS),
            pending=pending,
            # the version id is the client request token
            pending_token=pending if unfinished_put else None,
            managed_by=self._managed_by(meta),
        )

    @staticmethod
    def _managed_by(meta: Mapping[str, Any]) -> str | None:
        """Secrets Manager's own rotation of this secret, in words, if it is enabled."""
        if not meta.get("RotationEnabled"):
            return None
        if meta.get("RotationLambdaARN"):
            return f"AWS Secrets Manager's rotation with the Lambda {meta['RotationLambdaARN']}"
        owner = meta.get("OwningService")
        return f"AWS Secrets Manager's managed rotation{f' for {owner}' if owner else ''}"

    def stop_managed_rotation(self, name: str) -> str:
        """Turn Secrets Manager's own rotation of ``name`` off (``CancelRotateSecret``): keyward
        takes over. Returns what was done, for the audit log. Idempotent."""
        _, meta = self._stages(name)
        managed = self._managed_by(meta)
        if managed is None:
            return "nothing to cancel: rotation is not enabled"
        self._call("CancelRotateSecret", name, self._client.cancel_rotate_secret, SecretId=name)
        log.info("secret %s: AWS's own rotation cancelled (%s)", name, managed)
        return f"secretsmanager:CancelRotateSecret ({managed})"

    def read_current(self, name: str) -> VersionedSecret:
        return self._get(name, VersionStage=CURRENT)[0]

    def read_version(self, name: str, version: str) -> VersionedSecret:
        return self._get(name, VersionId=version)[0]

    def put_pending(self, name: str, value: SecretValue, token: str) -> str:
        stages, _ = self._stages(name)
        other_pending = self._find(stages, PENDING)
        if token in stages:  # a retry: the version exists already
            existing = self.read_version(name, token).value
            if not existing.same_as(value):
                raise StoreConflict(
                    f"Secret {name!r} already has a version for this rotation's token with a "
                    "different value",
                    hint="Resume the rotation from its pending version, or roll it back",
                )
            if CURRENT in stages[token]:
                raise StoreConflict(
                    f"The version for this rotation of secret {name!r} is already current",
                    hint="The rotation already finished this step; resume it",
                )
            if PENDING not in stages[token]:
                kwargs: dict[str, str] = {"MoveToVersionId": token}
                if other_pending:
                    kwargs["RemoveFromVersionId"] = other_pending
                self._call(
                    "UpdateSecretVersionStage",
                    name,
                    self._client.update_secret_version_stage,
                    SecretId=name,
                    VersionStage=PENDING,
                    **kwargs,
                )
            return token
        if other_pending is not None and CURRENT in stages[other_pending]:
            # an interrupted promote left AWSPENDING on the current version: finish that
            self._call(
                "UpdateSecretVersionStage",
                name,
                self._client.update_secret_version_stage,
                SecretId=name,
                VersionStage=PENDING,
                RemoveFromVersionId=other_pending,
            )
            other_pending = None
        if other_pending is not None:
            raise StoreConflict(
                f"Secret {name!r} already has a pending version from another rotation",
                hint="Finish or roll back that rotation first (keyward rotations list)",
            )
        current_doc: dict[str, Any] | None = None
        plain = True
        current = self._find(stages, CURRENT)
        if current is not None:
            _, current_doc = self._get(name, VersionId=current)
            plain = current_doc is None
        resp = self._call(
            "PutSecretValue",
            name,
            self._client.put_secret_value,
            SecretId=name,
            ClientRequestToken=token,
            SecretString=encode(value, current_doc, plain),
            VersionStages=[PENDING],
        )
        log.info("secret %s: pending version %s stored", name, resp["VersionId"])
        return str(resp["VersionId"])

    def promote(self, name: str, version: str) -> None:
        stages, _ = self._stages(name)
        if version not in stages:
            raise StoreNotFound(
                f"Secret {name!r} has no version {version} to promote",
                hint="The pending version was discarded; roll the rotation back",
            )
        current = self._find(stages, CURRENT)
        if current != version:
            kwargs: dict[str, str] = {"MoveToVersionId": version}
            if current is not None:
                kwargs["RemoveFromVersionId"] = current
            self._call(
                "UpdateSecretVersionStage",
                name,
                self._client.update_secret_version_stage,
                SecretId=name,
                VersionStage=CURRENT,
                **kwargs,
            )
        if PENDING in stages[version]:
            self._remove_pending_label(name, version)
        log.info("secret %s: version %s is current", name, version)

    def _remove_pending_label(self, name: str, version: str) -> None:
        self._call(
            "UpdateSecretVersionStage",
            name,
            self._client.update_secret_version_stage,
            SecretId=name,
            VersionStage=PENDING,
            RemoveFromVersionId=version,
        )

    def discard_pending(self, name: str, token: str) -> None:
        stages, _ = self._stages(name)
        labels = stages.get(token, [])  # the version id is the token
        if CURRENT in labels:
            raise StoreConflict(
                f"The version for this rotation of secret {name!r} is already current and "
                "cannot be discarded",
                hint="The rotation finished; rotate again instead of rolling back",
            )
        if PENDING in labels:
            self._remove_pending_label(name, token)
            log.info("secret %s: pending version %s discarded", name, token)

    def create(
        self, name: str, value: SecretValue, *, tags: Mapping[str, str], token: str
    ) -> CreatedSecret:
        """``CreateSecret`` with the value as its ``AWSCURRENT`` version (the version id is
        ``token``): a plain string for a single ``value`` field, else a JSON object. A retry
        with the same token finds the secret it made (same value) instead of failing."""
        try:
            resp = self._call(
                "CreateSecret",
                name,
                self._client.create_secret,
                Name=name,
                ClientRequestToken=token,
                SecretString=encode(value, None, plain=True),
                Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
                Description="Adopted by keyward from a hardcoded value",
            )
        except StoreConflict:
            stages, meta = self._stages(name)
            if token not in stages or not self.read_version(name, token).value.same_as(value):
                raise StoreConflict(
                    f"AWS Secrets Manager already has a secret named {name!r}",
                    hint="Choose another --name, or adopt into that secret's inventory entry "
                    "with keyward discover",
                ) from None
            return CreatedSecret(name, str(meta.get("ARN", "")), token)
        log.info("secret %s: created (version %s)", name, resp["VersionId"])
        return CreatedSecret(name, str(resp["ARN"]), str(resp["VersionId"]))

    def reference_variable(self) -> str:
        return "KEYWARD_SECRET_ARN"

    def list_secrets(self, prefix: str = "") -> Iterator[str]:
        kwargs: dict[str, Any] = {}
        if prefix:
            kwargs["Filters"] = [{"Key": "name", "Values": [prefix]}]
        with aws_errors("secretsmanager:ListSecrets", "this account", STORE_ERRORS):
            for page in self._client.get_paginator("list_secrets").paginate(**kwargs):
                for entry in page.get("SecretList", []):
                    if not entry.get("DeletedDate"):
                        yield str(entry["Name"])
