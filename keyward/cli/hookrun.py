"""The pre-commit hook's scan and message, and its plain case without click.

pre-commit runs ``keyward hook FILE...`` on every commit, so that case is read here from the
arguments (:func:`hook_args`) and run (:func:`run_hook`) with the click application's error
boundary and exit codes, without importing click or the application (a quarter of the hook's
start-up). Only the arguments ``keyward hook --help`` documents are read: file names,
``--baseline FILE``, ``--rules FILE`` (repeatable) and ``--all-staged``. Anything else (another
command, ``install``, ``--help``, a global option such as ``--debug``, ``--``, any other
option, a value click would refuse) returns None and goes to click, which answers it as
before. The click commands (:mod:`keyward.cli.hook`) run the same scan and message.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple, NoReturn

if TYPE_CHECKING:
    from keyward.core.config import Config
    from keyward.scan.model import Finding
    from keyward.scan.result import ScanResult

DEFAULT_BASELINE = ".secrets.baseline"
# first arguments that click reads as a sub-command of `keyward hook`
_SUBCOMMANDS = frozenset({"install", "scan"})
_VALUE_OPTIONS = frozenset({"--baseline", "--rules"})
_GC_PAUSED: list[bool] = []  # set by run_hook while it starts up


class HookArgs(NamedTuple):
    """``keyward hook``'s arguments, as click would have converted them."""

    files: tuple[str, ...] = ()
    baseline: Path | None = None
    rule_files: tuple[Path, ...] = ()
    all_staged: bool = False


def _click_accepts(value: str, *, dir_okay: bool = True) -> bool:
    """What ``click.Path(dir_okay=...)`` accepts (it need not exist; when it does, it must be
    readable, and not a directory unless ``dir_okay``)."""
    try:
        st = os.stat(value)
    except OSError:
        return True
    if not dir_okay and stat.S_ISDIR(st.st_mode):
        return False
    return os.access(value, os.R_OK)


def hook_args(argv: Sequence[str]) -> HookArgs | None:
    """The arguments of ``keyward hook`` (``argv`` without the program name) when they are
    only what the hook documents, else None (click parses them)."""
    if not argv or argv[0] != "hook" or "_KEYWARD_COMPLETE" in os.environ:
        return None
    rest = argv[1:]
    if rest and rest[0] in _SUBCOMMANDS:
        return None
    files: list[str] = []
    rule_files: list[Path] = []
    baseline: Path | None = None
    all_staged = False
    args = iter(rest)
    for arg in args:
        if not arg.startswith("-"):
            if not _click_accepts(arg):
                return None
            files.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name == "--all-staged" and not eq:
            all_staged = True
            continue
        if name not in _VALUE_OPTIONS:
            return None  # --help, --, -x, --debug, an unknown option: click answers
        if not eq:
            given = next(args, None)
            if given is None or given.startswith("-"):
                return None  # a missing value (click explains), or one that looks like an option
            value = given
        if not _click_accepts(value, dir_okay=name == "--rules"):
            return None
        if name == "--baseline":
            baseline = Path(value)  # the last one wins, as in click
        else:
            rule_files.append(Path(value))
    return HookArgs(tuple(files), baseline, tuple(rule_files), all_staged)


def run_hook(args: HookArgs) -> NoReturn:
    """``keyward hook`` with ``args``: scan, print the blocked-commit message, exit (0 clean,
    1 findings, 2 usage or configuration, 3 a backend), as the click command does."""
    import errno
    import gc

    # Start-up (imports, the rule set, the engine) allocates much and frees little: no cyclic
    # collection until the scan starts (run_staged_scan turns it on again), ~6% of the run.
    gc.disable()
    _GC_PAUSED.append(True)
    from keyward.cli.boundary import fail
    from keyward.core.lazylog import configure_when_used

    # what the click application's group does without --debug, when logging is first used
    configure_when_used(30)  # logging.WARNING
    try:
        from keyward.core.config import load_config

        code = scan_and_report(
            load_config(None),
            None if args.all_staged or not args.files else list(args.files),
            baseline=args.baseline,
            rule_files=args.rule_files,
        )
    except (EOFError, KeyboardInterrupt):
        from keyward.cli.boundary import write_err

        write_err("")  # click's main ends the line, then the boundary says "aborted"
        write_err("keyward: aborted")
        sys.exit(130)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            fail(exc, debug=False)
        # as click's main answers a broken pipe outside standalone mode
        sys.stdout = _PacifyFlush(sys.stdout)
        sys.stderr = _PacifyFlush(sys.stderr)
        sys.exit(1)
    except Exception as exc:
        fail(exc, debug=False)
    sys.exit(code)


class _PacifyFlush:
    """A stream whose flush ignores a broken pipe (click's ``_PacifyFlushWrapper``)."""

    def __init__(self, wrapped: IO[str]) -> None:
        self.wrapped = wrapped

    def flush(self) -> None:
        import errno

        try:
            self.wrapped.flush()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, attr: str) -> object:
        return getattr(self.wrapped, attr)


def scan_and_report(
    config: Config,
    files: Sequence[str] | None,
    *,
    baseline: Path | None = None,
    rule_files: Sequence[Path] = (),
) -> int:
    """Scan the staged lines of ``files`` (all staged changes when None); when something is
    found, explain the blocked commit on stderr. The exit code: 0 clean, 1 findings."""
    findings, result = run_staged_scan(
        Path("."), files, config=config, baseline=baseline, rule_files=rule_files
    )
    if not findings:
        return 0
    write_blocked(findings, sys.stderr, staged=_staged_paths(result, findings))
    return 1


def run_staged_scan(
    repo_path: Path,
    files: Sequence[str] | None,
    *,
    config: Config,
    baseline: Path | None = None,
    rule_files: Sequence[Path] = (),
) -> tuple[list[Finding], ScanResult]:
    """Scan staged changes the way ``keyward scan --staged`` does (one request, one runner);
    return the unsuppressed findings (in report order) and the result."""
    from keyward.cli.settings import (
        excludes_setting,
        light_engine_spec,
        max_file_size_setting,
        min_confidence_setting,
    )
    from keyward.scan.request import ScanRequest
    from keyward.scan.runner import run_scan

    request = ScanRequest(
        engine=light_engine_spec(config, rule_files),
        paths=(repo_path,),
        staged=True,
        staged_files=None if files is None else tuple(files),
        exclude=excludes_setting(config),  # scan.exclude / KEYWARD_EXCLUDE, as for `scan`
        max_file_size=max_file_size_setting(config),
        min_confidence=min_confidence_setting(config),  # KEYWARD_MIN_CONFIDENCE, [scan]
    )
    engine = request.engine.build()
    if _GC_PAUSED:  # run_hook's start-up is over: what it built stays
        import gc

        _GC_PAUSED.clear()
        gc.freeze()
        gc.enable()
    result = run_scan(request, engine=engine)
    # --baseline > KEYWARD_BASELINE > scan.baseline in the config > .secrets.baseline at the root
    base_path = (
        baseline or config.path_setting("scan", "baseline") or _default_baseline(result.repository)
    )
    if base_path is not None:
        from keyward.scan.baseline import apply_baseline

        apply_baseline(result, base_path, engine.rules)
    return result.reported, result


def _default_baseline(root: Path | None) -> Path | None:
    candidate = (root or Path(".")) / DEFAULT_BASELINE
    return candidate if candidate.is_file() else None


def _staged_paths(result: ScanResult, findings: Sequence[Finding]) -> frozenset[str] | None:
    """Paths with staged changes (relative to the repository top), None when git cannot say.

    The scan read the staged changes of the files it names: when every finding is in one of
    them, that says it (the usual blocked commit, with no other git process); a finding in a
    named file it read whole from the work tree is looked up in git's list of staged paths."""
    known = result.staged_changes
    if known is not None and all(f.location.path in known for f in findings):
        return known
    from keyward.core.errors import KeywardError
    from keyward.scan.sources.git import open_repo

    try:
        out = open_repo(result.repository or Path(".")).run("diff", "--cached", "--name-only", "-z")
    except KeywardError:
        return None
    return frozenset(p.decode("utf-8", "backslashreplace") for p in out.split(b"\0") if p)


def write_blocked(
    findings: Sequence[Finding], out: IO[str], *, staged: frozenset[str] | None = None
) -> None:
    """The message that explains a blocked commit (no raw values, ever).

    ``staged``: the paths with staged changes. Files named by pre-commit but not staged
    (``pre-commit run --all-files``) were scanned whole, and no commit is being made."""
    n = len(findings)
    noun = "secret" if n == 1 else "secrets"
    in_staged = n if staged is None else sum(1 for f in findings if f.location.path in staged)
    if in_staged == n:
        head = f"keyward: commit blocked: {n} {noun} in the staged changes"
    elif in_staged == 0:
        head = (
            f"keyward: {n} {noun} in the files checked (they are not staged, so each was "
            "scanned whole)"
        )
    else:
        head = f"keyward: commit blocked: {n} {noun} in the staged changes and the files checked"
    lines = [head, ""]
    for f in findings:
        loc = f.location
        where = f"{loc.path}:{loc.line}" if loc.line else f"{loc.path} (binary)"
        lines.append(f"  {where}  {f.rule_id} ({f.severity.value})  {f.preview}")
        if f.description:
            lines.append(f"      {f.description}")
    lines += [
        "",
        "To continue, do one of:",
        "  1. Remove it from the file and stage the change (rotate it if it was ever shared).",
        "  2. If it is not a secret, add a `keyward: allow` comment on that line.",
        "  3. Accept it as known: `keyward baseline update` (or `keyward baseline create`)",
        f"     records it in {DEFAULT_BASELINE}; stage that file too.",
        "",
    ]
    out.write("\n".join(lines))
    out.flush()
