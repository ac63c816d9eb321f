"""Text output for people, shared by every text renderer (scan report, inventory, rules).

Two promises, whatever the data:

* **User data is shown as it is.** A path like ``pages/[id].js``, an ARN with ``:secret:`` or a
  description with ``[bold]`` is never read as rich markup or an emoji code: every
  user-supplied string goes through :func:`plain` (a :class:`rich.text.Text`, which rich does
  not parse), and consoles are made with emoji replacement off.
* **Colour follows the user.** ``--color`` forces it, ``--no-color`` or a non-empty
  ``NO_COLOR`` (https://no-color.org) turns every ANSI style off, otherwise a terminal gets
  colour and a pipe gets none. Width follows the terminal (``COLUMNS`` overrides it); output
  that is not a terminal is never wrapped.

rich is imported only when something is rendered (the pre-commit path never pays for it).
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

# Width of output that is not a terminal (a pipe, a file) when COLUMNS does not say: wide
# enough that tables and report lines are never wrapped, so they stay greppable.
PIPE_WIDTH = 4096


def no_color_requested() -> bool:
    """``NO_COLOR`` is set to a non-empty value."""
    return os.environ.get("NO_COLOR", "") != ""


def make_console(
    file: IO[str],
    *,
    color: bool | None = None,
    soft_wrap: bool = False,
) -> Console:
    """A console for ``file``: no markup in data (see :func:`plain`), no emoji codes, no
    highlighting of numbers or paths, colour as the user asked (see the module docstring)."""
    from rich.console import Console

    plain_text = color is False or (color is None and no_color_requested())
    # a terminal: its width (or COLUMNS); anything else is never wrapped, even when the
    # environment exports COLUMNS (CI runners and test harnesses do)
    width = None if _isatty(file) else PIPE_WIDTH
    return Console(
        file=file,
        force_terminal=True if color else None,
        color_system=None if plain_text else "auto",
        no_color=plain_text,
        emoji=False,
        highlight=False,
        soft_wrap=soft_wrap,
        width=width,
    )


def plain(value: object, style: str = "") -> Text:
    """``value`` as literal text: rich never interprets markup or emoji codes in it."""
    from rich.text import Text

    return Text("" if value is None else str(value), style=style)


def _isatty(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
