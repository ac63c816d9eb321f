"""Loggers for the scan modules the pre-commit hook imports, without importing ``logging``.

Those modules log only at debug level, and on most runs not at all; importing ``logging``
(and with it ``traceback``, ``linecache``, ``tokenize``...) was about 5 ms of every commit.
:func:`logger` stands in for ``logging.getLogger(name)``: the first call of any of its methods
imports ``logging``. A command that configures logging through :func:`configure_when_used`
(the hook's plain case) gets :func:`keyward.core.logging.configure` run at that moment, before
the first record, or at once when ``logging`` is already imported: every record still goes
through the same handler and redacting filter.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import logging

_PENDING: list[int] = []  # the level to configure with when logging is first used


def configure_when_used(level: int) -> None:
    """``keyward.core.logging.configure(level)`` now if ``logging`` is imported, else when a
    logger of :func:`logger` is first used."""
    if "logging" in sys.modules:
        _configure(level)
    else:
        _PENDING[:] = [level]


def _configure(level: int) -> None:
    from keyward.core.logging import configure

    configure(level)


class _LazyLogger:
    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:  # debug, info, warning, isEnabledFor...
        if self._logger is None:
            if _PENDING:
                _configure(_PENDING.pop())
            import logging

            self._logger = logging.getLogger(self._name)
        return getattr(self._logger, attr)


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, with ``logging`` imported when first used."""
    return cast("logging.Logger", _LazyLogger(name))
