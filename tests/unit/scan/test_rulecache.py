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
    assert len(list(cache.glob("rules-*.json"))) == 1
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
    [cached] = cache.glob("rules-*.json")
    cached.write_text("{not json")
    assert load_rules_cached([], cache).rules == load_rules().rules
