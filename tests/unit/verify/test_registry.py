"""The verifier registry: entry points, loaded lazily, checked against the protocol."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from keyward.core.errors import ConfigError
from keyward.scan.model import Finding, Verification
from keyward.verify.base import Verifier, VerifyContext
from keyward.verify.registry import GROUP, available, load_verifiers

BUILTINS = {"aws", "github", "gitlab", "slack", "stripe"}


class GoodVerifier:
    name = "good"

    def __init__(self, context: VerifyContext) -> None:
        self.context = context

    def accepts(self, finding: Finding) -> bool:
        return True

    def verify(self, finding: Finding) -> Verification:
        return Verification.LIVE


class NotAVerifier:
    def __init__(self, context: VerifyContext) -> None:
        pass

    def check(self, finding: Finding) -> bool:
        return True


def failing_factory(context: VerifyContext) -> Verifier:
    raise RuntimeError("boom")


def ep(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{__name__}:{target}", group=GROUP)


def test_builtins_are_registered_through_the_entry_point_group() -> None:
    names = {e.name for e in available()}
    assert names >= BUILTINS
    verifiers = load_verifiers(VerifyContext(), names=sorted(BUILTINS))
    assert {v.name for v in verifiers} == BUILTINS
    assert all(isinstance(v, Verifier) for v in verifiers)


def test_a_third_party_verifier_is_built_with_the_context() -> None:
    ctx = VerifyContext(settings={"x": 1}, timeout=3)
    [v] = load_verifiers(ctx, points=[ep("good", "GoodVerifier")])
    assert isinstance(v, GoodVerifier) and v.context is ctx


def test_plugin_that_does_not_implement_the_protocol_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as info:
        load_verifiers(VerifyContext(), points=[ep("odd", "NotAVerifier")])
    assert "odd" in info.value.diagnostics()
    assert "Verifier protocol" in info.value.diagnostics()


def test_plugin_that_fails_to_import_or_start_names_itself() -> None:
    broken = EntryPoint(name="broken", value="no_such_module_kw:X", group=GROUP)
    with pytest.raises(ConfigError, match="broken"):
        load_verifiers(VerifyContext(), points=[broken])
    with pytest.raises(ConfigError, match="failed to start"):
        load_verifiers(VerifyContext(), points=[ep("fails", "failing_factory")])


def test_unknown_verifier_name_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_verifiers(VerifyContext(), names=["nope"])
    assert "Registered verifiers" in info.value.diagnostics()
    assert "github" in info.value.diagnostics()


def test_importing_the_registry_loads_no_verifier_and_no_boto3() -> None:
    code = (
        "import sys, keyward.verify.registry as r; r.available();"
        "bad = [m for m in ('boto3', 'botocore', 'keyward.verify.http', 'keyward.verify.aws')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
