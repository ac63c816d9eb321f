"""Discover Vault / OpenBao KV v2 secrets from metadata (values are not read unless asked).

Authentication: ``VAULT_TOKEN``, or AppRole with ``VAULT_ROLE_ID`` and ``VAULT_SECRET_ID``;
``VAULT_ADDR`` and ``VAULT_NAMESPACE`` are honoured. A path whose listing or metadata is
denied becomes a warning; an unreachable server is a :class:`StoreUnavailable`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from keyward.core.errors import ConfigError, StoreAuthError, StoreUnavailable
from keyward.inventory.discovery import (
    DEFAULT_TAG_KEYS,
    Discovered,
    DiscoveredVersion,
    Scan,
    TagKeys,
    fingerprint_fields,
)

if TYPE_CHECKING:
    from keyward.rotation.clients import VaultSettings

log = logging.getLogger(__name__)

STORE = "vault-kv"
MAX_PATHS = 100_000
_FRACTION = re.compile(r"\.(\d{6})\d*")


def vault_client(settings: VaultSettings) -> Any:
    """An authenticated hvac client (AppRole login when a role id is given, else the token).

    ``settings`` are rotation's (:func:`keyward.rotation.clients.vault_settings`: the config
    file's ``[rotation.vault]``, then ``VAULT_*``), so discovery and rotation reach the same
    Vault with the same TLS settings; the errors here are discovery's own."""
    import hvac
    import requests

    if not settings.addr:
        raise ConfigError("No Vault address is set", hint="Set VAULT_ADDR or pass --addr")
    client = hvac.Client(
        url=settings.addr,
        token=settings.token,
        namespace=settings.namespace,
        timeout=settings.timeout,
        verify=settings.verify,
    )
    try:
        if settings.role_id:
            if not settings.secret_id:
                raise ConfigError(
                    "VAULT_ROLE_ID is set but VAULT_SECRET_ID is not",
                    hint="Export VAULT_SECRET_ID, or use VAULT_TOKEN instead",
                )
            client.auth.approle.login(
                role_id=settings.role_id,
                secret_id=settings.secret_id,
                mount_point=settings.approle_mount,
            )
        elif not settings.token:
            raise ConfigError(
                "No Vault credentials are set",
                hint="Set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole",
            )
    except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest) as exc:
        raise StoreAuthError(
            f"Vault at {settings.addr} refused the AppRole login ({_first_error(exc)})",
            hint="Check VAULT_ROLE_ID and VAULT_SECRET_ID",
        ) from None
    except requests.exceptions.RequestException:
        raise _unreachable(settings.addr) from None
    return client


def _first_error(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if errors:
        return str(errors[0])[:200]
    return type(exc).__name__


def _unreachable(addr: str) -> StoreUnavailable:
    return StoreUnavailable(
        f"Cannot reach Vault at {addr}", hint="Check VAULT_ADDR and that the server is running"
    )


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
    client: Any,
    *,
    mount: str = "secret",
    prefix: str = "",
    tag_keys: TagKeys = DEFAULT_TAG_KEYS,
    fingerprint: Callable[[str], str] | None = None,
) -> Scan:
    """Every KV v2 secret under ``mount``/``prefix``: times, versions, custom_metadata."""
    import hvac
    import requests

    mount = mount.strip("/")
    prefix = prefix.strip("/")
    scan = Scan(STORE, scope=f"{mount}/{prefix}" if prefix else f"{mount}/")
    kv = client.secrets.kv.v2
    addr = getattr(client, "url", "Vault")

    def guarded(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except hvac.exceptions.Forbidden:
            scan.warn(f"Vault denied {what}")
        except hvac.exceptions.InvalidPath:
            return None
        except hvac.exceptions.VaultError as exc:
            scan.warn(f"Vault failed {what} ({_first_error(exc)})")
        except requests.exceptions.RequestException:
            raise _unreachable(str(addr)) from None
        return None

    pending = [prefix]
    leaves: list[str] = []
    while pending and len(leaves) < MAX_PATHS:
        folder = pending.pop()
        listed = guarded(
            f"list on {mount}/{folder}",
            partial(kv.list_secrets, path=folder, mount_point=mount),
        )
        if listed is None:
            if folder == prefix and not leaves and prefix:
                leaves.append(prefix)  # the prefix may be a secret itself
            continue
        for key in listed.get("data", {}).get("keys", []):
            full = f"{folder}/{key}" if folder else str(key)
            if full.endswith("/"):
                pending.append(full.rstrip("/"))
            else:
                leaves.append(full)

    for path in sorted(leaves):
        meta = guarded(
            f"reading metadata of {mount}/{path}",
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
                f"reading {mount}/{path}",
                partial(
                    kv.read_secret_version,
                    path=path,
                    mount_point=mount,
                    version=current,
                    raise_on_deleted_version=False,
                ),
            )
            payload = ((read or {}).get("data") or {}).get("data") or {}
            for key, fp in fingerprint_fields(payload, fingerprint).items():
                versions.append(
                    DiscoveredVersion(
                        identifier=f"{current}#{key}", stage="current", fingerprint=fp
                    )
                )
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
