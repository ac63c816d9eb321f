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
from typing import Any, NoReturn

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


# ------------------------------------------------------------------ the error boundary
_ANSI: Any = None


def write_err(message: str) -> None:
    """``message`` and a newline on stderr, as ``click.echo(message, err=True)`` writes it
    (ANSI styles removed when stderr is not a terminal)."""
    global _ANSI
    out = sys.stderr
    try:
        tty = out.isatty()
    except Exception:
        tty = False
    if not tty and "\033" in message:
        if _ANSI is None:
            import re

            _ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")  # click's strip_ansi
        message = _ANSI.sub("", message)
    out.write(message + "\n")
    out.flush()


def print_traceback() -> None:
    """The current exception's traceback on stderr, scrubbed like every log line."""
    import traceback

    from keyward.core.logging import scrub

    write_err(scrub(traceback.format_exc()).rstrip("\n"))


def fail(exc: BaseException, *, debug: bool) -> NoReturn:
    """Exit as the error boundary does for an exception a command raised: a
    :class:`KeywardError` with its diagnostics and exit code, anything else as an internal
    error (exit 2); ``debug`` prints the traceback as well."""
    from keyward.core.errors import ExitCode, KeywardError

    if isinstance(exc, KeywardError):
        if debug:  # the traceback as well, never instead of the documented exit code
            print_traceback()
        write_err(f"keyward: error: {exc.diagnostics()}")
        sys.exit(int(exc.exit_code))
    if isinstance(exc, KeyboardInterrupt):
        write_err("keyward: interrupted")
        sys.exit(130)
    if isinstance(exc, BrokenPipeError):
        sys.exit(int(ExitCode.OK))
    if debug:
        print_traceback()
    from keyward.core.logging import scrub

    how = "" if debug else "re-run with --debug for the traceback, and "
    write_err(
        f"keyward: internal error: {type(exc).__name__}: {scrub(str(exc))[:300]} "
        f"({how}please report it)"
    )
    sys.exit(int(ExitCode.USAGE))
