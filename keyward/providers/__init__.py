"""The one place that talks to AWS (boto3) and Vault (hvac).

Everything else in keyward reaches a provider through here:

* :mod:`~keyward.providers.settings` — where and as whom: :class:`AwsSettings` (profile,
  region, endpoint, timeout and retry overrides), the :class:`Account` a client is for (keyward's
  own, or one reached by assuming a role: ``[aws.accounts]``, :func:`aws_accounts`,
  :func:`choose_accounts`), :class:`VaultSettings`; read from ``[rotation.aws]``,
  ``[rotation.vault]`` and the ``AWS_*`` / ``VAULT_*`` environment.
* :mod:`~keyward.providers.aws` — :class:`AwsClients`, the one boto3 client factory, with a
  :class:`ClientPreset` per use (:data:`SCAN`, :data:`ROTATE`, :data:`VERIFY`), and
  :func:`aws_errors`, the boundary that turns botocore exceptions into keyward errors.
* :mod:`~keyward.providers.vault` — :class:`VaultClients` (token or AppRole login, re-login)
  and :class:`VaultCaller`, the boundary for hvac calls.
* :mod:`~keyward.providers.errors` — the :class:`ErrorFamily` tables: "no credentials",
  "credentials rejected", "denied", "unreachable" and "throttled" exit 3 for every consumer,
  each as one sentence naming the action and the resource, never a value.

:class:`Providers` bundles both for one command or one daemon tick. Importing this package
loads neither boto3, botocore, hvac nor requests: they are imported when a client is built or
an error is translated, so the pre-commit path stays light.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from keyward.core.config import Config
from keyward.providers.aws import (
    ROTATE,
    SCAN,
    VERIFY,
    AwsClients,
    AwsService,
    ClientPreset,
    aws_errors,
)
from keyward.providers.errors import PROVIDER_ERRORS, STORE_ERRORS, ErrorFamily
from keyward.providers.settings import (
    HOME,
    Account,
    AwsCredentials,
    AwsSettings,
    VaultSettings,
    aws_accounts,
    aws_settings,
    choose_accounts,
    find_account,
    home_account,
    vault_settings,
)
from keyward.providers.vault import VaultCaller, VaultClients

__all__ = [
    "HOME",
    "PROVIDER_ERRORS",
    "ROTATE",
    "SCAN",
    "STORE_ERRORS",
    "VERIFY",
    "Account",
    "AwsClients",
    "AwsCredentials",
    "AwsService",
    "AwsSettings",
    "ClientPreset",
    "ErrorFamily",
    "Providers",
    "VaultCaller",
    "VaultClients",
    "VaultSettings",
    "aws_accounts",
    "aws_errors",
    "aws_settings",
    "choose_accounts",
    "find_account",
    "home_account",
    "vault_settings",
]


class Providers:
    """AWS and Vault clients for one CLI run or one daemon tick (passed in, never global).

    ``aws`` builds boto3 clients with ``preset`` (rotation's unless told otherwise); ``vault``
    the authenticated hvac client. Nothing is imported or connected until first asked for."""

    def __init__(
        self,
        aws: AwsSettings | None = None,
        vault: VaultSettings | None = None,
        *,
        preset: ClientPreset = ROTATE,
    ) -> None:
        self.aws = AwsClients(aws, preset)
        self.vault = VaultClients(vault)

    @classmethod
    def from_config(
        cls,
        config: Config,
        env: Mapping[str, str] | None = None,
        *,
        preset: ClientPreset = ROTATE,
    ) -> Providers:
        """Settings from ``[rotation.aws]``, ``[rotation.vault]`` and the environment."""
        return cls(aws_settings(config, env), vault_settings(config, env), preset=preset)

    def for_account(self, account: Account) -> Providers:
        """The same clients, with AWS ones for ``account`` unless a call names another
        (what a secret of that account is rotated with)."""
        view = copy.copy(self)
        view.aws = self.aws.for_account(account)
        return view

    def __repr__(self) -> str:
        return f"Providers(aws={self.aws!r}, vault={self.vault!r})"
