"""The targets of an organisation-wide scan (``keyward scan --targets FILE``) and their shards.

A targets file names one target a line; ``#`` starts a comment (at the start of a line, or
after a space); blank lines are ignored:

* ``/srv/app`` or ``files:/srv/app``: the files under a path (``.gitignore`` honoured);
* ``git:/srv/checkouts/app``: the history of a repository on disk; a path to a git directory
  itself (a bare repository, or a ``.git`` folder) is history without the prefix;
* ``https://git.example.com/org/app.git`` (also ``ssh://``, ``git://``, ``file://``,
  ``git@host:org/app.git``, or any of them after ``git:``): the history of a remote
  repository, cloned read-only (bare, into a temporary directory removed after the scan);
* ``aws-lambda:123456789012/eu-west-1``: live Lambda functions of one account (an id, or the name
  of an account in ``[aws.accounts]``, reached through its role) in one region.

Each target is recorded in the inventory under its own **name** (``files:/abs/path``,
``git:/abs/repo``, ``git:https://host/org/app.git`` without any credential the URL carried,
``aws-lambda:123456789012/eu-west-1``), so a scan resolves only the findings of the targets it
scanned. The same name twice is scanned once.

A :class:`Shard` ``K/N`` takes every N-th target of the file, from the K-th (counted from 0,
as Kubernetes counts an Indexed Job's ``JOB_COMPLETION_INDEX``), so N processes given the same
file scan each target exactly once between them, whatever order they run in.

Nothing here imports a database or a cloud library; :func:`clone` runs ``git``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from keyward.core.errors import BackendError, ConfigError, SourceError

# the job controller sets this in every pod of an Indexed Job (0 .. completions - 1)
INDEX_VARIABLE = "JOB_COMPLETION_INDEX"

_URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://", "git+ssh://", "ssh+git://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)")
# a 12-digit id, or the name of an account in [aws.accounts]
_ACCOUNT = re.compile(r"^(?:[0-9]{12}|[A-Za-z][A-Za-z0-9_.-]{0,63})$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
_CREDENTIAL_IN_URL = re.compile(r"(?<=://)[^/@\s]*@")


class TargetKind(StrEnum):
    FILES = "files"
    GIT = "git"
    AWS_LAMBDA = "aws-lambda"


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to scan, and the name the inventory records it under."""

    kind: TargetKind
    name: str
    # the path or URL as written: a URL may carry a credential, so never printed
    where: str = field(repr=False)
    line: int = 0
    account: str | None = None  # aws-lambda
    region: str | None = None  # aws-lambda

    @property
    def remote(self) -> bool:
        """A repository to clone before its history is scanned."""
        return self.kind is TargetKind.GIT and is_url(self.where)


def is_url(text: str) -> bool:
    return text.startswith(_URL_SCHEMES) or _SCP_LIKE.match(text) is not None


def safe_url(url: str) -> str:
    """The URL without user name, password, query or fragment (a token often rides there)."""
    if not url.startswith(_URL_SCHEMES):
        return url  # scp-like ``user@host:path``: no password can be written there
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub_urls(text: str) -> str:
    """``https://user:token@host`` -> ``https://host`` anywhere in ``text`` (git's messages)."""
    return _CREDENTIAL_IN_URL.sub("", text)


def is_git_dir(path: Path) -> bool:
    """A bare repository or a ``.git`` folder (HEAD, objects/ and refs/ in it)."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


class TargetsError(ConfigError):
    """The targets file cannot be read or a line of it names no target."""


def _problem(source: str, line: int, message: str, hint: str | None = None) -> TargetsError:
    return TargetsError(f"{source}:{line}: {message}", hint=hint)


def parse_target(text: str, *, line: int = 0, source: str = "targets", cwd: Path | None = None
                 ) -> Target:  # fmt: skip
    """One line of a targets file (without its comment) as a :class:`Target`."""
    base = cwd or Path.cwd()
    if text.startswith("aws-lambda:"):
        account, slash, region = text.removeprefix("aws-lambda:").partition("/")
        if not slash or not _ACCOUNT.match(account) or not _REGION.match(region):
            raise _problem(
                source,
                line,
                "an aws-lambda target is aws-lambda:ACCOUNT/REGION (a 12-digit account id or "
                "an account name of [aws.accounts], and a region such as eu-west-1)",
            )
        name = f"aws-lambda:{account}/{region}"
        return Target(TargetKind.AWS_LAMBDA, name, text, line, account=account, region=region)
    kind: TargetKind | None = None
    rest = text
    for prefix in (TargetKind.GIT, TargetKind.FILES):
        if text.startswith(f"{prefix.value}:") and not text.startswith(f"{prefix.value}://"):
            kind, rest = prefix, text[len(prefix.value) + 1 :].strip()
            break
    if not rest:
        raise _problem(source, line, f"{text!r} names no path or URL")
    if is_url(rest):
        if kind is TargetKind.FILES:
            raise _problem(
                source, line, "a files: target is a local path", hint="Write git:URL to clone it"
            )
        return Target(TargetKind.GIT, f"git:{safe_url(rest)}", rest, line)
    path = Path(rest).expanduser()
    path = Path(os.path.abspath(path if path.is_absolute() else base / path))
    if kind is None:
        kind = TargetKind.GIT if is_git_dir(path) else TargetKind.FILES
    return Target(kind, f"{kind.value}:{path}", str(path), line)


def parse_targets(text: str, *, source: str = "targets", cwd: Path | None = None) -> list[Target]:
    """Every target of a targets file, in its order, each name once."""
    targets: dict[str, Target] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.strip()
        if content.startswith("#"):
            continue
        content = re.split(r"\s#", content, maxsplit=1)[0].strip()
        if not content:
            continue
        target = parse_target(content, line=number, source=source, cwd=cwd)
        targets.setdefault(target.name, target)
    if not targets:
        raise TargetsError(f"{source} names no target", hint="Write one path, URL or "
                           "aws-lambda:ACCOUNT/REGION a line")  # fmt: skip
    return list(targets.values())


# ~200,000 targets of 80 characters; a bigger file is a mistake (or /dev/zero)
TARGETS_LIMIT = 16 * 1024 * 1024


def read_targets(path: Path) -> list[Target]:
    """The targets of ``path`` (``-``: standard input); relative paths are relative to the
    current directory."""
    import sys

    from keyward.core.userfiles import read_user_text

    if str(path) != "-":
        text = read_user_text(path, "targets file", limit=TARGETS_LIMIT, error=TargetsError,
                              missing_hint="Check --targets")  # fmt: skip
        return parse_targets(text, source=str(path))
    try:
        text = sys.stdin.read(TARGETS_LIMIT + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetsError(f"Cannot read the targets from standard input ({type(exc).__name__})",
                           hint="Pipe UTF-8 text, one target a line") from None  # fmt: skip
    if len(text) > TARGETS_LIMIT:
        raise TargetsError("The targets on standard input are larger than 16 MiB",
                           hint="Split them into several --targets files") from None  # fmt: skip
    return parse_targets(text, source="standard input")


# ------------------------------------------------------------------------------ shards
@dataclass(frozen=True, slots=True)
class Shard:
    """This process's share of the targets: every ``count``-th, from ``index`` (from 0)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                f"Shard {self.index}/{self.count} does not exist",
                hint="Give --shard K/N with 0 <= K < N (K counts from 0, like "
                "JOB_COMPLETION_INDEX)",
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise ConfigError(
                f"--shard takes K/N (got {text!r})",
                hint="For the first of four shards, give --shard 0/4",
            )
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def from_environment(cls, count: int, env: Mapping[str, str] | None = None) -> Shard:
        """Shard ``JOB_COMPLETION_INDEX/count`` (``--shards N`` in an Indexed Job's pod)."""
        value = (os.environ if env is None else env).get(INDEX_VARIABLE)
        if value is None or not value.strip().isdigit():
            raise ConfigError(
                f"--shards needs {INDEX_VARIABLE} (set in each pod of an Indexed Job)"
                + (f"; it is {value!r}" if value is not None else ""),
                hint="Give --shard K/N outside an Indexed Job",
            )
        return cls(int(value), count)

    def select(self, targets: Sequence[Target]) -> list[Target]:
        return [t for i, t in enumerate(targets) if i % self.count == self.index]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# ------------------------------------------------------------------------------ cloning
@contextmanager
def clone(target: Target, *, all_branches: bool = False, parent: Path | None = None
          ) -> Iterator[Path]:  # fmt: skip
    """Clone a remote target bare into a temporary directory, removed when the block ends.

    Read-only: nothing is ever pushed, no hook runs, no credential is prompted for. Without
    ``all_branches`` only the default branch is fetched (only its history is scanned).
    A clone that fails is a :class:`~keyward.core.errors.BackendError` naming the target by its
    name (never the URL with its credential)."""
    if not target.remote:
        raise ValueError("only a remote git target is cloned")
    workdir = Path(tempfile.mkdtemp(prefix="keyward-clone-", dir=parent))
    dest = workdir / "repo.git"
    command = [
        "git",
        "-c", "credential.interactive=false",
        "-c", "http.lowSpeedLimit=1000",  # a transfer stalled under 1 kB/s for a minute fails
        "-c", "http.lowSpeedTime=60",
        "clone", "--bare", "--quiet",
        *([] if all_branches else ["--single-branch"]),
        "--", target.where, str(dest),
    ]  # fmt: skip
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
    env.pop("SSH_ASKPASS", None)
    try:
        try:
            proc = subprocess.run(
                command, capture_output=True, env=env, stdin=subprocess.DEVNULL, check=False
            )
        except FileNotFoundError:
            raise SourceError(
                "git is not installed or not on PATH", hint="Install git to scan repositories"
            ) from None
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = lines[-1].removeprefix("fatal: ") if lines else "no message"
            detail = scrub_urls(detail.replace(target.where, target.name.removeprefix("git:")))
            raise BackendError(
                f"Cannot clone {target.name}: {detail}",
                hint="Check the URL and that this machine may read the repository",
            )
        yield dest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
