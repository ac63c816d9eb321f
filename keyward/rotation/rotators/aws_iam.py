"""``aws-iam-access-key``: rotate an IAM user's access key.

The secret holds two fields (names configurable): ``access_key_id`` and
``secret_access_key``. Steps:

* create: ``CreateAccessKey`` for the key's user (an IAM user can have two keys, so the old one
  keeps working). Before the call the rotation's notes record the user's keys (the intent);
  the moment it returns they record the new key's id, before anything else happens. If the
  user already has a second key, keyward refuses, unless that key is *Inactive* and
  ``delete_inactive_key = true`` allows deleting it, or it is this rotation's own key from an
  interrupted earlier ``create`` whose secret never reached the store (see rollback).
* set: nothing (the key is valid as soon as IAM has it).
* test: ``sts:GetCallerIdentity`` signed with the new key must answer with the same user
  (retried while the new key propagates).
* deactivate: ``UpdateAccessKey(Status=Inactive)`` on the old key.
* revoke: ``DeleteAccessKey`` on the old key, only if it is still Inactive and
  ``GetAccessKeyLastUsed`` shows no use after it was deactivated.
* rollback: ``DeleteAccessKey`` on the new key (never the current one). When the new value never
  reached the store, the recorded id says which key is ours. If a crash left it unknown (the
  process died inside ``CreateAccessKey``), a key is deleted only when exactly one candidate
  exists: not among the keys recorded before the call, created after the rotation started,
  never used. Otherwise keyward stops and names the candidates; it never deletes a key a
  person made.

Options: ``user_name`` (else found from the current key), ``delete_inactive_key``,
``access_key_id_field``, ``secret_access_key_field``, ``region``, ``test_attempts``,
``test_delay`` (seconds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from keyward.core.errors import Failure, KeywardError, ProviderNotFound
from keyward.core.redaction import redact
from keyward.providers.aws import AwsService, aws_errors
from keyward.providers.settings import AwsCredentials
from keyward.rotation.errors import ROTATOR_ERRORS, CredentialRejected, RotatorConflict
from keyward.rotation.protocols import (
    Retirement,
    RetireOutcome,
    RotationContext,
    SecretValue,
)

if TYPE_CHECKING:
    from keyward.rotation.registry import PluginContext

log = logging.getLogger(__name__)
R = TypeVar("R")


# Codes STS answers while a brand-new key has not propagated yet.
def _show(key_id: str) -> str:
    """Access key ids are identifiers, but scanners flag them: show them redacted."""
    return redact(key_id)


_PROPAGATING = {"InvalidClientTokenId", "SignatureDoesNotMatch", "AuthFailure"}
# CreateAccessKey surely made no key when it failed like this (a timeout may have made one)
_NOT_CREATED = {Failure.NO_CREDENTIALS, Failure.REJECTED, Failure.DENIED, Failure.NOT_FOUND,
                Failure.CONFLICT}  # fmt: skip
# The rotation's notes (RotationContext.notes): ids only, never a secret
NOTE_KEYS_BEFORE = "iam.keys_before"  # the user's key ids just before CreateAccessKey (intent)
NOTE_CREATED = "iam.created_key"  # the id CreateAccessKey returned ("" when it surely failed)
# Failures that say nothing about the new key: raised as they are, not as CredentialRejected.
_NOT_THE_KEY = {Failure.NO_CREDENTIALS, Failure.UNAVAILABLE, Failure.THROTTLED}


class IamAccessKeyRotator:
    kind = "aws-iam-access-key"

    def __init__(
        self,
        iam: Any,
        sts_for: Callable[[AwsCredentials], Any],
        *,
        user_name: str | None = None,
        delete_inactive_key: bool = False,
        id_field: str = "access_key_id",
        secret_field: str = "secret_access_key",
        test_attempts: int = 10,
        test_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._iam = iam
        self._sts_for = sts_for
        self.user_name = user_name
        self.delete_inactive_key = delete_inactive_key
        self.id_field = id_field
        self.secret_field = secret_field
        self.test_attempts = max(1, test_attempts)
        self.test_delay = test_delay
        self._sleep = sleep

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> IamAccessKeyRotator:
        region = options.get("region")
        aws = context.clients.aws
        return cls(
            aws.client(AwsService.IAM, region),
            lambda creds: aws.with_credentials(AwsService.STS, creds, region),
            user_name=options.get("user_name"),
            delete_inactive_key=bool(options.get("delete_inactive_key", False)),
            id_field=str(options.get("access_key_id_field", "access_key_id")),
            secret_field=str(options.get("secret_access_key_field", "secret_access_key")),
            test_attempts=int(options.get("test_attempts", 10)),
            test_delay=float(options.get("test_delay", 2.0)),
        )

    def __repr__(self) -> str:
        return f"IamAccessKeyRotator(user_name={self.user_name!r})"

    # ---------------------------------------------------------------- helpers
    def _call(self, action: str, resource: str, fn: Callable[..., R], **kw: Any) -> R:
        with aws_errors(action, resource, ROTATOR_ERRORS):
            return fn(**kw)

    def _key_id(self, value: SecretValue, which: str) -> str:
        key_id = value.get(self.id_field)
        if not key_id:
            raise RotatorConflict(
                f"The {which} secret value has no {self.id_field!r} field",
                hint="Set access_key_id_field to the field that holds the access key id",
            )
        return key_id

    def _last_used(self, key_id: str) -> dict[str, Any] | None:
        """``GetAccessKeyLastUsed`` for a key, or ``None`` if the key no longer exists."""
        try:
            return dict(
                self._call(
                    "iam:GetAccessKeyLastUsed",
                    f"access key {_show(key_id)}",
                    self._iam.get_access_key_last_used,
                    AccessKeyId=key_id,
                )
            )
        except ProviderNotFound:
            return None

    def _user(self, key_id: str) -> str:
        if self.user_name:
            return self.user_name
        info = self._last_used(key_id)
        if info is None or not info.get("UserName"):
            raise RotatorConflict(
                f"The current access key {_show(key_id)} no longer exists in IAM",
                hint="Record the key that is in use in the secret, or set user_name",
            )
        return str(info["UserName"])

    def _keys(self, user: str) -> list[dict[str, Any]]:
        resp = self._call(
            "iam:ListAccessKeys", f"IAM user {user}", self._iam.list_access_keys, UserName=user
        )
        return list(resp.get("AccessKeyMetadata", []))

    def _delete(self, user: str, key_id: str) -> None:
        try:
            self._call(
                "iam:DeleteAccessKey",
                f"access key {_show(key_id)}",
                self._iam.delete_access_key,
                UserName=user,
                AccessKeyId=key_id,
            )
        except ProviderNotFound:
            pass  # already gone

    def _ours(
        self, user: str, current_id: str, keys: list[dict[str, Any]], ctx: RotationContext
    ) -> str | None:
        """The id of this rotation's key among ``keys``, if one exists that the new value never
        reached the store with, else ``None``. From the notes when they say; when a crash left
        it unknown, the one candidate (not recorded before the create, created after the
        rotation started, never used); several candidates stop the rotation, named."""
        created = ctx.notes.get(NOTE_CREATED)
        ids = {str(k["AccessKeyId"]) for k in keys}
        if created is not None:  # known: the key CreateAccessKey returned, or none ("")
            return created if created and created != current_id and created in ids else None
        before = ctx.notes.get(NOTE_KEYS_BEFORE)
        if before is None:
            return None  # CreateAccessKey was never called in this rotation
        recorded = set(filter(None, before.split(",")))
        candidates: list[dict[str, Any]] = []
        for k in keys:
            key_id = str(k["AccessKeyId"])
            made = k.get("CreateDate")
            if key_id == current_id or key_id in recorded:
                continue
            if made is None or made < ctx.started_at:
                continue
            info = self._last_used(key_id) or {}
            if (info.get("AccessKeyLastUsed") or {}).get("LastUsedDate") is None:
                candidates.append(k)
        if len(candidates) > 1:
            named = ", ".join(
                f"{_show(str(k['AccessKeyId']))} (created {k['CreateDate']:%Y-%m-%d %H:%M:%S} UTC)"
                for k in candidates
            )
            raise RotatorConflict(
                f"keyward was stopped inside iam:CreateAccessKey for IAM user {user}, and "
                f"{len(candidates)} never-used keys were created since the rotation started "
                f"({named}); it cannot tell which one it made, so it deletes none",
                hint="Delete the one that nobody made by hand (aws iam delete-access-key), "
                "then run the command again",
            )
        return str(candidates[0]["AccessKeyId"]) if candidates else None

    def _free_slot(self, user: str, current_id: str, ctx: RotationContext) -> list[str]:
        """Make room for a new key: delete our own leftover, or an inactive key by policy.
        Returns the ids of the user's keys that remain."""
        keys = self._keys(user)
        if current_id not in {k["AccessKeyId"] for k in keys}:
            raise RotatorConflict(
                f"The current access key {_show(current_id)} does not belong to IAM user {user}",
                hint="Check user_name and the key recorded in the secret",
            )
        ours = self._ours(user, current_id, keys, ctx)
        remaining = [current_id]
        for k in keys:
            key_id = str(k["AccessKeyId"])
            if key_id == current_id:
                continue
            if key_id == ours:
                log.info("deleting access key %s left by an interrupted create", _show(key_id))
                self._delete(user, key_id)
            elif k.get("Status") == "Inactive" and self.delete_inactive_key:
                log.info("deleting inactive access key %s (delete_inactive_key)", _show(key_id))
                self._delete(user, key_id)
            else:
                status = str(k.get("Status", "unknown")).lower()
                raise RotatorConflict(
                    f"IAM user {user} already has two access keys ({_show(current_id)} in use and "
                    f"{_show(key_id)}, {status}); keyward needs a free slot for the new key",
                    hint=(
                        "Delete the unused key, or set delete_inactive_key = true to let "
                        "keyward delete an inactive one"
                        if status == "inactive"
                        else "Deactivate and delete the other key yourself; keyward never "
                        "deletes an active key it did not create"
                    ),
                )
        return remaining

    # --------------------------------------------------------------- protocol
    def plan(self, current: SecretValue) -> tuple[str, ...]:
        key_id = current.get(self.id_field) or "?"
        user = self.user_name or f"the user of {_show(key_id)}"
        return (
            f"iam:ListAccessKeys for {user} (needs a free slot for a second key)",
            f"iam:CreateAccessKey for {user}",
            "sts:GetCallerIdentity signed with the new key",
            f"iam:UpdateAccessKey {_show(key_id)} -> Inactive (after finish)",
            f"iam:DeleteAccessKey {_show(key_id)} after the grace period, if unused since "
            "deactivation",
        )

    def create(self, current: SecretValue, ctx: RotationContext) -> SecretValue:
        current_id = self._key_id(current, "current")
        user = self._user(current_id)
        remaining = self._free_slot(user, current_id, ctx)
        # the intent, persisted before the call: which keys were there, and no result yet
        ctx.notes.record(NOTE_CREATED, None)
        ctx.notes.record(NOTE_KEYS_BEFORE, ",".join(sorted(remaining)))
        try:
            resp = self._call(
                "iam:CreateAccessKey",
                f"IAM user {user}",
                self._iam.create_access_key,
                UserName=user,
            )
        except KeywardError as err:
            if err.fault is not None and err.fault.failure in _NOT_CREATED:
                ctx.notes.record(NOTE_CREATED, "")  # surely no key was made
            raise
        key = resp["AccessKey"]
        ctx.notes.record(NOTE_CREATED, str(key["AccessKeyId"]))  # before anything else
        log.info("created access key %s for IAM user %s", _show(key["AccessKeyId"]), user)
        return current.replace(
            **{
                self.id_field: str(key["AccessKeyId"]),
                self.secret_field: str(key["SecretAccessKey"]),
            }
        )

    def set(self, current: SecretValue, new: SecretValue) -> None:
        return None

    def test(self, new: SecretValue) -> None:
        key_id = self._key_id(new, "new")
        secret = new.get(self.secret_field)
        if not secret:
            raise CredentialRejected(f"The new secret value has no {self.secret_field!r} field")
        sts = self._sts_for(AwsCredentials(key_id, secret))
        code = ""
        for attempt in range(self.test_attempts):
            try:
                resp = self._call(
                    "sts:GetCallerIdentity", f"access key {_show(key_id)}", sts.get_caller_identity
                )
            except KeywardError as err:
                if err.fault is None or err.fault.failure in _NOT_THE_KEY:
                    raise  # the key was never asked: no network, throttled, ...
                code = err.fault.code
                if code in _PROPAGATING and attempt + 1 < self.test_attempts:
                    self._sleep(self.test_delay)
                    continue
                break
            arn = str(resp["Arn"])
            expected = self.user_name or self._user(key_id)
            if not arn.endswith(f":user/{expected}") and f":user/{expected}" not in arn:
                raise CredentialRejected(
                    f"The new access key {_show(key_id)} authenticates as {arn}, not IAM user "
                    f"{expected}"
                )
            log.info("new access key %s works (sts:GetCallerIdentity)", _show(key_id))
            return
        raise CredentialRejected(
            f"The new access key {_show(key_id)} was refused by sts:GetCallerIdentity ({code}) "
            f"after {self.test_attempts} attempts",
            hint="Check that the key exists and is Active; roll the rotation back",
        )

    def deactivate(self, old: SecretValue, new: SecretValue) -> None:
        old_id = self._key_id(old, "old")
        if old_id == self._key_id(new, "new"):
            return
        info = self._last_used(old_id)
        if info is None:
            return  # already gone
        user = self.user_name or str(info["UserName"])
        try:
            self._call(
                "iam:UpdateAccessKey",
                f"access key {_show(old_id)}",
                self._iam.update_access_key,
                UserName=user,
                AccessKeyId=old_id,
                Status="Inactive",
            )
        except ProviderNotFound:
            pass  # deleted meanwhile: nothing left to deactivate
        log.info("deactivated old access key %s", _show(old_id))

    def revoke(self, old: SecretValue, new: SecretValue, deactivated_at: datetime) -> Retirement:
        old_id = self._key_id(old, "old")
        if old_id == self._key_id(new, "new"):
            return Retirement(RetireOutcome.NOT_APPLICABLE, "the old and new key are the same")
        info = self._last_used(old_id)
        if info is None:
            return Retirement(
                RetireOutcome.ALREADY_GONE, f"access key {_show(old_id)} no longer exists"
            )
        user = self.user_name or str(info["UserName"])
        status = {k["AccessKeyId"]: k.get("Status") for k in self._keys(user)}.get(old_id)
        if status is None:
            return Retirement(
                RetireOutcome.ALREADY_GONE, f"access key {_show(old_id)} no longer exists"
            )
        if status != "Inactive":
            return Retirement(
                RetireOutcome.KEPT_IN_USE,
                f"access key {_show(old_id)} is {status} again (re-activated after keyward "
                "deactivated it); it was not deleted",
            )
        last = info.get("AccessKeyLastUsed") or {}
        used = last.get("LastUsedDate")
        if used is not None and used.astimezone(UTC) > deactivated_at.astimezone(UTC):
            service = last.get("ServiceName", "an AWS service")
            return Retirement(
                RetireOutcome.KEPT_IN_USE,
                f"access key {_show(old_id)} was used with {service} at {used.isoformat()}, "
                "after it was deactivated; it was not deleted",
            )
        self._delete(user, old_id)
        log.info("deleted old access key %s of IAM user %s", _show(old_id), user)
        return Retirement(RetireOutcome.REVOKED, f"deleted access key {_show(old_id)}")

    def rollback(self, current: SecretValue, new: SecretValue | None, ctx: RotationContext) -> None:
        current_id = self._key_id(current, "current")
        user = self._user(current_id)
        if new is not None:
            new_id = self._key_id(new, "new")
            if new_id != current_id:
                self._delete(user, new_id)
                log.info("rolled back: deleted new access key %s", _show(new_id))
            return
        # the new key never reached the store: delete ours, known from the notes (or the one
        # candidate a crash inside CreateAccessKey left); never a key someone else made
        ours = self._ours(user, current_id, self._keys(user), ctx)
        if ours is not None:
            self._delete(user, ours)
            log.info("rolled back: deleted unstored access key %s", _show(ours))
