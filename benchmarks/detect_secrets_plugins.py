"""Cost of --detect-secrets-plugins: the same tree scanned with and without them.

    python benchmarks/detect_secrets_plugins.py [TREE]   (default: installed click + rich)

Each run is a fresh ``keyward scan`` process (cold start included), one job, the ``re``
engine (so the difference is the plugins alone); best of three. Prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def run(target: Path, *extra: str) -> tuple[float, int]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [str(BIN / "keyward"), "scan", str(target), "--no-ignore", "--format", "json",
           "-o", str(out), "--no-progress", *extra]  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CI": "1"})
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stderr[-2000:])
    return wall, len(json.loads(out.read_text())["findings"])


def main() -> None:
    if len(sys.argv) > 1:
        targets = [Path(sys.argv[1])]
    else:
        import click
        import rich

        targets = [Path(click.__file__).parent, Path(rich.__file__).parent]
    size = sum(tree_bytes(t) for t in targets)
    print(f"tree: {', '.join(str(t) for t in targets)} ({size / 1e6:.1f} MB)\n")
    print("| run | wall s | MB/s | findings |")
    print("| --- | ---: | ---: | ---: |")
    for label, extra in (
        ("keyward", ("-j", "1", "--engine", "re")),
        (
            "keyward --detect-secrets-plugins",
            ("-j", "1", "--engine", "re", "--detect-secrets-plugins"),
        ),
    ):
        walls, n = [], 0
        for _ in range(3):
            w, n = 0.0, 0
            for t in targets:
                tw, tn = run(t, *extra)
                w, n = w + tw, n + tn
            walls.append(w)
        best = min(walls)
        print(f"| {label} | {best:.2f} | {size / 1e6 / best:.2f} | {n} |")


if __name__ == "__main__":
    main()
