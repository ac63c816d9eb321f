"""Rule files: invalid rules are refused with a sentence naming the rule and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyward.core.errors import RuleError
from keyward.scan.rules import load_rules, parse_rule_file

VALID = """
[[rules]]
id = "acme-token"
description = "Acme token"
regex = '''(?P<secret>acme_[a-z0-9]{20})'''
keywords = ["acme_"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("(?P<secret>acme_[a-z0-9]{20})", "acme_[a-z0-9]{20}"), "no named group 'secret'"),
        (("(?P<secret>acme_[a-z0-9]{20})", "(?P<secret>acme_[a-z0-9{20})"), "invalid regex"),
        (("{20}", "{,20}"), "write {0,N} instead of {,N}"),
        (('["acme_"]', '["ACME_"]'), "keywords must be non-empty and lower-case"),
        (('id = "acme-token"', 'id = "Acme Token"'), "no valid id"),
        (
            ('keywords = ["acme_"]', 'keywords = ["acme_"]\npair = { rule = "x", lines = "five" }'),
            "pair must be a table",
        ),
        (
            ('keywords = ["acme_"]', 'keywords = ["acme_"]\ngeneric = "false"'),
            "generic must be true or false",
        ),
    ],
)
def test_an_invalid_rule_is_refused_naming_the_rule_and_its_problem(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(RuleError) as err:
        parse_rule_file(path)
    assert message in err.value.diagnostics()
    assert str(path) in err.value.diagnostics()


def test_a_user_rule_overrides_a_builtin_of_the_same_id(tmp_path: Path) -> None:
    builtin = load_rules().by_id()["github-pat-classic"]
    path = write(tmp_path, VALID.replace("acme-token", "github-pat-classic"))
    merged = load_rules([path]).by_id()["github-pat-classic"]
    assert merged.source == str(path) != builtin.source
    assert merged.description == "Acme token"


def test_a_bare_enabled_false_disables_a_builtin_rule(tmp_path: Path) -> None:
    path = write(tmp_path, '[[rules]]\nid = "github-pat-classic"\nenabled = false\n')
    assert "github-pat-classic" not in load_rules([path]).by_id()


def test_every_shipped_rule_passes_the_checks_a_user_rule_gets() -> None:
    """load_rules trusts keyward's own files (their regexes compile when first used), so the
    checks it skips for them are run here."""
    from keyward.scan.rules import builtin_rule_files

    for path in builtin_rule_files():
        for rule, _ in parse_rule_file(path, validate=True):
            if rule.context is None:
                assert rule.pattern.groupindex.get("secret"), rule.id


def test_a_shipped_rule_compiles_its_regex_only_when_used() -> None:
    rule = load_rules().by_id()["github-pat-classic"]
    assert rule._compiled == []
    assert rule.pattern.search("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")


def test_no_rule_id_is_shipped_in_two_builtin_files() -> None:
    """Loading merges rule files by id (a later file overrides an earlier one, as a user's file
    overrides a built-in), so two built-in files defining one id would silently lose a rule."""
    from collections import defaultdict

    from keyward.scan.rules import builtin_rule_files

    where: dict[str, list[str]] = defaultdict(list)
    for path in builtin_rule_files():
        for rule, _enabled in parse_rule_file(path):
            where[rule.id].append(path.name)
    assert {rid: files for rid, files in where.items() if len(files) > 1} == {}
