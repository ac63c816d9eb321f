"""``keyward rules``: list the active rules, check a rule file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from keyward.cli.app import EPILOG, get_state
from keyward.cli.common import format_option, rules_option
from keyward.core.errors import ExitCode
from keyward.core.text import plural


@click.group(epilog=EPILOG)
def rules() -> None:
    """Show and check detection rules.

    \b
    Examples:
      keyward rules list
      keyward rules list --format json
      keyward rules check my-rules.toml
    """


@rules.command(
    "list",
    epilog="""\b
Examples:
  keyward rules list
  keyward rules list --format json | jq -r '.[].id'
  keyward rules list --rules my-rules.toml   (built-ins plus yours)

"""
    + EPILOG,
)
@rules_option
@format_option("text", "json")
def list_rules(rule_files: tuple[Path, ...], fmt: str) -> None:
    """List every active rule: id, severity, confidence, description, source file.

    Rules come from the built-in files, then scan.rules in the config file, KEYWARD_RULES and
    --rules (a later rule with the same id overrides an earlier one).
    """
    from keyward.scan.confidence import rule_confidence
    from keyward.scan.rules import load_rules

    st = get_state()
    ruleset = load_rules((*st.config.rule_files(), *rule_files))
    if fmt == "json":
        doc = [
            {
                "id": r.id,
                "description": r.description,
                "severity": r.severity.value,
                "confidence": rule_confidence(r).value,  # before the finding's context
                "family": r.family.value,
                "source": r.source,
                "keywords": list(r.keywords),
                "validator": r.validator,
                "tags": list(r.tags),
                **(
                    {"shape": list(r.context.shapes), "key_words": list(r.context.key_words)}
                    if r.context
                    else {}
                ),
            }
            for r in ruleset
        ]
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from rich.table import Table

    from keyward.core.textout import make_console, plain

    table = Table(box=None, show_header=True, header_style="bold")
    for col in ("id", "severity", "confidence", "description", "source"):
        table.add_column(col)
    for r in ruleset:  # user rule files: ids and descriptions are shown literally
        table.add_row(
            plain(r.id),
            r.severity.value,
            rule_confidence(r).value,
            plain(r.description),
            plain(Path(r.source).name),
        )
    console = make_console(sys.stdout)
    console.print(table)
    console.print(plural(len(ruleset), "rule"))


@rules.command(
    "check",
    epilog="""\b
Examples:
  keyward rules check my-rules.toml
  keyward rules check rules/*.toml

"""
    + EPILOG,
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check_rules(files: tuple[Path, ...]) -> None:
    """Validate rule files and prove each rule's examples.

    Every positive example must produce a finding of that rule and every negative example
    must not. Exits 2 when a rule is invalid or an example fails.
    """
    from keyward.scan.checking import check_examples
    from keyward.scan.rules import load_rules, parse_rule_file

    failures = 0
    for path in files:
        parsed = parse_rule_file(path)  # raises RuleError with the rule and its problem
        ids = {r.id for r, enabled in parsed if enabled}
        ruleset = load_rules([path])  # built-ins plus this file (checks pairs across files)
        problems = check_examples([r for r in ruleset if r.id in ids])
        for p in problems:
            click.echo(f"{path}: {p}", err=True)
        failures += len(problems)
        n_ex = sum(len(r.positive) + len(r.negative) for r, _ in parsed)
        click.echo(
            f"{path}: {plural(len(ids), 'rule')}, {plural(n_ex, 'example')}, "
            f"{plural(len(problems), 'problem')}"
        )
    if failures:
        sys.exit(int(ExitCode.USAGE))
