"""Which fields of a secret carry secret material, in Python and in SQL alike."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from keyward.core.secretfields import (
    DESCRIPTIVE_FIELDS,
    binds,
    can_be_secret,
    field_fingerprints,
    secret_bearing,
    sql_secret_bearing,
)

NAMES = [
    "value", "password", "secret_access_key", "access_key_id", "api_token", "url",
    "host", "Host", "HOSTNAME", "port", "db_name", "dbName", "DB-NAME", "engine", "username",
    "masterarn", "MasterArn", "dbInstanceIdentifier", "db_cluster_identifier", "sslmode",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_descriptive_fields_by_name_whatever_the_case_and_separators(name: str) -> None:
    descriptive = name.lower().replace("_", "").replace("-", "") in DESCRIPTIVE_FIELDS
    assert secret_bearing(name) is not descriptive
    assert secret_bearing(name) is (name in NAMES[:6])


def test_the_sql_condition_says_what_python_says() -> None:
    engine = sa.create_engine("sqlite://")
    t = sa.table("f", sa.column("field", sa.String))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE f (field TEXT)"))
        conn.execute(sa.insert(t), [{"field": n} for n in NAMES])
        got = set(conn.scalars(sa.select(t.c.field).where(sql_secret_bearing(t.c.field))))
    assert got == {n for n in NAMES if secret_bearing(n)}


@pytest.mark.parametrize(
    ("field", "value", "secret"),
    [
        ("password", "hT5!mRw9Zq2e", True), ("password", "s3cret", False),
        ("token", "12345678901", False), ("flag", "TRUE", False), ("flag", "false", False),
        ("url", "postgres://app:hT5!mRw9@db/orders", True),
        ("url", "https://api.example.com/v1", False),
        ("dsn", "host=db user=app password=hT5!mRw9Zq2e", True),
        ("webhook", "https://hooks.example.com/services/T0/B0/x9", True),
    ],
)  # fmt: skip
def test_a_value_that_cannot_be_a_secret_by_its_shape(field: str, value: str, secret: bool) -> None:
    assert can_be_secret(field, value) is secret


def test_fingerprints_keep_descriptive_fields_and_drop_what_cannot_be_a_secret() -> None:
    fields = {"host": "db", "port": "5432", "username": "app", "password": "hT5!mRw9Zq2e",
              "sslmode": "require", "debug": "true", "pin": "1234", "n": 3}  # fmt: skip
    got = field_fingerprints(fields, lambda v: "fp:" + str(len(v)))
    assert set(got) == {"host", "port", "username", "password", "sslmode"}


def test_a_login_binds_only_a_variable_named_for_a_login() -> None:
    assert binds("DB_PASSWORD", "password") and binds("ANYTHING", "api_key")
    assert binds("DB_USER", "username") and binds("PGUSER", "username")
    assert binds("APP_USERNAME", "user")
    assert not binds("OWNER", "username") and not binds("DB_USER", "host")
    assert not binds("PORT", "port") and not binds("DB_HOST", "host")
