"""Dependents discovered, not typed: match functions' variables to inventoried secrets and
record them (``keyward discover aws-lambda``, ``scan --aws-lambda --record``).

A variable depends on a secret

* **by value** when its keyed fingerprint is the fingerprint of a field of the secret's
  current version that carries secret material (``secret_fields``,
  :func:`keyward.inventory.fields.fields_by_fingerprint`; not ``host``, ``port``, ``dbname``...:
  :mod:`keyward.core.secretfields`). A variable named ``*USER``/``*USERNAME`` holding the
  secret's ``username`` is bound too when the function holds a secret field of it (an
  alternating rotation switches the login: :func:`keyward.core.secretfields.binds`).
  An AWS key pair is two variables, two dependents, each with its field; a secret that knows
  only its key id (an IAM key found by ``discover aws-iam``) takes the variable next to it
  whose name says it is the secret key (``*SECRET*KEY*``) as its ``secret_access_key``;
* **by reference** when it names the secret: a Secrets Manager ARN (full or without its
  random suffix) or name, ``{{resolve:secretsmanager:...}}``, an SSM parameter (name, ARN or
  ``{{resolve:ssm-secure:...}}``), a Vault path, compared to the secret's store reference. A
  name must be in the function's region and account; rotation then bumps
  ``KEYWARD_SECRET_VERSION`` on it (``mode = "reference"``).

:func:`record_dependents` writes one run in one transaction: new dependents are added
(``origin = discovered``), those seen again are kept (their ``last_seen_at`` and attributes
refreshed), a discovered one no longer seen in a region that was listed completely is marked
``missing`` (never deleted; rotation skips it), and dependents added by hand are kept as they
are. Attributes: ``mode``, ``field``, ``alias`` (rotation reads them) and ``environment``
(the function's environment tag, for posture).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keyward.core.secretfields import binds, secret_bearing
from keyward.inventory import models as m
from keyward.inventory.db import Database
from keyward.inventory.discovery.aws_lambda import (
    STORE,
    FunctionListing,
    ObservedFunction,
    ObservedVariable,
    Reference,
    RefKind,
    ssm_name,
    vault_key,
)
from keyward.inventory.fields import current_stage, fields_by_fingerprint
from keyward.inventory.service import Inventory
from keyward.providers.settings import account_in_arn

KIND = STORE  # the dependents plugin that updates them
ACCESS_KEY_ID = "access_key_id"
SECRET_ACCESS_KEY = "secret_access_key"

_SM_STORES = frozenset({"aws-secretsmanager", "secretsmanager", "aws-secrets-manager", "aws-sm"})
_SSM_STORES = frozenset({"aws-ssm"})
_VAULT_STORES = frozenset({"vault-kv", "vault", "openbao"})


class Mode:
    VALUE = "value"
    REFERENCE = "reference"


@dataclass(frozen=True, slots=True)
class DependentChange:
    """One dependent as a run reports it (never a value)."""

    secret: str
    target: str
    function: str
    variable: str | None
    region: str | None
    account: str | None
    mode: str
    field: str | None
    alias: str | None
    environment: str | None
    origin: str
    seen: bool = True  # False: a hand-typed one this run did not see (kept all the same)
    reactivated: bool = False  # it had been marked missing and is back

    def to_dict(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "target": self.target,
            "function": self.function,
            "variable": self.variable,
            "region": self.region,
            "account": self.account,
            "mode": self.mode,
            "field": self.field,
            "alias": self.alias,
            "environment": self.environment,
            "origin": self.origin,
            "seen": self.seen,
            "reactivated": self.reactivated,
        }


@dataclass(frozen=True, slots=True)
class DependentsResult:
    functions: int
    regions: tuple[str, ...]
    added: tuple[DependentChange, ...]
    kept: tuple[DependentChange, ...]
    missing: tuple[DependentChange, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": STORE,
            "functions": self.functions,
            "regions": list(self.regions),
            "added": [c.to_dict() for c in self.added],
            "kept": [c.to_dict() for c in self.kept],
            "missing": [c.to_dict() for c in self.missing],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True)
class _Match:
    """One (secret, function, variable) dependency found by this run."""

    secret_id: int
    function: ObservedFunction
    variable: str
    mode: str
    field: str | None
    alias: str | None

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"mode": self.mode}
        if self.field:
            attrs["field"] = self.field
        if self.alias:
            attrs["alias"] = self.alias
        if self.function.environment:
            attrs["environment"] = self.function.environment
        return attrs


@dataclass(slots=True)
class _RefIndex:
    """Inventoried secrets by the references a variable may hold."""

    arns: dict[str, set[int]] = field(default_factory=dict)
    # (name, region or None: any, account or None: any)
    sm_names: dict[str, list[tuple[int, str | None, str | None]]] = field(default_factory=dict)
    ssm_names: dict[str, list[tuple[int, str | None, str | None]]] = field(default_factory=dict)
    vault: dict[str, set[int]] = field(default_factory=dict)

    def find(self, ref: Reference, region: str, account: str | None) -> set[int]:
        def scoped(rows: Iterable[tuple[int, str | None, str | None]]) -> set[int]:
            return {
                sid
                for sid, r, a in rows
                if r in (None, region) and (a is None or account is None or a == account)
            }

        match ref.kind:
            case RefKind.SM_ARN:
                return set(self.arns.get(ref.key, ()))
            case RefKind.SM_NAME:
                return scoped(self.sm_names.get(ref.key, ()))
            case RefKind.SSM_NAME:
                return scoped(self.ssm_names.get(ref.key, ()))
            case RefKind.VAULT:
                return set(self.vault.get(ref.key, ()))


def _sm_parts(arn: str) -> tuple[str, str, str, str] | None:
    """(region, account, name, ARN without the random suffix) of a Secrets Manager ARN."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager" or parts[5] != "secret":
        return None
    full = ":".join(parts[6:])
    name = full[:-7] if len(full) > 7 and full[-7] == "-" else full
    return parts[3], parts[4], name, ":".join([*parts[:6], name])


def _index(session: Session) -> _RefIndex:
    index = _RefIndex()
    s = m.Secret
    rows = session.execute(
        sa.select(s.id, s.store, s.reference, s.account, s.attributes).where(
            s.store.in_(sorted(_SM_STORES | _SSM_STORES | _VAULT_STORES)),
            s.reference.is_not(None),
            s.status != m.SecretStatus.RETIRED,
        )
    )
    for sid, store, reference, account, attributes in rows:
        ref = str(reference).strip()
        attrs = attributes or {}
        region = attrs.get("region") if isinstance(attrs.get("region"), str) else None
        if store in _SM_STORES:
            parts = _sm_parts(ref) if ref.startswith("arn:") else None
            if parts is not None:
                r, a, name, partial = parts
                for key in (ref, partial):
                    index.arns.setdefault(key, set()).add(sid)
                index.sm_names.setdefault(name, []).append((sid, r, a))
            elif not ref.startswith("arn:"):
                index.sm_names.setdefault(ref, []).append((sid, region, account))
        elif store in _SSM_STORES:
            if ref.startswith("arn:"):
                p = ref.split(":", 5)
                if len(p) == 6 and p[5].startswith("parameter"):
                    param = ssm_name(p[5][len("parameter") :])
                    index.ssm_names.setdefault(param, []).append((sid, p[3], p[4]))
            else:
                index.ssm_names.setdefault(ssm_name(ref), []).append((sid, region, account))
        else:
            vkey = vault_key(ref)
            if vkey:
                index.vault.setdefault(vkey, set()).add(sid)
    return index


def _looks_like_secret_key(variable: str) -> bool:
    low = variable.lower()
    return "secret" in low and "key" in low


def _match_function(
    fn: ObservedFunction,
    by_fp: Mapping[str, Sequence[Any]],
    fields_of: Mapping[int, set[str]],
    index: _RefIndex,
) -> list[_Match]:
    """The dependencies of one function: its $LATEST variables, then each alias's. A
    dependency an alias's version holds too is recorded with that alias (the first by name),
    so rotation publishes a version and moves the alias; one only an alias holds is recorded
    with it as well (rotation then finds $LATEST holding something else and refuses to
    overwrite it, rather than revoke a credential that alias still serves)."""
    found: dict[tuple[int, str], _Match] = {}
    environments: list[tuple[str | None, tuple[ObservedVariable, ...]]] = [(None, fn.variables)]
    environments.extend(sorted(fn.aliases.items()))
    for alias, variables in environments:
        matched: dict[str, set[int]] = {}
        pair_wanted: set[int] = set()  # secrets known only by their key id
        logins: list[tuple[ObservedVariable, Any]] = []  # a DB_USER: bound beside a secret
        for var in variables:
            for fm in by_fp.get(var.fingerprint, ()):
                if not secret_bearing(fm.field):
                    if binds(var.name, fm.field):
                        logins.append((var, fm))
                    continue  # a host, port, dbname held alike binds nothing
                matched.setdefault(var.name, set()).add(fm.secret_id)
                _add(found, _Match(fm.secret_id, fn, var.name, Mode.VALUE, fm.field, alias))
                if fm.field == ACCESS_KEY_ID and SECRET_ACCESS_KEY not in fields_of.get(
                    fm.secret_id, set()
                ):
                    pair_wanted.add(fm.secret_id)
        for sid in sorted(pair_wanted):
            partners = [
                v.name
                for v in variables
                if v.name not in matched and _looks_like_secret_key(v.name)
            ]
            if len(partners) == 1:
                _add(found, _Match(sid, fn, partners[0], Mode.VALUE, SECRET_ACCESS_KEY, alias))
        for var in variables:
            if var.name in matched:
                continue
            for ref in var.references:
                for sid in sorted(index.find(ref, fn.region, fn.account)):
                    _add(found, _Match(sid, fn, var.name, Mode.REFERENCE, ref.field, alias))
        held = {sid for sids in matched.values() for sid in sids}
        for var, fm in logins:
            if fm.secret_id in held and var.name not in matched:
                _add(found, _Match(fm.secret_id, fn, var.name, Mode.VALUE, fm.field, alias))
    return list(found.values())


def _add(found: dict[tuple[int, str], _Match], match: _Match) -> None:
    """The first environment that holds it says how ($LATEST before aliases); the first alias
    that holds it too is its alias."""
    key = (match.secret_id, match.variable)
    first = found.get(key)
    if first is None:
        found[key] = match
    elif first.alias is None and match.alias is not None:
        found[key] = replace(first, alias=match.alias)


def _current_fields(session: Session, secret_ids: Iterable[int]) -> dict[int, set[str]]:
    ids = sorted(set(secret_ids))
    out: dict[int, set[str]] = {}
    if not ids:
        return out
    f, v = m.SecretField, m.SecretVersion
    q = (
        sa.select(f.secret_id, f.field)
        .join(v, v.id == f.version_id)
        .where(f.secret_id.in_(ids), current_stage(v.stage))
    )
    for sid, name in session.execute(q):
        out.setdefault(int(sid), set()).add(str(name))
    return out


def _change(
    dep: m.Dependent,
    secret: str,
    *,
    function: str | None = None,
    seen: bool = True,
    reactivated: bool = False,
) -> DependentChange:
    attrs = dep.attributes or {}
    return DependentChange(
        secret=secret,
        target=dep.target,
        function=function or dep.target.rsplit(":", 1)[-1],
        variable=dep.variable,
        region=dep.region,
        account=dep.account,
        mode=str(attrs.get("mode") or Mode.VALUE),
        field=attrs.get("field"),
        alias=attrs.get("alias"),
        environment=attrs.get("environment"),
        origin=dep.origin.value,
        seen=seen,
        reactivated=reactivated,
    )


def _same_target(dep: m.Dependent, fn: ObservedFunction) -> bool:
    """A dependent typed by function name (in its region or none) is the function too."""
    if dep.target == fn.arn:
        return True
    return dep.target == fn.name and dep.region in (None, fn.region)


def _in_scope(dep: m.Dependent, listed: Mapping[tuple[str | None, str], FunctionListing]) -> bool:
    """Whether this run listed the dependent's region (in its account) completely."""
    account = dep.account or account_in_arn(dep.target)
    region = dep.region
    if region is None and dep.target.startswith("arn:"):
        region = dep.target.split(":")[3] or None
    for (acct, reg), listing in listed.items():
        if reg != region or not listing.listed:
            continue
        if account is None and listing.home:
            return True
        if account is not None and account == acct:
            return True
    return False


def record_dependents(
    db: Database, listings: Sequence[FunctionListing], *, actor: str | None = None
) -> DependentsResult:
    """Match the functions of ``listings`` to inventoried secrets and record the dependents in
    one transaction (see the module docstring)."""
    inv = Inventory(db, actor)
    now = m.utcnow()
    functions = [fn for listing in listings for fn in listing.functions]
    warnings = tuple(w for listing in listings for w in listing.warnings)
    regions = tuple(dict.fromkeys(lst.region for lst in listings if lst.listed))
    added: list[DependentChange] = []
    kept: list[DependentChange] = []
    missing: list[DependentChange] = []
    with db.session() as s:
        fps = {v.fingerprint for fn in functions for v in _all_variables(fn)}
        by_fp = fields_by_fingerprint(s, fps, current_only=True, descriptive=True)
        fields_of = _current_fields(s, (fm.secret_id for ms in by_fp.values() for fm in ms))
        index = _index(s)
        matches = [mt for fn in functions for mt in _match_function(fn, by_fp, fields_of, index)]
        names = {int(i): str(n) for i, n in s.execute(sa.select(m.Secret.id, m.Secret.name))}
        existing = list(s.scalars(sa.select(m.Dependent).where(m.Dependent.kind == KIND)))
        of_secret: dict[int, list[m.Dependent]] = {}
        for row in existing:
            of_secret.setdefault(row.secret_id, []).append(row)
        touched: set[int] = set()
        for mt in matches:
            fn = mt.function
            same = [d for d in of_secret.get(mt.secret_id, []) if _same_target(d, fn)]
            # the variable's own row, else a row typed by hand without a variable
            found = next((d for d in same if d.variable == mt.variable), None) or next(
                (d for d in same if d.variable is None and d.origin is m.DependentOrigin.MANUAL),
                None,
            )
            attrs = mt.attributes()
            if found is None:
                # a function typed by name stays one target (one update per rotation)
                like = same[0] if same else None
                dep = m.Dependent(
                    secret_id=mt.secret_id,
                    kind=KIND,
                    target=like.target if like else fn.arn,
                    variable=mt.variable,
                    region=(like.region if like else None) or fn.region,
                    account=like.account if like else fn.account,
                    attributes=attrs,
                    origin=m.DependentOrigin.DISCOVERED,
                    status=m.DependentStatus.ACTIVE,
                    last_seen_at=now,
                    created_at=now,
                )
                s.add(dep)
                s.flush()
                of_secret.setdefault(mt.secret_id, []).append(dep)
                touched.add(dep.id)
                added.append(_change(dep, names[mt.secret_id], function=fn.name))
                inv.append_audit(
                    s, inv.actor, "dependent.discover.added", names[mt.secret_id],
                    secret_id=mt.secret_id,
                    detail={"target": fn.arn, "variable": mt.variable, "mode": mt.mode},
                )  # fmt: skip
                continue
            dep = found
            if dep.id in touched:
                continue
            touched.add(dep.id)
            dep.last_seen_at = now
            if dep.origin is m.DependentOrigin.MANUAL:
                # typed by hand: kept as typed; only the environment tag is added
                if fn.environment and (dep.attributes or {}).get("environment") != fn.environment:
                    dep.attributes = {**(dep.attributes or {}), "environment": fn.environment}
                kept.append(_change(dep, names[mt.secret_id], function=fn.name))
                continue
            back = dep.status is m.DependentStatus.MISSING
            dep.status = m.DependentStatus.ACTIVE
            if dict(dep.attributes or {}) != attrs:
                dep.attributes = attrs
            change = _change(dep, names[mt.secret_id], function=fn.name, reactivated=back)
            (added if back else kept).append(change)
            if back:
                inv.append_audit(
                    s, inv.actor, "dependent.discover.added", names[mt.secret_id],
                    secret_id=mt.secret_id,
                    detail={"target": fn.arn, "variable": mt.variable, "reactivated": True},
                )  # fmt: skip
        listed = {(lst.account, lst.region): lst for lst in listings}
        partly_read = {fn.arn for fn in functions if not fn.complete} | {
            fn.name for fn in functions if not fn.complete
        }
        for dep in existing:
            if dep.id in touched or not _in_scope(dep, listed):
                continue
            if dep.origin is m.DependentOrigin.MANUAL:
                kept.append(_change(dep, names[dep.secret_id], seen=False))
                continue
            if dep.status is m.DependentStatus.MISSING or dep.target in partly_read:
                continue
            dep.status = m.DependentStatus.MISSING
            missing.append(_change(dep, names[dep.secret_id], seen=False))
            inv.append_audit(
                s, inv.actor, "dependent.discover.missing", names[dep.secret_id],
                secret_id=dep.secret_id, detail={"target": dep.target, "variable": dep.variable},
            )  # fmt: skip
        inv.append_audit(
            s,
            inv.actor,
            f"discover.{STORE}",
            STORE,
            "ok" if not warnings else "partial",
            detail={
                "functions": len(functions),
                "added": len(added),
                "kept": len(kept),
                "missing": len(missing),
                "warnings": len(warnings),
            },
        )
    return DependentsResult(
        len(functions), regions, tuple(added), tuple(kept), tuple(missing), warnings
    )


def _all_variables(fn: ObservedFunction) -> Iterable[ObservedVariable]:
    yield from fn.variables
    for variables in fn.aliases.values():
        yield from variables
