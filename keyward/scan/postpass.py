"""Post-passes: the stage after matching, where a source's findings become its report.

The runner hands every piece of work's findings to its source's post-pass as they arrive,
then asks it for the source's findings:

* :class:`KeepAll` — most sources: every finding as matched.
* :class:`FirstIntroduction` — git history: the same secret (rule + fingerprint) seen in many
  commits is one finding, the earliest introduction in history order; inline-allowed in any
  version means allowed; then whether it is still present at HEAD.
* :class:`LambdaFindings` — live Lambda: a key id and its secret key held in two variables of
  one function become one paired finding (:func:`pair_across_variables`), and each function's
  configuration adds its own findings (:func:`kms_findings`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from keyward.scan.model import Confidence, Finding, Location, Severity, SourceKind
from keyward.scan.sources.base import Work

if TYPE_CHECKING:
    from keyward.scan.rules import Rule

KMS_RULE_ID = "aws-lambda-env-not-cmk-encrypted"
KMS_DESCRIPTION = "Lambda environment variables not encrypted with a customer managed KMS key"


@dataclass(slots=True)
class KeepAll:
    """Every finding, as matched."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, work: Work, findings: Sequence[Finding]) -> None:
        self.findings.extend(findings)

    def finish(self) -> list[Finding]:
        return self.findings


class Ordered(Work, Protocol):
    """Work whose findings have a place in history (commits, oldest first)."""

    def order_of(self, commit: str | None) -> int:
        """The history position of ``commit`` (the work's first position when unknown)."""
        ...


Key = tuple[str, str]  # (rule id, fingerprint): one finding per secret


@dataclass(slots=True)
class FirstIntroduction:
    """One finding per secret: the earliest in history order, naming the commit that
    introduced it. ``present`` gives the indexes of findings whose value is still at HEAD."""

    present: Callable[[Sequence[Finding]], set[int]]
    best: dict[Key, tuple[int, Finding]] = field(default_factory=dict)
    allowed: set[Key] = field(default_factory=set)

    def add(self, work: Ordered, findings: Sequence[Finding]) -> None:
        for f in findings:
            key = (f.rule_id, f.fingerprint)
            if f.suppressed_by == "inline":
                self.allowed.add(key)
            order = work.order_of(f.location.commit)
            prior = self.best.get(key)
            if prior is None or order < prior[0]:
                self.best[key] = (order, f)

    def finish(self) -> list[Finding]:
        findings = [
            f.with_(
                introduced=f.location.commit,
                suppressed_by="inline" if key in self.allowed else f.suppressed_by,
            )
            for key, (_, f) in sorted(self.best.items(), key=lambda kv: kv[1][0])
        ]
        present = self.present(findings)
        return [f.with_(still_present=i in present) for i, f in enumerate(findings)]


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    """What the scan learned about one function, besides its chunks."""

    arn: str
    name: str
    region: str
    variables: int
    account: str | None = None  # from the ARN
    kms_key_arn: str | None = None
    code_size: int | None = None
    package_type: str = "Zip"
    version: str = "$LATEST"


@dataclass(slots=True)
class LambdaFindings:
    """Findings of live Lambda functions: pairs across variables, then configuration
    findings of the functions the source listed (``functions`` fills while it works)."""

    rules: Sequence[Rule]
    functions: list[FunctionRecord]
    check_kms: bool = True
    findings: list[Finding] = field(default_factory=list)

    def add(self, work: Work, findings: Sequence[Finding]) -> None:
        self.findings.extend(findings)

    def finish(self) -> list[Finding]:
        ordered = sorted(self.findings, key=Finding.sort_key)  # pairs do not depend on timing
        out = pair_across_variables(ordered, self.rules)
        if self.check_kms:
            out.extend(kms_findings(self.functions))
        return out


def pair_across_variables(findings: list[Finding], rules: Sequence[Rule]) -> list[Finding]:
    """Pair findings of one function held in different variables (key id + secret key).

    The engine pairs within a chunk; a function keeps ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY`` in two variables, hence two chunks.
    """
    pairs = {r.id: r.pair.rule for r in rules if r.pair is not None}
    if not pairs:
        return findings
    used: set[int] = set()
    out = list(findings)
    for i, f in enumerate(findings):
        want = pairs.get(f.rule_id)
        if want is None or f.companion is not None or f.location.path is not None:
            continue
        for j, other in enumerate(findings):
            if (
                j in used
                or j == i
                or other.rule_id != want
                or other.location.resource != f.location.resource
                or other.location.path is not None
            ):
                continue
            used.add(j)
            out[i] = f.with_(
                companion=other.secret,
                companion_preview=other.preview,
                companion_location=other.location,
                severity=max(f.severity, other.severity, key=lambda s: s.rank),
                confidence=max(f.confidence, other.confidence, key=lambda c: c.rank),
            )
            break
    return [f for k, f in enumerate(out) if k not in used]


def kms_findings(functions: Iterable[FunctionRecord]) -> list[Finding]:
    """One low-severity finding per function with variables but no customer managed key.

    Only ``$LATEST`` counts: a published version cannot be changed, the next one can."""
    out: list[Finding] = []
    for fn in functions:
        if fn.variables == 0 or fn.kms_key_arn or fn.version != "$LATEST":
            continue
        digest = hashlib.sha256(f"{KMS_RULE_ID}|{fn.arn}".encode()).hexdigest()
        out.append(
            Finding(
                rule_id=KMS_RULE_ID,
                severity=Severity.LOW,
                location=Location(kind=SourceKind.LAMBDA, resource=fn.arn, region=fn.region),
                preview=f"{fn.variables} variable{'s' if fn.variables != 1 else ''}, "
                "AWS managed key",
                fingerprint=digest,
                description=KMS_DESCRIPTION,
                confidence=Confidence.HIGH,  # read from the function's configuration
            )
        )
    return out
