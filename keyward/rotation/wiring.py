"""Wiring: which store, rotator and dependents rotate an inventoried secret, with what options.

A secret in the inventory (a :class:`~keyward.rotation.ports.RotatableSecret`) names its
rotator (``kind``), its store (``store``) and where it is in that store (``reference``, else its
name). Options come from the config file and can be overridden per secret (its ``options``:
``attributes["rotation"]`` in the inventory)::

    [rotation]
    grace_period = "7d"         # deactivate the old credential at once, revoke it after this
    deactivate_after = "0s"     # wait this long after finish before deactivating
    lease_ttl = "10m"           # how long a worker's claim on a secret lasts without renewal
    webhook_url = "https://hooks.example.com/keyward"

    [rotation.stores.aws-secretsmanager]
    region = "eu-west-1"

    [rotation.rotators.aws-iam-access-key]
    test_delay = 2.0

    [rotation.dependents.aws-lambda]
    wait_delay = 2

    [rotation.secrets."prod/aws"]   # per secret, merged over the tables above
    rotator = { user_name = "app" }
    store = { region = "us-east-1" }

Dependents come from the inventory's ``dependents`` rows: rows of one kind, target and region
are one :class:`DependentTarget`; each row's ``variable`` is bound to the secret field named in
its ``attributes["field"]``, else the field whose name matches the variable
(``AWS_SECRET_ACCESS_KEY`` -> ``secret_access_key``, ``DB_PASSWORD`` -> ``password``), else the
only field. A row without a variable, or with ``attributes["mode"] = "reference"``, is a
reference-mode target (``KEYWARD_SECRET_VERSION`` is bumped). Per target, the config file can
say more::

    [rotation.secrets."prod/aws".targets."orders-api"]
    alias = "live"                                   # publish a version, move the alias
    fields = { LEGACY_KEY = "secret_access_key" }    # variable -> field
    # mode = "reference"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from keyward.core.config import Config
from keyward.core.durations import duration_seconds
from keyward.core.errors import ConfigError
from keyward.rotation.ports import DependentRow, JsonObject, RotatableSecret
from keyward.rotation.protocols import (
    Dependent,
    DependentMode,
    DependentTarget,
    EnvBinding,
    Rotator,
    SecretStore,
)

if TYPE_CHECKING:
    from keyward.rotation.registry import PluginContext, PluginLoader

STORE_ALIASES = {
    "vault": "vault-kv",
    "openbao": "vault-kv",
    "secretsmanager": "aws-secretsmanager",
    "aws-secrets-manager": "aws-secretsmanager",
    "aws-sm": "aws-secretsmanager",
}


def _duration(value: Any, what: str) -> timedelta:
    """A ``[rotation]`` duration: seconds as a number, or text with a unit (bare: seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=float(value))
    seconds = duration_seconds(str(value).strip(), bare_unit="s")
    if seconds is None:
        raise ConfigError(
            f"[rotation] {what} {value!r} is not a duration",
            hint="Use a number of seconds or a number with a unit: 30s, 10m, 12h, 7d",
        )
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class RotationSettings:
    grace_period: timedelta = timedelta(days=7)
    deactivate_after: timedelta = timedelta(0)
    lease_ttl: timedelta = timedelta(minutes=10)
    kept_in_use_retry: timedelta = timedelta(hours=1)
    retry_backoff: timedelta = timedelta(minutes=5)
    webhook_url: str | None = None
    webhook_timeout: float = 5.0
    # what a leak of a secret's current version sets off when the secret says nothing:
    # "rotate", "alert" or "ignore"; None: rotate when keyward can rotate it, else alert
    on_leak: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> RotationSettings:
        t = config.section("rotation")
        d = cls()
        url = config.get("rotation", "webhook_url")
        return cls(
            grace_period=_duration(
                t.get("grace_period", d.grace_period.total_seconds()), "grace_period"
            ),
            deactivate_after=_duration(
                t.get("deactivate_after", d.deactivate_after.total_seconds()), "deactivate_after"
            ),
            lease_ttl=_duration(t.get("lease_ttl", d.lease_ttl.total_seconds()), "lease_ttl"),
            kept_in_use_retry=_duration(
                t.get("kept_in_use_retry", d.kept_in_use_retry.total_seconds()),
                "kept_in_use_retry",
            ),
            retry_backoff=_duration(
                t.get("retry_backoff", d.retry_backoff.total_seconds()), "retry_backoff"
            ),
            webhook_url=str(url) if url else None,
            webhook_timeout=config.number(
                "rotation", "webhook_timeout", d.webhook_timeout, minimum=0.1
            ),
            on_leak=on_leak_setting(config),
        )


ON_LEAK_CHOICES = ("rotate", "alert", "ignore")


def on_leak_setting(config: Config) -> str | None:
    """``[rotation] on_leak`` (or ``KEYWARD_ON_LEAK``): rotate, alert or ignore."""
    value = config.get("rotation", "on_leak")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() not in ON_LEAK_CHOICES:
        raise ConfigError(
            f"[rotation] on_leak {value!r} is not one of {', '.join(ON_LEAK_CHOICES)}",
            hint="Use rotate (rotate a leaked secret at once), alert (webhook and audit only) "
            "or ignore",
        )
    return value.strip().lower()


def rotatable_plugins() -> tuple[frozenset[str], frozenset[str]]:
    """What keyward can rotate here: the rotator kinds and the store names (with their
    aliases) installed as plugins (nothing is imported)."""
    from keyward.rotation.registry import PluginGroup, available

    stores = set(available(PluginGroup.STORES))
    aliases = {a for a, kind in STORE_ALIASES.items() if kind in stores}
    return frozenset(available(PluginGroup.ROTATORS)), frozenset(stores | aliases)


def _table(config: Config, *path: str) -> dict[str, Any]:
    node: Any = config.table
    for part in path:
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"[{'.'.join(path)}] in {config.path} must be a table")
    return dict(node)


def plugin_options(
    config: Config, role: str, kind: str, secret: str, per_secret: JsonObject
) -> dict[str, Any]:
    """Options for the plugin ``kind`` in ``role`` ("stores", "rotators", "dependents"):
    the config file's ``[rotation.<role>.<kind>]``, then ``[rotation.secrets."<secret>"]``,
    then the secret's own options (``per_secret``)."""
    short = {"stores": "store", "rotators": "rotator", "dependents": "dependent"}[role]
    opts = _table(config, "rotation", role, kind)
    opts.update(_table(config, "rotation", "secrets", secret, short))
    own = per_secret.get(short)
    if isinstance(own, Mapping):
        opts.update(own)
    return opts


def store_kind(store: str | None, secret: str) -> str:
    if not store:
        raise ConfigError(
            f"The secret {secret!r} has no store in the inventory, so keyward cannot rotate it",
            hint=f"Set one: keyward inventory update {secret} --store aws-secretsmanager "
            "--reference NAME",
        )
    return STORE_ALIASES.get(store, store)


def store_name(kind: str, reference: str | None, secret: str, options: Mapping[str, Any]) -> str:
    """The name a store knows the secret by (a Vault ``mount/data/`` prefix is dropped)."""
    ref = (reference or secret).strip()
    if kind == "vault-kv":
        mount = str(options.get("mount", "secret")).strip("/")
        for prefix in (f"{mount}/data/", f"{mount}/"):
            if ref.startswith(prefix):
                return ref[len(prefix) :]
    return ref


def guess_field(variable: str, fields: Sequence[str]) -> str | None:
    """The secret field a variable most likely holds (exact, suffix, then the only field)."""
    low = variable.lower()
    for f in fields:
        if f.lower() == low:
            return f
    matches = [f for f in fields if low.endswith(f.lower())]
    if matches:
        return max(matches, key=len)
    compact = low.replace("_", "")
    for f in fields:
        if compact.endswith(f.lower().replace("_", "")):
            return f
    if len(fields) == 1:
        return fields[0]
    return None


def targets_for(
    rows: Sequence[DependentRow],
    fields: Sequence[str],
    secret: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    secret_account: str | None = None,
) -> tuple[DependentTarget, ...]:
    """Group dependents rows into targets, binding each variable to a secret field.

    ``overrides`` maps a target (function name or ARN) to attributes from the config file
    (``[rotation.secrets."NAME".targets."TARGET"]``: ``mode``, ``alias``, ``fields``). A
    target in another AWS account than the secret's (``secret_account``) names it."""
    grouped: dict[tuple[str, str, str | None, str | None], list[DependentRow]] = {}
    for row in rows:
        grouped.setdefault((row.kind, row.target, row.region, row.account), []).append(row)
    targets: list[DependentTarget] = []
    for (kind, target, region, account), items in grouped.items():
        attrs: dict[str, Any] = {}
        for r in items:
            attrs.update(r.attributes)
        attrs.update((overrides or {}).get(target, {}))
        field_of = dict(attrs.get("fields") or {})
        reference = attrs.get("mode") == DependentMode.REFERENCE.value or all(
            r.variable is None for r in items
        )
        bindings: list[EnvBinding] = []
        if not reference:
            for r in items:
                if r.variable is None:
                    continue
                fld = (
                    field_of.get(r.variable)
                    or r.attributes.get("field")
                    or guess_field(r.variable, fields)
                )
                if fld is None:
                    raise ConfigError(
                        f"Cannot tell which field of {secret!r} the variable {r.variable} of "
                        f"{target} holds (fields: {', '.join(fields)})",
                        hint=f'Set it in [rotation.secrets."{secret}".targets."{target}"] '
                        f'fields = {{ {r.variable} = "FIELD" }}',
                    )
                bindings.append(EnvBinding(r.variable, str(fld)))
        targets.append(
            DependentTarget(
                kind=kind,
                resource=target,
                bindings=tuple(bindings),
                region=region,
                mode=DependentMode.REFERENCE if reference else DependentMode.VALUE,
                alias=attrs.get("alias"),
                account=account if account != secret_account else None,
            )
        )
    return tuple(targets)


class Wiring:
    """Builds the store, rotator and dependents of a secret from the config and the provider
    clients of ``context``.

    A secret with an AWS ``account`` gets plugins whose AWS clients act in that account: the
    ``[aws.accounts]`` entry with its id (its role assumed), or keyward's own account when it
    is that one; any other account is refused before a call is made
    (:meth:`keyward.providers.aws.AwsClients.resolve`)."""

    def __init__(
        self, config: Config, context: PluginContext, loader: PluginLoader | None = None
    ) -> None:
        from keyward.rotation.registry import PluginLoader

        self.config = config
        self.context = context
        # entry points found and plugin classes checked once (shared by a daemon's wirings)
        self.loader = loader or PluginLoader()
        self._contexts: dict[str | None, PluginContext] = {None: context}

    def context_for(self, secret: RotatableSecret) -> PluginContext:
        """The plugin context whose AWS clients act in ``secret``'s account."""
        found = self._contexts.get(secret.account)
        if found is None:
            from dataclasses import replace

            clients = self.context.clients
            account = clients.aws.resolve(secret.account)
            found = replace(self.context, clients=clients.for_account(account))
            self._contexts[secret.account] = found
        return found

    def account_label(self, secret: RotatableSecret) -> str | None:
        """How messages name the secret's AWS account (``None``: keyward's own, unnamed)."""
        if secret.account is None:
            return None
        return self.context_for(secret).clients.aws.account.label

    def store_for(self, secret: RotatableSecret) -> tuple[str, str, SecretStore]:
        """The store's kind, the name it knows the secret by, and the store."""
        from keyward.rotation.registry import load_store

        kind = store_kind(secret.store, secret.name)
        opts = plugin_options(self.config, "stores", kind, secret.name, secret.options)
        if kind == "aws-secretsmanager" and "region" not in opts:
            ref = secret.reference or ""
            if ref.startswith("arn:") and len(ref.split(":")) > 3:
                opts["region"] = ref.split(":")[3]
        name = store_name(kind, secret.reference, secret.name, opts)
        return kind, name, load_store(kind, self.context_for(secret), opts, self.loader)

    def rotator_for(self, secret: RotatableSecret) -> Rotator:
        from keyward.rotation.registry import load_rotator

        opts = plugin_options(self.config, "rotators", secret.kind, secret.name, secret.options)
        return load_rotator(secret.kind, self.context_for(secret), opts, self.loader)

    def target_overrides(self, secret: RotatableSecret) -> dict[str, dict[str, Any]]:
        """Per-target attributes from ``[rotation.secrets."NAME".targets."TARGET"]``."""
        table = _table(self.config, "rotation", "secrets", secret.name, "targets")
        return {str(k): dict(v) for k, v in table.items() if isinstance(v, Mapping)}

    def dependent(self, kind: str, secret: RotatableSecret) -> Dependent:
        from keyward.rotation.registry import load_dependent

        opts = plugin_options(self.config, "dependents", kind, secret.name, secret.options)
        return load_dependent(kind, self.context_for(secret), opts, self.loader)
