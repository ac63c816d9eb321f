"""``keyward adopt``: a hardcoded secret (a recorded finding) becomes a secret in a store.

In order, and refusing before the first write whenever it can:

1. **check** — the finding exists and is not already a stored secret; the name is free in
   the inventory; the store and the kind are known; with ``--rotate`` the kind has a rotator.
2. **re-read** the value at the finding's location with the finding's own rule
   (:mod:`keyward.adopt.reread`): changed, removed or deleted -> :class:`LocationChanged`.
3. **dependents** — every Lambda function the scans found holding the same value (by keyed
   fingerprint, every recorded function) is read live: each variable holding a field becomes a
   value-mode dependent; a function that no longer holds it is left out with a warning.
4. **store** — the name must be free there too; then the secret is created with the value as
   its current version (an AWS key pair as one JSON secret), owner and team as tags.
5. **inventory** — one transaction (:func:`keyward.inventory.adoption.record_adoption`). Should
   it fail, the error names exactly what exists in the store.
6. ``--reference`` — each Lambda dependent is switched from the raw value to a reference
   (``KEYWARD_SECRET_ARN`` or ``KEYWARD_SECRET_PATH``, and ``KEYWARD_SECRET_VERSION``) through
   the aws-lambda dependent's read-modify-write, and recorded as a reference dependent.
7. ``--rotate`` — the rotation engine rotates it at once (it leaked), with its dependents.

Files, ``.env`` entries, git history and Lambda deployment packages are never edited: the
result lists each place (file and line) and what to replace there, with a redacted preview.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from keyward.adopt.kinds import GENERIC, AdoptRefused, Placement, infer, no_rotator
from keyward.adopt.reread import LocationChanged, Reread, engine_for
from keyward.core.errors import BackendError, KeywardError
from keyward.core.redaction import Fingerprinter
from keyward.core.secretfields import binds as variable_binds
from keyward.core.secretfields import can_be_secret, secret_bearing
from keyward.inventory.adoption import (
    AdoptableFinding,
    AdoptedDependent,
    Adoption,
    adoptable_finding,
    findings_holding,
    record_adoption,
    secret_name_taken,
    stored_as,
    switch_to_reference,
)
from keyward.rotation.errors import DependentNotFound
from keyward.rotation.ports import RotatableSecret
from keyward.rotation.protocols import (
    CreatableStore,
    CreatedSecret,
    DependentTarget,
    EnvBinding,
    VersionedSecret,
    new_token,
)
from keyward.rotation.wiring import STORE_ALIASES, Wiring

if TYPE_CHECKING:
    from keyward.inventory.rotations import RotationRepository
    from keyward.rotation.engine import RotationEngine
from keyward.scan.rules import RuleSet

log = logging.getLogger(__name__)

ADOPT_STORES = ("aws-secretsmanager", "vault-kv")
# stores that keep the value: a finding linked to a secret there is adopted already
VALUE_STORES = frozenset({"aws-secretsmanager", "vault-kv", "aws-ssm", *STORE_ALIASES})
LAMBDA = "aws-lambda"


class AdoptIncomplete(BackendError):
    """A step after the secret was created failed; the message says what exists (exit 3)."""


@dataclass(frozen=True, slots=True)
class AdoptRequest:
    finding_id: int
    store: str
    name: str
    kind: str | None = None
    owner: str | None = None
    team: str | None = None
    contact: str | None = None
    rotate: bool = False
    reference: bool = False


@dataclass(frozen=True, slots=True)
class Replacement:
    """A place that holds the value in a file keyward does not edit: what to replace there."""

    where: str  # path:line, or ARN path:line for a deployment package
    variable: str | None
    preview: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "variable": self.variable,
            "preview": self.preview,
            "source": self.source,
        }


@dataclass(slots=True)
class AdoptResult:
    secret: str
    kind: str
    store: str
    reference: str
    version: str
    finding: int
    found_at: str
    fields: tuple[str, ...]
    dependents: list[AdoptedDependent] = field(default_factory=list)
    referenced: list[str] = field(default_factory=list)  # functions switched to a reference
    reference_variable: str = ""
    replace: list[Replacement] = field(default_factory=list)
    rotation: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "kind": self.kind,
            "store": self.store,
            "reference": self.reference,
            "version": self.version,
            "finding": self.finding,
            "found_at": self.found_at,
            "fields": list(self.fields),
            "dependents": [
                {
                    "target": d.target,
                    "variable": d.variable,
                    "region": d.region,
                    "account": d.account,
                    "field": d.field,
                    "mode": "reference" if d.reference else "value",
                }
                for d in self.dependents
            ],
            "referenced": list(self.referenced),
            "replace": [r.to_dict() for r in self.replace],
            "rotation": self.rotation,
            "warnings": list(self.warnings),
        }

    def lines(self) -> list[str]:
        out = [
            f"Adopted finding {self.finding} ({self.found_at}) as {self.secret} ({self.kind}): "
            f"{self.store} {self.reference} version {self.version}, fields "
            f"{', '.join(self.fields)}.",
        ]
        by_target: dict[str, list[AdoptedDependent]] = {}
        for d in self.dependents:
            by_target.setdefault(d.target, []).append(d)
        for target, deps in by_target.items():
            if target in self.referenced:
                out.append(
                    f"  {target}: now loads it itself ({self.reference_variable}, "
                    "KEYWARD_SECRET_VERSION)"
                )
            else:
                held = ", ".join(f"{d.variable} <- {d.field}" for d in deps)
                out.append(f"  {target}: holds it by value ({held})")
        if self.replace:
            out.append("Replace the value by a reference to it (keyward edits no file):")
            for r in self.replace:
                var = f" {r.variable}" if r.variable else ""
                out.append(
                    f"  {r.where}:{var} replace {r.preview} with a read of {self.reference} "
                    f"from {self.store}"
                )
        if self.rotation is not None:
            out.append(str(self.rotation.get("message", "")))
        elif self.kind == GENERIC:
            out.append(
                "keyward has no rotator for it: it has leaked, so revoke it at its provider "
                "and put the new value in the store."
            )
        return out


# ---------------------------------------------------------------------- the steps
def _refuse_linked(f: AdoptableFinding) -> None:
    if f.secret is not None and (f.secret_store or "") in VALUE_STORES:
        raise AdoptRefused(
            f"Finding {f.id} is already the secret {f.secret!r} in {f.secret_store}, so there "
            "is nothing to adopt",
            hint=f"Rotate it with `keyward rotate {f.secret}`",
        )


def _function_arn(resource: str | None) -> str:
    """The function's ARN as dependents name it: ``:$LATEST`` (``scan --all-versions``)
    dropped, since updates address the unqualified function."""
    arn = resource or ""
    return arn[: -len(":$LATEST")] if arn.endswith(":$LATEST") else arn


def _lambda_target(f: AdoptableFinding, home_account: str | None) -> DependentTarget:
    return DependentTarget(
        kind=LAMBDA,
        resource=_function_arn(f.resource),
        region=f.region,
        account=f.account if f.account != home_account else None,
    )


def _environment(dependent: Any, f: AdoptableFinding, target: DependentTarget) -> dict[str, str]:
    try:
        env = dependent.environment(target)
    except DependentNotFound:
        raise LocationChanged(
            f"The Lambda function {f.resource} of finding {f.id} no longer exists (deleted "
            "since the scan)",
            hint="Nothing was adopted; scan again (--record) to see where the value is now",
        ) from None
    return dict(env)


class RotationParts(Protocol):
    """What an adoption needs of a command's rotation pieces (built by
    :func:`keyward.cli.compose.compose_rotation`): its inventory, fingerprinter, plugins and
    engine. A protocol, so this package does not import the CLI."""

    @property
    def inventory(self) -> RotationRepository: ...
    @property
    def fingerprinter(self) -> Fingerprinter: ...
    def wiring(self) -> Wiring: ...
    def engine(self, wiring: Wiring | None = None) -> RotationEngine: ...


@dataclass(slots=True)
class _Plan:
    finding: AdoptableFinding
    placement: Placement
    reread: Reread
    dependents: list[tuple[DependentTarget, list[AdoptedDependent]]]
    replace: list[Replacement]
    warnings: list[str]


class Adopter:
    """Runs one adoption over the rotation parts of a command (inventory, wiring, engine)."""

    def __init__(self, parts: RotationParts, rules: RuleSet, wiring: Wiring | None = None):
        self.parts = parts
        self.db = parts.inventory.db
        self.fp: Fingerprinter = parts.fingerprinter
        self.rules = rules
        self.wiring = wiring or parts.wiring()
        self.actor = parts.inventory.actor

    # ------------------------------------------------------------------ re-read
    def _reread(
        self, f: AdoptableFinding, pseudo: RotatableSecret
    ) -> tuple[Reread, dict[str, str] | None]:
        from keyward.adopt import reread as rr

        engine = engine_for(self.rules, f.rule_id, self.fp)
        if f.source == "lambda":
            if f.path:
                raise AdoptRefused(
                    f"Finding {f.id} is in the deployment package of {f.resource} "
                    f"({f.path}:{f.line}), which keyward does not read back",
                    hint="Adopt the value where it is kept in source control (scan that "
                    "repository with --record), then redeploy the function",
                )
            dependent = self.wiring.dependent(LAMBDA, pseudo)
            env = _environment(dependent, f, _lambda_target(f, pseudo.account))
            return rr.from_environment(f, env, engine, self.fp), env
        if f.source == "env":
            import socket

            host = f.target.split(":", 1)[1] if f.target.startswith("env:") else ""
            if host and host != socket.gethostname():
                raise AdoptRefused(
                    f"Finding {f.id} was found in the environment of host {host}, not this one",
                    hint=f"Run keyward adopt on {host}",
                )
            return rr.from_process(f, engine, self.fp), None
        if f.source in ("file", "iac"):
            return rr.from_file(f, engine, self.fp), None
        if f.source in ("git", "staged"):
            from pathlib import Path

            repo = next((t for t in f.target.split("+") if t.startswith("git:")), "")
            if not repo or not f.path:
                raise AdoptRefused(
                    f"Finding {f.id} is in git history and keyward cannot tell which "
                    "repository it is in",
                    hint="Scan the working tree with --record and adopt that finding",
                )
            root = Path(repo[len("git:") :])
            if f.source == "git" and f.commit:
                return rr.from_commit(f, root, engine, self.fp), None
            return rr.from_file(f, engine, self.fp, paths=[root / f.path]), None
        raise AdoptRefused(f"Findings from {f.source} sources cannot be adopted")

    # ------------------------------------------------------------------ plan
    def _lambda_dependents(
        self,
        f: AdoptableFinding,
        pseudo: RotatableSecret,
        placement: Placement,
        origin_env: Mapping[str, str] | None,
        reference_variable: str,
        want_reference: bool,
        warnings: list[str],
    ) -> list[tuple[DependentTarget, list[AdoptedDependent]]]:
        fields = {self.fp.fingerprint(v): k for k, v in placement.value.fields.items()}
        wanted = {f.fingerprint, *(fp for fp in [f.companion_fingerprint] if fp)}
        wanted |= self._secret_fingerprints(placement)
        holders = [
            h for h in findings_holding(self.db, wanted) if h.source == "lambda" and not h.path
        ]
        if f.source == "lambda" and not f.path and all(h.id != f.id for h in holders):
            holders.insert(0, f)
        functions: dict[tuple[str, str | None, str | None], AdoptableFinding] = {}
        for h in holders:
            functions.setdefault((_function_arn(h.resource), h.region, h.account), h)
        dependent = self.wiring.dependent(LAMBDA, pseudo) if functions else None
        out: list[tuple[DependentTarget, list[AdoptedDependent]]] = []
        for (arn, region, _account), h in functions.items():
            if arn.count(":") >= 7:  # a published version (arn:...:function:NAME:3)
                warnings.append(
                    f"{arn} is a published version: it keeps the value (versions cannot "
                    "change); publish a new version once the function no longer holds it"
                )
                continue
            target = _lambda_target(h, pseudo.account)
            if h.id == f.id and origin_env is not None:
                env: Mapping[str, str] = origin_env
            else:
                try:
                    env = dependent.environment(target)  # type: ignore[union-attr]
                except DependentNotFound:
                    warnings.append(f"{arn} no longer exists; not recorded as a dependent")
                    continue
            bound = [
                AdoptedDependent(arn, var, region, target.account, fields[self.fp.fingerprint(v)])
                for var, v in sorted(env.items())
                if isinstance(v, str)
                and self.fp.fingerprint(v) in fields
                and variable_binds(var, fields[self.fp.fingerprint(v)])
            ]
            if not bound:
                warnings.append(
                    f"{arn} holds the value inside a longer variable (or no longer holds it): "
                    "not recorded as a dependent; update it by hand"
                )
                continue
            if want_reference:
                held = env.get(reference_variable)
                if held is not None:
                    raise AdoptRefused(
                        f"{arn} already has {reference_variable}, so it cannot be switched to "
                        "a reference to this secret",
                        hint="Adopt without --reference, or remove that variable first",
                    )
            binds = tuple(EnvBinding(d.variable, d.field) for d in bound)
            out.append((DependentTarget(LAMBDA, arn, binds, region, account=target.account), bound))
        return out

    def _secret_fingerprints(self, placement: Placement) -> set[str]:
        """Fingerprints of the value's secret fields: what findings and holders match."""
        return {
            self.fp.fingerprint(v)
            for k, v in placement.value.fields.items()
            if secret_bearing(k) and can_be_secret(k, v)
        }

    def _replacements(self, f: AdoptableFinding, placement: Placement) -> list[Replacement]:
        fps = self._secret_fingerprints(placement) | {f.fingerprint}
        out: list[Replacement] = []
        seen: set[str] = set()
        for h in findings_holding(self.db, fps):
            if h.source == "lambda" and not h.path:
                continue  # a function's variable: a dependent, updated by keyward
            where = h.where() if h.source != "git" else f"{h.where()} (commit {h.commit or '?'})"
            if where in seen:
                continue
            seen.add(where)
            out.append(Replacement(where, h.variable, h.preview, h.source))
        return out

    def plan(self, request: AdoptRequest) -> tuple[_Plan, RotatableSecret, str]:
        """Everything that can be checked before the first write; raises to refuse."""
        f = adoptable_finding(self.db, request.finding_id)
        _refuse_linked(f)
        if secret_name_taken(self.db, request.name):
            raise AdoptRefused(
                f"A secret named {request.name!r} is already in the inventory",
                hint="Choose another --name",
            )
        from keyward.rotation.registry import PluginGroup, available

        known = frozenset(available(PluginGroup.ROTATORS))
        # the account the secret lives in: a Secrets Manager secret in the function's own
        # account (its functions read it there); Vault has none. Dependents in another
        # account than this one are recorded with theirs.
        account = (
            f.account if f.source == "lambda" and request.store == "aws-secretsmanager" else None
        )
        pseudo = RotatableSecret(
            0, request.name, request.kind or GENERIC, request.store, None, {}, account
        )
        reread, env = self._reread(f, pseudo)
        placement = infer(
            f.rule_id,
            reread.secret,
            reread.companion,
            reread.context,
            kind=request.kind,
            known_kinds=known,
            variable=reread.variable,
            siblings=reread.siblings,
        )
        if request.rotate and not placement.rotatable:
            raise no_rotator(f.rule_id)
        kept = stored_as(self.db, self._secret_fingerprints(placement), VALUE_STORES)
        if kept is not None:
            raise AdoptRefused(
                f"The value of finding {f.id} is already the current value of the secret "
                f"{kept[0]!r} in {kept[1]}, so there is nothing to adopt",
                hint=f"Rotate it with `keyward rotate {kept[0]}` (it leaked)",
            )
        store = self._store(pseudo)
        warnings: list[str] = []
        deps = self._lambda_dependents(
            f, pseudo, placement, env, store.reference_variable(), request.reference, warnings
        )
        replace = self._replacements(f, placement)
        return _Plan(f, placement, reread, deps, replace, warnings), pseudo, reread.where

    def _store(self, pseudo: RotatableSecret) -> CreatableStore:
        _kind, _name, store = self.wiring.store_for(pseudo)
        if not isinstance(store, CreatableStore):
            raise AdoptRefused(
                f"The store {pseudo.store} cannot create secrets",
                hint=f"Adopt into one of {', '.join(ADOPT_STORES)}",
            )
        return store

    # ------------------------------------------------------------------ run
    def adopt(self, request: AdoptRequest) -> AdoptResult:
        try:
            plan, pseudo, found_at = self.plan(request)
            kind, name, store = self.wiring.store_for(pseudo)
            creatable = self._store(pseudo)
            if store.describe(name).exists:
                raise AdoptRefused(
                    f"{kind} already has a secret named {name!r}, so nothing was adopted",
                    hint="Choose another --name (keyward never overwrites a stored secret)",
                )
        except (AdoptRefused, LocationChanged) as err:
            self._audit_refusal(request, err)
            raise
        return self._adopt(request, plan, pseudo, found_at, kind, name, creatable)

    def _audit_refusal(self, request: AdoptRequest, err: KeywardError) -> None:
        """``secret.adopt`` ``refused``: who asked for what and why (no value: the messages
        name previews and places only). Best effort: the refusal itself is what matters."""
        from keyward.inventory.service import Inventory

        try:
            Inventory(self.db, self.actor).audit(
                "secret.adopt",
                request.name,
                "refused",
                detail={"finding": request.finding_id, "store": request.store,
                        "reason": err.message},
            )  # fmt: skip
        except KeywardError as exc:
            log.warning("the refusal could not be audited: %s", exc.message)

    def _adopt(
        self,
        request: AdoptRequest,
        plan: _Plan,
        pseudo: RotatableSecret,
        found_at: str,
        kind: str,
        name: str,
        creatable: CreatableStore,
    ) -> AdoptResult:
        placement = plan.placement
        tags = {
            k: v
            for k, v in {
                "owner": request.owner,
                "team": request.team,
                "contact": request.contact,
                "keyward:kind": placement.kind,
                "keyward:adopted-from": f"finding {plan.finding.id}",
            }.items()
            if v
        }
        created = creatable.create(name, placement.value, tags=tags, token=new_token())
        adoption = Adoption(
            name=request.name,
            kind=placement.kind,
            store=kind,
            reference=created.ref,
            account=pseudo.account if kind == "aws-secretsmanager" else None,
            version=created.version,
            fingerprint=placement.value.fingerprint(self.fp),
            fields=placement.value.field_fingerprints(self.fp),
            finding_id=plan.finding.id,
            owner=request.owner,
            team=request.team,
            contact=request.contact,
            tags={k: v for k, v in tags.items() if k in ("owner", "team", "contact")},
            dependents=tuple(d for _t, deps in plan.dependents for d in deps),
            identifier_fingerprint=(
                self.fp.fingerprint(placement.identifier) if placement.identifier else None
            ),
            secret_fingerprints=frozenset(self._secret_fingerprints(placement)),
            detail={"rule": plan.finding.rule_id, "found_at": found_at},
        )
        try:
            record_adoption(self.db, self.actor, adoption)
        except KeywardError as err:
            raise self._incomplete(created, kind, request.name, err) from None
        except Exception as err:
            raise self._incomplete(created, kind, request.name, err) from err
        result = AdoptResult(
            secret=request.name,
            kind=placement.kind,
            store=kind,
            reference=created.ref,
            version=created.version,
            finding=plan.finding.id,
            found_at=found_at,
            fields=tuple(sorted(placement.value.fields)),
            dependents=list(adoption.dependents),
            reference_variable=creatable.reference_variable(),
            replace=plan.replace,
            warnings=list(plan.warnings),
        )
        if request.reference and plan.dependents:
            held = VersionedSecret(name, created.version, placement.value)
            self._switch(plan, pseudo, held, created, creatable.reference_variable(), result)
        if request.rotate:
            self._rotate(request, result)
        return result

    @staticmethod
    def _incomplete(
        created: CreatedSecret, kind: str, name: str, err: BaseException
    ) -> AdoptIncomplete:
        why = err.message if isinstance(err, KeywardError) else type(err).__name__
        return AdoptIncomplete(
            f"The secret was created in {kind} as {created.ref} (version {created.version}) "
            f"but the inventory could not record it ({why.rstrip('.')})",
            hint=f"Nothing else was changed; fix the inventory, then record it with `keyward "
            f"inventory add {name} --kind ... --store {kind} --reference {created.ref}`, or "
            "delete it from the store and adopt again",
        )

    def _switch(
        self,
        plan: _Plan,
        pseudo: RotatableSecret,
        held: VersionedSecret,
        created: CreatedSecret,
        variable: str,
        result: AdoptResult,
    ) -> None:
        dependent = self.wiring.dependent(LAMBDA, pseudo)
        for target, bound in plan.dependents:
            try:
                dependent.switch_to_reference(  # type: ignore[attr-defined]
                    target, held, {variable: created.ref}
                )
                switch_to_reference(
                    self.db,
                    self.actor,
                    result.secret,
                    AdoptedDependent(
                        target.resource, variable, target.region, target.account, None, True
                    ),
                )
            except KeywardError as err:
                done = ", ".join(result.referenced) or "none"
                raise AdoptIncomplete(
                    f"{result.secret} was adopted ({created.ref}), but switching "
                    f"{target.resource} to a reference failed ({err.message.rstrip('.')}); "
                    f"functions switched: {done}",
                    hint="The others still hold the value and are recorded as value "
                    "dependents; fix the cause and switch them by hand, or rotate with "
                    f"`keyward rotate {result.secret}`",
                ) from None
            result.referenced.append(target.resource)
            result.dependents = [d for d in result.dependents if d.target != target.resource]
            result.dependents.append(
                AdoptedDependent(
                    target.resource, variable, target.region, target.account, None, True
                )
            )
            log.info("%s now references %s (%s)", target.resource, result.secret, len(bound))

    def _rotate(self, request: AdoptRequest, result: AdoptResult) -> None:
        engine = self.parts.engine(self.wiring)
        reason = f"adopted from finding {request.finding_id}: the value was hardcoded (leaked)"
        try:
            out = engine.rotate(request.name, reason=reason)
        except KeywardError as err:  # exit 3, as every failure after the store write
            raise AdoptIncomplete(
                f"{result.secret} was adopted ({result.reference}), but its rotation failed: "
                f"{err.message.rstrip('.')}",
                hint=f"The adopted value is still current; see `keyward rotations list "
                f"--secret {result.secret}`, then `keyward rotate {result.secret}` again",
            ) from None
        result.rotation = {
            "rotation_id": out.rotation_id,
            "state": out.state.value,
            "message": out.message,
            "warnings": list(out.warnings),
        }
        result.warnings.extend(out.warnings)
