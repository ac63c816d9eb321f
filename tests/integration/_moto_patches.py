"""In-process patches for known moto gaps (the moto server runs in the test process).

Only used by tests that switch moto's credential checking on. Each helper names the gap it
closes; none of them changes what keyward sends.
"""

from __future__ import annotations

from typing import Any

import pytest


def fix_get_request_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2 signs a body-less GET with the request headers as its body.

    With credential checking on, every GET to a REST API (Lambda ``ListFunctions``,
    ``GetFunction``) then fails with SignatureDoesNotMatch. Real AWS signs the empty body.
    """
    from moto.iam import access_control

    original = access_control.IAMRequestBase._create_aws_request

    def create(self: Any) -> Any:
        if self._method in ("GET", "HEAD", "DELETE") and not self._body:
            self._data = b""
        return original(self)

    monkeypatch.setattr(access_control.IAMRequestBase, "_create_aws_request", create)


def reject_inactive_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto accepts an Inactive access key; real AWS answers InvalidClientTokenId."""
    from moto.iam import access_control

    original = access_control.IAMUserAccessKey.__init__

    def init(self: Any, account_id: str, partition: str, access_key_id: str, headers: Any) -> None:
        original(self, account_id, partition, access_key_id, headers)
        for user in self.backend.list_users("/", None, None):
            for key in user.access_keys:
                if key.access_key_id == access_key_id and key.status != "Active":
                    raise access_control.CreateAccessKeyFailure(reason="InvalidId")

    monkeypatch.setattr(access_control.IAMUserAccessKey, "__init__", init)
