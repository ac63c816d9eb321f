"""``aws-lambda``: Lambda functions that hold a secret in environment variables.

``UpdateFunctionConfiguration`` replaces the whole ``Environment`` map, so every change is a
read-modify-write of the *current* map that touches only the bound variables (with the
function's ``RevisionId`` as a precondition where AWS provides one, retried on a concurrent
edit). After each change keyward waits for ``LastUpdateStatus`` to be ``Successful``
(``function_updated_v2`` waiter) and reads the configuration back.

Two modes:

``value``
    each bound variable holds a field of the secret (``AWS_SECRET_ACCESS_KEY`` <-
    ``secret_access_key``).
``reference``
    the function holds a reference (secret ARN or Vault path) and loads the value itself;
    keyward sets ``KEYWARD_SECRET_VERSION`` to the new version id so new execution environments
    load the new value.

With ``alias`` set, keyward also publishes a version after the change and moves the alias to
it; rollback moves the alias back.

:meth:`prepare` records what each variable held as keyed fingerprints (never the value);
rollback writes the old value back from the *store's* old version and refuses if that value's
fingerprint is not what the function held.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from keyward.core.errors import ConfigError
from keyward.core.redaction import Fingerprinter
from keyward.providers.aws import AwsService, aws_errors
from keyward.rotation.errors import DEPENDENT_ERRORS, DependentDrift, DependentError
from keyward.rotation.protocols import (
    DependentMode,
    DependentSnapshot,
    DependentTarget,
    HeldState,
    VariableBefore,
    VersionedSecret,
)

if TYPE_CHECKING:
    from keyward.rotation.registry import PluginContext

log = logging.getLogger(__name__)
R = TypeVar("R")

VERSION_VARIABLE = "KEYWARD_SECRET_VERSION"
# Someone else changed the function between our read and our write: read again and retry.
_CONCURRENT_EDIT = frozenset({"PreconditionFailedException", "ResourceConflictException"})


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


class LambdaEnvironmentDependent:
    kind = "aws-lambda"

    def __init__(
        self,
        client_for: Callable[[str | None], Any],
        fingerprinter: Fingerprinter,
        *,
        wait_delay: int = 2,
        wait_attempts: int = 150,
        conflict_retries: int = 5,
        client_in: Callable[[str | None, str], Any] | None = None,
    ) -> None:
        self._client_for = client_for
        self._client_in = client_in  # (region, account id): a target in another account
        self._fp = fingerprinter
        self.wait_delay = wait_delay
        self.wait_attempts = wait_attempts
        self.conflict_retries = conflict_retries

    @classmethod
    def from_config(
        cls, context: PluginContext, options: Mapping[str, Any]
    ) -> LambdaEnvironmentDependent:
        aws = context.clients.aws
        return cls(
            lambda region: aws.client(AwsService.LAMBDA, region),
            context.fingerprinter,
            wait_delay=int(options.get("wait_delay", 2)),
            wait_attempts=int(options.get("wait_attempts", 150)),
            client_in=lambda region, account: aws.client(
                AwsService.LAMBDA, region, account=aws.resolve(account)
            ),
        )

    def __repr__(self) -> str:
        return "LambdaEnvironmentDependent()"

    # ---------------------------------------------------------------- helpers
    def _client(self, target: DependentTarget) -> Any:
        """The Lambda client for the target's region, in its own account when it names one
        (else the secret's)."""
        if target.account is None:
            return self._client_for(target.region)
        if self._client_in is None:
            raise ConfigError(
                f"{self._where(target)} is in AWS account {target.account}, and this "
                "dependent was built without clients for other accounts",
                hint="Build it with client_in, or from_config",
            )
        return self._client_in(target.region, target.account)

    @staticmethod
    def _where(target: DependentTarget) -> str:
        region = f" in {target.region}" if target.region else ""
        account = f" of account {target.account}" if target.account else ""
        return f"Lambda function {target.resource}{region}{account}"

    def _call(self, target: DependentTarget, action: str, fn: Callable[..., R], **kw: Any) -> R:
        """``fn(**kw)`` behind the provider boundary: a deleted function is
        DependentNotFound, denied / unreachable / throttled are ProviderDenied /
        ProviderUnavailable (exit 3), anything else a DependentError naming the call."""
        with aws_errors(action, self._where(target), DEPENDENT_ERRORS):
            return fn(**kw)

    def _config(self, target: DependentTarget, qualifier: str | None = None) -> dict[str, Any]:
        client = self._client(target)
        kw: dict[str, Any] = {"FunctionName": target.resource}
        if qualifier:
            kw["Qualifier"] = qualifier
        return dict(
            self._call(
                target, "lambda:GetFunctionConfiguration", client.get_function_configuration, **kw
            )
        )

    @staticmethod
    def _env(config: Mapping[str, Any]) -> dict[str, str]:
        return dict((config.get("Environment") or {}).get("Variables") or {})

    def _wait(self, target: DependentTarget) -> None:
        client = self._client(target)
        try:
            # the waiter polls lambda:GetFunction: a failure of that call (denied, gone,
            # unreachable) leaves as that call's error, naming it
            self._call(
                target,
                "lambda:GetFunction",
                client.get_waiter("function_updated_v2").wait,
                FunctionName=target.resource,
                WaiterConfig={"Delay": self.wait_delay, "MaxAttempts": self.wait_attempts},
            )
        except DependentError as err:
            if err.fault is None or err.fault.code != "WaiterError":
                raise
            # the waiter itself gave up: the update failed, or never finished in time
            cfg = self._config(target)
            status = cfg.get("LastUpdateStatus")
            if status == "Failed":
                reason = cfg.get("LastUpdateStatusReason") or "no reason given"
                message = f"LastUpdateStatus is Failed ({reason})"
            else:
                waited = self.wait_delay * self.wait_attempts
                message = f"LastUpdateStatus was still {status} after {waited} s"
            raise DependentError(
                f"The update of {self._where(target)} did not succeed: {message}",
                hint="Look at the function in the console, then resume or roll back",
            ) from None

    def _desired(self, snapshot: DependentSnapshot, secret: VersionedSecret) -> dict[str, str]:
        t = snapshot.target
        if t.mode is DependentMode.REFERENCE:
            return {VERSION_VARIABLE: secret.version}
        out: dict[str, str] = {}
        for b in t.bindings:
            value = secret.value.get(b.field or "value")
            if value is None:
                raise DependentError(
                    f"Secret {secret.name} has no field {b.field!r} for variable {b.variable} "
                    f"of {self._where(t)}"
                )
            out[b.variable] = value
        return out

    def _apply(self, target: DependentTarget, desired: Mapping[str, str], remove: set[str]) -> bool:
        """Read-modify-write of the environment; True if an update was made."""
        client = self._client(target)
        for attempt in range(self.conflict_retries):
            cfg = self._config(target)
            env = self._env(cfg)
            if all(_same(env.get(k), v) for k, v in desired.items()) and not remove & set(env):
                return False
            new_env = {k: v for k, v in env.items() if k not in remove}
            new_env.update(desired)
            kw: dict[str, Any] = {
                "FunctionName": target.resource,
                "Environment": {"Variables": new_env},
            }
            if cfg.get("RevisionId"):
                kw["RevisionId"] = cfg["RevisionId"]
            try:
                self._call(
                    target,
                    "lambda:UpdateFunctionConfiguration",
                    client.update_function_configuration,
                    **kw,
                )
            except DependentError as err:
                if err.fault is None or err.fault.code not in _CONCURRENT_EDIT:
                    raise
                if attempt + 1 == self.conflict_retries:
                    break
                log.info("%s changed concurrently; retrying", self._where(target))
                self._wait(target)
                continue
            self._wait(target)
            return True
        raise DependentError(
            f"{self._where(target)} kept changing while keyward updated it "
            f"({self.conflict_retries} attempts)",
            hint="Find what else is updating the function, then resume",
        )

    def _alias_version(self, target: DependentTarget) -> str:
        client = self._client(target)
        resp = self._call(
            target,
            "lambda:GetAlias",
            client.get_alias,
            FunctionName=target.resource,
            Name=target.alias,
        )
        return str(resp["FunctionVersion"])

    def _move_alias(self, target: DependentTarget, version: str) -> None:
        client = self._client(target)
        self._call(
            target,
            "lambda:UpdateAlias",
            client.update_alias,
            FunctionName=target.resource,
            Name=target.alias,
            FunctionVersion=version,
        )

    # ------------------------------------------------------------- adoption
    def environment(self, target: DependentTarget) -> dict[str, str]:
        """The function's environment variables now (raw values: keep them in memory only).
        ``DependentNotFound`` when the function no longer exists."""
        return self._env(self._config(target))

    def switch_to_reference(
        self, target: DependentTarget, held: VersionedSecret, reference: Mapping[str, str]
    ) -> bool:
        """Replace the bound variables of ``target`` (value mode) by ``reference`` (e.g.
        ``KEYWARD_SECRET_ARN``) and ``KEYWARD_SECRET_VERSION`` = ``held.version``, so the
        function loads the secret itself; every other variable is kept. Read-modify-write,
        waiting for ``LastUpdateStatus``, then read back. Refuses (``DependentDrift``, before
        any change) a bound variable that holds neither ``held``'s field nor nothing, and a
        reference variable that already names something else. True if an update was made;
        calling it again after it succeeded changes nothing."""
        desired = {**reference, VERSION_VARIABLE: held.version}
        env = self.environment(target)
        for name, value in reference.items():
            if name in env and not _same(env[name], value):
                raise DependentDrift(
                    f"{self._where(target)} already has {name} naming another secret",
                    hint="keyward switches a function to one secret it loads itself; "
                    "remove that variable first or keep this one by value (no --reference)",
                )
        remove: set[str] = set()
        for b in target.bindings:
            if b.variable not in env:
                continue
            if not _same(env[b.variable], held.value.get(b.field or "value")):
                raise DependentDrift(
                    f"Variable {b.variable} of {self._where(target)} no longer holds the "
                    f"value of {held.name} (field {b.field or 'value'!r})",
                    hint="It changed since it was read; nothing of this function was changed",
                )
            remove.add(b.variable)
        changed = self._apply(target, desired, remove)
        after = self.environment(target)
        wrong = sorted(k for k, v in desired.items() if not _same(after.get(k), v))
        left = sorted(remove & set(after))
        if wrong or left:
            raise DependentError(
                f"{self._where(target)} does not hold the reference after the update "
                f"({', '.join(wrong + left)})",
                hint="Something else changed the function; run the adoption's --reference again",
            )
        log.info(
            "%s: %s -> reference (%s)", self._where(target),
            ", ".join(sorted(remove)) or "nothing", ", ".join(sorted(desired)),
        )  # fmt: skip
        return changed

    # --------------------------------------------------------------- protocol
    def plan(self, target: DependentTarget) -> tuple[str, ...]:
        where = self._where(target)
        if target.mode is DependentMode.REFERENCE:
            variables = VERSION_VARIABLE
        else:
            variables = ", ".join(b.variable for b in target.bindings) or "(none bound)"
        steps = [
            f"lambda:GetFunctionConfiguration {where}",
            f"lambda:UpdateFunctionConfiguration {where}: set {variables}, keep other variables",
            f"wait for LastUpdateStatus = Successful on {where}",
        ]
        if target.alias:
            steps.append(f"lambda:PublishVersion {where}, lambda:UpdateAlias {target.alias}")
        return tuple(steps)

    def prepare(
        self, target: DependentTarget, old: VersionedSecret, new: VersionedSecret
    ) -> DependentSnapshot:
        env = self._env(self._config(target))
        before: list[VariableBefore] = []
        if target.mode is DependentMode.REFERENCE:
            held = env.get(VERSION_VARIABLE)
            before.append(
                VariableBefore(
                    VERSION_VARIABLE,
                    None,
                    HeldState.ABSENT if held is None else HeldState.PLAIN,
                    plain=held,
                )
            )
        else:
            if not target.bindings:
                raise DependentError(f"{self._where(target)} has no variables bound to the secret")
            for b in target.bindings:
                field = b.field or "value"
                held = env.get(b.variable)
                if held is None:
                    state = HeldState.ABSENT
                elif _same(held, old.value.get(field)):
                    state = HeldState.OLD
                elif _same(held, new.value.get(field)):
                    state = HeldState.NEW
                else:
                    raise DependentDrift(
                        f"Variable {b.variable} of {self._where(target)} holds neither the "
                        f"current nor the new value of {old.name} (field {field!r})",
                        hint="keyward will not overwrite a value it could not restore; fix the "
                        "variable or the inventory's binding, then resume",
                    )
                fp = self._fp.fingerprint(held) if held is not None else None
                before.append(VariableBefore(b.variable, field, state, fingerprint=fp))
        alias_version = self._alias_version(target) if target.alias else None
        return DependentSnapshot(
            target=target,
            old_version=old.version,
            new_version=new.version,
            variables=tuple(before),
            alias_version=alias_version,
        )

    def update(self, snapshot: DependentSnapshot, new: VersionedSecret) -> None:
        target = snapshot.target
        if new.version != snapshot.new_version:
            raise DependentError(
                f"The snapshot of {self._where(target)} was taken for version "
                f"{snapshot.new_version}, not {new.version}"
            )
        desired = self._desired(snapshot, new)
        changed = self._apply(target, desired, set())
        if target.alias:
            self._publish_and_move(target, desired)
        log.info(
            "%s: %s %s", self._where(target), "updated" if changed else "already holds",
            ", ".join(sorted(desired)),
        )  # fmt: skip

    def _publish_and_move(self, target: DependentTarget, desired: Mapping[str, str]) -> None:
        current = self._alias_version(target)
        env = self._env(self._config(target, current))
        if all(_same(env.get(k), v) for k, v in desired.items()):
            return
        client = self._client(target)
        resp = self._call(
            target, "lambda:PublishVersion", client.publish_version, FunctionName=target.resource
        )
        self._move_alias(target, str(resp["Version"]))

    def verify(self, snapshot: DependentSnapshot, new: VersionedSecret) -> None:
        target = snapshot.target
        desired = self._desired(snapshot, new)
        checks: list[tuple[str, dict[str, Any]]] = [("$LATEST", self._config(target))]
        if target.alias:
            checks.append((target.alias, self._config(target, self._alias_version(target))))
        for label, cfg in checks:
            status = cfg.get("LastUpdateStatus", "Successful")
            if status != "Successful":
                raise DependentError(
                    f"{self._where(target)} ({label}) has LastUpdateStatus {status}"
                )
            env = self._env(cfg)
            wrong = sorted(k for k, v in desired.items() if not _same(env.get(k), v))
            if wrong:
                raise DependentError(
                    f"{self._where(target)} ({label}) does not hold the new value in "
                    f"{', '.join(wrong)} after the update",
                    hint="Something else changed the function; resume to update it again",
                )

    def rollback(self, snapshot: DependentSnapshot, old: VersionedSecret) -> None:
        target = snapshot.target
        if old.version != snapshot.old_version:
            raise DependentError(
                f"Cannot restore {self._where(target)} from version {old.version}: it held "
                f"version {snapshot.old_version}"
            )
        desired: dict[str, str] = {}
        remove: set[str] = set()
        for v in snapshot.variables:
            if v.state is HeldState.ABSENT:
                remove.add(v.variable)
            elif v.state is HeldState.PLAIN:
                desired[v.variable] = v.plain or ""
            else:
                value = old.value.get(v.field or "value")
                if value is None or (
                    v.state is HeldState.OLD
                    and not _same(self._fp.fingerprint(value), v.fingerprint)
                ):
                    raise DependentError(
                        f"Version {old.version} of {old.name} does not hold what variable "
                        f"{v.variable} of {self._where(target)} held before; not restoring it",
                    )
                desired[v.variable] = value
        self._apply(target, desired, remove)
        if target.alias and snapshot.alias_version:
            self._move_alias(target, snapshot.alias_version)
        log.info("%s: restored %s", self._where(target), ", ".join(sorted({*desired, *remove})))
