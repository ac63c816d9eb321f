"""The rotation webhook notifier's configuration errors."""

from __future__ import annotations

import logging

import pytest

from keyward.core.errors import ConfigError
from keyward.rotation.webhook import WebhookNotifier, notifier_for


def test_a_webhook_url_without_a_scheme_is_refused_without_echoing_its_token() -> None:
    token = "B0123456789/abcdefghijklmnopqrstuvwx"
    with pytest.raises(ConfigError, match="webhook_url is not an http") as info:
        notifier_for(f"hooks.example.com/services/T0000/{token}")
    assert token not in str(info.value)
    assert token not in repr(info.value)


def test_a_failing_webhook_is_logged_without_its_url(caplog: pytest.LogCaptureFixture) -> None:
    token = "abcdefghijklmnopqrstuvwx"
    # a space in the path: http.client refuses it with an InvalidURL quoting the URL
    notifier = WebhookNotifier(f"http://127.0.0.1:9/hooks/{token} x")
    with caplog.at_level(logging.WARNING):
        notifier.notify({"event": "rotation.finished", "rotation_id": 1})
    assert "webhook for rotation.finished failed" in caplog.text
    assert token not in caplog.text
