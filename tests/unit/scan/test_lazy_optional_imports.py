"""The Lambda source, the detect-secrets bridge and the scan command's extra options import
boto3, botocore and detect_secrets only when they run (the pre-commit path stays light)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("boto3", "botocore", "detect_secrets", "keyward.verify.http", "keyward.verify.aws")


def test_importing_lambda_source_bridge_and_scan_cli_loads_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "import keyward.scan.sources.aws_lambda, keyward.scan.plugins_ds\n"
        "import keyward.cli.scan, keyward.cli.scan_options\n"
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_plain_file_scan_loads_no_heavy_module(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "from keyward.cli import main\n"
        "try:\n"
        "    main(['scan', '--engine', 're', '--format', 'json', '.'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=%s' % bad)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path)
    )
    assert "HEAVY=[]" in proc.stderr, proc.stderr
