"""``keyward.scan`` knows nothing of the inventory, rotation, verification or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import keyward.scan

FORBIDDEN = ("keyward.inventory", "keyward.rotation", "keyward.verify", "keyward.cli")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_scan_module_imports_inventory_rotation_verify_or_the_cli() -> None:
    root = Path(keyward.scan.__file__).parent
    modules = sorted(root.rglob("*.py"))
    assert len(modules) > 20
    bad = {
        f"{p.relative_to(root)}: {name}"
        for p in modules
        for name in imported(p)
        if name.startswith(FORBIDDEN)
    }
    assert not bad, sorted(bad)
