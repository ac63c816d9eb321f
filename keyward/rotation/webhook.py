"""Rotation events to a webhook: a JSON ``POST`` on success and on failure.

Configured by ``[rotation] webhook_url`` (or ``KEYWARD_WEBHOOK_URL``). An event names the
rotation, the secret, its store and kind, the state, the actor, the time and, on failure, the
error text; never a value. A webhook that fails or times out is logged and never breaks a
rotation.

Events: ``rotation.finished`` (the new value is current), ``rotation.retired`` (the old
credential is retired), ``rotation.rolled_back`` (a failure before finish was undone) and
``rotation.failed`` (a rollback could not finish and needs attention).
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping

from keyward.core.errors import ConfigError
from keyward.rotation.driver import Notifier
from keyward.rotation.ports import JsonValue

log = logging.getLogger(__name__)


class WebhookNotifier(Notifier):
    """POSTs each event as JSON to ``url``; failures are logged, never raised."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(  # the URL itself is not echoed: webhook URLs carry tokens
                "[rotation] webhook_url is not an http(s) URL",
                hint="Use e.g. https://hooks.example.com/keyward",
            )
        self.url = url
        self.timeout = timeout

    def __repr__(self) -> str:
        return "WebhookNotifier(url=<configured>)"

    def notify(self, event: Mapping[str, JsonValue]) -> None:
        body = json.dumps(dict(event), sort_keys=True).encode()
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "keyward"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read(1024)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            # a status or socket reason; never str(exc): http.client.InvalidURL quotes the URL
            reason = (
                getattr(exc, "code", None) or getattr(exc, "reason", None) or type(exc).__name__
            )
            log.warning("webhook for %s failed: %s", event.get("event"), reason)
            return
        log.info("webhook: sent %s for rotation %s", event.get("event"), event.get("rotation_id"))


def notifier_for(url: str | None, timeout: float = 5.0) -> Notifier:
    return WebhookNotifier(url, timeout) if url else Notifier()
