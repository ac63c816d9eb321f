"""Vault / OpenBao KV version 2 as a :class:`~keyward.rotation.protocols.SecretStore`.

**The secret's path only ever gains a version when that version is current.** Vault Agent
templates, External Secrets Operator, the CSI provider, ``vault kv get`` and nearly every
application read the *latest* version of a path, so keyward never writes an untested value
there. The pending value waits in a keyward-owned **staging secret** instead, by default
``secret/keyward-staging/<mount>/<path>`` (options ``staging_mount`` and ``staging_path``; a
mount of its own, readable by keyward alone, is the strictest choice). At promote keyward
writes it to the secret's path with check-and-set, so:

* current is always the latest version and previous the one before it (as ``vault kv
  rollback`` users expect); nothing about stages is kept in the secret's metadata;
* the pending version id is the number the value *will* get: ``base + 1``, where ``base`` was
  the latest version when the rotation stored its value. ``read_version(name, base + 1)``
  reads the staged value until promote, the secret's own version afterwards;
* discarding a pending value destroys the staging data only: the secret's path is untouched.

The staging secret's ``custom_metadata`` is keyward's record for the secret:

``keyward_pending_token`` / ``keyward_pending_base`` / ``keyward_staging_base``
    the **intent**, written *before* the staging data: "token T stages its value as staging
    version ``staging_base + 1``, to become version ``base + 1`` of the secret with
    ``cas = base``";
``keyward_promoted_token`` / ``keyward_promoted_version``
    written after the promote write (the pending keys are dropped at the same time); then the
    staged data is destroyed.

Crash recovery: a staged value exists exactly when the staging secret's latest version is
``staging_base + 1``; the promote write is recognised after a crash because the secret's
version ``base + 1`` then holds the staged value (compared in constant time), so a retried
promote never writes a second version, and a write by someone else at that number is a
:class:`~keyward.core.errors.StoreConflict`, never silently taken for ours.

**Earlier keyward releases** kept the stages in the secret's own ``custom_metadata``
(``keyward_current_version``, ``keyward_previous_version``, ``keyward_pending_*``) and wrote
the pending value as the latest version. Such secrets are still read that way (current is the
recorded version; a pending version of an old rotation can be promoted or discarded as
before), and the next rotation removes those keys, after which current is the latest version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keyward.core.errors import ConfigError, KeywardError, StoreConflict, StoreNotFound
from keyward.providers.vault import VaultCaller
from keyward.rotation.protocols import (
    CreatedSecret,
    SecretDescription,
    SecretValue,
    VersionedSecret,
)

if TYPE_CHECKING:
    from keyward.rotation.registry import PluginContext

log = logging.getLogger(__name__)

DEFAULT_STAGING_PATH = "keyward-staging"

# the staging secret's custom_metadata
S_SECRET = "keyward_secret"
S_TOKEN = "keyward_pending_token"
S_BASE = "keyward_pending_base"
S_STAGING_BASE = "keyward_staging_base"
S_PROMOTED_TOKEN = "keyward_promoted_token"
S_PROMOTED_VERSION = "keyward_promoted_version"
_S_PENDING_KEYS = (S_TOKEN, S_BASE, S_STAGING_BASE)

# earlier releases: stages in the secret's own custom_metadata
K_CURRENT = "keyward_current_version"
K_PREVIOUS = "keyward_previous_version"
K_PENDING = "keyward_pending_version"
K_TOKEN = "keyward_pending_token"
K_BASE = "keyward_pending_base"
K_CURRENT_TOKEN = "keyward_current_token"
LEGACY_KEYS = (K_CURRENT, K_PREVIOUS, K_PENDING, K_TOKEN, K_BASE, K_CURRENT_TOKEN)
_LEGACY_PENDING_KEYS = (K_PENDING, K_TOKEN, K_BASE)


def _int(custom: Mapping[str, str], key: str) -> int | None:
    raw = custom.get(key)
    return int(raw) if raw and raw.isdigit() else None


@dataclass(frozen=True, slots=True)
class _Meta:
    """A KV v2 metadata entry (the secret's, or the staging secret's)."""

    latest: int
    custom: dict[str, str]
    versions: Mapping[str, Any]

    def alive(self, version: int) -> bool:
        info = self.versions.get(str(version)) or {}
        return bool(info) and not info.get("destroyed") and not info.get("deletion_time")

    # ---- the secret's own metadata, as earlier releases wrote it
    @property
    def legacy(self) -> bool:
        return any(k in self.custom for k in LEGACY_KEYS)

    @property
    def current(self) -> int:
        return _int(self.custom, K_CURRENT) or self.latest

    @property
    def previous(self) -> int | None:
        recorded = _int(self.custom, K_PREVIOUS)
        if recorded is not None:
            return recorded
        for version in range(self.current - 1, 0, -1):
            if self.alive(version):
                return version
        return None

    @property
    def legacy_token(self) -> str | None:
        return self.custom.get(K_TOKEN) or None

    @property
    def legacy_pending(self) -> int | None:
        """An old-style pending version: recorded, or the one an interrupted write left."""
        recorded = _int(self.custom, K_PENDING)
        if recorded is not None:
            return recorded
        base = _int(self.custom, K_BASE)
        if self.legacy_token and base is not None and self.latest == base + 1:
            return self.latest
        return None

    # ---- the staging secret's metadata
    @property
    def token(self) -> str | None:
        return self.custom.get(S_TOKEN) or None

    @property
    def target(self) -> int | None:
        """The version number the pending value gets at promote (``base + 1``)."""
        base = _int(self.custom, S_BASE)
        return base + 1 if self.token and base is not None else None

    @property
    def staged(self) -> int | None:
        """The staging version holding the pending value, if it was written and is alive."""
        base = _int(self.custom, S_STAGING_BASE)
        if self.token is None or base is None:
            return None
        return base + 1 if self.latest == base + 1 and self.alive(base + 1) else None

    @property
    def promoted_token(self) -> str | None:
        return self.custom.get(S_PROMOTED_TOKEN) or None

    @property
    def promoted_version(self) -> int | None:
        return _int(self.custom, S_PROMOTED_VERSION)


_NONE = _Meta(latest=0, custom={}, versions={})


class VaultKVStore:
    """Secrets under one KV v2 mount, addressed by path (``app/db``)."""

    kind = "vault-kv"

    def __init__(
        self,
        client: Any,
        *,
        mount: str = "secret",
        staging_mount: str | None = None,
        staging_path: str = DEFAULT_STAGING_PATH,
        reauth: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self.mount = mount.strip("/")
        self.staging_mount = (staging_mount or self.mount).strip("/")
        self.staging_path = staging_path.strip("/")
        if not self.mount or not self.staging_mount:
            raise ConfigError("The Vault KV mount and staging_mount must not be empty")
        # every call goes through the boundary: keyward errors out, AppRole re-login once
        self._call = VaultCaller(client, relogin=reauth)

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> VaultKVStore:
        vault = context.clients.vault
        staging_mount = options.get("staging_mount")
        return cls(
            vault.client(),
            mount=str(options.get("mount", "secret")),
            staging_mount=str(staging_mount) if staging_mount else None,
            staging_path=str(options.get("staging_path", DEFAULT_STAGING_PATH)),
            reauth=vault.reauth(),
        )

    def __repr__(self) -> str:
        return (
            f"VaultKVStore(mount={self.mount!r}, staging={self.staging_mount}/{self.staging_path})"
        )

    # ------------------------------------------------------------------ paths
    def _path(self, kind: str, name: str) -> str:
        return f"{self.mount}/{kind}/{name.strip('/')}"

    def _staging_name(self, name: str) -> str:
        """The staging secret of ``name`` inside the staging mount."""
        parts = [self.staging_path, self.mount, name.strip("/")]
        return "/".join(p for p in parts if p)

    def _spath(self, kind: str, name: str) -> str:
        return f"{self.staging_mount}/{kind}/{self._staging_name(name)}"

    def is_staging(self, path: str) -> bool:
        """True for a path of this store's mount that is keyward's staging area."""
        if self.staging_mount != self.mount:
            return False
        path = path.strip("/")
        return bool(self.staging_path) and (
            path == self.staging_path or path.startswith(self.staging_path + "/")
        )

    # ------------------------------------------------------------------ calls
    def _read_meta(self, mount: str, path: str, shown: str, action: str) -> _Meta:
        try:
            resp = self._call(
                action,
                shown,
                self._client.secrets.kv.v2.read_secret_metadata,
                path=path,
                mount_point=mount,
            )
        except StoreNotFound:
            return _NONE
        data = resp.get("data") or {}
        return _Meta(
            latest=int(data.get("current_version") or 0),
            custom={str(k): str(v) for k, v in (data.get("custom_metadata") or {}).items()},
            versions=data.get("versions") or {},
        )

    def _meta(self, name: str) -> _Meta:
        return self._read_meta(self.mount, name, self._path("metadata", name), "read metadata")

    def _staging(self, name: str) -> _Meta:
        try:
            return self._read_meta(
                self.staging_mount,
                self._staging_name(name),
                self._spath("metadata", name),
                "read staging metadata",
            )
        except ConfigError as err:
            if err.fault is None:
                raise
            raise self._no_staging(name, err) from None  # nothing mounted at staging_mount

    def _no_staging(self, name: str, err: KeywardError) -> StoreNotFound:
        return StoreNotFound(
            f"The staging area {self.staging_mount}/{self.staging_path} for {name} cannot "
            f"be written: {err.message}",
            hint=f"Enable a KV v2 mount at {self.staging_mount} (bao secrets enable "
            f"-path={self.staging_mount} kv-v2) or set staging_mount in "
            "[rotation.stores.vault-kv]",
        )

    def _post_custom(self, action: str, mount: str, path: str, custom: Mapping[str, str]) -> None:
        # A raw POST with only custom_metadata leaves max_versions, cas_required and
        # delete_version_after as they are (hvac's update_metadata would reset the latter).
        shown = f"{mount}/metadata/{path}"
        self._call(
            action,
            shown,
            self._client.adapter.post,
            f"/v1/{shown}",
            json={"custom_metadata": dict(custom)},
        )

    def _write_custom(self, name: str, custom: Mapping[str, str]) -> None:
        self._post_custom("update metadata", self.mount, name, custom)

    def _write_staging_custom(self, name: str, custom: Mapping[str, str], action: str) -> None:
        try:
            self._post_custom(action, self.staging_mount, self._staging_name(name), custom)
        except (StoreNotFound, ConfigError) as err:
            raise self._no_staging(name, err) from None

    def _read_at(self, mount: str, path: str, shown: str, version: int) -> SecretValue:
        resp = self._call(
            f"read version {version}",
            shown,
            self._client.secrets.kv.v2.read_secret_version,
            path=path,
            version=version,
            mount_point=mount,
            raise_on_deleted_version=True,
        )
        data = (resp.get("data") or {}).get("data")
        if data is None:
            raise StoreNotFound(f"Version {version} of {shown} has no data")
        return SecretValue({str(k): v if isinstance(v, str) else str(v) for k, v in data.items()})

    def _read(self, name: str, version: int) -> VersionedSecret:
        value = self._read_at(self.mount, name, self._path("data", name), version)
        return VersionedSecret(name, str(version), value)

    def _read_staged(self, name: str, staged: int) -> SecretValue:
        return self._read_at(
            self.staging_mount, self._staging_name(name), self._spath("data", name), staged
        )

    def _write(self, name: str, value: SecretValue, cas: int) -> int:
        resp = self._call(
            "write",
            self._path("data", name),
            self._client.secrets.kv.v2.create_or_update_secret,
            path=name,
            secret=dict(value.fields),
            cas=cas,
            mount_point=self.mount,
        )
        return int(resp["data"]["version"])

    def _write_staged(self, name: str, value: SecretValue, cas: int) -> None:
        self._call(
            "write staging data",
            self._spath("data", name),
            self._client.secrets.kv.v2.create_or_update_secret,
            path=self._staging_name(name),
            secret=dict(value.fields),
            cas=cas,
            mount_point=self.staging_mount,
        )

    def _destroy_staged(self, name: str, staged: int) -> None:
        self._call(
            f"destroy staging version {staged}",
            self._spath("destroy", name),
            self._client.secrets.kv.v2.destroy_secret_versions,
            path=self._staging_name(name),
            versions=[staged],
            mount_point=self.staging_mount,
        )

    def _promote_written(self, name: str, meta: _Meta, st: _Meta) -> bool:
        """True when the secret's version ``target`` holds the staged value: the promote
        write happened (perhaps without being recorded, if keyward died right after it)."""
        target, staged = st.target, st.staged
        if target is None or staged is None or meta.latest < target or not meta.alive(target):
            return False
        return self._read(name, target).value.same_as(self._read_staged(name, staged))

    @staticmethod
    def _without(custom: Mapping[str, str], keys: tuple[str, ...]) -> dict[str, str]:
        return {k: v for k, v in custom.items() if k not in keys}

    def _record_promoted(self, name: str, st: _Meta, target: int) -> None:
        """Pending keys out, the promoted token and version in; then the staged data goes."""
        custom = self._without(st.custom, _S_PENDING_KEYS)
        custom[S_PROMOTED_TOKEN] = str(st.token)
        custom[S_PROMOTED_VERSION] = str(target)
        self._write_staging_custom(name, custom, "record promote in staging metadata")
        if st.staged is not None:
            self._destroy_staged(name, st.staged)

    # --------------------------------------------------------------- protocol
    def plan(self, name: str) -> tuple[str, ...]:
        data, sdata = self._path("data", name), self._spath("data", name)
        smeta = self._spath("metadata", name)
        return (
            f"write {smeta} custom_metadata (pending token and base version: the intent)",
            f"write {sdata} (the pending value; {data} is not written until finish)",
            f"write {data} with cas = current version (at finish: the value becomes current)",
            f"write {smeta} custom_metadata (promoted), destroy the staged version",
        )

    def describe(self, name: str) -> SecretDescription:
        meta = self._meta(name)
        if meta.latest == 0:
            return SecretDescription(name=name, exists=False)
        ref = self._path("data", name)
        previous = meta.previous
        if meta.legacy and meta.legacy_token:  # a rotation of an earlier release
            pending = meta.legacy_pending
            return SecretDescription(
                name=name,
                exists=True,
                ref=ref,
                current=str(meta.current),
                previous=str(previous) if previous else None,
                pending=str(pending) if pending else None,
                pending_token=meta.legacy_token,
            )
        st = self._staging(name)
        pending_version: str | None = None
        token = st.token
        if token is not None and st.target is not None:
            if self._promote_written(name, meta, st):
                token = None  # promoted; only recording it was interrupted
            elif st.staged is not None:
                pending_version = str(st.target)
        return SecretDescription(
            name=name,
            exists=True,
            ref=ref,
            current=str(meta.current),
            previous=str(previous) if previous else None,
            pending=pending_version,
            pending_token=token,
        )

    def read_current(self, name: str) -> VersionedSecret:
        meta = self._meta(name)
        if meta.latest == 0:
            raise StoreNotFound(f"{self._path('data', name)} has no versions")
        return self._read(name, meta.current)

    def read_version(self, name: str, version: str) -> VersionedSecret:
        if not version.isdigit():
            raise StoreNotFound(f"{version!r} is not a version of {self._path('data', name)}")
        st = self._staging(name)
        if st.staged is not None and st.target == int(version):
            # the pending value (identical to the secret's version once promoted)
            return VersionedSecret(name, version, self._read_staged(name, st.staged))
        return self._read(name, int(version))

    def _check_value(self, path: str, existing: SecretValue, value: SecretValue) -> None:
        if not existing.same_as(value):
            raise StoreConflict(
                f"{path} already has a pending value for this rotation's token with a "
                "different value",
                hint="Resume the rotation from its pending version, or roll it back",
            )

    def _another_rotation(self, path: str) -> StoreConflict:
        return StoreConflict(
            f"{path} already has a pending version from another rotation",
            hint="Finish or roll back that rotation first (keyward rotations list)",
        )

    def _migrate(self, name: str, meta: _Meta, token: str, value: SecretValue) -> str | None:
        """Stages recorded by an earlier release: a retried old-style put returns its
        version; otherwise the keys are removed (current becomes the latest version)."""
        path = self._path("data", name)
        if meta.legacy_token is not None:
            pending = meta.legacy_pending
            if meta.legacy_token != token or pending is None:
                raise self._another_rotation(path)
            self._check_value(path, self._read(name, pending).value, value)
            return str(pending)
        if meta.current != meta.latest:
            raise StoreConflict(
                f"{path} was written outside keyward: latest version {meta.latest} is not the "
                f"current version {meta.current}",
                hint=(
                    f"If version {meta.latest} is the one in use, record it with `vault kv "
                    f"metadata patch -custom-metadata={K_CURRENT}={meta.latest} "
                    f"{self.mount}/{name}`, then rotate"
                ),
            )
        self._write_custom(name, self._without(meta.custom, LEGACY_KEYS))
        log.info("secret %s: stages of an earlier keyward removed from its metadata", path)
        return None

    def put_pending(self, name: str, value: SecretValue, token: str) -> str:
        meta = self._meta(name)
        path = self._path("data", name)
        if meta.latest == 0:
            raise StoreNotFound(f"{path} has no versions")
        if meta.legacy:
            legacy = self._migrate(name, meta, token, value)
            if legacy is not None:
                return legacy
            meta = _Meta(meta.latest, self._without(meta.custom, LEGACY_KEYS), meta.versions)
        st = self._staging(name)
        if st.token is not None and st.token != token:
            if not self._promote_written(name, meta, st):
                raise self._another_rotation(path)
            self._record_promoted(name, st, int(st.target or 0))  # finish that record first
            st = self._staging(name)
        if st.token == token and st.target is not None and st.staged is not None:  # a retry
            self._check_value(path, self._read_staged(name, st.staged), value)
            return str(st.target)
        # (only the intent of this token was recorded: record it again and stage the value)
        if st.latest and st.alive(st.latest):  # a staged copy an interrupted promote left
            self._destroy_staged(name, st.latest)
        # intent first, then the staged value (cas: nothing else wrote in between)
        intent = self._without(st.custom, _S_PENDING_KEYS)
        intent.update(
            {
                S_SECRET: f"{self.mount}/{name.strip('/')}",
                S_TOKEN: token,
                S_BASE: str(meta.latest),
                S_STAGING_BASE: str(st.latest),
            }
        )
        self._write_staging_custom(name, intent, "record intent in staging metadata")
        self._write_staged(name, value, cas=st.latest)
        target = meta.latest + 1
        log.info("secret %s: pending value staged for version %s", path, target)
        return str(target)

    def promote(self, name: str, version: str) -> None:
        meta = self._meta(name)
        path = self._path("data", name)
        if meta.legacy and meta.legacy_token is not None:
            self._promote_legacy(name, meta, version)
            return
        st = self._staging(name)
        if st.target is None or str(st.target) != version:
            if st.promoted_version is not None and str(st.promoted_version) == version:
                if st.latest and st.alive(st.latest):
                    self._destroy_staged(name, st.latest)  # the last step was interrupted
                return  # already done
            raise StoreNotFound(
                f"{path} has no pending version {version} to promote",
                hint="The pending version was discarded; roll the rotation back",
            )
        target = st.target
        if st.staged is None:
            raise StoreNotFound(
                f"The pending value for version {version} of {path} is no longer staged",
                hint="The pending version was discarded; roll the rotation back",
            )
        staged = self._read_staged(name, st.staged)
        if meta.latest >= target:
            written = meta.alive(target) and self._read(name, target).value.same_as(staged)
            if not written:
                raise StoreConflict(
                    f"{path} was written outside keyward during the rotation (version "
                    f"{target} is not the value keyward tested)",
                    hint="Check which version is in use, then roll the rotation back",
                )
        else:
            got = self._write(name, staged, cas=target - 1)
            if got != target:  # cannot happen with cas; never record a wrong number
                raise StoreConflict(f"{path} got version {got} instead of {target}")
        self._record_promoted(name, st, target)
        log.info("secret %s: version %s is current", path, version)

    def _promote_legacy(self, name: str, meta: _Meta, version: str) -> None:
        pending = meta.legacy_pending
        if pending is None or str(pending) != version:
            raise StoreNotFound(
                f"{self._path('data', name)} has no pending version {version} to promote",
                hint="The pending version was discarded; roll the rotation back",
            )
        if meta.latest != pending:
            raise StoreConflict(
                f"{self._path('data', name)} was written outside keyward during the rotation",
                hint="Check which version is in use, then roll the rotation back",
            )
        # the old-style pending version is already the latest: drop the stages
        self._write_custom(name, self._without(meta.custom, LEGACY_KEYS))
        log.info("secret %s: version %s is current", self._path("data", name), version)

    def discard_pending(self, name: str, token: str) -> None:
        meta = self._meta(name)
        path = self._path("data", name)
        if meta.legacy and meta.legacy_token == token:
            self._discard_legacy(name, meta)
            return
        st = self._staging(name)
        already = StoreConflict(
            f"The version for this rotation of {path} is already current and cannot be discarded",
            hint="The rotation finished; rotate again instead of rolling back",
        )
        if st.token != token:
            if st.promoted_token == token or (
                meta.legacy and meta.custom.get(K_CURRENT_TOKEN) == token
            ):
                raise already
            return  # nothing of this rotation is pending (never written, or discarded)
        if self._promote_written(name, meta, st):
            raise already
        if st.staged is not None:
            self._destroy_staged(name, st.staged)
        self._write_staging_custom(
            name, self._without(st.custom, _S_PENDING_KEYS), "clear intent in staging metadata"
        )
        log.info("secret %s: pending value discarded (the secret was not written)", path)

    def _discard_legacy(self, name: str, meta: _Meta) -> None:
        """An earlier release's pending version: destroy it and, like ``vault kv rollback``,
        write the current data again as the latest version."""
        pending = meta.legacy_pending
        current = meta.current
        if pending is not None and meta.alive(pending):
            self._call(
                f"destroy version {pending}",
                self._path("destroy", name),
                self._client.secrets.kv.v2.destroy_secret_versions,
                path=name,
                versions=[pending],
                mount_point=self.mount,
            )
        if meta.latest != current:
            if meta.latest == pending or not meta.alive(meta.latest):
                current = self._write(name, self._read(name, current).value, cas=meta.latest)
            elif not self._read(name, meta.latest).value.same_as(self._read(name, current).value):
                raise StoreConflict(
                    f"{self._path('data', name)} was written outside keyward during the "
                    f"rotation (version {meta.latest})",
                    hint="Check which version is in use before rolling back",
                )
        # current is the latest version again: the stages are no longer needed
        self._write_custom(name, self._without(meta.custom, LEGACY_KEYS))
        log.info("secret %s: pending version %s discarded", self._path("data", name), pending)

    def create(
        self, name: str, value: SecretValue, *, tags: Mapping[str, str], token: str
    ) -> CreatedSecret:
        """Write version 1 of ``name`` with check-and-set 0 (refused when the path has a
        version), then its ``custom_metadata`` (the tags). A retry after the write finds its
        own version 1 (same value) instead of failing."""
        shown = self._path("data", name)
        try:
            version = self._write(name, value, cas=0)
        except StoreConflict:
            meta = self._meta(name)
            if meta.latest != 1 or not self._read(name, 1).value.same_as(value):
                raise StoreConflict(
                    f"Vault already has a secret at {shown}",
                    hint="Choose another --name",
                ) from None
            version = 1
        if tags:
            self._write_custom(name, tags)
        log.info("secret %s: created (version %s)", shown, version)
        return CreatedSecret(name, f"{self.mount}/{name.strip('/')}", str(version))

    def reference_variable(self) -> str:
        return "KEYWARD_SECRET_PATH"

    def list_secrets(self, prefix: str = "") -> Iterator[str]:
        stack = [prefix.strip("/")]
        while stack:
            folder = stack.pop()
            try:
                resp = self._call(
                    "list",
                    self._path("metadata", folder),
                    self._client.secrets.kv.v2.list_secrets,
                    path=folder,
                    mount_point=self.mount,
                )
            except StoreNotFound:
                continue
            for key in sorted((resp.get("data") or {}).get("keys") or [], reverse=True):
                full = f"{folder}/{key}" if folder else str(key)
                if self.is_staging(full.rstrip("/")):
                    continue  # keyward's own staging area holds no secrets of their own
                if key.endswith("/"):
                    stack.append(full.rstrip("/"))
                else:
                    yield full
