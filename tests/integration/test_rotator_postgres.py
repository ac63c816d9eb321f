"""postgres-password against the local PostgreSQL (roles with unique names, dropped afterwards).

The local server trusts 127.0.0.1, so a wrong password would still log in: password checks
read the SCRAM verifier from ``pg_authid`` instead (:func:`verifier_matches`); refusals that
trust cannot hide (``NOLOGIN``) are tested by logging in.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from keyward.core.errors import ExitCode
from keyward.rotation.errors import CredentialRejected, ProviderDenied, RotatorConflict
from keyward.rotation.protocols import RetireOutcome, RotationContext, SecretValue, new_token
from keyward.rotation.rotators.postgres import (
    PostgresPasswordRotator,
    Strategy,
    scram_sha256_verifier,
    verifier_matches,
)

pytestmark = pytest.mark.integration


class Roles:
    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = psycopg.connect(url, autocommit=True)
        self.made: list[str] = []

    def create(self, *, login: bool = True, password: str | None = None) -> str:
        name = f"kw_{uuid.uuid4().hex[:10]}"
        self.made.append(name)
        self.made.append(name + "_clone")
        q = sql.SQL("CREATE ROLE {} WITH {} PASSWORD {}").format(
            sql.Identifier(name),
            sql.SQL("LOGIN" if login else "NOLOGIN"),
            sql.Literal(password) if password else sql.SQL("NULL"),
        )
        self.admin.execute(q)
        return name

    def verifier(self, role: str) -> str | None:
        row = self.admin.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
        ).fetchone()
        assert row is not None, f"role {role} does not exist"
        return row[0]  # type: ignore[no-any-return]

    def can_login(self, role: str) -> bool:
        row = self.admin.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)
        ).fetchone()
        return bool(row and row[0])

    def exists(self, role: str) -> bool:
        return (
            self.admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            is not None
        )

    def drop_all(self) -> None:
        for role in sorted(self.made, key=lambda r: not r.endswith("_clone")):
            if self.exists(role):
                ident = sql.Identifier(role)
                self.admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(ident))
                self.admin.execute(sql.SQL("DROP ROLE {}").format(ident))
        self.admin.close()


@pytest.fixture
def roles(postgres_url: str) -> Iterator[Roles]:
    r = Roles(postgres_url)
    try:
        yield r
    finally:
        r.drop_all()


def ctx() -> RotationContext:
    return RotationContext(new_token(), datetime.now(UTC))


def secret(user: str, password: str) -> SecretValue:
    return SecretValue({"username": user, "password": password, "engine": "postgres"})


def login(url: str, user: str, password: str) -> str:
    with psycopg.connect(url, user=user, password=password, connect_timeout=5) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def test_scram_verifier_is_what_postgresql_would_store(roles: Roles) -> None:
    role = roles.create(password="Sample-password-123")
    stored = roles.verifier(role)
    assert stored is not None and stored.startswith("SCRAM-SHA-256$4096:")
    assert verifier_matches("Sample-password-123", stored)
    assert not verifier_matches("sample-password-123", stored)
    assert verifier_matches("abc", scram_sha256_verifier("abc"))


def test_single_user_rotation_replaces_the_password(roles: Roles) -> None:
    user = roles.create(password="Old-password-0001")
    rot = PostgresPasswordRotator(roles.url, strategy=Strategy.SINGLE)
    cur = secret(user, "Old-password-0001")
    new = rot.create(cur, ctx())
    assert new["username"] == user and new["password"] != cur["password"]
    assert new["engine"] == "postgres"  # other fields are kept
    rot.set(cur, new)
    rot.set(cur, new)  # idempotent
    rot.test(new)
    stored = roles.verifier(user)
    assert stored and verifier_matches(new["password"], stored)
    assert not verifier_matches(cur["password"], stored)  # the old password is refused
    assert rot.revoke(cur, new, datetime.now(UTC)).outcome is RetireOutcome.NOT_APPLICABLE


def test_single_user_rollback_restores_the_current_password(roles: Roles) -> None:
    user = roles.create(password="Old-password-0001")
    rot = PostgresPasswordRotator(roles.url)
    cur = secret(user, "Old-password-0001")
    c = ctx()
    new = rot.create(cur, c)
    rot.set(cur, new)
    rot.rollback(cur, new, c)
    stored = roles.verifier(user)
    assert stored and verifier_matches(cur["password"], stored)
    assert not verifier_matches(new["password"], stored)


def test_alternating_users_always_leave_a_working_login(roles: Roles) -> None:
    base = roles.create(password="Base-password-0001")
    roles.admin.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(base + "_t")))
    roles.admin.execute(
        sql.SQL("ALTER TABLE {} OWNER TO {}").format(
            sql.Identifier(base + "_t"), sql.Identifier(base)
        )
    )
    rot = PostgresPasswordRotator(roles.url, strategy=Strategy.ALTERNATING)
    cur = secret(base, "Base-password-0001")

    # rotation 1: app -> app_clone
    new = rot.create(cur, ctx())
    assert new["username"] == base + "_clone"
    rot.set(cur, new)
    rot.test(new)
    assert roles.can_login(base) and verifier_matches(cur["password"], roles.verifier(base) or "")
    with psycopg.connect(roles.url, user=new["username"], password=new["password"]) as conn:
        conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(base + "_t")))  # privileges
    rot.deactivate(cur, new)
    assert not roles.can_login(base)
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        login(roles.url, base, cur["password"])
    assert rot.revoke(cur, new, datetime.now(UTC)).outcome is RetireOutcome.REVOKED
    assert roles.verifier(base) is None

    # rotation 2: app_clone -> app
    newer = rot.create(new, ctx())
    assert newer["username"] == base
    rot.set(new, newer)
    rot.test(newer)
    assert login(roles.url, new["username"], new["password"]) == new["username"]
    rot.deactivate(new, newer)
    assert not roles.can_login(new["username"]) and roles.can_login(base)


def test_alternating_rollback_disables_the_new_login_only(roles: Roles) -> None:
    base = roles.create(password="Base-password-0001")
    rot = PostgresPasswordRotator(roles.url, strategy=Strategy.ALTERNATING)
    cur = secret(base, "Base-password-0001")
    c = ctx()
    new = rot.create(cur, c)
    rot.set(cur, new)
    rot.rollback(cur, new, c)
    rot.rollback(cur, None, c)  # idempotent, also without the value
    assert not roles.can_login(new["username"]) and roles.verifier(new["username"]) is None
    assert login(roles.url, base, cur["password"]) == base


def test_revoke_keeps_the_old_login_while_sessions_use_it(roles: Roles) -> None:
    base = roles.create(password="Base-password-0001")
    rot = PostgresPasswordRotator(roles.url, strategy=Strategy.ALTERNATING)
    cur = secret(base, "Base-password-0001")
    new = rot.create(cur, ctx())
    rot.set(cur, new)
    with psycopg.connect(roles.url, user=base, password=cur["password"]):
        rot.deactivate(cur, new)  # an open session survives NOLOGIN
        retired = rot.revoke(cur, new, datetime.now(UTC))
    assert retired.outcome is RetireOutcome.KEPT_IN_USE
    assert "still connected" in retired.detail
    assert rot.revoke(cur, new, datetime.now(UTC)).outcome is RetireOutcome.REVOKED


def test_test_step_rejects_a_login_that_cannot_log_in(roles: Roles) -> None:
    user = roles.create(login=False, password="Old-password-0001")
    rot = PostgresPasswordRotator(roles.url)
    with pytest.raises(CredentialRejected, match=f"refused login as {user}") as err:
        rot.test(secret(user, "Whatever-password-1"))
    assert "Whatever-password-1" not in err.value.diagnostics()
    assert err.value.exit_code is ExitCode.BACKEND


def test_a_missing_role_is_a_clear_error(roles: Roles) -> None:
    rot = PostgresPasswordRotator(roles.url)
    cur = secret("kw_no_such_role", "Old-password-0001")
    with pytest.raises(RotatorConflict, match="kw_no_such_role does not exist"):
        rot.set(cur, rot.create(cur, ctx()))


def test_an_admin_without_createrole_names_the_denied_statement(roles: Roles) -> None:
    weak = roles.create(password="Weak-password-0001")
    victim = roles.create(password="Old-password-0001")
    url = psycopg.conninfo.make_conninfo(roles.url, user=weak)
    rot = PostgresPasswordRotator(url)
    cur = secret(victim, "Old-password-0001")
    with pytest.raises(ProviderDenied, match=f"PostgreSQL denied ALTER ROLE {victim}") as err:
        rot.set(cur, rot.create(cur, ctx()))
    assert err.value.exit_code is ExitCode.BACKEND


class _Recording:
    """A psycopg connection that remembers the SQL text it was asked to run."""

    def __init__(self, conn: Any, sent: list[str]) -> None:
        self._conn, self._sent = conn, sent

    def execute(self, query: Any, params: Any = None) -> Any:
        text = query.as_string(self._conn) if hasattr(query, "as_string") else str(query)
        self._sent.append(text + " " + repr(params))
        return self._conn.execute(query, params)

    def __enter__(self) -> _Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.close()


def test_plaintext_passwords_never_reach_the_server_or_logs(
    roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="keyward")
    base = roles.create(password="Base-password-0001")
    sent: list[str] = []

    def connect(conninfo: str, **kw: Any) -> Any:
        return _Recording(psycopg.connect(conninfo, autocommit=True, **kw), sent)

    rot = PostgresPasswordRotator(roles.url, strategy=Strategy.ALTERNATING, connect=connect)
    cur = secret(base, "Base-password-0001")
    c = ctx()
    new = rot.create(cur, c)
    rot.set(cur, new)
    rot.rollback(cur, new, c)
    single = PostgresPasswordRotator(roles.url, connect=connect)
    new2 = single.create(cur, c)
    single.set(cur, new2)
    single.rollback(cur, new2, c)
    assert any("SCRAM-SHA-256$" in s for s in sent)
    text = "\n".join(sent) + caplog.text + repr(rot) + "\n".join(rot.plan(cur))
    for pw in (cur["password"], new["password"], new2["password"]):
        assert pw not in text


def test_the_registry_builds_it_with_clients_and_an_admin_url_with_options(
    roles: Roles,
) -> None:
    from keyward.core.redaction import Fingerprinter
    from keyward.providers import Providers
    from keyward.rotation.registry import PluginContext, load_rotator

    base = roles.create(password="Base-password-0001")
    admin_url = psycopg.conninfo.make_conninfo(roles.url, connect_timeout=5)
    rot = load_rotator(
        "postgres-password",
        PluginContext(Providers(), Fingerprinter(b"k" * 32)),
        {"admin_url": admin_url, "strategy": "alternating", "password_length": 24},
    )
    cur = secret(base, "Base-password-0001")
    new = rot.create(cur, ctx())
    assert len(new["password"]) == 24
    rot.set(cur, new)
    rot.test(new)
    assert roles.can_login(base + "_clone")


def test_an_unknown_strategy_or_missing_admin_url_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keyward.core.errors import ConfigError
    from keyward.core.redaction import Fingerprinter
    from keyward.providers import Providers
    from keyward.rotation.registry import PluginContext, load_rotator

    monkeypatch.delenv("KEYWARD_POSTGRES_ADMIN_URL", raising=False)
    pctx = PluginContext(Providers(), Fingerprinter(b"k" * 32))
    with pytest.raises(ConfigError, match="needs an admin connection"):
        load_rotator("postgres-password", pctx, {})
    with pytest.raises(ConfigError, match="Unknown strategy 'triple'"):
        load_rotator("postgres-password", pctx, {"admin_url": "x", "strategy": "triple"})
