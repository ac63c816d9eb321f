"""``redis-acl``: passwords of Redis 6+ ACL users, rotated with two passwords at once.

A Redis ACL user may have several passwords, so the rotation is dual-phase on one user:

* **create** — a new random password (nothing reaches Redis yet).
* **set** — ``ACL SETUSER app #<sha256 of new>``: the new password is *added*; the old one and
  any other password of the user keep working.
* **test** — a fresh connection runs ``AUTH app <new>`` (the only place the plaintext goes).
* **deactivate** — ``ACL SETUSER app #<new> !<sha256 of old>`` (one atomic command: the old
  password is removed only while the new one is there).
* **revoke** — the same again if the old password is still there (idempotent).
* **rollback** — ``ACL SETUSER app #<current> !<new>``: the new password goes, the current stays.

Passwords are sent as their SHA-256 hashes (``#…`` / ``!…``), so the plaintext never reaches the
server, its ``MONITOR`` stream or its ACL file. keyward never sends ``nopass`` or ``resetpass``
and refuses a user that has ``nopass`` or no password; after each change it reads the user back
(``ACL GETUSER``) and insists it still has a password and no ``nopass``.

Persistence: after every change, ``ACL SAVE`` when the server keeps users in an ACL file
(``CONFIG GET aclfile``). Without one the change lives in memory only and is lost at the next
restart: keyward says so as a warning, recorded in the rotation's audit log and printed with the
outcome. (Users defined in ``redis.conf`` can be written back with ``CONFIG REWRITE``; keyward
does not rewrite a server's configuration file by itself.)

The driver is ``redis`` (redis-py, ``pip install "keyward[redis]"``), imported only when a
rotator is built. Connections are opened by this module's own :func:`connect`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from keyward.core.errors import ConfigError, RotationError
from keyward.rotation.errors import (
    CredentialRejected,
    ProviderDenied,
    ProviderUnavailable,
    RotatorConflict,
)
from keyward.rotation.protocols import (
    Retirement,
    RetireOutcome,
    RotationContext,
    SecretValue,
)

if TYPE_CHECKING:
    from redis import Redis

    from keyward.rotation.registry import PluginContext

log = logging.getLogger(__name__)

KIND = "redis-acl"
PASSWORD_ALPHABET = string.ascii_letters + string.digits


def password_hash(password: str) -> str:
    """What Redis stores (and ``ACL GETUSER`` shows) for a password: hex SHA-256."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to connect (the admin URL, or a secret's host/port for ``test``)."""

    host: str = "127.0.0.1"
    port: int = 6379
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ssl_ca: str | None = None
    timeout: float = 10.0

    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """``redis://USER:PASSWORD@HOST:6379`` or ``rediss://…`` (TLS; ``?ssl_ca=/ca.pem``).

    Errors never repeat the URL (it may hold the admin password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(
            "The redis-acl admin_url must start with redis:// or rediss://",
            hint="Use redis://USER:PASSWORD@HOST:6379 (URL-encode the password)",
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - {"ssl_ca", "timeout"})
    if unknown:
        raise ConfigError(
            f"The redis-acl admin_url has unknown options: {', '.join(unknown)}",
            hint="Known: ssl_ca, timeout",
        )
    try:
        port = parts.port or 6379
        timeout = float(query.get("timeout", 10))
    except ValueError:
        raise ConfigError("The redis-acl admin_url has an invalid port or timeout") from None
    return Endpoint(
        host=parts.hostname or "127.0.0.1",
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=parts.scheme == "rediss",
        ssl_ca=query.get("ssl_ca"),
        timeout=timeout,
    )


def _driver() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "The redis-acl rotator needs the redis package, which is not installed",
            hint="Install it with 'pip install \"keyward[redis]\"' (or 'pip install redis')",
        ) from None
    return redis


def connect(endpoint: Endpoint) -> Redis:
    """A new redis-py client on its own connection (no pool shared with anything)."""
    redis = _driver()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client: Redis = redis.Redis(
        host=endpoint.host,
        port=endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        ssl=endpoint.tls,
        ssl_ca_certs=endpoint.ssl_ca,
        socket_timeout=endpoint.timeout,
        socket_connect_timeout=endpoint.timeout,
        decode_responses=True,
        single_connection_client=True,
        # no silent retries (redis-py retries a refused AUTH for seconds by default): every
        # call here is idempotent and a failed step is resumed or rolled back by the engine
        retry=Retry(NoBackoff(), 0),
    )
    return client


@dataclass(frozen=True, slots=True)
class AclUser:
    """What ``ACL GETUSER`` says about a user (password hashes, never passwords)."""

    name: str
    flags: tuple[str, ...]
    hashes: frozenset[str] = field(repr=False)

    @property
    def nopass(self) -> bool:
        return "nopass" in self.flags


class RedisAclRotator:
    kind = KIND

    def __init__(
        self,
        admin: Endpoint,
        *,
        password_length: int = 40,
        username_field: str = "username",
        password_field: str = "password",
        connector: Callable[[Endpoint], Any] | None = None,
    ) -> None:
        if not 16 <= password_length <= 512:
            raise ConfigError(f"password_length must be between 16 and 512 for {KIND}")
        self.admin = admin
        self.password_length = password_length
        self.username_field = username_field
        self.password_field = password_field
        self._connect = connector or connect
        self._warnings: list[str] = []

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> RedisAclRotator:
        _driver()  # a missing driver is a usage error before any rotation starts
        url = options.get("admin_url") or os.environ.get("KEYWARD_REDIS_ADMIN_URL")
        if not url:
            raise ConfigError(
                f"{KIND} needs an admin connection",
                hint="Set admin_url in the rotator options or KEYWARD_REDIS_ADMIN_URL "
                "(redis://USER:PASSWORD@HOST:6379)",
            )
        return cls(
            parse_url(str(url)),
            password_length=int(options.get("password_length", 40)),
            username_field=str(options.get("username_field", "username")),
            password_field=str(options.get("password_field", "password")),
        )

    def __repr__(self) -> str:
        return f"RedisAclRotator(admin={self.admin.where()!r})"

    def take_warnings(self) -> list[str]:
        """Warnings since the last call (the engine records them in the audit log)."""
        out, self._warnings = self._warnings, []
        return out

    def _warn(self, text: str) -> None:
        log.warning("%s", text)
        if text not in self._warnings:
            self._warnings.append(text)

    # ----------------------------------------------------------------- helpers
    def _field(self, value: SecretValue, name: str, which: str) -> str:
        text = value.get(name)
        if not text:
            raise RotatorConflict(f"The {which} secret value has no {name!r} field")
        return text

    def _user(self, value: SecretValue, which: str) -> str:
        return self._field(value, self.username_field, which)

    def _password(self, value: SecretValue, which: str) -> str:
        return self._field(value, self.password_field, which)

    @contextmanager
    def _admin(self, action: str) -> Iterator[Any]:
        redis = _driver()
        client = self._connect(self.admin)
        try:
            yield client
        except redis.exceptions.AuthenticationError:
            raise ProviderDenied(
                f"Redis at {self.admin.where()} refused the admin login to {action}",
                hint="Check the admin_url / KEYWARD_REDIS_ADMIN_URL credentials",
            ) from None
        except redis.exceptions.NoPermissionError as exc:
            raise ProviderDenied(
                f"Redis denied {action}: {_first_line(exc)}",
                hint="Give the admin user the ACL rules listed in docs/rotation.md (redis-acl)",
            ) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise ProviderUnavailable(
                f"Cannot reach Redis at {self.admin.where()} to {action}: {_first_line(exc)}",
                hint="Check admin_url / KEYWARD_REDIS_ADMIN_URL and the network",
            ) from None
        except redis.exceptions.ResponseError as exc:
            raise RotatorConflict(f"Redis refused {action}: {_first_line(exc)}") from None
        finally:
            try:
                client.close()
            except Exception:
                log.debug("closing a Redis connection failed", exc_info=True)

    @staticmethod
    def _get(client: Any, user: str) -> AclUser | None:
        doc = client.acl_getuser(user)
        if not doc:
            return None
        flags = tuple(str(f) for f in doc.get("flags") or ())
        hashes = frozenset(str(h) for h in doc.get("passwords") or ())
        return AclUser(user, flags, hashes)

    def _existing(self, client: Any, user: str) -> AclUser:
        found = self._get(client, user)
        if found is None:
            raise RotatorConflict(
                f"Redis ACL user {user} does not exist at {self.admin.where()}",
                hint="Check the username in the secret (keyward never creates ACL users)",
            )
        return found

    def _setuser(self, client: Any, user: str, rules: Sequence[str]) -> AclUser:
        """One atomic ``ACL SETUSER`` (hash rules only), then the user read back."""
        for rule in rules:
            assert rule[:1] in ("#", "!") and len(rule) == 65, "only password-hash rules"
        # the raw command: redis-py's acl_setuser() always adds "on" or "off"
        client.execute_command("ACL", "SETUSER", user, *rules)
        after = self._existing(client, user)
        if after.nopass or not after.hashes:
            raise RotationError(  # cannot happen with hash rules; checked all the same
                f"Redis ACL user {user} was left with "
                f"{'nopass' if after.nopass else 'no password'}",
                hint="Give it a password at once (ACL SETUSER … >password)",
            )
        return after

    def _persist(self, client: Any, user: str) -> None:
        """``ACL SAVE`` when the server has an ACL file; otherwise a warning."""
        redis = _driver()
        try:
            aclfile = str(client.config_get("aclfile").get("aclfile") or "")
        except redis.exceptions.ResponseError:  # CONFIG disabled or not permitted
            self._warn(
                f"keyward could not tell whether Redis at {self.admin.where()} keeps ACL users "
                f"in a file (CONFIG GET aclfile was refused), so the change to user {user} may "
                "not survive a restart"
            )
            return
        if not aclfile:
            self._warn(
                f"Redis at {self.admin.where()} has no ACL file, so the change to user {user} "
                "lives in memory only and is lost when the server restarts; configure aclfile "
                "(then keyward runs ACL SAVE), or persist users in redis.conf with CONFIG REWRITE"
            )
            return
        try:
            client.acl_save()
        except redis.exceptions.ResponseError as exc:
            raise ProviderUnavailable(
                f"Redis at {self.admin.where()} could not save its ACL file after changing "
                f"user {user}: {_first_line(exc)}",
                hint="Fix the ACL file (path, permissions, disk), then resume or roll back",
            ) from None
        log.info("Redis saved its ACL file after changing user %s", user)

    def _test_endpoint(self, value: SecretValue) -> Endpoint:
        port_text = value.get("port")
        try:
            port = int(port_text) if port_text else self.admin.port
        except ValueError:
            raise RotatorConflict(f"The secret's port {port_text!r} is not a number") from None
        return Endpoint(
            host=value.get("host") or self.admin.host,
            port=port,
            tls=self.admin.tls,
            ssl_ca=self.admin.ssl_ca,
            timeout=self.admin.timeout,
        )

    # ---------------------------------------------------------------- protocol
    def plan(self, current: SecretValue) -> tuple[str, ...]:
        user = current.get(self.username_field) or "?"
        return (
            f"ACL SETUSER {user} #<sha256 of the new password> (added; the old one keeps working)",
            f"AUTH {user} <new password> on a new connection",
            f"ACL SETUSER {user} !<sha256 of the old password> (after finish)",
            "ACL SAVE after each change if the server has an ACL file (otherwise a warning: "
            "the change would not survive a restart)",
        )

    def create(self, current: SecretValue, ctx: RotationContext) -> SecretValue:
        self._user(current, "current")
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(self.password_length))
        return current.replace(**{self.password_field: password})

    def set(self, current: SecretValue, new: SecretValue) -> None:
        user = self._user(new, "new")
        if self._user(current, "current") != user:
            raise RotatorConflict(f"The new secret value names another Redis user than {user}")
        old_hash = password_hash(self._password(current, "current"))
        new_hash = password_hash(self._password(new, "new"))
        with self._admin(f"ACL SETUSER {user}") as client:
            acl = self._existing(client, user)
            if acl.nopass:
                raise RotatorConflict(
                    f"Redis ACL user {user} accepts any password (nopass), so rotating its "
                    "password would change nothing",
                    hint=f"Give it a password first (ACL SETUSER {user} resetpass >…), store "
                    "that in the secret, then rotate",
                )
            if new_hash not in acl.hashes:
                if old_hash not in acl.hashes:
                    raise RotatorConflict(
                        f"The current password in the store is not one of Redis ACL user "
                        f"{user}'s passwords (it was changed outside keyward)",
                        hint="Store the password the user really has, then rotate again",
                    )
                self._setuser(client, user, ["#" + new_hash])
            self._persist(client, user)
        log.info("added a new password to Redis ACL user %s", user)

    def test(self, new: SecretValue) -> None:
        redis = _driver()
        user, password = self._user(new, "new"), self._password(new, "new")
        endpoint = self._test_endpoint(new)
        client = self._connect(endpoint)
        try:
            client.execute_command("AUTH", user, password)
        except redis.exceptions.AuthenticationError as exc:
            raise CredentialRejected(
                f"Redis at {endpoint.where()} refused AUTH as {user} with the new password: "
                f"{_first_line(exc)}",
                hint="Roll the rotation back; the current password still works",
            ) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise ProviderUnavailable(
                f"Cannot reach Redis at {endpoint.where()} to test the new password of "
                f"{user}: {_first_line(exc)}",
                hint="Check the secret's host and port and the network, then resume",
            ) from None
        except redis.exceptions.ResponseError as exc:
            raise CredentialRejected(
                f"Redis at {endpoint.where()} refused AUTH as {user}: {_first_line(exc)}"
            ) from None
        finally:
            try:
                client.close()
            except Exception:
                log.debug("closing a Redis connection failed", exc_info=True)
        log.info("new password for Redis ACL user %s works", user)

    def _remove(self, old: SecretValue, keep: SecretValue, action: str) -> bool:
        """Remove ``old``'s password while ``keep``'s stays; False if it was already gone."""
        user = self._user(keep, "kept")
        if self._user(old, "removed") != user:
            raise RotatorConflict(f"Both secret values must name Redis user {user}")
        drop = password_hash(self._password(old, "removed"))
        kept = password_hash(self._password(keep, "kept"))
        if drop == kept:
            return False
        with self._admin(f"{action} on user {user}") as client:
            acl = self._get(client, user)
            if acl is None:
                raise _Gone(user)
            if drop not in acl.hashes:
                return False
            if kept not in acl.hashes and action != "rollback":
                raise RotatorConflict(
                    f"Redis ACL user {user} no longer has the password keyward would keep, so "
                    "the other one is not removed (the user would be left without a working "
                    "password)",
                    hint="Check who changed the user's passwords; store a working one",
                )
            # rollback restores the current password if it went missing; always atomic
            self._setuser(client, user, ["#" + kept, "!" + drop])
            self._persist(client, user)
        return True

    def deactivate(self, old: SecretValue, new: SecretValue) -> None:
        try:
            removed = self._remove(old, new, "ACL SETUSER (remove the old password)")
        except _Gone as gone:
            raise RotatorConflict(
                f"Redis ACL user {gone.user} no longer exists, so the new password cannot "
                "be in use either",
                hint="Recreate the user with the current password from the store",
            ) from None
        log.info(
            "Redis ACL user %s: the old password %s",
            self._user(new, "new"),
            "was removed" if removed else "was already gone",
        )

    def revoke(self, old: SecretValue, new: SecretValue, deactivated_at: datetime) -> Retirement:
        try:
            removed = self._remove(old, new, "ACL SETUSER (remove the old password)")
        except _Gone as gone:
            return Retirement(RetireOutcome.ALREADY_GONE, f"user {gone.user} does not exist")
        user = self._user(new, "new")
        if removed:
            return Retirement(RetireOutcome.REVOKED, f"removed the old password of {user}")
        return Retirement(
            RetireOutcome.REVOKED, f"the old password of {user} was removed at deactivation"
        )

    def rollback(self, current: SecretValue, new: SecretValue | None, ctx: RotationContext) -> None:
        if new is None:
            return  # set runs only after the new value reached the store: nothing was added
        try:
            removed = self._remove(new, current, "rollback")
        except _Gone as gone:
            raise RotatorConflict(
                f"Redis ACL user {gone.user} no longer exists, so there is nothing to roll back to",
                hint="Recreate the user with the current password from the store",
            ) from None
        if removed:
            log.info("rolled back: removed the new password of Redis ACL user %s",
                     self._user(new, "new"))  # fmt: skip


class _Gone(Exception):
    def __init__(self, user: str) -> None:
        super().__init__(user)
        self.user = user


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
