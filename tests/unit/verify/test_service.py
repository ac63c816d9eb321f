"""verify_findings: one check per distinct credential, bounded concurrency, failures unknown."""

from __future__ import annotations

import threading
import time

import pytest

from keyward.core.errors import ConfigError
from keyward.scan.model import Finding, Location, Severity, Verification
from keyward.verify.service import VerifySettings, verify_findings


def finding(secret: str, rule_id: str = "fake-token", companion: str | None = None) -> Finding:
    return Finding(
        rule_id=rule_id,
        severity=Severity.HIGH,
        location=Location(path="a.txt", line=1),
        preview="…",
        fingerprint="0" * 64,
        secret=secret,
        companion=companion,
    )


class FakeVerifier:
    """A fake of our own protocol: live for secrets starting with 'live'."""

    name = "fake"

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def accepts(self, f: Finding) -> bool:
        return f.rule_id == "fake-token"

    def verify(self, f: Finding) -> Verification:
        with self._lock:
            self.calls.append(f.secret)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay)
        with self._lock:
            self.active -= 1
        if f.secret == "explode":
            raise RuntimeError(f"cannot verify {f.secret}")
        return Verification.LIVE if f.secret.startswith("live") else Verification.REVOKED


def test_same_credential_in_many_places_is_verified_once() -> None:
    v = FakeVerifier()
    out = verify_findings([finding("live-1"), finding("live-1"), finding("dead-1")], [v])
    assert [f.verification for f in out] == [
        Verification.LIVE, Verification.LIVE, Verification.REVOKED,
    ]  # fmt: skip
    assert sorted(v.calls) == ["dead-1", "live-1"]


def test_key_pairs_with_different_companions_are_distinct_checks() -> None:
    v = FakeVerifier()
    verify_findings([finding("live", companion="a"), finding("live", companion="b")], [v])
    assert len(v.calls) == 2


def test_concurrency_never_exceeds_the_worker_limit() -> None:
    v = FakeVerifier(delay=0.02)
    verify_findings([finding(f"live-{i}") for i in range(12)], [v], workers=3)
    assert len(v.calls) == 12
    assert 1 <= v.max_active <= 3


def test_a_verifier_that_raises_gives_unknown_and_the_value_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = verify_findings([finding("explode"), finding("live-2")], [FakeVerifier()])
    assert [f.verification for f in out] == [Verification.UNKNOWN, Verification.LIVE]
    assert "explode" not in caplog.text


def test_findings_without_a_verifier_keep_no_verification() -> None:
    out = verify_findings([finding("x", rule_id="other")], [FakeVerifier()])
    assert out[0].verification is None


def test_settings_come_from_the_verify_table_and_bad_values_are_refused() -> None:
    s = VerifySettings.from_table({"timeout": 3, "workers": 2, "rate_limit": 1.5,
                                   "github_url": "http://x", "verifiers": ["github"]})  # fmt: skip
    assert (s.timeout, s.workers, s.rate, s.names) == (3.0, 2, 1.5, ("github",))
    assert s.context().settings["github_url"] == "http://x"
    with pytest.raises(ConfigError):
        VerifySettings.from_table({"timeout": "soon"})
    with pytest.raises(ConfigError):
        VerifySettings.from_table({"workers": 0})
    with pytest.raises(ConfigError):
        VerifySettings.from_table({"verifiers": "github"})


def test_a_verifier_is_handed_the_finding_it_accepted() -> None:
    """The same value found first by another rule: the verifier still gets its own finding."""
    seen: list[str] = []

    class RuleRecorder(FakeVerifier):
        def verify(self, f: Finding) -> Verification:
            seen.append(f.rule_id)
            return super().verify(f)

    out = verify_findings(
        [finding("live-1", rule_id="generic-secret"), finding("live-1")], [RuleRecorder()]
    )
    assert seen == ["fake-token"]
    assert [f.verification for f in out] == [None, Verification.LIVE]
