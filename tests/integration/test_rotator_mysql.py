"""mysql-password against the local MariaDB 10.11 (accounts with unique names, dropped
afterwards). MariaDB checks passwords over TCP for real, so every "works" / "refused" here is a
real login."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from keyward.core.errors import ConfigError, ExitCode
from keyward.rotation.errors import CredentialRejected, ProviderDenied, RotatorConflict
from keyward.rotation.protocols import RetireOutcome, RotationContext, SecretValue, new_token
from keyward.rotation.rotators.mysql import (
    Endpoint,
    MySQLPasswordRotator,
    Strategy,
    connect,
    native_password_hash,
    parse_url,
)
from tests.integration._db_servers import *  # noqa: F403
from tests.integration._db_servers import MariaDB, unique

pytestmark = pytest.mark.integration

OLD = "Old-password-0001-abcdef"


def ctx() -> RotationContext:
    return RotationContext(new_token(), datetime.now(UTC))


def secret(user: str, password: str = OLD) -> SecretValue:
    return SecretValue(
        {"username": user, "password": password, "host": "127.0.0.1", "port": "3306",
         "engine": "mariadb"}
    )  # fmt: skip


def rotator(db: MariaDB, strategy: Strategy = Strategy.SINGLE, **kw: Any) -> MySQLPasswordRotator:
    return MySQLPasswordRotator(parse_url(db.url), strategy=strategy, **kw)


@pytest.fixture
def db(mariadb: MariaDB) -> Iterator[MariaDB]:
    yield mariadb
    mariadb.drop_all()


def test_the_hash_keyward_computes_is_what_mariadb_stores(db: MariaDB) -> None:
    ((stored,),) = db.sql("SELECT PASSWORD(%s)", "Sample-password-123")
    assert native_password_hash("Sample-password-123") == stored
    user = db.account("Sample-password-123")
    assert db.auth_string(user) == stored


def test_single_rotation_new_password_logs_in_and_the_old_is_refused(db: MariaDB) -> None:
    user = db.account(OLD, grants=("SELECT",))
    rot = rotator(db)
    cur = secret(user)
    new = rot.create(cur, ctx())
    assert new["username"] == user and new["password"] != OLD and len(new["password"]) == 32
    assert new["engine"] == "mariadb"  # other fields are kept
    rot.set(cur, new)
    rot.set(cur, new)  # idempotent
    rot.test(new)
    assert db.login(user, new["password"]) == f"{user}@%"
    assert not db.works(user, OLD)
    assert db.auth_string(user) == native_password_hash(new["password"])
    assert rot.revoke(cur, new, datetime.now(UTC)).outcome is RetireOutcome.NOT_APPLICABLE
    assert rot.take_warnings() == []


def test_single_rollback_restores_the_current_password(db: MariaDB) -> None:
    user = db.account(OLD)
    rot = rotator(db)
    cur, c = secret(user), ctx()
    new = rot.create(cur, c)
    rot.set(cur, new)
    rot.rollback(cur, new, c)
    rot.rollback(cur, None, c)  # idempotent, also without the new value
    assert db.works(user, OLD) and not db.works(user, new["password"])


def test_alternating_keeps_a_working_login_at_every_step_and_equal_grants(db: MariaDB) -> None:
    role = db.role("INSERT")
    base = db.account(OLD, grants=("SELECT", "DELETE"))
    db.sql(f"GRANT SELECT (id) ON `{db.database}`.`orders` TO %s@'%%'", base)
    db.sql(f"GRANT `{role}` TO %s@'%%'", base)
    db.sql(f"SET DEFAULT ROLE `{role}` FOR %s@'%%'", base)
    rot = rotator(db, Strategy.ALTERNATING)
    cur = secret(base)

    # rotation 1: app -> app_clone (created locked, grants copied, then unlocked)
    new = rot.create(cur, ctx())
    clone = new["username"]
    assert clone == base + "_clone"
    assert db.works(base, OLD)
    rot.set(cur, new)
    rot.set(cur, new)  # idempotent
    assert db.works(base, OLD) and db.works(clone, new["password"])  # both, until finish
    assert db.grants(clone) == db.grants(base)
    assert any("SET DEFAULT ROLE" in g for g in db.grants(clone))
    rot.test(new)
    rot.deactivate(cur, new)
    assert db.locked(base) and not db.works(base, OLD)
    assert db.works(clone, new["password"])
    retired = rot.revoke(cur, new, datetime.now(UTC))
    assert retired.outcome is RetireOutcome.REVOKED, retired
    assert db.locked(base) and db.auth_string(base) == "invalid"  # no password matches
    assert db.works(clone, new["password"])

    # grants changed on the active login meanwhile: the next rotation makes them equal again
    db.sql(f"GRANT INSERT ON `{db.database}`.* TO %s@'%%'", clone)
    db.sql(f"REVOKE DELETE ON `{db.database}`.* FROM %s@'%%'", clone)
    db.sql(f"GRANT ALTER ON `{db.database}`.* TO %s@'%%'", base)  # a stray one on the idle login

    # rotation 2: app_clone -> app
    newer = rot.create(new, ctx())
    assert newer["username"] == base
    rot.set(new, newer)
    assert db.works(clone, new["password"]) and db.works(base, newer["password"])
    assert db.grants(base) == db.grants(clone)
    assert not any("ALTER" in g for g in db.grants(base))
    rot.test(newer)
    rot.deactivate(new, newer)
    assert db.locked(clone) and not db.locked(base)
    assert rot.revoke(new, newer, datetime.now(UTC)).outcome is RetireOutcome.REVOKED
    assert db.works(base, newer["password"]) and not db.works(clone, new["password"])


def test_alternating_rollback_locks_the_new_login_only(db: MariaDB) -> None:
    base = db.account(OLD, grants=("SELECT",))
    rot = rotator(db, Strategy.ALTERNATING)
    cur, c = secret(base), ctx()
    new = rot.create(cur, c)
    rot.set(cur, new)
    rot.rollback(cur, new, c)
    rot.rollback(cur, None, c)  # idempotent, also without the value
    clone = base + "_clone"
    assert db.locked(clone) and db.auth_string(clone) == "invalid"
    assert not db.works(clone, new["password"])
    assert db.works(base, OLD) and not db.locked(base)


def test_revoke_keeps_the_old_password_while_a_session_uses_it(db: MariaDB) -> None:
    base = db.account(OLD)
    rot = rotator(db, Strategy.ALTERNATING)
    cur = secret(base)
    new = rot.create(cur, ctx())
    rot.set(cur, new)
    session = connect(Endpoint(user=base, password=OLD))
    try:
        rot.deactivate(cur, new)  # an open session survives ACCOUNT LOCK
        retired = rot.revoke(cur, new, datetime.now(UTC))
    finally:
        session.close()
    assert retired.outcome is RetireOutcome.KEPT_IN_USE
    assert "still connected" in retired.detail
    assert rot.revoke(cur, new, datetime.now(UTC)).outcome is RetireOutcome.REVOKED


def test_the_documented_minimal_admin_can_run_both_strategies(db: MariaDB) -> None:
    admin_pw = "Admin-password-" + unique()
    admin = db.account(admin_pw)
    # docs/rotation.md, mysql-password: the minimal GRANT list
    db.sql("GRANT CREATE USER, PROCESS ON *.* TO %s@'%%'", admin)
    db.sql("GRANT SELECT ON mysql.* TO %s@'%%'", admin)
    db.sql(f"GRANT SELECT, INSERT ON `{db.database}`.* TO %s@'%%' WITH GRANT OPTION", admin)
    app = db.account(OLD, grants=("SELECT", "INSERT"))
    url = f"mysql://{admin}:{admin_pw}@{db.host}:{db.port}/"
    rot = MySQLPasswordRotator(parse_url(url), strategy=Strategy.ALTERNATING)
    cur = secret(app)
    new = rot.create(cur, ctx())
    rot.set(cur, new)
    rot.test(new)
    rot.deactivate(cur, new)
    assert rot.revoke(cur, new, datetime.now(UTC)).outcome is RetireOutcome.REVOKED
    assert rot.take_warnings() == []
    assert db.grants(app + "_clone") == db.grants(app)
    single = MySQLPasswordRotator(parse_url(url))
    newer = single.create(new, ctx())
    single.set(new, newer)
    single.test(newer)

    # without PROCESS it cannot see other sessions: revoke goes on, and says so
    db.sql("REVOKE PROCESS ON *.* FROM %s@'%%'", admin)
    rot = MySQLPasswordRotator(parse_url(url), strategy=Strategy.ALTERNATING)
    third = rot.create(newer, ctx())
    rot.set(newer, third)
    rot.deactivate(newer, third)
    assert rot.revoke(newer, third, datetime.now(UTC)).outcome is RetireOutcome.REVOKED
    (warning,) = rot.take_warnings()
    assert "no PROCESS privilege" in warning and app in warning


def test_an_admin_without_create_user_names_the_denied_statement(db: MariaDB) -> None:
    weak_pw = "Weak-password-" + unique()
    weak = db.account(weak_pw)
    db.sql("GRANT SELECT ON mysql.* TO %s@'%%'", weak)
    victim = db.account(OLD)
    rot = MySQLPasswordRotator(parse_url(f"mysql://{weak}:{weak_pw}@{db.host}:{db.port}/"))
    cur = secret(victim)
    new = rot.create(cur, ctx())
    with pytest.raises(ProviderDenied, match=f"MariaDB denied ALTER USER '{victim}'@'%'") as err:
        rot.set(cur, new)
    assert err.value.exit_code is ExitCode.BACKEND
    text = err.value.diagnostics()
    assert new["password"] not in text and native_password_hash(new["password"]) not in text
    assert db.works(victim, OLD)


def test_the_host_part_is_explicit_and_a_wrong_one_names_the_real_hosts(db: MariaDB) -> None:
    user = db.account(OLD, host="localhost")
    rot = rotator(db)
    cur = secret(user)
    with pytest.raises(RotatorConflict, match=f"it exists as '{user}'@'localhost'"):
        rot.set(cur, rot.create(cur, ctx()))
    local = rotator(db, account_host="localhost")
    new = local.create(cur, ctx())
    local.set(cur, new)
    assert db.auth_string(user, "localhost") == native_password_hash(new["password"])
    # a TCP login from 127.0.0.1 does not match 'user'@'localhost': test says which account
    with pytest.raises(CredentialRejected, match=r"refused login|matched the account"):
        local.test(new)


def test_an_account_with_another_plugin_is_refused(db: MariaDB) -> None:
    user = unique()
    db.made.append((user, "%"))
    db.sql("CREATE USER %s@'%%' IDENTIFIED VIA unix_socket", user)
    rot = rotator(db)
    cur = secret(user)
    with pytest.raises(RotatorConflict, match="authenticates with unix_socket"):
        rot.set(cur, rot.create(cur, ctx()))
    both = unique()
    db.made.append((both, "%"))
    db.sql(
        "CREATE USER %s@'%%' IDENTIFIED VIA mysql_native_password USING PASSWORD(%s) "
        "OR unix_socket",
        both,
        OLD,
    )
    with pytest.raises(RotatorConflict, match="several authentication methods"):
        rot.set(secret(both), rot.create(secret(both), ctx()))


def test_test_step_rejects_a_wrong_password_without_repeating_it(db: MariaDB) -> None:
    user = db.account(OLD)
    rot = rotator(db)
    wrong = secret(user, "Wrong-password-0001-xyz")
    with pytest.raises(CredentialRejected, match=f"refused login as {user}") as err:
        rot.test(wrong)
    assert "Wrong-password-0001-xyz" not in err.value.diagnostics()
    assert err.value.exit_code is ExitCode.BACKEND


def test_no_plaintext_password_reaches_the_general_log_or_keyward_logs(
    db: MariaDB, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="keyward")
    ((log_on, output),) = db.sql("SELECT @@global.general_log, @@global.log_output")
    ((started,),) = db.sql("SELECT NOW(6)")
    db.sql("SET GLOBAL log_output = 'TABLE'")
    db.sql("SET GLOBAL general_log = 1")
    passwords = [OLD]
    try:
        base = db.account(None, grants=("SELECT",))
        db.sql("ALTER USER %s@'%%' IDENTIFIED BY PASSWORD %s", base, native_password_hash(OLD))
        alt = rotator(db, Strategy.ALTERNATING)
        cur, c = secret(base), ctx()
        new = alt.create(cur, c)
        alt.set(cur, new)
        alt.test(new)
        alt.deactivate(cur, new)
        alt.revoke(cur, new, datetime.now(UTC))
        other = alt.create(new, c)
        alt.set(new, other)
        alt.rollback(new, other, c)
        single = rotator(db)
        s_new = single.create(new, c)
        single.set(new, s_new)
        single.test(s_new)
        single.rollback(new, s_new, c)
        passwords += [new["password"], other["password"], s_new["password"]]
        rows = db.sql(
            "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log WHERE event_time >= %s",
            started,
        )
    finally:
        db.sql("SET GLOBAL general_log = %s", log_on)
        db.sql("SET GLOBAL log_output = %s", output)
    logged = "\n".join(str(r[0]) for r in rows)
    assert f"'{base}_clone'" in logged and "IDENTIFIED BY PASSWORD '*" in logged  # it logged
    text = logged + caplog.text + repr(alt) + "\n".join(alt.plan(cur))
    for pw in passwords:
        assert pw not in text


def test_the_registry_builds_it_from_options_and_reports_bad_ones(
    db: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyward.core.redaction import Fingerprinter
    from keyward.providers import Providers
    from keyward.rotation.registry import PluginContext, load_rotator

    pctx = PluginContext(Providers(), Fingerprinter(b"k" * 32))
    base = db.account(OLD)
    rot = load_rotator(
        "mysql-password",
        pctx,
        {"admin_url": db.url, "strategy": "alternating", "password_length": 24},
    )
    cur = secret(base)
    new = rot.create(cur, ctx())
    assert len(new["password"]) == 24 and new["username"] == base + "_clone"
    rot.set(cur, new)
    rot.test(new)
    monkeypatch.delenv("KEYWARD_MYSQL_ADMIN_URL", raising=False)
    with pytest.raises(ConfigError, match="needs an admin connection"):
        load_rotator("mysql-password", pctx, {})
    with pytest.raises(ConfigError, match="Unknown strategy 'triple'"):
        load_rotator("mysql-password", pctx, {"admin_url": db.url, "strategy": "triple"})
    monkeypatch.setenv("KEYWARD_MYSQL_ADMIN_URL", "postgres://x:Pw-in-url-123@h/")
    with pytest.raises(ConfigError, match="must start with mysql://") as err:
        load_rotator("mysql-password", pctx, {})
    assert "Pw-in-url-123" not in err.value.diagnostics()
