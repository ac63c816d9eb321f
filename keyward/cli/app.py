"""The ``keyward`` click application: thin commands that parse, call a service and render.

:func:`keyward.cli.main` (the console entry point) runs the pre-commit hook's plain case
without click; everything else comes here. Sub-commands are loaded lazily so that
``keyward hook`` and ``keyward scan`` import only what they need. One error boundary (shared
with the hook's plain case: :func:`keyward.cli.fail`) turns a :class:`KeywardError` into one
plain sentence on stderr and a documented exit code; ``--debug`` shows the traceback too (the
exit code stays).

Exit codes: 0 clean, 1 findings, 2 usage or configuration error, 3 a backend unavailable or
refused.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from keyward import __version__
from keyward.cli.boundary import fail, write_err
from keyward.core.config import Config, load_config
from keyward.core.errors import ExitCode

# command name -> "module:attribute"; modules are imported only when the command runs.
COMMANDS: dict[str, str] = {
    "scan": "keyward.cli.scan:scan",
    "rules": "keyward.cli.rules:rules",
    "baseline": "keyward.cli.baseline:baseline",
    "hook": "keyward.cli.hook:hook",
    "db": "keyward.cli.db:db",
    "inventory": "keyward.cli.inventory:inventory",
    "dependents": "keyward.cli.inventory:dependents",
    "findings": "keyward.cli.inventory:findings",
    "discover": "keyward.cli.discover:discover",
    "rotate": "keyward.cli.rotate:rotate",
    "rotations": "keyward.cli.rotate:rotations",
    "adopt": "keyward.cli.adopt:adopt",
    "daemon": "keyward.cli.daemon:daemon",
}

EPILOG = """\b
Exit codes: 0 no findings, 1 findings, 2 usage or configuration error,
3 a backend (cloud API, Vault, database) unavailable or refused.
"""


@dataclass
class State:
    """Per-invocation state handed to commands (no globals)."""

    config_path: Path | None = None
    debug: bool = False
    verbose: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # not built yet in this version
                return None
            raise
        cmd = getattr(module, attr)
        assert isinstance(cmd, click.Command)
        return cmd


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="keyward")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: ./keyward.toml or [tool.keyward] in ./pyproject.toml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """Find hardcoded secrets, keep an inventory of them, and rotate them.

    \b
    Examples:
      keyward scan .                      scan the current directory
      keyward scan --format sarif -o keyward.sarif src/
      keyward baseline create             record today's findings as known
      keyward rules list                  show every active rule
    """
    from keyward.core.logging import configure

    configure(logging.DEBUG if debug else logging.WARNING)
    ctx.obj = State(config_path=config_path, debug=debug)


def main(argv: list[str] | None = None) -> None:
    """The click application with the single error boundary (:func:`keyward.cli.main` is the
    console entry point; it comes here for everything but the hook's plain case)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = cli.main(args=argv, prog_name="keyward", standalone_mode=False)
    except click.exceptions.Abort:
        write_err("keyward: aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.USAGE))
    except (KeyboardInterrupt, Exception) as exc:
        fail(exc, debug=debug)
    sys.exit(int(rc) if isinstance(rc, int) else 0)


def state(ctx: click.Context) -> State:
    obj = ctx.find_object(State)
    return obj if obj is not None else State()


def get_state() -> State:
    return state(click.get_current_context())


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def exit_with(code: ExitCode | int) -> Any:
    click.get_current_context().exit(int(code))
