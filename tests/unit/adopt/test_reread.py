"""Reading a finding's value again (keyward.adopt.reread): the finding's own rule over the
live text, matched by keyed fingerprint; anything else is LocationChanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keyward.adopt.reread import LocationChanged, engine_for, from_environment, from_text
from keyward.core.redaction import Fingerprinter
from keyward.inventory.adoption import AdoptableFinding
from keyward.scan.rules import load_rules

FP = Fingerprinter(b"k" * 32)
RULES = load_rules()
KEY_ID, SECRET_KEY = "AKIAQWERTYUIOPASDFGH", "Zx8c/Vb7Nm6Lk5Jh4Gf3Ds2Aq1Wz0Xs9Ed8Rc7T"
PASSWORD = "Vd8qLw2ZxT5nPb7Rk3Hs"


def finding(
    rule: str, value: str, companion: str | None = None, **where: object
) -> AdoptableFinding:
    base: dict[str, object] = {
        "id": 7, "target": "files:/nowhere", "rule_id": rule, "source": "file", "path": None,
        "line": 0, "column": 0, "commit": None, "variable": None, "resource": None,
        "region": None, "account": None, "preview": "…", "fingerprint": FP.fingerprint(value),
        "companion_fingerprint": FP.fingerprint(companion) if companion else None,
        "state": "open", "first_seen_at": datetime.now(UTC), "secret": None,
        "secret_store": None,
    }  # fmt: skip
    base.update(where)
    return AdoptableFinding(**base)  # type: ignore[arg-type]


def test_a_key_pair_is_found_again_across_two_variables_of_a_function() -> None:
    f = finding("aws-access-key-id", KEY_ID, SECRET_KEY, source="lambda",
                variable="AWS_ACCESS_KEY_ID", resource="arn:fn")  # fmt: skip
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "OTHER_NAME_FOR_IT": SECRET_KEY, "STAGE": "prod"}
    got = from_environment(f, env, engine_for(RULES, f.rule_id, FP), FP)
    assert (got.secret, got.companion, got.variable) == (KEY_ID, SECRET_KEY, "AWS_ACCESS_KEY_ID")
    assert KEY_ID not in repr(got) and SECRET_KEY not in repr(got)


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"STAGE": "prod"}, "the variable AWS_ACCESS_KEY_ID is gone"),
        ({"AWS_ACCESS_KEY_ID": "AKIAZZZZZZZZZZZZZZZZ", "S": SECRET_KEY}, "holds another value"),
        ({"AWS_ACCESS_KEY_ID": KEY_ID, "S": "x" * 40}, "other half of its key pair"),
    ],
)
def test_a_changed_environment_is_location_changed(env: dict[str, str], why: str) -> None:
    f = finding("aws-access-key-id", KEY_ID, SECRET_KEY, source="lambda",
                variable="AWS_ACCESS_KEY_ID", resource="arn:fn")  # fmt: skip
    with pytest.raises(LocationChanged, match=why) as err:
        from_environment(f, env, engine_for(RULES, f.rule_id, FP), FP)
    assert err.value.exit_code == 3
    assert KEY_ID not in err.value.diagnostics() and SECRET_KEY not in err.value.diagnostics()


def test_a_dotenv_entry_is_found_again_with_the_variables_next_to_it() -> None:
    text = f"# db\nDB_HOST=10.0.0.5\nDB_USER=app\nDB_PASSWORD={PASSWORD}\n"
    f = finding("generic-password", PASSWORD, path=".env", line=4)
    got = from_text(f, text, engine_for(RULES, f.rule_id, FP), FP, "/srv/app/.env")
    assert got.where == "/srv/app/.env:4" and got.variable == "DB_PASSWORD"
    assert dict(got.siblings) == {"DB_HOST": "10.0.0.5", "DB_USER": "app", "DB_PASSWORD": PASSWORD}


def test_a_value_that_moved_in_its_file_is_found_at_its_new_line() -> None:
    text = f"\n\n\nDB_USER=app\nDB_PASSWORD={PASSWORD}\n"
    f = finding("generic-password", PASSWORD, path=".env", line=2)
    got = from_text(f, text, engine_for(RULES, f.rule_id, FP), FP, ".env")
    assert got.line == 5 and got.where == ".env:5"


def test_an_unknown_rule_cannot_read_the_value_again() -> None:
    with pytest.raises(LocationChanged, match="rule no-such-rule of the finding is not loaded"):
        engine_for(RULES, "no-such-rule", FP)
