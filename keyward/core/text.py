"""Small wording helpers for messages people read."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 finding``, ``2 findings``, ``0 entries`` (give ``nouns`` when ``+s`` is wrong)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
