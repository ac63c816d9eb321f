"""The scan path never loads the database stack; --record loads it only when used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "psycopg")


def test_scan_command_module_does_not_import_the_database_stack() -> None:
    code = (
        "import sys, keyward.cli.scan, keyward.scan.runner, keyward.inventory;"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
