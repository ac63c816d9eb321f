"""Proving rules against their own examples (used by ``keyward rules check`` and the tests)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Backend, Engine
from keyward.scan.model import Chunk, Location
from keyward.scan.rules import Rule, RuleSet

_KEY = b"keyward-rule-examples-key"


def example_findings(
    rule: Rule, example: str, ruleset: RuleSet | None = None, backend: Backend = "re"
) -> list[str]:
    """Rule ids that fire on ``example`` (just this rule, unless a whole ruleset is given)."""
    engine = _engine(ruleset or RuleSet((rule,)), backend)
    chunk = Chunk(example, Location(path="example.txt"))
    return [f.rule_id for f in engine.scan(chunk) if f.suppressed_by is None]


@lru_cache(maxsize=16)
def _engine(rules: RuleSet, backend: Backend) -> Engine:
    """Engines are reused across examples: building one compiles every rule."""
    return Engine(rules, Fingerprinter(_KEY), backend=backend)


def check_examples(rules: Iterable[Rule]) -> list[str]:
    """Problems found, as sentences; empty when every example behaves. Each rule is proved
    alone: among all rules a more specific one may rightly win an example's span."""
    problems: list[str] = []
    for rule in rules:
        if not rule.positive:
            problems.append(f"rule {rule.id} has no positive example")
        problems.extend(
            f"rule {rule.id}: positive example not detected: {ex[:60]!r}"
            for ex in rule.positive
            if rule.id not in example_findings(rule, ex)
        )
        problems.extend(
            f"rule {rule.id}: negative example detected: {ex[:60]!r}"
            for ex in rule.negative
            if rule.id in example_findings(rule, ex)
        )
    return problems
