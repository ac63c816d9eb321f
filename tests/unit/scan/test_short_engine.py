"""A short process's engine (the pre-commit hook) finds exactly what any engine finds.

With ``short=True`` the hyperscan matcher leaves a small chunk with few provider candidates to
``re`` until its provider union is loaded (as the ``re`` engine does for every chunk), so the
hook need not load its largest database for a commit of a few lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine, hyperscan_available
from keyward.scan.model import Chunk, Location
from keyward.scan.plan import MatchPlan
from keyward.scan.rules import RuleSet, iter_examples, load_rules

pytestmark = pytest.mark.skipif(not hyperscan_available(), reason="hyperscan not installed")

RULES = load_rules()
FP = Fingerprinter(bytes(range(32)))


def found(engine: Engine, text: str) -> list[tuple[object, ...]]:
    chunk = Chunk(text, Location(path="src/settings.py"))
    return [
        (f.rule_id, f.location.line, f.location.column, f.preview, f.confidence, f.suppressed_by)
        for f in engine.scan(chunk)
    ]


def test_the_short_engine_finds_what_the_full_engine_finds_in_every_example(
    tmp_path: Path,
) -> None:
    from keyward.scan.engine import _UNSET

    rules = RuleSet(RULES.rules, MatchPlan.of(RULES.rules))

    def short_engine() -> Engine:
        return Engine(rules, FP, backend="hyperscan", cache_dir=tmp_path, short=True)

    short = short_engine()
    full = Engine(rules, FP, backend="hyperscan", cache_dir=tmp_path)
    renewed = 0
    differ: list[str] = []
    without_union = 0
    for _, example, _ in iter_examples(RULES):
        if found(short, example) != found(full, example):
            differ.append(example[:60])
        if short.matcher._union is _UNSET:  # type: ignore[attr-defined]
            without_union += 1
        else:  # an example with many candidates: go on with a short engine that has none
            short = short_engine()
            renewed += 1
    assert differ == []
    assert without_union > 1000 and renewed < 50, (without_union, renewed)
    assert full.matcher._union is not _UNSET  # type: ignore[attr-defined]


def test_a_large_chunk_or_many_candidates_load_the_union_in_a_short_engine() -> None:
    from keyward.scan.engine import _UNSET

    short = Engine(RULES, FP, backend="hyperscan", short=True)
    token = "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"
    assert [f[0] for f in found(short, f'T = "{token}"\n')] == ["github-pat-classic"]
    assert short.matcher._union is _UNSET  # type: ignore[attr-defined]
    big = "x = 1\n" * 20_000 + f'T = "{token}"\n'
    assert [f[0] for f in found(short, big)] == ["github-pat-classic"]
    assert short.matcher._union is not _UNSET  # type: ignore[attr-defined]
