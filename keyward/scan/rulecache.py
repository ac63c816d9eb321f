"""A cache of the parsed rule set, for every scan (the hook, ``scan``, ``baseline``).

Loading rules parses every TOML file (and compiles the regexes of user rule files to validate
them): about 0.2 s of CPU for ~850 rules, at every start, against ~0.03 s for the JSON. The
validated rules are written once as JSON (data only, never pickled code) under the cache
directory, keyed by keyward's version, the ``Rule`` schema and each rule file's path, size and
modification time, so any change to a rule file or to keyward reloads from the TOML. The
engine compiles a rule's regex only when the rule can match, so a cached load compiles almost
nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keyward import __version__
from keyward.scan.context import Context
from keyward.scan.model import Confidence, Severity
from keyward.scan.rules import Pair, Rule, RuleSet, builtin_rule_files, load_rules

log = logging.getLogger(__name__)

_FIELDS = tuple(f.name for f in dataclasses.fields(Rule) if not f.name.startswith("_"))


def _key(files: Sequence[Path]) -> str:
    h = hashlib.sha256(f"{__version__}|{'|'.join(_FIELDS)}".encode())
    for path in files:
        st = os.stat(path)
        h.update(f"\0{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _encode(rule: Rule) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(rule, name)
        if isinstance(value, Pair):
            value = {"rule": value.rule, "lines": value.lines}
        elif isinstance(value, Context):
            value = {"shapes": list(value.shapes), "prefix": value.prefix,
                     "key_words": list(value.key_words)}  # fmt: skip
        elif isinstance(value, tuple):
            value = list(value)
        doc[name] = value
    return doc


def _decode(doc: dict[str, Any]) -> Rule:
    kwargs: dict[str, Any] = {}
    for name in _FIELDS:
        value = doc[name]
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
        key = _key([*builtin_rule_files(), *extra_files])
    except OSError:
        return load_rules(extra_files)  # a missing file: let load_rules explain
    cache_file = cache / f"rules-{key}.json"
    try:
        doc = json.loads(cache_file.read_text(encoding="utf-8"))
        return RuleSet(tuple(_decode(d) for d in doc["rules"]))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("ignoring unusable rule cache %s: %s", cache_file, type(exc).__name__)
    rules = load_rules(extra_files)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"rules": [_encode(r) for r in rules.rules]}), encoding="utf-8")
        tmp.replace(cache_file)
    except OSError as exc:
        log.debug("cannot write the rule cache %s: %s", cache_file, exc.strerror)
    return rules
