"""CODEOWNERS semantics (the git blame half is tested against real git in integration)."""

from __future__ import annotations

from keyward.inventory.ownership import CodeOwners

CODEOWNERS = """\
# comment
*           @org/everyone
*.py        @org/python  @alice
/docs/      @org/docs
apps/**/secrets.yml  @org/security
[Section]
"""


def test_last_matching_pattern_wins() -> None:
    co = CodeOwners.parse(CODEOWNERS)
    assert co.owners("README.md") == ("@org/everyone",)
    assert co.owners("src/app.py") == ("@org/python", "@alice")
    assert co.owners("docs/index.md") == ("@org/docs",)
    assert co.owners("apps/a/b/secrets.yml") == ("@org/security",)


def test_no_rules_means_no_owner() -> None:
    assert CodeOwners.parse("# nothing\n").owners("a.py") == ()


def test_author_email_is_taken_from_name_and_address() -> None:
    from keyward.inventory.ownership import author_email

    assert author_email("Dev <dev@example.com>") == "dev@example.com"
    assert author_email("dev@example.com") == "dev@example.com"
    assert author_email(None) is None
