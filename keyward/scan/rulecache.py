"""A cache of the parsed rule set, for every scan (the hook, ``scan``, ``baseline``).

Loading rules parses every TOML file (and compiles the regexes of user rule files to validate
them): about 0.2 s of CPU for ~850 rules, at every start, against about 2 ms for the cache.
The validated rules are written once as JSON lines (data only, never pickled code) under the
cache directory, keyed by keyward's version, the ``Rule`` schema, this file's format and each
rule file's path, size and modification time, so any change to a rule file or to keyward
reloads from the TOML. Each rule is one line (a row of its field values), parsed and built
into a ``Rule`` only when something asks for it (:class:`~keyward.scan.rules.LazyRules`); the
engine's
:class:`~keyward.scan.plan.MatchPlan` (rule indexes, keywords, the hyperscan databases' file
names) is kept with them, so the pre-commit hook builds only the rules a chunk can match and
compiles only their regexes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keyward import __version__
from keyward.core.lazylog import logger
from keyward.scan.confidence import (
    KnownValues,
    known_values,
    known_values_file,
    remember_known_values,
)
from keyward.scan.context import Context
from keyward.scan.model import Confidence, Severity
from keyward.scan.plan import MatchPlan
from keyward.scan.rules import LazyRules, Pair, Rule, RuleSet, builtin_rule_files, load_rules

log = logger(__name__)

_FIELDS = tuple(f.name for f in dataclasses.fields(Rule) if not f.name.startswith("_"))
_FORMAT = 3  # rows of field values, the match plan, the known public values


def _key(files: Sequence[Path]) -> str:
    h = hashlib.sha256(f"{__version__}|{_FORMAT}|{'|'.join(_FIELDS)}".encode())
    for path in files:
        st = os.stat(path)
        h.update(f"\0{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _encode(rule: Rule) -> list[Any]:
    """The rule as a row: its field values in ``_FIELDS`` order, as JSON data."""
    row: list[Any] = []
    for name in _FIELDS:
        value = getattr(rule, name)
        if isinstance(value, Pair):
            value = {"rule": value.rule, "lines": value.lines}
        elif isinstance(value, Context):
            value = {"shapes": list(value.shapes), "prefix": value.prefix,
                     "key_words": list(value.key_words)}  # fmt: skip
        elif isinstance(value, tuple):
            value = list(value)
        row.append(value)
    return row


def _decode(row: Sequence[Any]) -> Rule:
    if len(row) != len(_FIELDS):
        raise ValueError("a rule row of another schema")
    kwargs: dict[str, Any] = {}
    for name, value in zip(_FIELDS, row, strict=True):
        if name == "severity":
            value = Severity(value)
        elif name == "pair":
            value = Pair(**value) if value else None
        elif name == "context":
            value = (
                Context(tuple(value["shapes"]), value["prefix"], tuple(value["key_words"]))
                if value
                else None
            )
        elif name == "confidence":
            value = Confidence(value) if value else None
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return Rule(**kwargs)


def load_rules_cached(extra_files: Sequence[Path] = (), cache: Path | None = None) -> RuleSet:
    """:func:`keyward.scan.rules.load_rules`, served from the cache when nothing changed."""
    if cache is None:
        return load_rules(extra_files)
    try:
        key = _key([*builtin_rule_files(), known_values_file(), *extra_files])
    except OSError:
        return load_rules(extra_files)  # a missing file: let load_rules explain
    cache_file = cache / f"rules-{key}.jsonl"
    try:
        return _read(cache_file.read_bytes())
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.debug("ignoring unusable rule cache %s: %s", cache_file, type(exc).__name__)
    rules = load_rules(extra_files)
    from keyward.scan.engine import plan_db_files

    plan = plan_db_files(rules.rules, MatchPlan.of(rules.rules))
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_write(rules.rules, plan))
        tmp.replace(cache_file)
    except OSError as exc:
        log.debug("cannot write the rule cache %s: %s", cache_file, exc.strerror)
    return RuleSet(rules.rules, plan)


# The file: one line of JSON (the format, the plan, the number of rules and the SHA-256 of the
# rest), then one line of JSON per rule (its row), read only when the rule is first asked for.
def _write(rules: Sequence[Rule], plan: MatchPlan) -> bytes:
    body = b"\n".join(json.dumps(_encode(r)).encode("ascii") for r in rules)
    known = known_values()
    head = {
        "format": _FORMAT,
        "rules": len(rules),
        "sha256": hashlib.sha256(body).hexdigest(),
        "plan": plan.to_doc(),
        # keyward's list of known public values, so a match need not parse its TOML
        "known": {
            "values": sorted(known.values),
            "digests": sorted(known.digests),
            "public": list(known.public_prefixes),
        },
    }
    return json.dumps(head).encode("ascii") + b"\n" + body


def _read(blob: bytes) -> RuleSet:
    """The rule set of a cache file (ValueError, KeyError or TypeError when it is not one)."""
    end = blob.find(b"\n")
    head = json.loads(blob[: end if end >= 0 else len(blob)])
    body = blob[end + 1 :] if end >= 0 else b""
    if head["format"] != _FORMAT or hashlib.sha256(body).hexdigest() != head["sha256"]:
        raise ValueError("another format, or a damaged file")
    rows = body.split(b"\n") if head["rules"] else []
    plan = MatchPlan.from_doc(head["plan"])
    if len(rows) != head["rules"]:
        raise ValueError("rule rows missing")
    known = head["known"]
    values = KnownValues(
        frozenset(map(str, known["values"])),
        frozenset(map(str, known["digests"])),
        tuple(map(str, known["public"])),
    )
    rule_set = RuleSet(LazyRules(rows, plan.ids, _decode_line), plan)
    remember_known_values(values)
    return rule_set


def _decode_line(line: bytes) -> Rule:
    return _decode(json.loads(line))
