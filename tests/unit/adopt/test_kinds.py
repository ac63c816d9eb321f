"""How a finding's rule and value become a kind and fields (keyward.adopt.kinds)."""

from __future__ import annotations

import pytest

from keyward.adopt.kinds import AdoptRefused, infer, no_rotator, url_at

ROTATORS = frozenset(
    {"aws-iam-access-key", "postgres-password", "mysql-password", "redis-acl", "random"}
)
KEY_ID = "AKIAQWERTYUIOPASDFGH"
SECRET_KEY = "Zx8c/Vb7Nm6Lk5Jh4Gf3Ds2Aq1Wz0Xs9Ed8Rc7T"


def test_a_paired_access_key_id_is_an_iam_key_pair_stored_as_two_fields() -> None:
    p = infer("aws-access-key-id", KEY_ID, SECRET_KEY, None, known_kinds=ROTATORS)
    assert p.kind == "aws-iam-access-key" and p.rotatable
    assert dict(p.value.fields) == {"access_key_id": KEY_ID, "secret_access_key": SECRET_KEY}
    assert p.identifier == KEY_ID
    assert KEY_ID not in repr(p) and SECRET_KEY not in repr(p)


def test_half_a_key_pair_is_refused_as_a_key_pair_but_may_be_kept_as_generic() -> None:
    with pytest.raises(AdoptRefused, match="without its secret access key"):
        infer("aws-access-key-id", KEY_ID, None, None, known_kinds=ROTATORS)
    with pytest.raises(AdoptRefused, match="without its access key id"):
        infer("aws-secret-access-key", SECRET_KEY, None, None, kind="aws-iam-access-key",
              known_kinds=ROTATORS)  # fmt: skip
    p = infer("aws-secret-access-key", SECRET_KEY, None, None, known_kinds=ROTATORS)
    assert p.kind == "generic" and not p.rotatable


@pytest.mark.parametrize(
    ("rule", "secret", "line", "kind", "fields"),
    [
        (
            "postgres-connection-url",
            "sxLW%40a2s5eCAtKi0",
            'DATABASE_URL="postgres://app_rw:sxLW%40a2s5eCAtKi0@db.acme.internal:5432/orders"',
            "postgres-password",
            {"username": "app_rw", "password": "sxLW@a2s5eCAtKi0", "host": "db.acme.internal",
             "port": "5432", "dbname": "orders"},
        ),
        (
            "mysql-connection-url",
            "vjQq-6HZn!!9T9D",
            "url = mysql+pymysql://etl:vjQq-6HZn!!9T9D@warehouse-1.acme.io/etl?x=1",
            "mysql-password",
            {"username": "etl", "password": "vjQq-6HZn!!9T9D", "host": "warehouse-1.acme.io",
             "dbname": "etl"},
        ),
        (
            "redis-connection-url",
            "420Rm3NDmd8n09TltwOd",
            "REDIS_URL=redis://:420Rm3NDmd8n09TltwOd@redis.acme.internal:6379/0",
            "redis-acl",
            {"username": "default", "password": "420Rm3NDmd8n09TltwOd",
             "host": "redis.acme.internal", "port": "6379"},
        ),
    ],
)  # fmt: skip
def test_database_urls_go_to_their_rotator_with_fields_read_from_the_url(
    rule: str, secret: str, line: str, kind: str, fields: dict[str, str]
) -> None:
    p = infer(rule, secret, None, line, known_kinds=ROTATORS)
    assert p.kind == kind
    assert dict(p.value.fields) == fields


def test_url_at_finds_the_url_around_its_password_and_stops_at_quotes() -> None:
    assert (
        url_at('x = "postgres://u:pw123456@h/db" # c', "pw123456") == "postgres://u:pw123456@h/db"
    )
    assert url_at("no url here", "pw") is None


def test_a_kind_that_does_not_fit_or_does_not_exist_is_refused_in_one_sentence() -> None:
    with pytest.raises(AdoptRefused, match="no rotator named 'nope'"):
        infer("github-pat", "ghp_x", None, None, kind="nope", known_kinds=ROTATORS)
    with pytest.raises(AdoptRefused, match="has no fields a postgres-password secret needs"):
        infer("github-pat", "ghp_x", None, None, kind="postgres-password", known_kinds=ROTATORS)
    with pytest.raises(AdoptRefused, match="cannot be adopted as random"):
        infer("aws-access-key-id", KEY_ID, SECRET_KEY, None, kind="random", known_kinds=ROTATORS)
    p = infer("generic-password", "hunter2hunter2", None, None, kind="random",
              known_kinds=ROTATORS)  # fmt: skip
    assert p.kind == "random" and dict(p.value.fields) == {"value": "hunter2hunter2"}


def test_rotate_without_a_rotator_says_what_is_possible() -> None:
    err = no_rotator("github-pat")
    assert "no rotator for a github-pat value" in err.diagnostics()
    assert "without --rotate" in err.diagnostics() and "--kind random" in err.diagnostics()


PG_ENV = {
    "PGHOST": "db.acme.internal",
    "PGPORT": "5432",
    "PGUSER": "orders",
    "PGDATABASE": "orders",
    "PGPASSWORD": "Vd8qLw2ZxT5nPb7Rk3Hs",
    "STAGE": "prod",
}


def test_a_password_next_to_its_user_and_host_goes_to_the_rotator_its_prefix_names() -> None:
    p = infer("generic-password", PG_ENV["PGPASSWORD"], None, None, known_kinds=ROTATORS,
              variable="PGPASSWORD", siblings=PG_ENV)  # fmt: skip
    assert p.kind == "postgres-password"
    assert dict(p.value.fields) == {
        "username": "orders", "password": PG_ENV["PGPASSWORD"], "host": "db.acme.internal",
        "port": "5432", "dbname": "orders",
    }  # fmt: skip


def test_a_password_of_a_prefix_naming_no_database_needs_kind_and_its_user_and_host() -> None:
    env = {"DB_PASSWORD": "Vd8qLw2ZxT5nPb7Rk3Hs", "DB_USER": "app", "DB_HOST": "10.0.0.5"}
    plain = infer("generic-password", env["DB_PASSWORD"], None, None, known_kinds=ROTATORS,
                  variable="DB_PASSWORD", siblings=env)  # fmt: skip
    assert plain.kind == "generic"
    p = infer("generic-password", env["DB_PASSWORD"], None, None, kind="mysql-password",
              known_kinds=ROTATORS, variable="DB_PASSWORD", siblings=env)  # fmt: skip
    assert p.kind == "mysql-password" and p.value["username"] == "app"
    lone = {"DB_PASSWORD": env["DB_PASSWORD"]}
    with pytest.raises(AdoptRefused, match="has no DB_USER and DB_HOST next to it"):
        infer("generic-password", env["DB_PASSWORD"], None, None, kind="postgres-password",
              known_kinds=ROTATORS, variable="DB_PASSWORD", siblings=lone)  # fmt: skip
    redis_env = {"REDIS_PASSWORD": "Vd8qLw2ZxT5nPb7Rk3Hs", "REDIS_HOST": "cache"}
    redis = infer("generic-password", redis_env["REDIS_PASSWORD"], None, None,
                  known_kinds=ROTATORS, variable="REDIS_PASSWORD", siblings=redis_env)  # fmt: skip
    assert redis.kind == "redis-acl" and redis.value["username"] == "default"
