"""The command line's error boundary, shared by the click application
(:mod:`keyward.cli.app`) and the hook's plain case (:mod:`keyward.cli.hookrun`): a
:class:`KeywardError` becomes one plain sentence on stderr and its documented exit code. It
imports neither click nor the rest of the CLI."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

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
