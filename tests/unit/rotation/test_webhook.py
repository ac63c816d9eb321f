"""The rotation webhook notifier's configuration errors."""

from __future__ import annotations

import pytest

from keyward.core.errors import ConfigError
from keyward.rotation.webhook import notifier_for


def test_a_webhook_url_without_a_scheme_is_refused_without_echoing_its_token() -> None:
    token = "B0123456789/abcdefghijklmnopqrstuvwx"
    with pytest.raises(ConfigError, match="webhook_url is not an http") as info:
        notifier_for(f"hooks.example.com/services/T0000/{token}")
    assert token not in str(info.value)
    assert token not in repr(info.value)
