"""``postgres-password``: rotate a PostgreSQL login's password.

The secret uses the AWS layout: ``username``, ``password`` and optionally ``host``, ``port``,
``dbname`` (field names configurable). keyward connects as an admin (``admin_url`` option, or
``KEYWARD_POSTGRES_ADMIN_URL``) to change roles, and as the rotated user to test.

Strategies:

``single``
    ``ALTER ROLE app PASSWORD ...``. The old password stops working at *set*, so applications
    still holding it fail until they are updated: use it where that is acceptable.
``alternating``
    two logins, ``app`` and ``app_clone`` (AWS's multi-user strategy). Each rotation sets a new
    password on the login *not* in use (creating ``app_clone`` on first use, as a member of
    ``app`` so it has the same privileges) and switches the secret to it, so there is never a
    moment without a working login. Retiring the old login: ``NOLOGIN`` (deactivate), then its
    password is cleared (revoke) unless sessions are still connected as it.

Passwords are sent as SCRAM-SHA-256 verifiers computed here, so the plaintext never reaches the
server (nor its statement log). Identifiers are quoted with :mod:`psycopg.sql`.

Connections are opened here by :func:`open_connection` (psycopg is imported only then), not by
:mod:`keyward.providers`: the admin connection is this rotator's own option, shared with no
other plugin, and PostgreSQL's errors (SQLSTATEs) are translated below, where their meaning
for a rotation is known.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import string
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from keyward.core.errors import ConfigError
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
    from keyward.rotation.registry import PluginContext

log = logging.getLogger(__name__)

PASSWORD_ALPHABET = string.ascii_letters + string.digits


def open_connection(conninfo: str, **overrides: Any) -> Any:
    """A new psycopg connection (autocommit, 10 s connect timeout); the caller closes it."""
    import psycopg

    return psycopg.connect(conninfo, **{"autocommit": True, "connect_timeout": 10, **overrides})


class Strategy(StrEnum):
    SINGLE = "single"
    ALTERNATING = "alternating"


def scram_sha256_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = 4096
) -> str:
    """The ``rolpassword`` PostgreSQL stores for ``password`` (RFC 5802 / 7677).

    Only for ASCII passwords (SASLprep is the identity on them); see :func:`_password_sql`.
    """
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def verifier_matches(password: str, verifier: str) -> bool:
    """Whether ``password`` matches a stored SCRAM-SHA-256 verifier."""
    try:
        head, keys = verifier.split("$", 2)[1:]
        iterations, salt64 = head.split(":")
        stored64 = keys.split(":")[0]
    except ValueError:
        return False
    expected = scram_sha256_verifier(
        password, salt=base64.b64decode(salt64), iterations=int(iterations)
    )
    return hmac.compare_digest(expected.split("$", 2)[2].split(":")[0], stored64)


def _password_sql(password: str) -> Any:
    from psycopg import sql

    if password.isascii() and password.isprintable():
        return sql.Literal(scram_sha256_verifier(password))
    return sql.Literal(password)  # the server normalises (SASLprep) non-ASCII passwords itself


class PostgresPasswordRotator:
    kind = "postgres-password"

    def __init__(
        self,
        admin_url: str,
        *,
        strategy: Strategy = Strategy.SINGLE,
        clone_suffix: str = "_clone",
        password_length: int = 32,
        username_field: str = "username",
        password_field: str = "password",
        connect: Callable[..., Any] | None = None,
    ) -> None:
        if password_length < 16:
            raise ConfigError("password_length must be at least 16 for postgres-password")
        if not clone_suffix:
            raise ConfigError("clone_suffix must not be empty for the alternating strategy")
        self.admin_url = admin_url
        self.strategy = strategy
        self.clone_suffix = clone_suffix
        self.password_length = password_length
        self.username_field = username_field
        self.password_field = password_field
        self._connect = connect or open_connection

    @classmethod
    def from_config(
        cls, context: PluginContext, options: Mapping[str, Any]
    ) -> PostgresPasswordRotator:
        admin_url = options.get("admin_url") or os.environ.get("KEYWARD_POSTGRES_ADMIN_URL")
        if not admin_url:
            raise ConfigError(
                "postgres-password needs an admin connection",
                hint="Set admin_url in the rotator options or KEYWARD_POSTGRES_ADMIN_URL",
            )
        try:
            strategy = Strategy(str(options.get("strategy", "single")))
        except ValueError:
            raise ConfigError(
                f"Unknown strategy {options.get('strategy')!r} for postgres-password",
                hint="Use single or alternating",
            ) from None
        return cls(
            str(admin_url),
            strategy=strategy,
            clone_suffix=str(options.get("clone_suffix", "_clone")),
            password_length=int(options.get("password_length", 32)),
            username_field=str(options.get("username_field", "username")),
            password_field=str(options.get("password_field", "password")),
        )

    def __repr__(self) -> str:
        return f"PostgresPasswordRotator(strategy={self.strategy.value!r})"

    # ---------------------------------------------------------------- helpers
    def _username(self, value: SecretValue, which: str) -> str:
        user = value.get(self.username_field)
        if not user:
            raise RotatorConflict(f"The {which} secret value has no {self.username_field!r} field")
        return user

    def _pair(self, user: str) -> tuple[str, str]:
        """(base, clone) logins for the alternating strategy."""
        if user.endswith(self.clone_suffix) and len(user) > len(self.clone_suffix):
            return user[: -len(self.clone_suffix)], user
        return user, user + self.clone_suffix

    def _other(self, user: str) -> str:
        base, clone = self._pair(user)
        return clone if user == base else base

    @contextmanager
    def _admin(self, action: str) -> Iterator[Any]:
        import psycopg

        try:
            conn = self._connect(self.admin_url)
        except psycopg.OperationalError as exc:
            raise ProviderUnavailable(
                f"Cannot connect to PostgreSQL as the admin to {action}: {_first_line(exc)}",
                hint="Check admin_url / KEYWARD_POSTGRES_ADMIN_URL and the network",
            ) from None
        try:
            with conn:
                yield conn
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ProviderDenied(
                f"PostgreSQL denied {action}: {_first_line(exc)}",
                hint="Grant the admin role CREATEROLE (or ADMIN OPTION on the rotated role)",
            ) from None
        except psycopg.OperationalError as exc:
            raise ProviderUnavailable(
                f"PostgreSQL failed during {action}: {_first_line(exc)}"
            ) from None

    @staticmethod
    def _exists(conn: Any, role: str) -> bool:
        row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        return row is not None

    def _alter(self, conn: Any, role: str, password: str | None, *, login: bool | None) -> None:
        from psycopg import sql

        parts: list[sql.Composable] = [sql.SQL("ALTER ROLE {} WITH").format(sql.Identifier(role))]
        if login is not None:
            parts.append(sql.SQL("LOGIN" if login else "NOLOGIN"))
        if password is None:
            parts.append(sql.SQL("PASSWORD NULL"))
        else:
            parts.append(sql.SQL("PASSWORD {}").format(_password_sql(password)))
        conn.execute(sql.SQL(" ").join(parts))

    def _login_kwargs(self, value: SecretValue) -> dict[str, Any]:
        from psycopg.conninfo import conninfo_to_dict

        params = {k: v for k, v in conninfo_to_dict(self.admin_url).items() if v is not None}
        for key in ("host", "port", "dbname"):
            if value.get(key):
                params[key] = value[key]
        params["user"] = self._username(value, "new")
        params["password"] = value.get(self.password_field) or ""
        return params

    # --------------------------------------------------------------- protocol
    def plan(self, current: SecretValue) -> tuple[str, ...]:
        user = current.get(self.username_field) or "?"
        if self.strategy is Strategy.SINGLE:
            return (
                f"ALTER ROLE {user} PASSWORD <new> (the old password stops working here)",
                f"log in as {user} with the new password",
            )
        other = self._other(user)
        return (
            f"CREATE ROLE {other} IN ROLE {self._pair(user)[0]} (if missing), "
            f"ALTER ROLE {other} LOGIN PASSWORD <new>",
            f"log in as {other} with the new password",
            f"ALTER ROLE {user} NOLOGIN (after finish)",
            f"ALTER ROLE {user} PASSWORD NULL after the grace period, if no session uses it",
        )

    def create(self, current: SecretValue, ctx: RotationContext) -> SecretValue:
        user = self._username(current, "current")
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(self.password_length))
        if self.strategy is Strategy.ALTERNATING:
            user = self._other(user)
        return current.replace(**{self.username_field: user, self.password_field: password})

    def set(self, current: SecretValue, new: SecretValue) -> None:
        from psycopg import sql

        user = self._username(new, "new")
        password = new.get(self.password_field)
        if not password:
            raise RotatorConflict(f"The new secret value has no {self.password_field!r} field")
        with self._admin(f"ALTER ROLE {user}") as conn:
            if self._exists(conn, user):
                alternating = self.strategy is Strategy.ALTERNATING
                self._alter(conn, user, password, login=True if alternating else None)
            elif self.strategy is Strategy.ALTERNATING:
                base = self._pair(user)[0]
                if not self._exists(conn, base):
                    raise RotatorConflict(f"PostgreSQL role {base} does not exist")
                conn.execute(
                    sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {} IN ROLE {}").format(
                        sql.Identifier(user), _password_sql(password), sql.Identifier(base)
                    )
                )
                log.info("created PostgreSQL login %s as a member of %s", user, base)
            else:
                raise RotatorConflict(
                    f"PostgreSQL role {user} does not exist",
                    hint="Check the username in the secret and the admin connection's database",
                )
        log.info("set a new password for PostgreSQL login %s", user)

    def test(self, new: SecretValue) -> None:
        import psycopg

        params = self._login_kwargs(new)
        user = params["user"]
        try:
            with self._connect("", **params) as conn:
                row = conn.execute("SELECT current_user").fetchone()
        except psycopg.OperationalError as exc:
            raise CredentialRejected(
                f"PostgreSQL refused login as {user} with the new password: {_first_line(exc)}",
                hint="Roll the rotation back; the current password is unchanged in the store",
            ) from None
        if not row or row[0] != user:
            raise CredentialRejected(f"Logging in as {user} gave another role ({row})")
        log.info("new password for PostgreSQL login %s works", user)

    def deactivate(self, old: SecretValue, new: SecretValue) -> None:
        old_user, new_user = self._username(old, "old"), self._username(new, "new")
        if self.strategy is Strategy.SINGLE or old_user == new_user:
            return  # single: the old password was replaced at set
        with self._admin(f"ALTER ROLE {old_user} NOLOGIN") as conn:
            if self._exists(conn, old_user):
                from psycopg import sql

                conn.execute(sql.SQL("ALTER ROLE {} WITH NOLOGIN").format(sql.Identifier(old_user)))
        log.info("PostgreSQL login %s can no longer log in", old_user)

    def revoke(self, old: SecretValue, new: SecretValue, deactivated_at: datetime) -> Retirement:
        old_user, new_user = self._username(old, "old"), self._username(new, "new")
        if self.strategy is Strategy.SINGLE or old_user == new_user:
            return Retirement(
                RetireOutcome.NOT_APPLICABLE, "the old password was replaced when the new was set"
            )
        with self._admin(f"ALTER ROLE {old_user} PASSWORD NULL") as conn:
            if not self._exists(conn, old_user):
                return Retirement(RetireOutcome.ALREADY_GONE, f"role {old_user} does not exist")
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (old_user,)
            ).fetchone()
            sessions = int(row[0]) if row else 0
            if sessions:
                return Retirement(
                    RetireOutcome.KEPT_IN_USE,
                    f"{sessions} session(s) are still connected as {old_user}; its password "
                    "was kept",
                )
            self._alter(conn, old_user, None, login=False)
        log.info("cleared the password of PostgreSQL login %s", old_user)
        return Retirement(RetireOutcome.REVOKED, f"cleared the password of {old_user}")

    def rollback(self, current: SecretValue, new: SecretValue | None, ctx: RotationContext) -> None:
        user = self._username(current, "current")
        if self.strategy is Strategy.SINGLE:
            # set may or may not have run: put the current password back (idempotent)
            password = current.get(self.password_field)
            if password is None:
                raise RotatorConflict(f"The current secret value has no {self.password_field!r}")
            with self._admin(f"ALTER ROLE {user}") as conn:
                if self._exists(conn, user):
                    self._alter(conn, user, password, login=None)
            log.info("rolled back: restored the password of PostgreSQL login %s", user)
            return
        other = self._username(new, "new") if new is not None else self._other(user)
        if other == user:
            return
        with self._admin(f"ALTER ROLE {other} NOLOGIN") as conn:
            if self._exists(conn, other):
                self._alter(conn, other, None, login=False)
        log.info("rolled back: PostgreSQL login %s disabled", other)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
