"""Every rule proves its own examples, on both engines, alone and among all rules.

Context rules (hundreds of small members of one family) are proved one test per rule and
engine, all of their examples at once, so the suite does not grow by thousands of tests."""

from __future__ import annotations

import pytest

from keyward.scan.checking import example_findings
from keyward.scan.engine import hyperscan_available
from keyward.scan.rules import iter_examples, load_rules

RULES = load_rules()
CASES = list(iter_examples(r for r in RULES if r.context is None))
CONTEXT = [r for r in RULES if r.context is not None]
BACKENDS = ["re", "hyperscan"] if hyperscan_available() else ["re"]


def test_ship_at_least_the_promised_number_of_rules() -> None:
    provider = [r for r in RULES if not r.generic]
    assert len(provider) >= 120, len(provider)


def test_every_rule_has_positive_and_negative_examples() -> None:
    assert [r.id for r in RULES if not r.positive] == [], "rules without a positive example"
    assert [r.id for r in RULES if not r.negative] == [], "rules without a negative example"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("rule", "example", "positive"),
    CASES,
    ids=[f"{r.id}-{'pos' if p else 'neg'}{i}" for i, (r, _, p) in enumerate(CASES)],
)
def test_rule_example(rule, example: str, positive: bool, backend: str) -> None:  # type: ignore[no-untyped-def]
    fired = example_findings(rule, example, backend=backend)  # type: ignore[arg-type]
    if positive:
        assert rule.id in fired, f"{rule.id} missed its positive example"
    else:
        assert rule.id not in fired, f"{rule.id} fired on its negative example"


@pytest.mark.parametrize(
    ("rule", "example"), [(r, e) for r, e, p in CASES if p], ids=lambda v: getattr(v, "id", None)
)
def test_positive_example_is_found_with_all_rules_loaded(rule, example: str) -> None:  # type: ignore[no-untyped-def]
    """Among all rules, each positive example still yields a finding (its own or a more
    specific rule's), so no rule's example is silently swallowed by overlap resolution."""
    fired = example_findings(rule, example, RULES, backend=BACKENDS[-1])  # type: ignore[arg-type]
    assert fired, f"nothing found in {rule.id}'s example with all rules loaded"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", CONTEXT, ids=lambda r: r.id)
def test_context_rule_examples(rule, backend: str) -> None:  # type: ignore[no-untyped-def]
    missed = [e for e in rule.positive if rule.id not in example_findings(rule, e, backend=backend)]
    fired = [e for e in rule.negative if rule.id in example_findings(rule, e, backend=backend)]
    assert (missed, fired) == ([], []), f"{rule.id}: missed positives, fired on negatives"


@pytest.mark.parametrize("rule", CONTEXT, ids=lambda r: r.id)
def test_context_rule_positives_are_found_with_all_rules_loaded(rule) -> None:  # type: ignore[no-untyped-def]
    swallowed = [
        e for e in rule.positive if not example_findings(rule, e, RULES, backend=BACKENDS[-1])
    ]  # type: ignore[arg-type]
    assert swallowed == []
