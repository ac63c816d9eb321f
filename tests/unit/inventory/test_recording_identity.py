"""A recorded finding's identity: stable across line moves, distinct across places."""

from __future__ import annotations

from keyward.inventory.recording import finding_identity, scan_target
from keyward.scan.model import Finding, Location, Severity, SourceKind


def finding(**loc: object) -> Finding:
    return Finding(
        rule_id="r",
        severity=Severity.HIGH,
        location=Location(**loc),  # type: ignore[arg-type]
        preview="ab…cd",
        fingerprint="f" * 64,
    )


def test_identity_ignores_line_and_column() -> None:
    a = finding(path="a.py", line=1, column=3)
    b = finding(path="a.py", line=40, column=9)
    assert finding_identity("t", a) == finding_identity("t", b)


def test_identity_differs_by_target_path_and_variable() -> None:
    base = finding_identity("t", finding(path="a.py"))
    assert finding_identity("u", finding(path="a.py")) != base
    assert finding_identity("t", finding(path="b.py")) != base
    env = finding(kind=SourceKind.ENV, variable="TOKEN")
    assert finding_identity("t", env) != finding_identity("t", finding(kind=SourceKind.ENV))


def test_default_target_is_the_sorted_absolute_roots(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    target = scan_target([tmp_path / "b", tmp_path / "a"])
    assert target == f"files:{tmp_path / 'a'},{tmp_path / 'b'}"
