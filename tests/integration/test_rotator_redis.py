"""redis-acl against the local Redis 7 (no ACL file) and a private redis-server that keeps its
users in an ACL file (restarted to prove what survives). Every "works" / "refused" is a real
``AUTH`` on a new connection."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from keyward.core.errors import ConfigError, ExitCode
from keyward.rotation.errors import (
    CredentialRejected,
    ProviderDenied,
    ProviderUnavailable,
    RotatorConflict,
)
from keyward.rotation.protocols import RetireOutcome, RotationContext, SecretValue, new_token
from keyward.rotation.rotators.redis_acl import (
    Endpoint,
    RedisAclRotator,
    connect,
    parse_url,
    password_hash,
)
from tests.integration._db_servers import *  # noqa: F403
from tests.integration._db_servers import RedisServer, unique

pytestmark = pytest.mark.integration

OLD = "Old-redis-password-0001"


def ctx() -> RotationContext:
    return RotationContext(new_token(), datetime.now(UTC))


def secret(user: str, password: str = OLD, server: RedisServer | None = None) -> SecretValue:
    fields = {"username": user, "password": password}
    if server is not None:
        fields |= {"host": server.host, "port": str(server.port)}
    return SecretValue(fields)


def rotator(server: RedisServer, url: str | None = None, **kw: Any) -> RedisAclRotator:
    return RedisAclRotator(parse_url(url or server.url), **kw)


def hashes(server: RedisServer, user: str) -> set[str]:
    doc = server.getuser(user)
    assert doc is not None
    assert "nopass" not in doc["flags"], doc["flags"]  # never nopass
    assert doc["passwords"], "the user was left without a password"
    return set(doc["passwords"])


def test_two_passwords_overlap_then_the_old_one_is_removed(redis_server: RedisServer) -> None:
    user = redis_server.user(OLD)
    rot = rotator(redis_server)
    cur = secret(user, server=redis_server)
    new = rot.create(cur, ctx())
    assert new["username"] == user and new["password"] != OLD and len(new["password"]) == 40
    assert new["host"] == redis_server.host  # other fields are kept
    assert hashes(redis_server, user) == {password_hash(OLD)}
    rot.set(cur, new)
    rot.set(cur, new)  # idempotent
    assert hashes(redis_server, user) == {password_hash(OLD), password_hash(new["password"])}
    assert redis_server.works(user, OLD) and redis_server.works(user, new["password"])
    rot.test(new)
    rot.deactivate(cur, new)
    assert hashes(redis_server, user) == {password_hash(new["password"])}
    assert not redis_server.works(user, OLD) and redis_server.works(user, new["password"])
    rot.deactivate(cur, new)  # idempotent
    retired = rot.revoke(cur, new, datetime.now(UTC))
    assert retired.outcome is RetireOutcome.REVOKED and "at deactivation" in retired.detail
    assert redis_server.works(user, new["password"])
    assert (redis_server.getuser(user) or {})["flags"] == ["on"]  # nothing else changed


def test_rollback_removes_the_new_password_and_keeps_the_current(
    redis_server: RedisServer,
) -> None:
    user = redis_server.user(OLD)
    rot = rotator(redis_server)
    cur, c = secret(user), ctx()
    new = rot.create(cur, c)
    rot.set(cur, new)
    rot.rollback(cur, new, c)
    rot.rollback(cur, new, c)  # idempotent
    rot.rollback(cur, None, c)  # the value never reached the store: nothing was added
    assert hashes(redis_server, user) == {password_hash(OLD)}
    assert redis_server.works(user, OLD) and not redis_server.works(user, new["password"])


def test_other_passwords_of_the_user_are_left_alone(redis_server: RedisServer) -> None:
    user = redis_server.user(OLD, "Another-client-password-1")
    rot = rotator(redis_server)
    cur = secret(user)
    new = rot.create(cur, ctx())
    rot.set(cur, new)
    rot.deactivate(cur, new)
    assert redis_server.works(user, "Another-client-password-1")
    assert hashes(redis_server, user) == {
        password_hash("Another-client-password-1"),
        password_hash(new["password"]),
    }


def test_without_an_acl_file_each_change_warns_it_will_not_survive_a_restart(
    redis_server: RedisServer,
) -> None:
    user = redis_server.user(OLD)
    rot = rotator(redis_server)
    cur, c = secret(user), ctx()
    new = rot.create(cur, c)
    rot.set(cur, new)
    (warning,) = rot.take_warnings()
    assert "has no ACL file" in warning and "lost when the server restarts" in warning
    assert user in warning and OLD not in warning and new["password"] not in warning
    assert rot.take_warnings() == []  # taken once
    rot.rollback(cur, new, c)
    assert len(rot.take_warnings()) == 1


def test_with_an_acl_file_the_change_is_saved_and_survives_a_restart(
    redis_with_aclfile: RedisServer,
) -> None:
    server = redis_with_aclfile
    user = server.user(OLD)
    rot = rotator(server)
    cur = secret(user, server=server)
    new = rot.create(cur, ctx())
    rot.set(cur, new)
    rot.test(new)
    rot.deactivate(cur, new)
    assert rot.take_warnings() == []
    assert server.aclfile is not None
    saved = server.aclfile.read_text()
    assert f"user {user} " in saved and "#" + password_hash(new["password"]) in saved
    assert new["password"] not in saved and password_hash(OLD) not in saved
    server.restart()
    assert server.works(user, new["password"]) and not server.works(user, OLD)


def test_a_failing_acl_save_is_an_error_not_a_silent_success(
    redis_with_aclfile: RedisServer,
) -> None:
    server = redis_with_aclfile
    user = server.user(OLD)
    rot = rotator(server)
    cur = secret(user)
    new = rot.create(cur, ctx())
    acl = server.aclfile
    assert acl is not None
    aside = acl.with_suffix(".aside")
    acl.rename(aside)
    acl.mkdir()  # Redis saves to a temporary file, then renames it over the ACL file: fails
    try:
        with pytest.raises(ProviderUnavailable, match="could not save its ACL file") as err:
            rot.set(cur, new)
    finally:
        acl.rmdir()
        aside.rename(acl)
    assert err.value.exit_code is ExitCode.BACKEND
    assert OLD not in err.value.diagnostics() and new["password"] not in err.value.diagnostics()
    rot.rollback(cur, new, ctx())  # the file is back: rollback saves it
    assert server.works(user, OLD) and not server.works(user, new["password"])
    assert password_hash(new["password"]) not in acl.read_text()


def test_a_nopass_user_a_missing_user_and_a_foreign_password_are_refused(
    redis_server: RedisServer,
) -> None:
    rot = rotator(redis_server)
    open_user = unique()
    redis_server.made.append(open_user)
    admin = redis_server.admin()
    admin.execute_command("ACL", "SETUSER", open_user, "on", "nopass", "~*", "+@all")
    admin.close()
    cur = secret(open_user)
    with pytest.raises(RotatorConflict, match="accepts any password \\(nopass\\)"):
        rot.set(cur, rot.create(cur, ctx()))
    assert "nopass" in (redis_server.getuser(open_user) or {})["flags"]  # left as it was

    missing = unique()
    with pytest.raises(RotatorConflict, match=f"user {missing} does not exist"):
        rot.set(secret(missing), rot.create(secret(missing), ctx()))
    assert redis_server.getuser(missing) is None  # ACL SETUSER would have created it

    user = redis_server.user("Someone-else-set-this-1")
    with pytest.raises(RotatorConflict, match="not one of Redis ACL user"):
        rot.set(secret(user), rot.create(secret(user), ctx()))
    assert hashes(redis_server, user) == {password_hash("Someone-else-set-this-1")}


def test_the_old_password_is_not_removed_when_the_new_one_is_missing(
    redis_server: RedisServer,
) -> None:
    user = redis_server.user(OLD)
    rot = rotator(redis_server)
    cur = secret(user)
    new = rot.create(cur, ctx())  # never set: removing the old would leave no password
    with pytest.raises(RotatorConflict, match="would be left without a working password"):
        rot.deactivate(cur, new)
    assert hashes(redis_server, user) == {password_hash(OLD)}


def test_test_step_rejects_a_wrong_password_without_repeating_it(
    redis_server: RedisServer,
) -> None:
    user = redis_server.user(OLD)
    rot = rotator(redis_server)
    with pytest.raises(CredentialRejected, match=f"refused AUTH as {user}") as err:
        rot.test(secret(user, "Wrong-password-0001-xyz"))
    assert "Wrong-password-0001-xyz" not in err.value.diagnostics()
    assert err.value.exit_code is ExitCode.BACKEND


def test_the_documented_minimal_admin_acl_is_enough(redis_server: RedisServer) -> None:
    admin_pw = "Admin-redis-" + unique()
    # docs/rotation.md, redis-acl: the admin's ACL rules
    admin = redis_server.user(
        admin_pw, rules="-@all +acl|getuser +acl|setuser +acl|save +config|get"
    )
    user = redis_server.user(OLD)
    url = f"redis://{admin}:{admin_pw}@{redis_server.host}:{redis_server.port}"
    rot = RedisAclRotator(parse_url(url))
    cur = secret(user)
    new = rot.create(cur, ctx())
    rot.set(cur, new)
    rot.test(new)
    rot.deactivate(cur, new)
    assert rot.revoke(cur, new, datetime.now(UTC)).outcome is RetireOutcome.REVOKED
    assert redis_server.works(user, new["password"]) and not redis_server.works(user, OLD)
    weak = redis_server.user(admin_pw, rules="-@all +acl|getuser")
    rot = RedisAclRotator(
        parse_url(f"redis://{weak}:{admin_pw}@{redis_server.host}:{redis_server.port}")
    )
    newer = rot.create(new, ctx())
    with pytest.raises(ProviderDenied, match=f"Redis denied ACL SETUSER {user}") as err:
        rot.set(new, newer)
    assert err.value.exit_code is ExitCode.BACKEND and newer["password"] not in str(err.value)


def test_no_plaintext_password_is_sent_except_in_auth_nor_logged(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="keyward")
    sent: list[tuple[str, ...]] = []

    def recording(endpoint: Endpoint) -> Any:
        client = connect(endpoint)
        real = client.execute_command

        def execute_command(*args: Any, **kw: Any) -> Any:
            sent.append(tuple(str(a) for a in args))
            return real(*args, **kw)

        client.execute_command = execute_command  # type: ignore[method-assign]
        return client

    user = redis_server.user(OLD)
    rot = RedisAclRotator(parse_url(redis_server.url), connector=recording)
    cur, c = secret(user), ctx()
    new = rot.create(cur, c)
    rot.set(cur, new)
    rot.test(new)
    rot.deactivate(cur, new)
    rot.revoke(cur, new, datetime.now(UTC))
    newer = rot.create(new, c)
    rot.set(new, newer)
    rot.rollback(new, newer, c)
    assert any(a[:2] == ("ACL", "SETUSER") for a in sent)
    for pw in (OLD, new["password"], newer["password"]):
        outside_auth = [a for a in sent if a[0] != "AUTH"]
        assert not any(pw in " ".join(a) for a in outside_auth)
    text = caplog.text + repr(rot) + "\n".join(rot.plan(cur)) + "\n".join(rot.take_warnings())
    for pw in (OLD, new["password"], newer["password"]):
        assert pw not in text


def test_the_registry_builds_it_and_reports_bad_options(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyward.core.redaction import Fingerprinter
    from keyward.providers import Providers
    from keyward.rotation.registry import PluginContext, load_rotator

    pctx = PluginContext(Providers(), Fingerprinter(b"k" * 32))
    rot = load_rotator("redis-acl", pctx, {"admin_url": redis_server.url, "password_length": 24})
    user = redis_server.user(OLD)
    new = rot.create(secret(user), ctx())
    assert len(new["password"]) == 24
    monkeypatch.delenv("KEYWARD_REDIS_ADMIN_URL", raising=False)
    with pytest.raises(ConfigError, match="needs an admin connection"):
        load_rotator("redis-acl", pctx, {})
    with pytest.raises(ConfigError, match="must start with redis://") as err:
        load_rotator("redis-acl", pctx, {"admin_url": "http://u:Pw-in-url-123@h"})
    assert "Pw-in-url-123" not in err.value.diagnostics()
