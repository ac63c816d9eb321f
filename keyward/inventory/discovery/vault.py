"""Discover Vault / OpenBao KV v2 secrets from metadata (values are not read unless asked).

The client comes from :class:`keyward.providers.vault.VaultClients` (``VAULT_TOKEN``, or
AppRole with ``VAULT_ROLE_ID`` and ``VAULT_SECRET_ID``; ``VAULT_ADDR``, ``VAULT_NAMESPACE``
and ``[rotation.vault]``, as for rotation) and every call goes through its
:class:`~keyward.providers.vault.VaultCaller`. A path whose listing or metadata is denied
becomes a warning; no credentials, an unreachable server or throttling raise (exit 3).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from keyward.core.errors import Failure, KeywardError
from keyward.inventory.discovery import (
    DEFAULT_TAG_KEYS,
    Discovered,
    DiscoveredVersion,
    Scan,
    TagKeys,
    value_fingerprints,
)

if TYPE_CHECKING:
    from keyward.providers.vault import VaultCaller

DEFAULT_STAGING_PATH = "keyward-staging"  # keyward.rotation.stores.vault_kv's default

log = logging.getLogger(__name__)

STORE = "vault-kv"
MAX_PATHS = 100_000
_FRACTION = re.compile(r"\.(\d{6})\d*")


def parse_time(value: Any) -> datetime | None:
    """Vault's RFC 3339 times with nanoseconds; the zero time means unset."""
    if not value or not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1), value.strip()).replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def discover_vault(
    vault: VaultCaller,
    *,
    mount: str = "secret",
    prefix: str = "",
    tag_keys: TagKeys = DEFAULT_TAG_KEYS,
    fingerprint: Callable[[str], str] | None = None,
    staging_path: str = DEFAULT_STAGING_PATH,
) -> Scan:
    """Every KV v2 secret under ``mount``/``prefix``: times, versions, custom_metadata.

    keyward's own staging area (``staging_path``, where pending values wait during a rotation)
    is skipped: it holds no secrets of its own."""
    mount = mount.strip("/")
    prefix = prefix.strip("/")
    staging = staging_path.strip("/")
    scan = Scan(STORE, scope=f"{mount}/{prefix}" if prefix else f"{mount}/")
    kv = vault.client.secrets.kv.v2

    def guarded(action: str, path: str, fn: Callable[[], Any]) -> Any:
        """A denied or failed read is a warning; missing is None; the rest raises."""
        what = f"{action} on {path}"
        try:
            return vault(action, path, fn)
        except KeywardError as err:
            fault = err.fault
            if fault is None:
                raise
            if fault.failure is Failure.DENIED:
                scan.warn(f"Vault denied {what}")
            elif fault.failure in (Failure.CONFLICT, Failure.FAILED):
                scan.warn(f"Vault failed {what} ({fault.detail or fault.code})")
            elif fault.failure is not Failure.NOT_FOUND:
                raise  # no credentials, token rejected, unreachable, throttled: exit 3
        return None

    pending = [prefix]
    leaves: list[str] = []
    while pending and len(leaves) < MAX_PATHS:
        folder = pending.pop()
        listed = guarded(
            "list",
            f"{mount}/metadata/{folder}".rstrip("/"),
            partial(kv.list_secrets, path=folder, mount_point=mount),
        )
        if listed is None:
            if folder == prefix and not leaves and prefix:
                leaves.append(prefix)  # the prefix may be a secret itself
            continue
        for key in listed.get("data", {}).get("keys", []):
            full = f"{folder}/{key}" if folder else str(key)
            if staging and (full.rstrip("/") == staging or full.startswith(staging + "/")):
                continue
            if full.endswith("/"):
                pending.append(full.rstrip("/"))
            else:
                leaves.append(full)

    for path in sorted(leaves):
        meta = guarded(
            "read metadata",
            f"{mount}/metadata/{path}",
            partial(kv.read_secret_metadata, path=path, mount_point=mount),
        )
        if meta is None:
            continue
        data = meta.get("data", {})
        custom = {str(k): str(v) for k, v in (data.get("custom_metadata") or {}).items()}
        current = int(data.get("current_version") or 0)
        versions: list[DiscoveredVersion] = []
        for num, info in sorted((data.get("versions") or {}).items(), key=lambda kv_: int(kv_[0])):
            n = int(num)
            retired = parse_time(info.get("deletion_time"))
            if info.get("destroyed"):
                stage = "destroyed"
            elif retired is not None:
                stage = "deleted"
            else:
                stage = "current" if n == current else "previous"
            versions.append(
                DiscoveredVersion(
                    identifier=str(n),
                    stage=stage,
                    created_at=parse_time(info.get("created_time")),
                    retired_at=retired,
                )
            )
        if fingerprint is not None and current:
            read = guarded(
                "read",
                f"{mount}/data/{path}",
                partial(
                    kv.read_secret_version,
                    path=path,
                    mount_point=mount,
                    version=current,
                    raise_on_deleted_version=False,
                ),
            )
            payload = ((read or {}).get("data") or {}).get("data") or {}
            if isinstance(payload, dict) and payload:
                whole, fields = value_fingerprints(payload, fingerprint)
                versions = [
                    replace(v, fingerprint=whole, fields=fields)
                    if v.identifier == str(current)
                    else v
                    for v in versions
                ]
            del payload, read
        current_created = next(
            (v.created_at for v in versions if v.identifier == str(current)), None
        )
        # the age of a KV secret counts from when its current version was written
        updated = current_created or parse_time(data.get("updated_time"))
        scan.items.append(
            Discovered(
                store=STORE,
                reference=f"{mount}/{path}",
                name=f"vault/{mount}/{path}",
                kind=tag_keys.kind_of(custom) or "generic",
                owner=tag_keys.owner_of(custom),
                team=tag_keys.team_of(custom),
                contact=tag_keys.contact_of(custom),
                tags=custom,
                attributes={
                    k: v
                    for k, v in {
                        "current_version": current or None,
                        "max_versions": data.get("max_versions") or None,
                        "cas_required": data.get("cas_required") or None,
                        # rotation reads this secret under the same mount (plugin options)
                        "rotation": {"store": {"mount": mount}},
                    }.items()
                    if v is not None
                },
                created_at=parse_time(data.get("created_time")),
                last_rotated_at=updated,
                versions=tuple(versions),
            )
        )
    return scan
