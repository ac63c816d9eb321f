"""Run ``keyward`` with a crash point: ``KEYWARD_TEST_CRASH_AT=<checkpoint>`` (e.g. ``set:before``,
``dependents:inside:10``) kills this process with SIGKILL when the rotation engine reaches it;
``KEYWARD_TEST_SIGTERM_AT=<checkpoint>`` sends it SIGTERM there instead.

``KEYWARD_TEST_CRASH_AFTER_CALL=<action>[#n]`` kills it right after the ``n``-th (default:
first) provider call named ``action`` (a trailing ``*``: starting with it) returned: a point
*between two provider calls* inside a store or rotator method, where the engine has no
checkpoint (``write staging data`` or ``write`` of the Vault store, ``PutParameter#2`` or
``LabelParameterVersion`` of the SSM store, ``UpdateSecretVersionStage`` of the Secrets
Manager store, ``iam:CreateAccessKey`` of the IAM rotator). The action is what the plugin
passes to its provider boundary (``VaultCaller`` for Vault, ``_call`` for the others).

Only the tests use this; keyward's own ``RotationEngine.checkpoint`` does nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from keyward.rotation import engine

POINT = os.environ.get("KEYWARD_TEST_CRASH_AT", "")
TERM_POINT = os.environ.get("KEYWARD_TEST_SIGTERM_AT", "")
CALL, _, NTH = os.environ.get("KEYWARD_TEST_CRASH_AFTER_CALL", "").partition("#")
_seen = {"calls": 0}


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def checkpoint(self: engine.RotationEngine, point: str) -> None:
    if point == POINT:
        _die()
    if point == TERM_POINT:  # as if the orchestrator stopped us mid-step
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the handler (main thread) runs; this step still completes


def _after(action: str) -> None:
    wanted = action.startswith(CALL[:-1]) if CALL.endswith("*") else action == CALL
    if not wanted:
        return
    _seen["calls"] += 1
    if _seen["calls"] == int(NTH or 1):
        _die()


def _patch_provider_calls() -> None:
    from keyward.providers.vault import VaultCaller
    from keyward.rotation.rotators.aws_iam import IamAccessKeyRotator
    from keyward.rotation.stores.aws_secretsmanager import SecretsManagerStore
    from keyward.rotation.stores.aws_ssm import ParameterStore

    vault_call = VaultCaller.__call__

    def vault(self: VaultCaller, action: str, path: str, fn: Any, /, *a: Any, **kw: Any) -> Any:
        out = vault_call(self, action, path, fn, *a, **kw)
        _after(action)
        return out

    VaultCaller.__call__ = vault  # type: ignore[method-assign]
    for cls in (ParameterStore, SecretsManagerStore, IamAccessKeyRotator):
        _wrap_call(cls)


def _wrap_call(cls: Any) -> None:
    """``cls._call(self, action, resource, fn, **kw)``: die after the named call returned."""
    original = cls._call

    def call(self: Any, action: str, resource: str, fn: Any, **kw: Any) -> Any:
        out = original(self, action, resource, fn, **kw)
        _after(action)
        return out

    cls._call = call


engine.RotationEngine.checkpoint = checkpoint  # type: ignore[method-assign]
if CALL:
    _patch_provider_calls()

if __name__ == "__main__":
    from keyward.cli import main

    main(sys.argv[1:])
