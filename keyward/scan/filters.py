"""False-positive filters applied after a rule matched.

``is_placeholder`` applies to every rule: documentation keys and obvious dummies are never
findings. ``generic_reject`` applies only to generic (keyword/entropy) rules and carries the
heuristics that keep them quiet on ordinary code.
"""

from __future__ import annotations

import re

_PLACEHOLDER_WORDS = re.compile(
    r"(?i)example|placeholder|changeme|change_me|replace[_-]?me|your[_-]?|dummy|sample|"
    r"redacted|fake|xxxx|\*\*\*\*|\.\.\.|…|<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|%\([^)]*\)s|"
    r"^\$[A-Za-z_][A-Za-z0-9_]*$|^(?:test|password|secret|token|none|null|undefined|true|false)$"
)


def is_placeholder(secret: str) -> bool:
    """True for values that are clearly not real credentials."""
    if not secret:
        return True
    if _PLACEHOLDER_WORDS.search(secret):
        return True
    # one repeated character or a run such as 0000000000 / aaaaaaaaaa
    if len(set(secret)) <= 2 and len(secret) >= 4:
        return True
    return bool(re.fullmatch(r"(?i)(?:0123456789|abcdefgh|12345678|abcdef)+\w{0,8}", secret))


def generic_reject(secret: str, line: str, path: str | None) -> str | None:
    """Reason why a generic finding is not a secret, or None to keep it."""
    if is_placeholder(secret):
        return "placeholder"
    return None
