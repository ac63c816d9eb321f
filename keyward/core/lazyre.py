"""Module-level regexes compiled the first time they are used, not when the module is imported.

The pre-commit hook imports the scan modules on every commit; compiling their ~80 module-level
regexes was about a tenth of its start-up, and a commit uses few of them. ``lazy(...)`` stands
in for ``re.compile(...)`` at module level: the first use of any attribute (``search``,
``finditer``, ``pattern``...) compiles the regex and keeps its methods on the object, so
later calls cost what they cost on the compiled pattern. Passing one to a function of the
``re`` module (``re.sub(X, ...)``) is not supported: call its methods.
"""

from __future__ import annotations

import re
from typing import Any, cast

_KEPT = (
    "search", "match", "fullmatch", "finditer", "findall", "sub", "subn", "split", "scanner",
    "pattern", "flags", "groups", "groupindex",
)  # fmt: skip


class _LazyPattern:
    def __init__(self, pattern: str | bytes, flags: int) -> None:
        self._source = (pattern, flags)

    def __getattr__(self, name: str) -> Any:  # only for what __dict__ does not hold yet
        if name.startswith("__") or name == "_source":
            raise AttributeError(name)
        compile_: Any = re.compile  # str and bytes patterns alike
        compiled = compile_(*self._source)
        for attr in _KEPT:
            setattr(self, attr, getattr(compiled, attr))
        return getattr(compiled, name)

    def __repr__(self) -> str:
        return f"lazy({self._source[0]!r})"


def lazy(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern, flags)``, compiled when first used."""
    return cast("re.Pattern[str]", _LazyPattern(pattern, flags))


def lazy_bytes(pattern: bytes, flags: int = 0) -> re.Pattern[bytes]:
    """``re.compile(pattern, flags)`` for a bytes pattern, compiled when first used."""
    return cast("re.Pattern[bytes]", _LazyPattern(pattern, flags))
