"""--detect-secrets-plugins without detect-secrets installed is a clear usage error."""

from __future__ import annotations

import sys

import pytest

from keyward.core.errors import ConfigError, ExitCode
from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine
from keyward.scan.plugins_ds import with_detect_secrets
from keyward.scan.rules import load_rules


def test_missing_detect_secrets_is_one_sentence_with_an_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "detect_secrets", None)  # import now raises ImportError
    fp = Fingerprinter(b"k" * 32)
    engine = Engine(load_rules(), fp, backend="re")
    with pytest.raises(ConfigError) as err:
        with_detect_secrets(engine, fp)
    assert err.value.exit_code == ExitCode.USAGE
    assert "pip install" in err.value.diagnostics()
    assert "detect-secrets" in err.value.diagnostics()
