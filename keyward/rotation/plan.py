"""``keyward rotate SECRET --dry-run``: the calls a rotation would make, changing nothing.

The plan reads the secret's description and current value from its store (read-only calls, to
learn its fields and bind dependents), then asks the store, the rotator and every dependent for
their ``plan`` lines. Nothing is written anywhere: not to the store, the provider, the
dependents, nor the inventory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keyward.core.errors import StoreNotFound
from keyward.rotation.ports import RotatableSecrets
from keyward.rotation.protocols import DependentTarget
from keyward.rotation.wiring import Wiring, targets_for


@dataclass(frozen=True, slots=True)
class RotationPlan:
    secret: str
    store: str
    store_name: str
    rotator: str
    steps: tuple[tuple[str, tuple[str, ...]], ...]  # (step, provider calls)
    dependents: tuple[DependentTarget, ...]
    account: str | None = None  # the AWS account it acts in, as messages name it

    def to_dict(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "store": self.store,
            "store_name": self.store_name,
            "rotator": self.rotator,
            "account": self.account,
            "steps": [{"step": s, "calls": list(c)} for s, c in self.steps],
            "dependents": [
                {
                    "kind": t.kind,
                    "resource": t.resource,
                    "region": t.region,
                    "account": t.account,
                    "mode": t.mode.value,
                    "variables": [b.variable for b in t.bindings],
                    "alias": t.alias,
                }
                for t in self.dependents
            ],
        }

    def lines(self) -> list[str]:
        where = f" in AWS account {self.account}" if self.account else ""
        out = [
            f"Plan for rotating {self.secret!r} ({self.rotator} in {self.store} "
            f"as {self.store_name!r}{where}); nothing has been changed:"
        ]
        for step, calls in self.steps:
            out.append(f"  {step}:")
            out.extend(f"    - {c}" for c in calls)
        out.append(f"  dependents it would touch: {len(self.dependents)}")
        return out


def build_plan(secrets: RotatableSecrets, wiring: Wiring, secret_name: str) -> RotationPlan:
    secret = secrets.rotatable(secret_name)
    kind, name, store = wiring.store_for(secret)
    rotator = wiring.rotator_for(secret)
    described = store.describe(name)
    if not described.exists:
        raise StoreNotFound(
            f"The secret {secret.name!r} no longer exists in {kind} as {name!r}",
            hint="Fix its reference (keyward inventory update --reference) or remove it",
        )
    current = store.read_current(name)
    targets = targets_for(
        secrets.dependents(secret.id),
        sorted(current.value.fields),
        secret.name,
        wiring.target_overrides(secret),
        secret.account,
    )
    store_calls = store.plan(name)
    dep_calls: list[str] = []
    for t in targets:
        dep_calls.extend(wiring.dependent(t.kind, secret).plan(t))
    taking_over: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if described.managed_by:
        taking_over = (
            (
                "refused unless --take-over (then first)",
                (
                    f"already rotated by {described.managed_by}: turn that rotation off "
                    "(secretsmanager:CancelRotateSecret), recorded in the audit log",
                ),
            ),
        )
    steps = (
        *taking_over,
        ("create, set, test, retire (rotator)", tuple(rotator.plan(current.value))),
        ("store pending, then promote at finish", tuple(store_calls)),
        ("update and verify dependents", tuple(dep_calls) or ("(no dependents)",)),
    )
    return RotationPlan(
        secret.name, kind, name, rotator.kind, steps, targets, wiring.account_label(secret)
    )
