"""The inventory's part of ``keyward adopt`` on SQLite and PostgreSQL: one transaction records
the secret, its version and fields, the dependents and the linked findings; a dependent
switched to a reference becomes one reference row."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from keyward.core.redaction import Fingerprinter
from keyward.inventory import models as m
from keyward.inventory.adoption import (
    AdoptedDependent,
    Adoption,
    adoptable_finding,
    findings_holding,
    record_adoption,
    stored_as,
    switch_to_reference,
)
from keyward.inventory.db import Database
from keyward.inventory.errors import AlreadyExists
from keyward.inventory.recording import record_findings
from keyward.scan.model import Finding, Location, Severity, SourceKind
from tests.integration._inventory_db import (  # noqa: F401
    database,
    db_url,
    pg_migrated_url,
    sqlite_template,
)

pytestmark = pytest.mark.integration
FP = Fingerprinter(b"k" * 32)
KEY_ID, SECRET_KEY = "AKIAQWERTYUIOPASDFGH", "Zx8c/Vb7Nm6Lk5Jh4Gf3Ds2Aq1Wz0Xs9Ed8Rc7T"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


def lambda_finding(fn: str) -> Finding:
    return Finding(
        rule_id="aws-access-key-id",
        severity=Severity.CRITICAL,
        location=Location(
            kind=SourceKind.LAMBDA,
            resource=ARN + fn,
            region="us-east-1",
            variable="AWS_ACCESS_KEY_ID",
            account="123456789012",
        ),
        preview="AKIA…DFGH",
        fingerprint=FP.fingerprint(KEY_ID),
        secret=KEY_ID,
        companion=SECRET_KEY,
    )


def adoption(dependents: tuple[AdoptedDependent, ...] = ()) -> Adoption:
    fields = {
        "access_key_id": FP.fingerprint(KEY_ID),
        "secret_access_key": FP.fingerprint(SECRET_KEY),
    }
    return Adoption(
        name="prod/orders/aws", kind="aws-iam-access-key", store="aws-secretsmanager",
        reference="arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/orders/aws-AbCdEf",
        account="123456789012", version="v-1", fingerprint="f" * 64, fields=fields,
        finding_id=1, owner="alice", dependents=dependents,
        secret_fingerprints=frozenset(fields.values()),
    )  # fmt: skip


def test_an_adoption_is_recorded_in_one_transaction_and_a_switch_becomes_one_reference_row(
    database: Database,  # noqa: F811
) -> None:
    record_findings(
        database, [lambda_finding("a"), lambda_finding("b")], "aws-lambda", fingerprinter=FP
    )
    with database.session() as s:
        first = int(s.scalar(sa.select(sa.func.min(m.Finding.id))) or 0)
    f = adoptable_finding(database, first)
    assert f.companion_fingerprint == FP.fingerprint(SECRET_KEY) and f.secret is None
    assert len(findings_holding(database, [FP.fingerprint(SECRET_KEY)])) == 2
    deps = tuple(
        AdoptedDependent(ARN + fn, var, "us-east-1", None, field)
        for fn in ("a", "b")
        for var, field in (
            ("AWS_ACCESS_KEY_ID", "access_key_id"),
            ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
        )
    )
    rec = record_adoption(database, "tester", adoption(deps))
    assert rec.source == "adopt" and rec.owner == "alice"
    with pytest.raises(AlreadyExists):  # the name is checked inside the transaction too
        record_adoption(database, "tester", adoption())
    assert stored_as(database, [FP.fingerprint(SECRET_KEY)], {"aws-secretsmanager"}) == (
        "prod/orders/aws", "aws-secretsmanager",
    )  # fmt: skip
    switch_to_reference(
        database, "tester", "prod/orders/aws",
        AdoptedDependent(ARN + "a", "KEYWARD_SECRET_ARN", "us-east-1", None, None, True),
    )  # fmt: skip
    with database.session() as s:
        (version,) = s.scalars(sa.select(m.SecretVersion))
        assert version.stage == "current" and version.leaked_at is not None
        assert version.identifier == "v-1"
        fields = {r.field for r in s.scalars(sa.select(m.SecretField))}
        assert fields == {"access_key_id", "secret_access_key"}
        rows = {
            (d.target, d.variable, d.attributes.get("mode", "value"), d.origin.value)
            for d in s.scalars(sa.select(m.Dependent))
        }
        assert rows == {
            (ARN + "a", "KEYWARD_SECRET_ARN", "reference", "discovered"),
            (ARN + "b", "AWS_ACCESS_KEY_ID", "value", "discovered"),
            (ARN + "b", "AWS_SECRET_ACCESS_KEY", "value", "discovered"),
        }
        linked = list(s.execute(sa.select(m.Finding.secret_id, m.Finding.version_id)))
        assert linked == [(rec.id, version.id)] * 2
        actions = [e.action for e in s.scalars(sa.select(m.AuditEvent).order_by(m.AuditEvent.id))]
        assert actions[-2:] == ["secret.adopted", "dependent.reference"]
        text = repr([e.detail for e in s.scalars(sa.select(m.AuditEvent))])
        assert KEY_ID not in text and SECRET_KEY not in text
