"""Record every AWS action keyward performs (a botocore event hook), to compare with a policy.

Every botocore client created in this process while :class:`ActionLog` is installed gets a
``before-call`` handler; calls made while the log is ``recording`` are kept as IAM action
names (``lambda:GetFunction``): the service's signing name and the operation's name, which
is how IAM names actions for every service keyward calls. A waiter's polls are ordinary
calls, so ``function_updated_v2`` shows up as ``lambda:GetFunction``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
IAM_POLICY = ROOT / "deploy" / "policies" / "iam-rotation-policy.json"
VAULT_POLICY = ROOT / "deploy" / "policies" / "vault-keyward.hcl"


class ActionLog:
    def __init__(self) -> None:
        self.actions: set[str] = set()
        self.recording = False
        self._lock = threading.Lock()

    def _seen(self, model: Any, **_: Any) -> None:
        if self.recording:
            with self._lock:
                self.actions.add(f"{model.service_model.signing_name}:{model.name}")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> ActionLog:
        import botocore.session

        create = botocore.session.Session.create_client
        log = self

        def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
            client = create(self, *args, **kwargs)
            client.meta.events.register("before-call", log._seen)
            return client

        monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
        return self

    @contextmanager
    def on(self) -> Iterator[None]:
        """Record only keyward's calls, not the test's own set-up and checks."""
        self.recording = True
        try:
            yield
        finally:
            self.recording = False


def policy_actions(path: Path = IAM_POLICY) -> set[str]:
    """Every action the shipped IAM policy allows (its statements have no wildcards)."""
    doc = json.loads(path.read_text())
    out: set[str] = set()
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow", st
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        for action in actions:
            assert "*" not in action, f"{st.get('Sid')}: a wildcard hides what is used"
            out.add(action)
    return out


def policy_for_moto(path: Path = IAM_POLICY) -> dict[str, Any]:
    """The shipped policy's actions, on every resource: moto evaluates actions, not the
    shipped resource ARNs (its account and region are placeholders), nor conditions."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": sorted(policy_actions(path)), "Resource": "*"}],
    }


def vault_policy_text(path: Path = VAULT_POLICY) -> str:
    text = path.read_text()
    assert re.search(r'path "secret/data/app/\*"', text), "the shipped policy's example paths"
    return text
