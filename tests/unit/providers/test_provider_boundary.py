"""AWS and Vault clients are built, and their exceptions caught, only in keyward/providers/.

An AST walk over keyward/ (docstrings and comments do not count): outside keyward/providers/
nothing imports boto3, botocore, hvac or requests, and nothing builds a boto3 session or
client or an hvac client. The checker is tested on snippets, so the rule cannot pass vacuously.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import keyward

PACKAGE = Path(keyward.__file__).parent
PROVIDERS = PACKAGE / "providers"
CLIENT_LIBRARIES = frozenset({"boto3", "botocore", "hvac", "requests"})
# a receiver that can only be boto3 or a boto3 session: `boto3.client(`, `session.client(`,
# `self._session().client(`
_BOTO_RECEIVER = re.compile(r"boto3|session", re.IGNORECASE)


def violations(source: str, where: str = "<snippet>") -> list[str]:
    """Every place in ``source`` that imports a client library or builds a client."""
    found: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [
                f"{line}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in CLIENT_LIBRARIES
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in CLIENT_LIBRARIES:
                found.append(f"{line}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute):
            text = ast.unparse(node)
            if text.endswith("boto3.session.Session") or text in {"boto3.Session", "hvac.Client"}:
                found.append(f"{line}: {text}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in {"client", "resource"}:
                receiver = ast.unparse(func.value)
                if _BOTO_RECEIVER.search(receiver):
                    found.append(f"{line}: {receiver}.{func.attr}(...)")
            name = ast.unparse(func)
            if name in {"importlib.import_module", "import_module", "__import__"}:
                args = [a.value for a in node.args if isinstance(a, ast.Constant)]
                if any(isinstance(a, str) and a.split(".")[0] in CLIENT_LIBRARIES for a in args):
                    found.append(f"{line}: {name}({args[0]!r})")
    return found


def _sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_outside_providers_imports_a_client_library_or_builds_a_client() -> None:
    outside = [p for p in _sources(PACKAGE) if PROVIDERS not in p.parents]
    assert len(outside) > 50  # the walk really covers the package
    found = [
        v
        for path in outside
        for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    ]
    assert found == [], "build clients and translate errors in keyward/providers/:\n" + "\n".join(
        found
    )


def test_the_providers_package_is_where_clients_are_built() -> None:
    inside = "\n".join(v for p in _sources(PROVIDERS) for v in violations(p.read_text(), p.name))
    assert "boto3.session.Session" in inside
    assert "hvac.Client" in inside
    assert ".client(...)" in inside


def test_rotation_clients_is_gone() -> None:
    assert not (PACKAGE / "rotation" / "clients.py").exists()
    mentions = [
        str(p.relative_to(PACKAGE))
        for p in _sources(PACKAGE)
        if "rotation.clients" in p.read_text(encoding="utf-8")
    ]
    assert mentions == []


def test_the_checker_flags_each_way_of_building_a_client() -> None:
    bad = {
        "import boto3": "import boto3",
        "import botocore.exceptions": "import botocore.exceptions",
        "from hvac import Client": "from hvac import",
        "from requests.exceptions import ConnectionError": "from requests.exceptions",
        "def f(boto3):\n    return boto3.session.Session()": "boto3.session.Session",
        "def f(boto3):\n    return boto3.Session(profile_name='x')": "boto3.Session",
        "def f(hvac):\n    return hvac.Client(url='x')": "hvac.Client",
        "def f(session):\n    return session.client('iam')": "session.client(...)",
        "def f(self):\n    return self._session().client('iam')": "self._session().client",
        "import importlib\nimportlib.import_module('boto3')": "import_module('boto3')",
    }
    for source, expected in bad.items():
        found = violations(source)
        assert any(expected in v for v in found), (source, found)


def test_the_checker_accepts_the_providers_factory_and_plain_code() -> None:
    good = (
        "def f(context):\n    return context.clients.aws.client('iam', 'us-east-1')",
        "def f(aws):\n    return aws.with_credentials('sts', creds)",
        "from keyward.providers.aws import aws_errors",
        '"""boto3.session.Session and hvac.Client( in a docstring do not count"""',
    )
    for source in good:
        assert violations(source) == [], source
