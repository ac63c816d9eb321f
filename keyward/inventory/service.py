"""Every inventory query the commands need, as methods returning frozen records.

An :class:`Inventory` wraps an open :class:`~keyward.inventory.db.Database`. Each public
method is one transaction and writes an audit event for every change it makes (actor, action,
subject, outcome; never a value).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.core.errors import ConfigError
from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.errors import AlreadyExists, NotFound
from keyward.inventory.fields import record_fields, version_fields
from keyward.inventory.policy import rotation_due, validate_schedule
from keyward.inventory.records import (
    AuditRecord,
    BreachRecord,
    DependentRecord,
    FindingRecord,
    SecretDetail,
    SecretRecord,
    VersionRecord,
    record_of,
)
from keyward.providers.settings import ACCOUNT_ID, account_in_arn

UNSET: Any = object()
# Columns `update_secret` accepts.
UPDATABLE = frozenset(
    {
        "kind",
        "store",
        "reference",
        "account",
        "owner",
        "team",
        "contact",
        "tags",
        "attributes",
        "description",
        "status",
        "created_at",
        "last_rotated_at",
        "last_used_at",
        "max_age_seconds",
        "schedule",
        "name",
        "on_leak",
    }
)


def default_actor() -> str:
    """``KEYWARD_ACTOR`` or the login name."""
    env = os.environ.get("KEYWARD_ACTOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def secret_record(s: m.Secret) -> SecretRecord:
    return record_of(SecretRecord, s)


def version_record(v: m.SecretVersion, fields: dict[str, str] | None = None) -> VersionRecord:
    """The record of a version; ``fields`` its field fingerprints (read from the row's
    ``fields`` when not given)."""
    if fields is None:
        fields = {f.field: f.fingerprint for f in v.fields}
    return record_of(VersionRecord, v, fields=dict(sorted(fields.items())))


def dependent_record(d: m.Dependent, secret_name: str) -> DependentRecord:
    return record_of(DependentRecord, d, secret=secret_name)


# the columns of a FindingRecord, labelled with its field names
FINDING_COLUMNS = (
    m.Finding.id,
    m.Finding.target,
    m.Finding.rule_id,
    m.Finding.severity,
    m.Finding.confidence,
    m.Finding.source,
    m.Finding.path,
    m.Finding.line,
    m.Finding.commit,
    m.Finding.variable,
    m.Finding.resource,
    m.Finding.region,
    m.Finding.preview,
    m.Finding.fingerprint,
    m.Finding.first_seen_at,
    m.Finding.last_seen_at,
    m.Finding.resolved_at,
    m.Finding.state,
    m.Finding.state_reason,
    m.Secret.name.label("secret"),
    m.Finding.owner,
    m.Finding.code_owner,
    m.Finding.author,
    m.Finding.account,
    m.Finding.version_id,
    m.Finding.remediated_at,
    m.Finding.remediated_rotation_id,
)


def finding_record(row: object) -> FindingRecord:
    return record_of(FindingRecord, row)


def audit_record(e: m.AuditEvent) -> AuditRecord:
    return record_of(AuditRecord, e)


@dataclass(frozen=True, slots=True)
class FindingPage:
    findings: tuple[FindingRecord, ...]
    total: int


def apply_policy(s: m.Secret) -> None:
    s.rotation_due_at = rotation_due(s.created_at, s.last_rotated_at, s.max_age_seconds, s.schedule)


def _check_account(account: str) -> str:
    """An AWS account id as the inventory keeps it (12 digits), or a ConfigError."""
    account = account.strip()
    if not ACCOUNT_ID.match(account):
        raise ConfigError(
            f"{account!r} is not an AWS account id",
            hint="Use the 12-digit id (a name from [aws.accounts] works on the command line)",
        )
    return account


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 255:
        raise ConfigError("A secret name must be 1 to 255 characters")
    return name


class Inventory:
    """The inventory's operations; one transaction per call."""

    def __init__(self, db: Database, actor: str | None = None) -> None:
        self.db = db
        self.actor = actor or default_actor()

    # ------------------------------------------------------------------ audit
    @staticmethod
    def append_audit(
        session: Session,
        actor: str,
        action: str,
        subject: str,
        outcome: str = "ok",
        *,
        secret_id: int | None = None,
        rotation_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append an audit event in ``session``'s transaction (there is no update or delete)."""
        session.add(
            m.AuditEvent(
                actor=actor,
                action=action,
                subject=subject,
                outcome=outcome,
                secret_id=secret_id,
                rotation_id=rotation_id,
                detail=detail or {},
            )
        )

    def audit(
        self,
        action: str,
        subject: str,
        outcome: str = "ok",
        *,
        secret_id: int | None = None,
        rotation_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self.db.session() as s:
            self.append_audit(
                s,
                self.actor,
                action,
                subject,
                outcome,
                secret_id=secret_id,
                rotation_id=rotation_id,
                detail=detail,
            )

    def audit_events(self, secret: str | None = None, limit: int = 100) -> tuple[AuditRecord, ...]:
        with self.db.session() as s:
            q = sa.select(m.AuditEvent).order_by(m.AuditEvent.id.desc()).limit(limit)
            if secret is not None:
                q = q.where(m.AuditEvent.secret_id == self._secret(s, secret).id)
            return tuple(audit_record(e) for e in s.scalars(q))

    # ---------------------------------------------------------------- secrets
    @staticmethod
    def _secret(session: Session, name: str) -> m.Secret:
        found = session.scalar(sa.select(m.Secret).where(m.Secret.name == name))
        if found is None:
            raise NotFound(
                f"No secret named {name!r} in the inventory",
                hint="See `keyward inventory list`",
            )
        return found

    def add_secret(
        self,
        name: str,
        kind: str,
        *,
        store: str | None = None,
        reference: str | None = None,
        account: str | None = None,
        owner: str | None = None,
        team: str | None = None,
        contact: str | None = None,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        created_at: datetime | None = None,
        last_rotated_at: datetime | None = None,
        max_age_seconds: int | None = None,
        schedule: str | None = None,
        fingerprint: str | None = None,
        source: str = "manual",
        on_leak: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> SecretRecord:
        """Add a secret; ``fingerprint`` (of its current value) records a first version, with
        the fingerprints of its ``fields`` (field -> fingerprint).

        ``account``: the AWS account it lives in (default: the one its reference's ARN names;
        none: keyward's own)."""
        name = _check_name(name)
        account = _check_account(account) if account else account_in_arn(reference)
        with self.db.session() as s:
            if s.scalar(sa.select(m.Secret.id).where(m.Secret.name == name)) is not None:
                raise AlreadyExists(
                    f"A secret named {name!r} is already in the inventory",
                    hint="Use `keyward inventory update` to change it",
                )
            if store and reference:
                clash = s.scalar(
                    sa.select(m.Secret.name).where(
                        m.Secret.store == store, m.Secret.reference == reference
                    )
                )
                if clash is not None:
                    raise AlreadyExists(
                        f"{store} {reference} is already in the inventory as {clash!r}"
                    )
            secret = m.Secret(
                name=name,
                kind=kind,
                store=store,
                reference=reference,
                account=account,
                owner=owner,
                team=team,
                contact=contact,
                tags=tags or {},
                attributes={},
                description=description,
                last_rotated_at=last_rotated_at,
                max_age_seconds=max_age_seconds,
                schedule=validate_schedule(schedule) if schedule else None,
                source=source,
                on_leak=m.OnLeak(on_leak) if on_leak else None,
            )
            if created_at is not None:
                secret.created_at = created_at
            else:
                secret.created_at = m.utcnow()
            apply_policy(secret)
            s.add(secret)
            s.flush()
            if fingerprint:
                record_version(
                    s, secret, fingerprint=fingerprint, stage="current", fields=fields or {}
                )
            self.append_audit(
                s, self.actor, "secret.add", name, secret_id=secret.id, detail={"kind": kind}
            )
            return secret_record(secret)

    def get_secret(self, name: str) -> SecretRecord:
        with self.db.session() as s:
            return secret_record(self._secret(s, name))

    def list_secrets(
        self,
        *,
        owner: str | None = None,
        team: str | None = None,
        kind: str | None = None,
        store: str | None = None,
        status: str | None = None,
        overdue_at: datetime | None = None,
        account: str | None = None,
        breaches: Iterable[m.Breach] = (),
        limit: int | None = None,
    ) -> tuple[SecretRecord, ...]:
        """Secrets matching every filter given; ``breaches``: those with any of these
        breaches in the stored posture."""
        q = sa.select(m.Secret).order_by(m.Secret.name)
        wanted = [m.Breach(b).value for b in breaches]
        if wanted:
            b = m.SecretBreach
            q = q.where(
                m.Secret.id.in_(sa.select(b.secret_id).where(b.breach.in_(wanted)).distinct())
            )
        for col, value in (
            (m.Secret.owner, owner),
            (m.Secret.team, team),
            (m.Secret.kind, kind),
            (m.Secret.store, store),
            (m.Secret.account, account),
        ):
            if value is not None:
                q = q.where(col == value)
        if status is not None:
            q = q.where(m.Secret.status == m.SecretStatus(status))
        if overdue_at is not None:
            q = q.where(m.Secret.rotation_due_at < overdue_at)
        if limit:
            q = q.limit(limit)
        with self.db.session() as s:
            return tuple(secret_record(x) for x in s.scalars(q))

    def breaches_of(self, secret_ids: Iterable[int]) -> dict[int, list[str]]:
        """secret id -> its stored posture breaches (names, in Breach order)."""
        from keyward.inventory.posture import breaches_of

        with self.db.session() as s:
            return breaches_of(s, secret_ids)

    def update_secret(self, name: str, /, **changes: Any) -> SecretRecord:
        """Change columns of a secret (see ``UPDATABLE``); the policy's due time follows."""
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ConfigError(f"Cannot update {', '.join(sorted(unknown))} of a secret")
        with self.db.session() as s:
            secret = self._secret(s, name)
            if "name" in changes:
                changes["name"] = _check_name(changes["name"])
                if changes["name"] != name and s.scalar(
                    sa.select(m.Secret.id).where(m.Secret.name == changes["name"])
                ):
                    raise AlreadyExists(f"A secret named {changes['name']!r} already exists")
            if changes.get("schedule"):
                changes["schedule"] = validate_schedule(changes["schedule"])
            if changes.get("account"):
                changes["account"] = _check_account(changes["account"])
            if "status" in changes:
                changes["status"] = m.SecretStatus(changes["status"])
            if "on_leak" in changes:
                changes["on_leak"] = m.OnLeak(changes["on_leak"]) if changes["on_leak"] else None
            changed = sorted(k for k, v in changes.items() if getattr(secret, k) != v)
            for key, value in changes.items():
                setattr(secret, key, value)
            apply_policy(secret)
            if "owner" in changed:
                propagate_owner(s, secret.id, secret.owner)
            if changed:
                self.append_audit(
                    s,
                    self.actor,
                    "secret.update",
                    secret.name,
                    secret_id=secret.id,
                    detail={"changed": changed},
                )
            s.flush()
            return secret_record(secret)

    def mark_rotated(self, name: str, when: datetime | None = None) -> SecretRecord:
        """Record a completed rotation: last rotated now, next due time recomputed."""
        return self.update_secret(name, last_rotated_at=when or m.utcnow())

    def remove_secret(self, name: str) -> None:
        """Delete a secret, its versions and dependents; its findings stay, unlinked."""
        with self.db.session() as s:
            secret = self._secret(s, name)
            sid = secret.id
            s.execute(
                sa.update(m.Finding)
                .where(m.Finding.secret_id == sid)
                .values(secret_id=None, owner=m.Finding.code_owner)
            )
            s.delete(secret)
            self.append_audit(s, self.actor, "secret.remove", name, secret_id=sid)

    # --------------------------------------------------------------- versions
    def add_version(
        self,
        name: str,
        *,
        fingerprint: str | None = None,
        identifier: str | None = None,
        identifier_fingerprint: str | None = None,
        stage: str | None = "current",
        created_at: datetime | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> VersionRecord:
        """Record a version (by keyed fingerprint, and its ``fields``' fingerprints) and link
        the findings that leaked it."""
        with self.db.session() as s:
            secret = self._secret(s, name)
            v = record_version(
                s,
                secret,
                fingerprint=fingerprint,
                identifier=identifier,
                identifier_fingerprint=identifier_fingerprint,
                stage=stage,
                created_at=created_at,
                fields=fields or {},
            )
            self.append_audit(
                s,
                self.actor,
                "secret.version",
                secret.name,
                secret_id=secret.id,
                detail={"stage": stage, "identifier": identifier},
            )
            return version_record(v)

    def versions(self, name: str) -> tuple[VersionRecord, ...]:
        with self.db.session() as s:
            secret = self._secret(s, name)
            q = (
                sa.select(m.SecretVersion)
                .where(m.SecretVersion.secret_id == secret.id)
                .order_by(m.SecretVersion.id)
            )
            rows = list(s.scalars(q))
            fields = version_fields(s, (v.id for v in rows))
            return tuple(version_record(v, fields.get(v.id, {})) for v in rows)

    def show(self, name: str, findings_limit: int = 20, audit_limit: int = 20) -> SecretDetail:
        with self.db.session() as s:
            secret = self._secret(s, name)
            versions = list(
                s.scalars(
                    sa.select(m.SecretVersion)
                    .where(m.SecretVersion.secret_id == secret.id)
                    .order_by(m.SecretVersion.id)
                )
            )
            fields = version_fields(s, (v.id for v in versions))
            deps = s.scalars(
                sa.select(m.Dependent)
                .where(m.Dependent.secret_id == secret.id)
                .order_by(m.Dependent.id)
            )
            open_count = s.scalar(
                sa.select(sa.func.count())
                .select_from(m.Finding)
                .where(
                    m.Finding.secret_id == secret.id,
                    m.Finding.state == m.FindingState.OPEN,
                )
            )
            rows = s.execute(
                sa.select(*FINDING_COLUMNS)
                .outerjoin(m.Secret, m.Secret.id == m.Finding.secret_id)
                .where(m.Finding.secret_id == secret.id)
                .order_by(m.Finding.id.desc())
                .limit(findings_limit)
            )
            events = s.scalars(
                sa.select(m.AuditEvent)
                .where(m.AuditEvent.secret_id == secret.id)
                .order_by(m.AuditEvent.id.desc())
                .limit(audit_limit)
            )
            order = {b: i for i, b in enumerate(m.Breach)}
            breaches = sorted(
                s.scalars(sa.select(m.SecretBreach).where(m.SecretBreach.secret_id == secret.id)),
                key=lambda row: order[row.breach],
            )
            return SecretDetail(
                secret=secret_record(secret),
                versions=tuple(version_record(v, fields.get(v.id, {})) for v in versions),
                dependents=tuple(dependent_record(d, secret.name) for d in deps),
                open_findings=int(open_count or 0),
                findings=tuple(finding_record(r) for r in rows),
                audit=tuple(audit_record(e) for e in events),
                breaches=tuple(record_of(BreachRecord, row) for row in breaches),
            )

    # ------------------------------------------------------------- dependents
    def add_dependent(
        self,
        secret: str,
        kind: str,
        target: str,
        *,
        variable: str | None = None,
        region: str | None = None,
        account: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> DependentRecord:
        """Record that ``target`` holds ``secret``; its region and account default to the
        ones its ARN names (no account: the secret's). ``attributes``: what posture reads of
        the target (``environment``, ``application``), kept trimmed and lower-cased."""
        account = _check_account(account) if account else account_in_arn(target)
        with self.db.session() as s:
            sec = self._secret(s, secret)
            exists = s.scalar(
                sa.select(m.Dependent.id).where(
                    m.Dependent.secret_id == sec.id,
                    m.Dependent.kind == kind,
                    m.Dependent.target == target,
                    m.Dependent.variable.is_(None)
                    if variable is None
                    else m.Dependent.variable == variable,
                )
            )
            if exists is not None:
                raise AlreadyExists(
                    f"{target} {variable or ''} is already a dependent of {secret!r}".replace(
                        "  ", " "
                    )
                )
            if region is None and target.startswith("arn:"):
                parts = target.split(":")
                region = parts[3] if len(parts) > 3 and parts[3] else None
            dep = m.Dependent(
                secret_id=sec.id,
                kind=kind,
                target=target,
                variable=variable,
                region=region,
                account=account,
                attributes={
                    k: v.strip().lower() for k, v in (attributes or {}).items() if v.strip()
                },
            )
            s.add(dep)
            s.flush()
            self.append_audit(
                s,
                self.actor,
                "dependent.add",
                sec.name,
                secret_id=sec.id,
                detail={"kind": kind, "target": target, "variable": variable},
            )
            return dependent_record(dep, sec.name)

    def list_dependents(self, secret: str | None = None) -> tuple[DependentRecord, ...]:
        with self.db.session() as s:
            q = (
                sa.select(m.Dependent, m.Secret.name)
                .join(m.Secret, m.Secret.id == m.Dependent.secret_id)
                .order_by(m.Secret.name, m.Dependent.id)
            )
            if secret is not None:
                q = q.where(m.Dependent.secret_id == self._secret(s, secret).id)
            return tuple(dependent_record(d, n) for d, n in s.execute(q))

    def remove_dependent(self, dependent_id: int) -> DependentRecord:
        with self.db.session() as s:
            dep = s.get(m.Dependent, dependent_id)
            if dep is None:
                raise NotFound(
                    f"No dependent with id {dependent_id}", hint="See `keyward dependents list`"
                )
            secret = s.get(m.Secret, dep.secret_id)
            assert secret is not None
            rec = dependent_record(dep, secret.name)
            s.delete(dep)
            self.append_audit(
                s,
                self.actor,
                "dependent.remove",
                secret.name,
                secret_id=secret.id,
                detail={"kind": dep.kind, "target": dep.target, "variable": dep.variable},
            )
            return rec

    # --------------------------------------------------------------- findings
    def list_findings(
        self,
        *,
        state: str | None = None,
        owner: str | None = None,
        rule: str | None = None,
        target: str | None = None,
        secret: str | None = None,
        account: str | None = None,
        limit: int | None = 500,
    ) -> FindingPage:
        conds: list[sa.ColumnElement[bool]] = []
        if account is not None:
            conds.append(m.Finding.account == account)
        if state is not None:
            conds.append(m.Finding.state == m.FindingState(state))
        if owner is not None:
            conds.append(m.Finding.owner == owner)
        if rule is not None:
            conds.append(m.Finding.rule_id == rule)
        if target is not None:
            conds.append(m.Finding.target == target)
        with self.db.session() as s:
            if secret is not None:
                conds.append(m.Finding.secret_id == self._secret(s, secret).id)
            q = (
                sa.select(*FINDING_COLUMNS)
                .outerjoin(m.Secret, m.Secret.id == m.Finding.secret_id)
                .where(*conds)
                .order_by(m.Finding.id.desc())
            )
            if limit:
                q = q.limit(limit)
            rows = tuple(finding_record(r) for r in s.execute(q))
            if limit and len(rows) == limit:
                total = s.scalar(sa.select(sa.func.count()).select_from(m.Finding).where(*conds))
            else:
                total = len(rows)
            return FindingPage(rows, int(total or 0))

    def _findings(self, session: Session, ids: Iterable[int]) -> list[m.Finding]:
        wanted = sorted(set(ids))
        found = list(session.scalars(sa.select(m.Finding).where(m.Finding.id.in_(wanted))))
        missing = sorted(set(wanted) - {f.id for f in found})
        if missing:
            raise NotFound(
                f"No finding with id {', '.join(map(str, missing))}",
                hint="See `keyward findings list`",
            )
        return found

    def ignore_findings(self, ids: Iterable[int], reason: str) -> int:
        """Ignore findings; re-scans keep them ignored."""
        with self.db.session() as s:
            rows = self._findings(s, ids)
            for f in rows:
                f.state = m.FindingState.IGNORED
                f.state_reason = reason[:512]
                self.append_audit(
                    s,
                    self.actor,
                    "finding.ignore",
                    f"finding {f.id}",
                    secret_id=f.secret_id,
                    detail={"rule": f.rule_id, "reason": reason[:512]},
                )
            return len(rows)

    def reopen_findings(self, ids: Iterable[int]) -> int:
        with self.db.session() as s:
            rows = self._findings(s, ids)
            for f in rows:
                f.state = m.FindingState.OPEN
                f.state_reason = None
                f.resolved_at = None
                self.append_audit(
                    s, self.actor, "finding.reopen", f"finding {f.id}", secret_id=f.secret_id
                )
            return len(rows)

    def link_finding(self, finding_id: int, secret: str | None) -> FindingRecord:
        """Link a finding to a secret by hand (``None`` unlinks it)."""
        with self.db.session() as s:
            (f,) = self._findings(s, [finding_id])
            if secret is None:
                f.secret_id = None
                f.owner = f.code_owner
                sid = None
            else:
                sec = self._secret(s, secret)
                f.secret_id = sec.id
                f.owner = sec.owner or f.code_owner
                sid = sec.id
            self.append_audit(
                s,
                self.actor,
                "finding.link" if secret else "finding.unlink",
                f"finding {f.id}",
                secret_id=sid,
                detail={"secret": secret},
            )
            s.flush()
            row = s.execute(
                sa.select(*FINDING_COLUMNS)
                .outerjoin(m.Secret, m.Secret.id == m.Finding.secret_id)
                .where(m.Finding.id == f.id)
            ).one()
            return finding_record(row)


def record_version(
    session: Session,
    secret: m.Secret,
    *,
    fingerprint: str | None = None,
    identifier: str | None = None,
    identifier_fingerprint: str | None = None,
    stage: str | None = None,
    created_at: datetime | None = None,
    fields: Mapping[str, str] | None = None,
) -> m.SecretVersion:
    """Add a version row (with its ``fields``' fingerprints) in ``session``'s transaction and
    link the findings that leaked it."""
    v = m.SecretVersion(
        secret_id=secret.id,
        fingerprint=fingerprint,
        identifier=identifier,
        identifier_fingerprint=identifier_fingerprint,
        stage=stage,
        created_at=created_at or m.utcnow(),
    )
    session.add(v)
    session.flush()
    added = record_fields(session, secret.id, v.id, fields or {})
    link_findings_to_secret(
        session, secret, [fp for fp in (fingerprint, identifier_fingerprint, *added) if fp]
    )
    return v


def propagate_owner(session: Session, secret_id: int, owner: str | None) -> None:
    """The findings of a secret take its owner (else their code owner) as their owner."""
    session.execute(
        sa.update(m.Finding)
        .where(m.Finding.secret_id == secret_id)
        .values(owner=sa.func.coalesce(sa.literal(owner, sa.String), m.Finding.code_owner))
    )


def link_findings_to_secret(session: Session, secret: m.Secret, fingerprints: list[str]) -> int:
    """Link unlinked findings whose fingerprint (or paired fingerprint) is one of these."""
    if not fingerprints:
        return 0
    result = session.execute(
        sa.update(m.Finding)
        .where(
            m.Finding.secret_id.is_(None),
            sa.or_(
                m.Finding.fingerprint.in_(fingerprints),
                m.Finding.companion_fingerprint.in_(fingerprints),
            ),
        )
        .values(
            secret_id=secret.id,
            owner=sa.func.coalesce(sa.literal(secret.owner, sa.String), m.Finding.code_owner),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
