"""mysql-password and redis-acl without servers: drivers missing, URLs, SHOW GRANTS parsing,
hashes. (Their behaviour against real servers is in tests/integration/test_rotator_*.py.)"""

from __future__ import annotations

import sys

import pytest

from keyward.core.errors import ConfigError, ExitCode, RotationError
from keyward.core.redaction import Fingerprinter
from keyward.providers import Providers
from keyward.rotation.protocols import SecretValue
from keyward.rotation.registry import PluginContext, load_rotator
from keyward.rotation.rotators import mysql, redis_acl
from keyward.rotation.rotators.mysql import (
    GRANTEE,
    Grant,
    GrantKind,
    grant_changes,
    native_password_hash,
    parse_grants,
    parse_version,
)

CTX = PluginContext(Providers(), Fingerprinter(b"k" * 32))


@pytest.mark.parametrize(
    ("kind", "module", "extra", "url"),
    [
        ("mysql-password", "pymysql", "keyward[mysql]", "mysql://root@127.0.0.1/"),
        ("redis-acl", "redis", "keyward[redis]", "redis://127.0.0.1:6379"),
    ],
)
def test_a_missing_driver_is_one_sentence_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, kind: str, module: str, extra: str, url: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    with pytest.raises(ConfigError) as err:
        load_rotator(kind, CTX, {"admin_url": url})
    assert err.value.exit_code is ExitCode.USAGE
    text = err.value.diagnostics()
    assert f'pip install "{extra}"' in text and "not installed" in text
    assert text.count(". ") <= 1 and "\n" not in text


def test_the_native_password_hash_matches_the_servers_known_value() -> None:
    # SELECT PASSWORD('password') on MySQL 5.7 / MariaDB
    assert native_password_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    assert redis_acl.password_hash("foobared") == (
        "1b58ee375b42e41f0e48ef2ff27d10a5b1f6924a9acdcdba7cae868e7adce6bf"
    )


def test_admin_urls_keep_the_password_out_of_repr_and_errors() -> None:
    ep = mysql.parse_url("mysql://kw:p%40ss-Word-123@db.internal:3307/app?ssl_ca=/ca.pem")
    assert (ep.user, ep.password, ep.host, ep.port, ep.database, ep.ssl_ca) == (
        "kw", "p@ss-Word-123", "db.internal", 3307, "app", "/ca.pem",
    )  # fmt: skip
    assert "p@ss-Word-123" not in repr(ep)
    with pytest.raises(ConfigError, match="unknown options: sslmode") as err:
        mysql.parse_url("mysql://kw:Secret-999@h/?sslmode=require")
    assert "Secret-999" not in err.value.diagnostics()
    r = redis_acl.parse_url("rediss://admin:R-pass-123@cache:6380?ssl_ca=/ca.pem")
    assert (r.username, r.password, r.tls, r.port) == ("admin", "R-pass-123", True, 6380)
    assert "R-pass-123" not in repr(r)
    rot = redis_acl.RedisAclRotator(r)
    assert "R-pass-123" not in repr(rot) + "\n".join(rot.plan(SecretValue({"username": "a"})))


MARIADB_GRANTS = [
    "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD "
    "'*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19' WITH MAX_USER_CONNECTIONS 5",
    "GRANT SELECT, INSERT ON `shop`.* TO `app`@`%` WITH GRANT OPTION",
    "GRANT SELECT (`id`, `a TO b`) ON `shop`.`orders` TO `app`@`%`",
    "GRANT `reporting` TO `app`@`%`",
    "SET DEFAULT ROLE `reporting` FOR `app`@`%`",
    "GRANT PROXY ON `other`@`%` TO `app`@`%`",
]


def test_show_grants_become_templates_without_the_password_hash() -> None:
    grants = parse_grants(MARIADB_GRANTS, "app", "%")
    statements = sorted(g.statement() for g in grants)
    assert statements == sorted([
        f"GRANT SELECT, INSERT ON `shop`.* TO {GRANTEE} WITH GRANT OPTION",
        f"GRANT SELECT (`id`, `a TO b`) ON `shop`.`orders` TO {GRANTEE}",
        f"GRANT `reporting` TO {GRANTEE}",
        f"SET DEFAULT ROLE `reporting` FOR {GRANTEE}",
        f"GRANT PROXY ON `other`@`%` TO {GRANTEE}",
    ])  # fmt: skip
    assert not any("2470C0C0" in s or "MAX_" in s for s in statements)
    # the same grants printed for the clone are the same templates
    clone = [line.replace("`app`@`%`", "`app_clone`@`%`") for line in MARIADB_GRANTS]
    assert parse_grants(clone, "app_clone", "%") == grants
    assert grant_changes(grants, parse_grants(clone, "app_clone", "%")) == []


def test_grant_changes_revoke_extras_grant_the_missing_and_set_default_roles_last() -> None:
    source = parse_grants(MARIADB_GRANTS, "app", "%")
    target = parse_grants(
        [
            "GRANT USAGE ON *.* TO `app_clone`@`%`",
            "GRANT SELECT ON `shop`.* TO `app_clone`@`%` WITH GRANT OPTION",
            "GRANT ALTER ON `shop`.* TO `app_clone`@`%`",
            "SET DEFAULT ROLE `old` FOR `app_clone`@`%`",
        ],
        "app_clone",
        "%",
    )
    changes = grant_changes(source, target)
    assert changes[:2] == [
        f"REVOKE ALTER ON `shop`.* FROM {GRANTEE}",
        f"REVOKE SELECT, GRANT OPTION ON `shop`.* FROM {GRANTEE}",
    ]
    assert f"GRANT SELECT, INSERT ON `shop`.* TO {GRANTEE} WITH GRANT OPTION" in changes
    assert changes[-1] == f"SET DEFAULT ROLE `reporting` FOR {GRANTEE}"
    no_roles = [g for g in source if g.kind is not GrantKind.DEFAULT_ROLE]
    assert grant_changes(no_roles, target)[-1] == f"SET DEFAULT ROLE NONE FOR {GRANTEE}"


def test_mysql8_forms_partial_revokes_and_role_accounts_are_read() -> None:
    lines = [
        "GRANT USAGE ON *.* TO `app`@`%`",
        "GRANT SELECT ON *.* TO `app`@`%`",
        "REVOKE SELECT ON `mysql`.* FROM `app`@`%`",
        "GRANT `r1`@`%`,`r2`@`%` TO `app`@`%` WITH ADMIN OPTION",
        "GRANT BACKUP_ADMIN ON *.* TO `app`@`%`",
    ]
    grants = parse_grants(lines, "app", "%")
    assert Grant(GrantKind.REVOKE, "SELECT", "`mysql`.*") in grants
    assert Grant(GrantKind.ROLE, "`r1`@`%`,`r2`@`%`", option=" WITH ADMIN OPTION") in grants
    undo = Grant(GrantKind.REVOKE, "SELECT", "`mysql`.*").undo()
    assert undo == f"GRANT SELECT ON `mysql`.* TO {GRANTEE}"


def test_an_unreadable_grant_line_names_its_first_words_only() -> None:
    with pytest.raises(RotationError, match="Cannot read a 'ALTER USER' line") as err:
        parse_grants(["ALTER USER `app`@`%` IDENTIFIED BY PASSWORD '*ABCDEF0123'"], "app", "%")
    assert "ABCDEF0123" not in err.value.diagnostics()
    with pytest.raises(RotationError, match="Cannot read a 'GRANT SELECT' line"):
        parse_grants(["GRANT SELECT ON `x`.* TO `someone`@`%`"], "app", "%")


def test_server_versions_are_told_apart_and_old_ones_refused() -> None:
    assert parse_version("10.11.19-MariaDB-0+deb12u1").flavor is mysql.Flavor.MARIADB
    assert parse_version("10.11.19-MariaDB-0+deb12u1").version == (10, 11, 19)
    assert parse_version("8.0.36").flavor is mysql.Flavor.MYSQL
    with pytest.raises(RotationError, match=r"MySQL 5\.7\.44 is too old"):
        mysql._check_server(parse_version("5.7.44-log"))
    with pytest.raises(RotationError, match=r"MariaDB 10\.3\.39 is too old"):
        mysql._check_server(parse_version("10.3.39-MariaDB"))


def test_options_are_checked_when_the_rotator_is_built() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        load_rotator("mysql-password", CTX, {"admin_url": "mysql://h/", "password_length": 8})
    with pytest.raises(ConfigError, match="account_host must not be empty"):
        load_rotator("mysql-password", CTX, {"admin_url": "mysql://h/", "account_host": ""})
    with pytest.raises(ConfigError, match="between 16 and 512"):
        load_rotator("redis-acl", CTX, {"admin_url": "redis://h", "password_length": 4})
