"""``mysql-password``: passwords of MySQL 8 and MariaDB 10.4+ accounts.

The secret uses AWS's layout: ``username``, ``password``, optionally ``host``, ``port`` and
``dbname`` (where clients connect; ``host`` is the *server*). The *account's* host part, the
``'%'`` in ``'app'@'%'``, is the ``account_host`` option (default ``%``): keyward changes exactly
that account and refuses, naming the hosts that do exist, when it is missing.

Two strategies (option ``strategy``):

``single``
    ``ALTER USER 'app'@'%' IDENTIFIED BY PASSWORD '*…'``. The old password stops working at
    *set*; rollback puts the current one back.
``alternating``
    two accounts, ``app`` and ``app_clone`` (``clone_suffix``), as in AWS's multi-user
    strategy. Each rotation gives the account *not* in use the new password: its grants are
    made equal to the active account's first (copied from ``SHOW GRANTS``, extra ones revoked;
    the clone is created locked on first use), then it is unlocked with the new password. The
    secret switches to it at finish, so a working login exists at every moment. Retiring the
    old account: ``ACCOUNT LOCK`` (deactivate), then its password is replaced by one no
    password matches (revoke) unless sessions are still connected as it.

What reaches the server, per server and authentication plugin (:func:`password_clause`):

* MariaDB, ``mysql_native_password`` (its default): ``IDENTIFIED BY PASSWORD '<hash>'`` with
  the hash computed here, so the plaintext never reaches the server nor its general log
  (MariaDB writes ``IDENTIFIED BY '<plaintext>'`` there verbatim).
* MySQL, ``mysql_native_password``: ``IDENTIFIED WITH mysql_native_password AS '<hash>'``.
* MySQL, ``caching_sha2_password`` / ``sha256_password``: ``IDENTIFIED WITH <plugin> BY '…'``:
  the hash of these plugins is salted SHA-256-crypt that keyward does not compute itself. MySQL
  rewrites such statements in its general, slow and binary logs; keyward refuses to send one
  while ``log_raw`` is ON (the one setting that would log it verbatim). Use TLS to the server.
* Any other plugin (``ed25519``, ``unix_socket``, PAM, several methods ``VIA a OR b``): refused
  with one sentence; keyward would otherwise change how the account logs in.

The driver is PyMySQL (``pip install "keyward[mysql]"``), imported only when a rotator is
built. Connections are opened by this module's own :func:`connect` (no shared client cache).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, assert_never
from urllib.parse import parse_qs, unquote, urlsplit

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
    from pymysql.connections import Connection

    from keyward.rotation.registry import PluginContext

log = logging.getLogger(__name__)

PASSWORD_ALPHABET = string.ascii_letters + string.digits
KIND = "mysql-password"

# What each server itself stores for an account nobody can log in to (the mysql.sys /
# mariadb.sys convention): no password hashes to these values.
MARIADB_NO_PASSWORD = "invalid"
_MYSQL_SHA2_NONE = "$A$005$THISISACOMBINATIONOFINVALIDSALTANDPASSWORDTHATMUSTNEVERBRBEUSED"
MYSQL_NO_PASSWORD = {
    "mysql_native_password": "*THISISNOTAVALIDPASSWORDTHATCANBEUSEDHERE",
    "caching_sha2_password": _MYSQL_SHA2_NONE,
    "sha256_password": _MYSQL_SHA2_NONE,
}
NATIVE = "mysql_native_password"
SHA2_PLUGINS = frozenset({"caching_sha2_password", "sha256_password"})

# PyMySQL error numbers (the server's ER_* / the client's CR_* codes)
_UNREACHABLE = frozenset({2002, 2003, 2005, 2006, 2013, 2055})
_LOGIN_REFUSED = frozenset({1045, 1698, 4151})  # bad password, socket auth, account locked
_DENIED = frozenset({1044, 1142, 1143, 1227, 1370, 1410, 1698, 3530})
_NO_SUCH_ACCOUNT = frozenset({1396, 1133, 1141})


class Strategy(StrEnum):
    SINGLE = "single"
    ALTERNATING = "alternating"


class Flavor(StrEnum):
    MARIADB = "mariadb"
    MYSQL = "mysql"


def native_password_hash(password: str) -> str:
    """The ``mysql_native_password`` hash MySQL and MariaDB store: ``*`` + SHA1(SHA1(pw))."""
    inner = hashlib.sha1(password.encode("utf-8")).digest()
    return "*" + hashlib.sha1(inner).hexdigest().upper()


# ----------------------------------------------------------------------- connection
@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to connect (the admin URL, or a secret's host/port for ``test``)."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    database: str | None = None
    unix_socket: str | None = None
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    connect_timeout: float = 10.0

    def where(self) -> str:
        return self.unix_socket or f"{self.host}:{self.port}"


_URL_OPTIONS = {"unix_socket", "ssl_ca", "ssl_cert", "ssl_key", "connect_timeout"}


def parse_url(url: str) -> Endpoint:
    """``mysql://user:password@host:3306/db?ssl_ca=/ca.pem`` (also ``mariadb://``).

    The password is URL-encoded; ``unix_socket=/run/mysqld/mysqld.sock`` connects through the
    socket instead of TCP. Errors never repeat the URL (it may hold the admin password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ConfigError(
            "The mysql-password admin_url must start with mysql:// or mariadb://",
            hint="Use mysql://USER:PASSWORD@HOST:3306/ (URL-encode the password)",
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - _URL_OPTIONS)
    if unknown:
        raise ConfigError(
            f"The mysql-password admin_url has unknown options: {', '.join(unknown)}",
            hint=f"Known: {', '.join(sorted(_URL_OPTIONS))}",
        )
    try:
        port = parts.port or 3306
        timeout = float(query.get("connect_timeout", 10))
    except ValueError:
        raise ConfigError("The mysql-password admin_url has an invalid port or timeout") from None
    return Endpoint(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")) or None,
        unix_socket=query.get("unix_socket"),
        ssl_ca=query.get("ssl_ca"),
        ssl_cert=query.get("ssl_cert"),
        ssl_key=query.get("ssl_key"),
        connect_timeout=timeout,
    )


def _driver() -> Any:
    try:
        import pymysql
    except ImportError:
        raise ConfigError(
            "The mysql-password rotator needs PyMySQL, which is not installed",
            hint="Install it with 'pip install \"keyward[mysql]\"' (or 'pip install PyMySQL')",
        ) from None
    return pymysql


def connect(endpoint: Endpoint) -> Connection[Any]:
    """A new PyMySQL connection (autocommit, utf8mb4); the caller closes it."""
    pymysql = _driver()
    ssl: dict[str, str] | None = None
    if endpoint.ssl_ca or endpoint.ssl_cert:
        ssl = {k: v for k, v in (("ca", endpoint.ssl_ca), ("cert", endpoint.ssl_cert),
                                 ("key", endpoint.ssl_key)) if v}  # fmt: skip
    conn: Connection[Any] = pymysql.connect(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        password=endpoint.password,
        database=endpoint.database,
        unix_socket=endpoint.unix_socket,
        ssl=ssl,
        connect_timeout=endpoint.connect_timeout,
        read_timeout=30,
        write_timeout=30,
        autocommit=True,
        charset="utf8mb4",
    )
    return conn


# --------------------------------------------------------------------------- grants
def _quote_ident_forms(user: str, host: str) -> tuple[str, ...]:
    """How ``SHOW GRANTS`` prints an account: `` `app`@`%` `` (and ``'app'@'%'`` on old
    servers)."""
    bt = "`{}`@`{}`".format(user.replace("`", "``"), host.replace("`", "``"))
    sq = "'{}'@'{}'".format(user.replace("'", "''"), host.replace("'", "''"))
    return bt, sq


def _find_outside_quotes(text: str, needle: str, start: int = 0) -> int:
    """Index of ``needle`` in ``text`` outside backtick / quote literals, or -1."""
    quote: str | None = None
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote != "`":
                i += 2
                continue
            if c == quote:
                if text[i + 1 : i + 2] == quote:  # doubled quote inside a literal
                    i += 2
                    continue
                quote = None
        elif c in "`'\"":
            quote = c
        elif text.startswith(needle, i):
            return i
        i += 1
    return -1


GRANTEE = "{grantee}"  # the placeholder for the account in a grant template


class GrantKind(StrEnum):
    PRIVILEGE = "privilege"  # GRANT privs ON object TO
    ROLE = "role"  # GRANT roles TO
    DEFAULT_ROLE = "default-role"  # MariaDB's SET DEFAULT ROLE r FOR
    REVOKE = "revoke"  # MySQL's partial revokes: REVOKE privs ON object FROM


@dataclass(frozen=True, slots=True, order=True)
class Grant:
    """One line of ``SHOW GRANTS`` with the account replaced by :data:`GRANTEE`.

    Authentication clauses and resource limits that MariaDB prints on its ``USAGE`` line are
    dropped: they are not privileges (and would carry the password hash).
    """

    kind: GrantKind
    head: str  # "SELECT, INSERT" / "`role1`" / "`r`"
    target: str = ""  # "`db`.*" (privileges and revokes only)
    option: str = ""  # " WITH GRANT OPTION" / " WITH ADMIN OPTION"

    def statement(self) -> str:
        match self.kind:
            case GrantKind.PRIVILEGE:
                return f"GRANT {self.head} ON {self.target} TO {GRANTEE}{self.option}"
            case GrantKind.ROLE:
                return f"GRANT {self.head} TO {GRANTEE}{self.option}"
            case GrantKind.REVOKE:
                return f"REVOKE {self.head} ON {self.target} FROM {GRANTEE}"
            case GrantKind.DEFAULT_ROLE:
                return f"SET DEFAULT ROLE {self.head} FOR {GRANTEE}"
            case _:
                assert_never(self.kind)

    def undo(self) -> str:
        """The statement that takes this grant away again."""
        match self.kind:
            case GrantKind.PRIVILEGE:
                extra = ", GRANT OPTION" if "GRANT OPTION" in self.option else ""
                return f"REVOKE {self.head}{extra} ON {self.target} FROM {GRANTEE}"
            case GrantKind.ROLE:
                return f"REVOKE {self.head} FROM {GRANTEE}"
            case GrantKind.REVOKE:
                return f"GRANT {self.head} ON {self.target} TO {GRANTEE}"
            case GrantKind.DEFAULT_ROLE:
                return f"SET DEFAULT ROLE NONE FOR {GRANTEE}"
            case _:
                assert_never(self.kind)


def parse_grants(lines: Sequence[str], user: str, host: str) -> list[Grant]:
    """``SHOW GRANTS FOR user@host`` as :class:`Grant` templates (account-independent).

    Raises :class:`RotatorConflict` for a line keyward does not understand (naming its first
    words only: lines can carry a password hash)."""
    forms = _quote_ident_forms(user, host)
    grants: list[Grant] = []
    for line in lines:
        text = line.strip()
        words = " ".join(text.split()[:2])
        if text.upper().startswith("SET DEFAULT ROLE "):
            at = _account_at(text, forms, " FOR ")
            if at < 0:
                raise RotatorConflict(f"Cannot read a {words!r} line of SHOW GRANTS")
            role = text[len("SET DEFAULT ROLE ") : at].strip()
            grants.append(Grant(GrantKind.DEFAULT_ROLE, role))
            continue
        revoke = text.upper().startswith("REVOKE ")
        if not revoke and not text.upper().startswith("GRANT "):
            raise RotatorConflict(f"Cannot read a {words!r} line of SHOW GRANTS")
        body = text[len("REVOKE ") if revoke else len("GRANT ") :]
        at = _account_at(body, forms, " FROM " if revoke else " TO ")
        if at < 0:
            raise RotatorConflict(f"Cannot read a {words!r} line of SHOW GRANTS")
        sep = " FROM " if revoke else " TO "
        suffix = body[at + len(sep) :].upper()
        option = ""
        if "WITH GRANT OPTION" in suffix:
            option = " WITH GRANT OPTION"
        elif "WITH ADMIN OPTION" in suffix:
            option = " WITH ADMIN OPTION"
        left = body[:at]
        on = _find_outside_quotes(left, " ON ")
        if on < 0:
            grants.append(Grant(GrantKind.ROLE, left.strip(), option=option))
            continue
        head, target = left[:on].strip(), left[on + 4 :].strip()
        if revoke:
            grants.append(Grant(GrantKind.REVOKE, head, target))
        elif head.upper() == "USAGE" and target == "*.*":
            if option:  # only the grant option itself is a privilege here
                grants.append(Grant(GrantKind.PRIVILEGE, head, target, option))
        else:
            grants.append(Grant(GrantKind.PRIVILEGE, head, target, option))
    return sorted(set(grants))


def _account_at(text: str, forms: Sequence[str], sep: str) -> int:
    """Where ``sep`` + the account starts in ``text`` (outside literals), or -1."""
    for form in forms:
        i = _find_outside_quotes(text, sep + form)
        while i >= 0:
            end = i + len(sep) + len(form)
            if end == len(text) or text[end] == " ":
                return i
            i = _find_outside_quotes(text, sep + form, i + 1)
    return -1


def grant_changes(source: Sequence[Grant], target: Sequence[Grant]) -> list[str]:
    """Statements (with :data:`GRANTEE`) that make ``target``'s grants equal ``source``'s:
    revoke what only the target has, grant what it lacks, default roles last."""
    have, want = set(target), set(source)
    out = [g.undo() for g in sorted(have - want) if g.kind is not GrantKind.DEFAULT_ROLE]
    out += [g.statement() for g in sorted(want - have) if g.kind is not GrantKind.DEFAULT_ROLE]
    roles_want = [g for g in want if g.kind is GrantKind.DEFAULT_ROLE]
    roles_have = [g for g in have if g.kind is GrantKind.DEFAULT_ROLE]
    if sorted(roles_want) != sorted(roles_have):
        out += [g.statement() for g in roles_want] or [roles_have[0].undo()]
    return out


# ------------------------------------------------------------------------- server
@dataclass(frozen=True, slots=True)
class Server:
    flavor: Flavor
    version: tuple[int, ...]
    text: str

    @property
    def label(self) -> str:
        return "MariaDB" if self.flavor is Flavor.MARIADB else "MySQL"


def parse_version(text: str) -> Server:
    numbers = tuple(int(p) for p in re.findall(r"\d+", text.split("-")[0])[:3])
    flavor = Flavor.MARIADB if "mariadb" in text.lower() else Flavor.MYSQL
    return Server(flavor, numbers, text)


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    host: str
    plugin: str

    def __str__(self) -> str:
        return f"'{self.user}'@'{self.host}'"


class MySQLPasswordRotator:
    kind = KIND

    def __init__(
        self,
        admin: Endpoint,
        *,
        strategy: Strategy = Strategy.SINGLE,
        account_host: str = "%",
        clone_suffix: str = "_clone",
        password_length: int = 32,
        username_field: str = "username",
        password_field: str = "password",
        connector: Callable[[Endpoint], Any] | None = None,
    ) -> None:
        if password_length < 16:
            raise ConfigError(f"password_length must be at least 16 for {KIND}")
        if password_length > 80:
            raise ConfigError(f"password_length must be at most 80 for {KIND}")
        if not clone_suffix:
            raise ConfigError(f"clone_suffix must not be empty for {KIND}")
        if not account_host:
            raise ConfigError(
                f"account_host must not be empty for {KIND}",
                hint="Use the host part of the account, e.g. '%' for 'app'@'%'",
            )
        self.admin = admin
        self.strategy = strategy
        self.account_host = account_host
        self.clone_suffix = clone_suffix
        self.password_length = password_length
        self.username_field = username_field
        self.password_field = password_field
        self._connect = connector or connect
        self._warnings: list[str] = []
        self._server: Server | None = None

    @classmethod
    def from_config(
        cls, context: PluginContext, options: Mapping[str, Any]
    ) -> MySQLPasswordRotator:
        _driver()  # a missing driver is a usage error before any rotation starts
        url = options.get("admin_url") or os.environ.get("KEYWARD_MYSQL_ADMIN_URL")
        if not url:
            raise ConfigError(
                f"{KIND} needs an admin connection",
                hint="Set admin_url in the rotator options or KEYWARD_MYSQL_ADMIN_URL "
                "(mysql://USER:PASSWORD@HOST:3306/)",
            )
        try:
            strategy = Strategy(str(options.get("strategy", "single")))
        except ValueError:
            raise ConfigError(
                f"Unknown strategy {options.get('strategy')!r} for {KIND}",
                hint="Use single or alternating",
            ) from None
        return cls(
            parse_url(str(url)),
            strategy=strategy,
            account_host=str(options.get("account_host", "%")),
            clone_suffix=str(options.get("clone_suffix", "_clone")),
            password_length=int(options.get("password_length", 32)),
            username_field=str(options.get("username_field", "username")),
            password_field=str(options.get("password_field", "password")),
        )

    def __repr__(self) -> str:
        return (
            f"MySQLPasswordRotator(strategy={self.strategy.value!r}, "
            f"account_host={self.account_host!r})"
        )

    def take_warnings(self) -> list[str]:
        """Warnings since the last call (the engine records them in the audit log)."""
        out, self._warnings = self._warnings, []
        return out

    def _warn(self, text: str) -> None:
        log.warning("%s", text)
        if text not in self._warnings:
            self._warnings.append(text)

    # ----------------------------------------------------------------- helpers
    def _username(self, value: SecretValue, which: str) -> str:
        user = value.get(self.username_field)
        if not user:
            raise RotatorConflict(f"The {which} secret value has no {self.username_field!r} field")
        return user

    def _password(self, value: SecretValue, which: str) -> str:
        password = value.get(self.password_field)
        if not password:
            raise RotatorConflict(f"The {which} secret value has no {self.password_field!r} field")
        return password

    def _pair(self, user: str) -> tuple[str, str]:
        if user.endswith(self.clone_suffix) and len(user) > len(self.clone_suffix):
            return user[: -len(self.clone_suffix)], user
        return user, user + self.clone_suffix

    def _other(self, user: str) -> str:
        base, clone = self._pair(user)
        return clone if user == base else base

    def _label(self) -> str:
        return self._server.label if self._server else "MySQL/MariaDB"

    @contextmanager
    def _admin(self, action: str, *secret_texts: str) -> Iterator[Any]:
        """A cursor on a fresh admin connection; driver errors become keyward errors whose
        text never holds ``secret_texts`` (passwords and hashes sent in the statement)."""
        pymysql = _driver()
        try:
            conn = self._connect(self.admin)
        except pymysql.err.MySQLError as exc:
            code = _code(exc)
            if code in _LOGIN_REFUSED:
                raise ProviderDenied(
                    f"The server at {self.admin.where()} refused the admin login as "
                    f"{self.admin.user} to {action}",
                    hint="Check the admin_url / KEYWARD_MYSQL_ADMIN_URL credentials",
                ) from None
            raise ProviderUnavailable(
                f"Cannot connect to MySQL/MariaDB at {self.admin.where()} to {action}: "
                f"{_first_line(exc, secret_texts)}",
                hint="Check admin_url / KEYWARD_MYSQL_ADMIN_URL and the network",
            ) from None
        try:
            with conn.cursor() as cur:
                if self._server is None:
                    cur.execute("SELECT VERSION()")
                    self._server = _check_server(parse_version(str(cur.fetchone()[0])))
                yield cur
        except pymysql.err.MySQLError as exc:
            code = _code(exc)
            text = _first_line(exc, secret_texts)
            if code in _DENIED:
                raise ProviderDenied(
                    f"{self._label()} denied {action}: {text}",
                    hint="Grant the admin the privileges listed in docs/rotation.md "
                    "(mysql-password)",
                ) from None
            if code in _NO_SUCH_ACCOUNT:
                raise RotatorConflict(f"{self._label()} could not {action}: {text}") from None
            if code in _UNREACHABLE or isinstance(exc, pymysql.err.OperationalError):
                raise ProviderUnavailable(
                    f"{self._label()} failed during {action}: {text}"
                ) from None
            raise RotatorConflict(f"{self._label()} refused {action}: {text}") from None
        finally:
            _close(conn)

    def _account(self, cur: Any, user: str, *, must_exist: bool = True) -> Account | None:
        """The account ``user@account_host`` and its authentication plugin."""
        assert self._server is not None
        if self._server.flavor is Flavor.MARIADB:
            cur.execute(
                "SELECT JSON_VALUE(Priv, '$.plugin'), JSON_EXISTS(Priv, '$.auth_or') "
                "FROM mysql.global_priv WHERE User = %s AND Host = %s",
                (user, self.account_host),
            )
            row = cur.fetchone()
            if row is not None and row[1]:
                raise RotatorConflict(
                    f"MariaDB account '{user}'@'{self.account_host}' logs in with several "
                    "authentication methods (IDENTIFIED VIA … OR …); keyward rotates only "
                    "mysql_native_password accounts",
                    hint="Give the account one method (ALTER USER … IDENTIFIED BY …)",
                )
        else:
            cur.execute(
                "SELECT plugin, 0 FROM mysql.user WHERE User = %s AND Host = %s",
                (user, self.account_host),
            )
            row = cur.fetchone()
        if row is None:
            if not must_exist:
                return None
            cur.execute("SELECT Host FROM mysql.user WHERE User = %s ORDER BY Host", (user,))
            hosts = [str(r[0]) for r in cur.fetchall()]
            elsewhere = (
                f" (it exists as {', '.join(repr(user) + '@' + repr(h) for h in hosts)})"
                if hosts
                else ""
            )
            raise RotatorConflict(
                f"{self._label()} account '{user}'@'{self.account_host}' does not exist{elsewhere}",
                hint="Check the username in the secret and the account_host option",
            )
        return Account(user, self.account_host, str(row[0] or NATIVE))

    def _check_plugin(self, cur: Any, account: Account) -> None:
        assert self._server is not None
        if account.plugin == NATIVE:
            return
        if self._server.flavor is Flavor.MYSQL and account.plugin in SHA2_PLUGINS:
            cur.execute("SELECT @@global.log_raw")
            row = cur.fetchone()
            if row and str(row[0]) in ("1", "ON"):
                raise RotatorConflict(
                    f"MySQL logs statements verbatim (log_raw is ON), so setting the "
                    f"{account.plugin} password of {account} would write it in the "
                    "general log",
                    hint="Turn log_raw off (SET GLOBAL log_raw = OFF), then rotate again",
                )
            return
        raise RotatorConflict(
            f"{self._label()} account {account} authenticates with {account.plugin}; "
            "keyward rotates mysql_native_password (and on MySQL caching_sha2_password) "
            "passwords only",
            hint="Rotate this account another way, or switch it to a password plugin",
        )

    def _auth_clause(self, account: Account, password: str | None) -> tuple[str, tuple[str, ...]]:
        """(SQL, params) for the ``IDENTIFIED …`` clause; ``None``: a password nobody has."""
        assert self._server is not None
        if self._server.flavor is Flavor.MARIADB:
            if password is None:
                return "IDENTIFIED VIA mysql_native_password USING %s", (MARIADB_NO_PASSWORD,)
            return "IDENTIFIED BY PASSWORD %s", (native_password_hash(password),)
        plugin = account.plugin
        if password is None:
            return f"IDENTIFIED WITH {plugin} AS %s", (MYSQL_NO_PASSWORD[plugin],)
        if plugin == NATIVE:
            return f"IDENTIFIED WITH {NATIVE} AS %s", (native_password_hash(password),)
        return f"IDENTIFIED WITH {plugin} BY %s", (password,)  # MySQL rewrites it in its logs

    def _alter(
        self, cur: Any, account: Account, password: str | None, *, lock: bool | None
    ) -> None:
        clause, params = self._auth_clause(account, password)
        lock_sql = "" if lock is None else (" ACCOUNT LOCK" if lock else " ACCOUNT UNLOCK")
        cur.execute(f"ALTER USER %s@%s {clause}{lock_sql}", (account.user, account.host, *params))

    def _grants(self, cur: Any, user: str) -> list[Grant]:
        cur.execute("SHOW GRANTS FOR %s@%s", (user, self.account_host))
        grants = parse_grants([str(r[0]) for r in cur.fetchall()], user, self.account_host)
        assert self._server is not None
        if self._server.flavor is Flavor.MYSQL:  # MySQL keeps default roles out of SHOW GRANTS
            cur.execute(
                "SELECT DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles "
                "WHERE USER = %s AND HOST = %s ORDER BY 1, 2",
                (user, self.account_host),
            )
            roles = [
                "`{}`@`{}`".format(str(u).replace("`", "``"), str(h).replace("`", "``"))
                for u, h in cur.fetchall()
            ]
            if roles:
                grants.append(Grant(GrantKind.DEFAULT_ROLE, ", ".join(roles)))
        return grants

    def _sync_grants(self, cur: Any, source: str, target: str) -> int:
        """Make ``target``'s grants equal ``source``'s; returns the number of statements."""
        changes = grant_changes(self._grants(cur, source), self._grants(cur, target))
        grantee = f"{_literal(cur, target)}@{_literal(cur, self.account_host)}"
        mysql_flavor = self._server is not None and self._server.flavor is Flavor.MYSQL
        for statement in changes:
            sql = statement.replace(GRANTEE, grantee)
            if mysql_flavor and sql.startswith("SET DEFAULT ROLE "):
                sql = sql.replace(f" FOR {grantee}", f" TO {grantee}")  # MySQL's spelling
            cur.execute(sql)  # no parameters: the text is used as is (no % formatting)
        return len(changes)

    def _test_endpoint(self, value: SecretValue) -> Endpoint:
        host = value.get("host") or self.admin.host
        port_text = value.get("port")
        try:
            port = int(port_text) if port_text else self.admin.port
        except ValueError:
            raise RotatorConflict(f"The secret's port {port_text!r} is not a number") from None
        return Endpoint(
            host=host,
            port=port,
            user=self._username(value, "new"),
            password=self._password(value, "new"),
            database=value.get("dbname") or None,
            unix_socket=None,  # a real TCP login, as clients make it
            ssl_ca=self.admin.ssl_ca,
            ssl_cert=None,
            ssl_key=None,
            connect_timeout=self.admin.connect_timeout,
        )

    # ---------------------------------------------------------------- protocol
    def plan(self, current: SecretValue) -> tuple[str, ...]:
        user = current.get(self.username_field) or "?"
        acct = f"'{user}'@'{self.account_host}'"
        if self.strategy is Strategy.SINGLE:
            return (
                f"ALTER USER {acct} IDENTIFIED BY PASSWORD '<hash of the new password>' "
                "(the old password stops working here)",
                f"log in over TCP as {user} with the new password",
            )
        other = f"'{self._other(user)}'@'{self.account_host}'"
        return (
            f"CREATE USER {other} … ACCOUNT LOCK (if missing); make its grants equal to "
            f"{acct}'s (SHOW GRANTS, GRANT / REVOKE)",
            f"ALTER USER {other} IDENTIFIED BY PASSWORD '<hash of the new password>' "
            "ACCOUNT UNLOCK",
            f"log in over TCP as {self._other(user)} with the new password",
            f"ALTER USER {acct} ACCOUNT LOCK (after finish)",
            f"ALTER USER {acct} with a password nobody has, after the grace period, if no "
            "session uses it",
        )

    def create(self, current: SecretValue, ctx: RotationContext) -> SecretValue:
        user = self._username(current, "current")
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(self.password_length))
        if self.strategy is Strategy.ALTERNATING:
            user = self._other(user)
        return current.replace(**{self.username_field: user, self.password_field: password})

    def set(self, current: SecretValue, new: SecretValue) -> None:
        user = self._username(new, "new")
        password = self._password(new, "new")
        secret_texts = (password, native_password_hash(password))
        acct = f"'{user}'@'{self.account_host}'"
        if self.strategy is Strategy.SINGLE:
            with self._admin(f"ALTER USER {acct}", *secret_texts) as cur:
                account = self._account(cur, user)
                assert account is not None
                self._check_plugin(cur, account)
                self._alter(cur, account, password, lock=None)
            log.info("set a new password for %s account %s", self._label(), acct)
            return
        active = self._username(current, "current")
        if active == user:
            raise RotatorConflict(
                f"The alternating strategy needs the new login to differ from {active}"
            )
        with self._admin(f"ALTER USER {acct}", *secret_texts) as cur:
            source = self._account(cur, active)
            assert source is not None
            self._check_plugin(cur, source)
            target = self._account(cur, user, must_exist=False)
            if target is None:
                target = Account(user, self.account_host, source.plugin)
                clause, params = self._auth_clause(target, password)
                cur.execute(
                    f"CREATE USER %s@%s {clause} ACCOUNT LOCK",
                    (target.user, target.host, *params),
                )
                log.info("created %s account %s (locked)", self._label(), acct)
            else:
                self._check_plugin(cur, target)
            n = self._sync_grants(cur, active, user)
            log.info("made the grants of %s equal to %s's (%d statements)", acct, active, n)
            self._alter(cur, target, password, lock=False)
        log.info("set a new password for %s account %s and unlocked it", self._label(), acct)

    def test(self, new: SecretValue) -> None:
        pymysql = _driver()
        endpoint = self._test_endpoint(new)
        user = endpoint.user
        try:
            conn = self._connect(endpoint)
        except pymysql.err.MySQLError as exc:
            text = _first_line(exc, (endpoint.password,))
            if _code(exc) in _UNREACHABLE:
                raise ProviderUnavailable(
                    f"Cannot connect to {self._label()} at {endpoint.where()} to test the new "
                    f"password of {user}: {text}",
                    hint="Check the secret's host and port and the network, then resume",
                ) from None
            raise CredentialRejected(
                f"{self._label()} at {endpoint.where()} refused login as {user} with the new "
                f"password: {text}",
                hint="Roll the rotation back; the current password is unchanged in the store",
            ) from None
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER()")
                row = cur.fetchone()
        finally:
            _close(conn)
        expected = f"{user}@{self.account_host}"
        if not row or str(row[0]) != expected:
            got = row[0] if row else None
            raise CredentialRejected(
                f"Logging in as {user} at {endpoint.where()} matched the account {got!r}, not "
                f"'{user}'@'{self.account_host}'",
                hint="Another account (an anonymous ''@'localhost' one, or another host part) "
                "takes precedence; check account_host",
            )
        log.info("new password for %s account %s works over TCP", self._label(), expected)

    def deactivate(self, old: SecretValue, new: SecretValue) -> None:
        old_user, new_user = self._username(old, "old"), self._username(new, "new")
        if self.strategy is Strategy.SINGLE or old_user == new_user:
            return  # single: the old password was replaced at set
        acct = f"'{old_user}'@'{self.account_host}'"
        with self._admin(f"ALTER USER {acct} ACCOUNT LOCK") as cur:
            if self._account(cur, old_user, must_exist=False) is not None:
                cur.execute("ALTER USER %s@%s ACCOUNT LOCK", (old_user, self.account_host))
        log.info("%s account %s is locked", self._label(), acct)

    def revoke(self, old: SecretValue, new: SecretValue, deactivated_at: datetime) -> Retirement:
        old_user, new_user = self._username(old, "old"), self._username(new, "new")
        if self.strategy is Strategy.SINGLE or old_user == new_user:
            return Retirement(
                RetireOutcome.NOT_APPLICABLE, "the old password was replaced when the new was set"
            )
        acct = f"'{old_user}'@'{self.account_host}'"
        with self._admin(f"remove the password of {acct}") as cur:
            account = self._account(cur, old_user, must_exist=False)
            if account is None:
                return Retirement(RetireOutcome.ALREADY_GONE, f"account {acct} does not exist")
            if not _has_process_privilege(cur):
                self._warn(
                    f"The admin cannot see other sessions (no PROCESS privilege), so keyward "
                    f"could not check that no session still uses {acct} before removing its "
                    "password"
                )
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s",
                (old_user,),
            )
            row = cur.fetchone()
            sessions = int(row[0]) if row else 0
            if sessions:
                return Retirement(
                    RetireOutcome.KEPT_IN_USE,
                    f"{sessions} session(s) are still connected as {old_user}; its password "
                    "was kept (the account is locked)",
                )
            self._alter(cur, account, None, lock=True)
        log.info("removed the password of %s account %s", self._label(), acct)
        return Retirement(RetireOutcome.REVOKED, f"locked {acct} and replaced its password by none")

    def rollback(self, current: SecretValue, new: SecretValue | None, ctx: RotationContext) -> None:
        user = self._username(current, "current")
        acct = f"'{user}'@'{self.account_host}'"
        if self.strategy is Strategy.SINGLE:
            # set may or may not have run: put the current password back (idempotent)
            password = self._password(current, "current")
            with self._admin(f"ALTER USER {acct}", password, native_password_hash(password)) as cur:
                account = self._account(cur, user, must_exist=False)
                if account is not None:
                    self._check_plugin(cur, account)
                    self._alter(cur, account, password, lock=None)
            log.info("rolled back: restored the password of %s account %s", self._label(), acct)
            return
        other = self._username(new, "new") if new is not None else self._other(user)
        if other == user:
            return
        other_acct = f"'{other}'@'{self.account_host}'"
        with self._admin(f"ALTER USER {other_acct} ACCOUNT LOCK") as cur:
            account = self._account(cur, other, must_exist=False)
            if account is not None:
                self._alter(cur, account, None, lock=True)
        log.info("rolled back: %s account %s locked", self._label(), other_acct)


def _check_server(server: Server) -> Server:
    minimum = (10, 4) if server.flavor is Flavor.MARIADB else (8, 0)
    if server.version[:2] < minimum:
        raise RotatorConflict(
            f"{server.label} {'.'.join(map(str, server.version))} is too old for {KIND} "
            f"(it needs {server.label} {minimum[0]}.{minimum[1]} or newer: ACCOUNT LOCK)",
        )
    return server


def _has_process_privilege(cur: Any) -> bool:
    """Whether the admin holds PROCESS (directly; through a role reads as "no")."""
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES "
        "WHERE PRIVILEGE_TYPE = 'PROCESS' AND GRANTEE = CONCAT(\"'\", "
        "SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", "
        "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")"
    )
    row = cur.fetchone()
    return bool(row and int(row[0]))


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # already closed by a failed statement
        log.debug("closing a MySQL connection failed", exc_info=True)


def _literal(cur: Any, text: str) -> str:
    """``text`` as a quoted SQL string literal, escaped for this connection."""
    return str(cur.connection.escape(text))


def _code(exc: BaseException) -> int:
    args: tuple[object, ...] = tuple(exc.args)
    return int(args[0]) if args and isinstance(args[0], int) else 0


def _first_line(exc: BaseException, secret_texts: Sequence[str] = ()) -> str:
    args: tuple[object, ...] = tuple(exc.args)
    text = str(args[1]) if len(args) > 1 else str(exc)
    for secret in secret_texts:
        if secret:
            text = text.replace(secret, "…")
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__
