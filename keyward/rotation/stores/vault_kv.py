"""Vault / OpenBao KV version 2 as a :class:`~keyward.rotation.protocols.SecretStore`.

KV v2 has numbered versions but no stages, and its "latest" version is not necessarily the
current one while a rotation is pending. keyward records the stages in the secret's
``custom_metadata``:

``keyward_current_version`` / ``keyward_previous_version``
    the version readers should use, and the one before it;
``keyward_pending_token`` / ``keyward_pending_base``
    written *before* the new version (intent: "token T writes base+1 with cas=base");
``keyward_pending_version``
    written after it;
``keyward_current_token``
    the token of the rotation that made the current version current.

Because the intent is recorded first, a crash between writing the version and recording it is
recognised on resume: if the latest version is exactly ``base+1``, it is the pending one.
Readers that need the current value read ``keyward_current_version`` (:meth:`read_current`);
a secret keyward has never touched has its latest version as current.

Discarding a pending version destroys its data (it is a credential being revoked) and, like
``vault kv rollback``, writes the current data again as a new latest version so that readers of
"latest" keep working; that copy becomes the recorded current version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from keyward.core.errors import StoreConflict, StoreNotFound
from keyward.providers.vault import VaultCaller
from keyward.rotation.protocols import SecretDescription, SecretValue, VersionedSecret

log = logging.getLogger(__name__)

K_CURRENT = "keyward_current_version"
K_PREVIOUS = "keyward_previous_version"
K_PENDING = "keyward_pending_version"
K_TOKEN = "keyward_pending_token"
K_BASE = "keyward_pending_base"
K_CURRENT_TOKEN = "keyward_current_token"  # token of the rotation that made current current
_PENDING_KEYS = (K_PENDING, K_TOKEN, K_BASE)


@dataclass(frozen=True, slots=True)
class _Meta:
    latest: int
    custom: dict[str, str]
    versions: Mapping[str, Any]

    def _int(self, key: str) -> int | None:
        raw = self.custom.get(key)
        return int(raw) if raw and raw.isdigit() else None

    @property
    def current(self) -> int:
        return self._int(K_CURRENT) or self.latest

    @property
    def previous(self) -> int | None:
        return self._int(K_PREVIOUS)

    @property
    def token(self) -> str | None:
        return self.custom.get(K_TOKEN) or None

    @property
    def base(self) -> int | None:
        return self._int(K_BASE)

    @property
    def pending(self) -> int | None:
        """The recorded pending version, or the one an interrupted write left (base+1)."""
        recorded = self._int(K_PENDING)
        if recorded is not None:
            return recorded
        if self.token and self.base is not None and self.latest == self.base + 1:
            return self.latest
        return None

    def alive(self, version: int) -> bool:
        info = self.versions.get(str(version)) or {}
        return bool(info) and not info.get("destroyed") and not info.get("deletion_time")


class VaultKVStore:
    """Secrets under one KV v2 mount, addressed by path (``app/db``)."""

    kind = "vault-kv"

    def __init__(
        self,
        client: Any,
        *,
        mount: str = "secret",
        reauth: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self.mount = mount.strip("/")
        # every call goes through the boundary: keyward errors out, AppRole re-login once
        self._call = VaultCaller(client, relogin=reauth)

    @classmethod
    def from_config(cls, context: Any, options: Mapping[str, Any]) -> VaultKVStore:
        vault = context.clients.vault
        return cls(
            vault.client(),
            mount=str(options.get("mount", "secret")),
            reauth=vault.reauth(),
        )

    def __repr__(self) -> str:
        return f"VaultKVStore(mount={self.mount!r})"

    # ------------------------------------------------------------------ calls
    def _path(self, kind: str, name: str) -> str:
        return f"{self.mount}/{kind}/{name.strip('/')}"

    def _meta(self, name: str) -> _Meta:
        resp = self._call(
            "read metadata",
            self._path("metadata", name),
            self._client.secrets.kv.v2.read_secret_metadata,
            path=name,
            mount_point=self.mount,
        )
        data = resp.get("data") or {}
        return _Meta(
            latest=int(data.get("current_version") or 0),
            custom={str(k): str(v) for k, v in (data.get("custom_metadata") or {}).items()},
            versions=data.get("versions") or {},
        )

    def _write_custom(self, name: str, custom: Mapping[str, str]) -> None:
        # A raw POST with only custom_metadata leaves max_versions, cas_required and
        # delete_version_after as they are (hvac's update_metadata would reset the latter).
        self._call(
            "update metadata",
            self._path("metadata", name),
            self._client.adapter.post,
            f"/v1/{self._path('metadata', name)}",
            json={"custom_metadata": dict(custom)},
        )

    def _read(self, name: str, version: int) -> VersionedSecret:
        resp = self._call(
            f"read version {version}",
            self._path("data", name),
            self._client.secrets.kv.v2.read_secret_version,
            path=name,
            version=version,
            mount_point=self.mount,
            raise_on_deleted_version=True,
        )
        data = (resp.get("data") or {}).get("data")
        if data is None:
            raise StoreNotFound(f"Version {version} of {self._path('data', name)} has no data")
        fields = {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}
        return VersionedSecret(name, str(version), SecretValue(fields))

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

    # --------------------------------------------------------------- protocol
    def plan(self, name: str) -> tuple[str, ...]:
        data, meta = self._path("data", name), self._path("metadata", name)
        return (
            f"write {meta} custom_metadata (pending token and base version)",
            f"write {data} with cas = current version (the pending version)",
            f"write {meta} custom_metadata {K_CURRENT} = pending version",
        )

    def describe(self, name: str) -> SecretDescription:
        try:
            meta = self._meta(name)
        except StoreNotFound:
            return SecretDescription(name=name, exists=False)
        if meta.latest == 0:
            return SecretDescription(name=name, exists=False)
        pending = meta.pending
        previous = meta.previous
        return SecretDescription(
            name=name,
            exists=True,
            ref=self._path("data", name),
            current=str(meta.current),
            previous=str(previous) if previous else None,
            pending=str(pending) if pending else None,
            pending_token=meta.token,
        )

    def read_current(self, name: str) -> VersionedSecret:
        meta = self._meta(name)
        if meta.latest == 0:
            raise StoreNotFound(f"{self._path('data', name)} has no versions")
        return self._read(name, meta.current)

    def read_version(self, name: str, version: str) -> VersionedSecret:
        if not version.isdigit():
            raise StoreNotFound(f"{version!r} is not a version of {self._path('data', name)}")
        return self._read(name, int(version))

    def put_pending(self, name: str, value: SecretValue, token: str) -> str:
        meta = self._meta(name)
        path = self._path("data", name)
        if meta.latest == 0:
            raise StoreNotFound(f"{path} has no versions")
        if meta.token is not None and meta.token != token:
            raise StoreConflict(
                f"{path} already has a pending version from another rotation",
                hint="Finish or roll back that rotation first (keyward rotations list)",
            )
        pending = meta.pending
        if meta.token == token and pending is not None:  # a retry
            existing = self._read(name, pending).value
            if not existing.same_as(value):
                raise StoreConflict(
                    f"{path} already has a version for this rotation's token with a "
                    "different value",
                    hint="Resume the rotation from its pending version, or roll it back",
                )
            if meta.custom.get(K_PENDING) != str(pending):
                self._write_custom(name, {**meta.custom, K_PENDING: str(pending)})
            return str(pending)
        base = meta.base if meta.token == token and meta.base is not None else meta.latest
        if meta.latest != base or meta.current != base:
            raise StoreConflict(
                f"{path} was written outside keyward: latest version {meta.latest} is not the "
                f"current version {meta.current}",
                hint=(
                    f"If version {meta.latest} is the one in use, record it with `vault kv "
                    f"metadata patch -custom-metadata={K_CURRENT}={meta.latest} "
                    f"{self.mount}/{name}`, then rotate"
                ),
            )
        # intent first, then the version (cas=base), then the version number
        intent = {**meta.custom, K_CURRENT: str(meta.current), K_TOKEN: token, K_BASE: str(base)}
        if intent != meta.custom:
            self._write_custom(name, intent)
        version = self._write(name, value, cas=base)
        self._write_custom(name, {**intent, K_PENDING: str(version)})
        log.info("secret %s: pending version %s stored", path, version)
        return str(version)

    def promote(self, name: str, version: str) -> None:
        meta = self._meta(name)
        path = self._path("data", name)
        if str(meta.current) == version and meta.pending is None:
            return  # already done
        if meta.pending is None or str(meta.pending) != version:
            raise StoreNotFound(
                f"{path} has no pending version {version} to promote",
                hint="The pending version was discarded; roll the rotation back",
            )
        custom = {k: v for k, v in meta.custom.items() if k not in _PENDING_KEYS}
        custom[K_PREVIOUS] = str(meta.current)
        custom[K_CURRENT] = version
        if meta.token:
            custom[K_CURRENT_TOKEN] = meta.token
        self._write_custom(name, custom)
        log.info("secret %s: version %s is current", path, version)

    def discard_pending(self, name: str, token: str) -> None:
        meta = self._meta(name)
        path = self._path("data", name)
        if meta.custom.get(K_CURRENT_TOKEN) == token and meta.token != token:
            raise StoreConflict(
                f"The version for this rotation of {path} is already current and cannot be "
                "discarded",
                hint="The rotation finished; rotate again instead of rolling back",
            )
        if meta.token != token:
            return  # nothing of this rotation is pending (never written, or discarded)
        pending = meta.pending
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
            # like `vault kv rollback`: the current data becomes the latest version again
            if meta.latest == pending or not meta.alive(meta.latest):
                current = self._write(name, self._read(name, current).value, cas=meta.latest)
            elif self._read(name, meta.latest).value.same_as(self._read(name, current).value):
                current = meta.latest  # an interrupted earlier discard wrote the copy
            else:
                raise StoreConflict(
                    f"{path} was written outside keyward during the rotation (version "
                    f"{meta.latest})",
                    hint="Check which version is in use before rolling back",
                )
        custom = {k: v for k, v in meta.custom.items() if k not in _PENDING_KEYS}
        custom[K_CURRENT] = str(current)
        self._write_custom(name, custom)
        log.info("secret %s: pending version %s discarded", path, pending)

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
                if key.endswith("/"):
                    stack.append(full.rstrip("/"))
                else:
                    yield full
