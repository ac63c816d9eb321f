"""The rule cache serves the same rules as the TOML files, and notices every change."""

from __future__ import annotations

import os
from pathlib import Path

from keyward.scan.rulecache import load_rules_cached
from keyward.scan.rules import load_rules

USER_RULES = """\
[[rules]]
id = "acme-token"
description = "ACME token"
severity = "high"
regex = '''\\b(?P<secret>acme_[a-z0-9]{24})\\b'''
keywords = ["acme_"]
pair = { rule = "github-pat-classic", lines = 2 }
examples.positive = ['acme_abcdefghijklmnopqrstuvwx']
examples.negative = ['acme_short']
"""


def test_cached_rules_equal_the_parsed_rules(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text(USER_RULES)
    cache = tmp_path / "cache"
    first = load_rules_cached([user], cache)
    assert len(list(cache.glob("rules-*.jsonl"))) == 1
    second = load_rules_cached([user], cache)  # served from the cache
    assert second.rules == load_rules([user]).rules == first.rules
    acme = second.by_id()["acme-token"]
    assert acme.pair is not None and acme.pair.lines == 2
    assert acme.pattern.search("x acme_abcdefghijklmnopqrstuvwx y")


def test_a_changed_rule_file_is_read_again(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text(USER_RULES)
    cache = tmp_path / "cache"
    load_rules_cached([user], cache)
    user.write_text(USER_RULES.replace('severity = "high"', 'severity = "low"'))
    st = user.stat()
    os.utime(user, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert load_rules_cached([user], cache).by_id()["acme-token"].severity.value == "low"


def test_a_corrupt_cache_file_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_rules_cached([], cache)
    [cached] = cache.glob("rules-*.jsonl")
    cached.write_text("{not json")
    assert load_rules_cached([], cache).rules == load_rules().rules


def test_a_damaged_rule_line_is_noticed_and_the_cache_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_rules_cached([], cache)
    [cached] = cache.glob("rules-*.jsonl")
    blob = cached.read_bytes()
    cached.write_bytes(blob.replace(b'"high"', b'"low"', 1))  # one rule's severity
    assert load_rules_cached([], cache).rules == load_rules().rules
    assert cached.read_bytes() == blob  # written again


def test_the_cached_plan_is_the_plan_of_the_rules_and_names_the_databases(tmp_path: Path) -> None:
    from keyward.core.redaction import Fingerprinter
    from keyward.scan.engine import Engine
    from keyward.scan.plan import MatchPlan
    from keyward.scan.rules import RuleSet

    user = tmp_path / "user.toml"
    user.write_text(USER_RULES)
    load_rules_cached([user], tmp_path / "cache")
    cached = load_rules_cached([user], tmp_path / "cache")
    parsed = load_rules([user])
    assert cached.plan is not None
    computed = MatchPlan.of(parsed.rules)
    assert cached.plan.with_db_files({}, "") == computed
    # the database names the plan brings are those the matcher derives from the patterns
    engine = Engine(RuleSet(parsed.rules), Fingerprinter(bytes(32)), cache_dir=tmp_path / "hs")
    engine.prepare()
    derived = {p.name for p in engine.matcher.cache_files}  # type: ignore[attr-defined]
    assert set(cached.plan.db_files.values()) == derived


def test_a_scan_with_cached_rules_builds_only_the_rules_it_can_match(tmp_path: Path) -> None:
    from keyward.core.redaction import Fingerprinter
    from keyward.scan.engine import Engine
    from keyward.scan.model import Chunk, Location, SourceKind
    from keyward.scan.rules import LazyRules

    fp = Fingerprinter(bytes(32))
    Engine(load_rules_cached([], tmp_path / "cache"), fp, cache_dir=tmp_path / "hs").prepare()
    cached = load_rules_cached([], tmp_path / "cache")  # a later run: every cache is warm
    assert isinstance(cached.rules, LazyRules)
    engine = Engine(cached, fp, cache_dir=tmp_path / "hs")
    chunk = Chunk(
        'TOKEN = "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"\n',
        Location(kind=SourceKind.FILE, path="a.py"),
    )
    [finding] = engine.scan(chunk)
    assert finding.rule_id == "github-pat-classic"
    built = sum(1 for r in cached.rules._built if r is not None)
    assert 1 <= built <= 20, built
    assert len(cached.rules) > 500
