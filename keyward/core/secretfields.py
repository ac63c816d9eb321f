"""Which fields of a secret's value carry secret material: the one definition that says which
per-field fingerprints (``secret_fields``) answer "which secret is this value?".

A database secret is more than its password. AWS Secrets Manager's rotation templates keep
``{engine, host, username, password, dbname, port, masterarn}``, Vault and hand-written secrets
alike: a function holding ``PORT=5432`` or the same ``DB_HOST`` holds none of the secret, and a
finding equal to the host leaks nothing. So:

* a **descriptive** field (:data:`DESCRIPTIVE_FIELDS`, by name, case and ``_``/``-`` ignored:
  ``host``, ``port``, ``dbname``, ``engine``, ``username``...) never binds a variable, a finding
  or another secret by its value. The one exception is :func:`binds`: a function's variable
  named ``*USER``/``*USERNAME`` holding the ``username`` of a secret whose secret field the
  function holds too is that secret's (an alternating rotation switches the login);
* any other field carries secret material, but a value that cannot be a secret by its shape
  (:func:`can_be_secret`: shorter than 8 characters, all digits, ``true``/``false``; a URL or
  connection string without a password) is not fingerprinted at all (:func:`field_fingerprints`),
  whatever the field's name.

Descriptive fields are still fingerprinted (``inventory show`` lists them, and discovery needs
the ``username``); every lookup asks :func:`secret_bearing` (or its SQL form) first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

# Normalised names (lower case, no ``_``/``-``) of the fields that describe where and as whom
# a secret is used, never the secret: Secrets Manager's RDS/Redshift/DocumentDB templates
# (engine, host, username, dbname, port, masterarn, dbInstanceIdentifier, dbClusterIdentifier),
# libpq/JDBC connection parameters (hostname, database, db, schema, sslmode, user) and the
# usual neighbours (region, endpoint, address, server, driver...).
DESCRIPTIVE_FIELDS = frozenset(
    {
        "host",
        "hostname",
        "server",
        "address",
        "endpoint",
        "port",
        "dbname",
        "database",
        "db",
        "schema",
        "sslmode",
        "engine",
        "driver",
        "dialect",
        "protocol",
        "user",
        "username",
        "login",
        "region",
        "masterarn",
        "dbinstanceidentifier",
        "dbclusteridentifier",
        "cluster",
        "instance",
        "accountid",
        "account",
    }
)
# the login fields a ``*USER``/``*USERNAME`` variable binds (:func:`binds`)
LOGIN_FIELDS = frozenset({"username", "user"})
# Fields whose value is a secret only when it carries a password: ``url`` =
# ``postgres://app:pw@host/db`` is one, ``https://api.example.com`` is not.
_URL_FIELDS = frozenset({"url", "uri", "dsn", "connectionstring"})
_PASSWORD_IN_DSN = re.compile(r"(?i)(?:^|[\s;])(?:password|pwd)\s*=\s*\S")
MIN_SECRET_LENGTH = 8


def normalise(field: str) -> str:
    """``DB-Name`` / ``db_name`` / ``dbName`` -> ``dbname``."""
    return field.lower().replace("_", "").replace("-", "")


def secret_bearing(field: str) -> bool:
    """Whether a field of that name may carry secret material (binds by its value)."""
    return normalise(field) not in DESCRIPTIVE_FIELDS


def sql_secret_bearing(column: Any) -> Any:
    """:func:`secret_bearing` as a SQL condition on a field-name column (SQLite, PostgreSQL)."""
    import sqlalchemy as sa

    name = sa.func.lower(sa.func.replace(sa.func.replace(column, "_", ""), "-", ""))
    return name.not_in(sorted(DESCRIPTIVE_FIELDS))


def _carries_password(value: str) -> bool:
    if _PASSWORD_IN_DSN.search(value):
        return True
    try:
        return bool(urlsplit(value.strip()).password)
    except ValueError:
        return False


def can_be_secret(field: str, value: str) -> bool:
    """Whether ``value`` may be a secret by its shape: at least 8 characters, not all digits,
    not ``true``/``false``; under a URL-like field name (``url``, ``dsn``...), only with a
    password in it."""
    v = value.strip()
    if len(v) < MIN_SECRET_LENGTH or v.isdigit() or v.lower() in ("true", "false"):
        return False
    if normalise(field) in _URL_FIELDS:
        return _carries_password(v)
    return True


def field_fingerprints(
    fields: Mapping[str, Any], fingerprint: Callable[[str], str]
) -> dict[str, str]:
    """field -> keyed fingerprint of each non-empty string field worth recording: every
    descriptive field (looked up by name only, see :func:`binds`), and the others whose value
    :func:`can_be_secret`."""
    return {
        str(k): fingerprint(v)
        for k, v in sorted(fields.items())
        if isinstance(v, str) and v and (not secret_bearing(str(k)) or can_be_secret(str(k), v))
    }


def user_variable(variable: str) -> bool:
    """A variable named for a login (``DB_USER``, ``PGUSER``, ``APP_USERNAME``)."""
    return variable.upper().endswith(("USER", "USERNAME"))


def binds(variable: str, field: str) -> bool:
    """Whether a function's ``variable`` holding the value of a secret's ``field`` is bound to
    that field: a secret-bearing field always; ``username`` when the variable is named for a
    login (the caller checks the function holds a secret field of the same secret too)."""
    if secret_bearing(field):
        return True
    return normalise(field) in LOGIN_FIELDS and user_variable(variable)
