"""The ``keyward`` command line: thin commands that parse, call a service and render.

:func:`main` is the console entry point. The pre-commit hook's plain case (``keyward hook
FILES...``, as pre-commit runs it on every commit) is parsed from the arguments without
importing click (:mod:`keyward.cli.hookrun`); everything else goes to the click application,
:mod:`keyward.cli.app`, whose names (``cli``, ``get_state``...) are also reachable from here.
Both share one error boundary: a :class:`KeywardError` becomes one plain sentence on stderr
and a documented exit code; ``--debug`` shows the traceback too (the exit code stays).

Exit codes: 0 clean, 1 findings, 2 usage or configuration error, 3 a backend unavailable or
refused.
"""

from __future__ import annotations

import sys
from typing import Any

from keyward.cli.boundary import fail, print_traceback, write_err

__all__ = ["fail", "main", "print_traceback", "write_err"]

# names of the click application, imported (with click) only when asked for
_APP_NAMES = frozenset(
    {"COMMANDS", "EPILOG", "LazyGroup", "State", "cli", "echo_err", "exit_with", "get_state",
     "state"}
)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the hook's plain case here, the rest through click."""
    from keyward.cli.hookrun import hook_args, run_hook

    args = hook_args(sys.argv[1:] if argv is None else argv)
    if args is not None:
        run_hook(args)
    from keyward.cli.app import main as app_main

    app_main(argv)


def __getattr__(name: str) -> Any:
    if name in _APP_NAMES:
        from keyward.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
