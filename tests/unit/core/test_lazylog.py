"""Lazy loggers: no `logging` import until a record is made, then the same handler and
redacting filter as a configured command."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """\
import sys
from keyward.core.lazylog import configure_when_used, logger
configure_when_used(30)
log = logger("keyward.scan.example")
print("logging" in sys.modules)
log.debug("not shown at WARNING")
print("logging" in sys.modules)
log.warning("bad token %s", "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")
"""


def test_logging_is_imported_and_configured_when_a_lazy_logger_is_first_used() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]
    # keyward's handler format, and the value redacted by its filter
    assert proc.stderr == "keyward: WARNING: bad token ghp_…m1IL\n"


def test_configure_when_used_configures_at_once_when_logging_is_imported() -> None:
    script = "import logging\n" + SCRIPT.replace('print("logging" in sys.modules)\n', "")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.stderr == "keyward: WARNING: bad token ghp_…m1IL\n"
