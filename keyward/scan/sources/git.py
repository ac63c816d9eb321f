"""Git history: every added line of every commit, streamed from git itself.

How it works (nothing is ever checked out):

1. ``git rev-list --topo-order --reverse`` lists the commits to scan, parents before children,
   so the first commit in that order that adds a secret is the one that introduced it.
2. :class:`HistorySource` runs ONE ``git log -p -U0 --no-walk=unsorted --stdin`` over all of
   them (renames detected so a moved file is not rescanned; merges as dense combined diffs,
   so only what the merge itself wrote is scanned, not again everything it brought in): git
   runs once, with warm pack and delta caches, while the workers match. The parent reads
   the stream as it comes and cuts it at commit boundaries into :class:`PatchPiece` work
   (about 512 KiB of patch text each); only the *added* lines of each file become a
   :class:`Chunk` whose ``line_map`` holds the new file's line numbers. The binary files
   met on the way (a ``Binary files`` line) are read in :class:`BinaryBatch` work, each blob
   once, with ``git cat-file --batch``, and their printable strings are scanned.
3. The runner matches the pieces in a fork-based process pool; at most two pieces per worker
   wait, and git waits once its pipe is full, so memory stays bounded by the pieces in
   flight, not the history.
4. The post-pass (:class:`~keyward.scan.postpass.FirstIntroduction`) makes the same secret
   (rule + fingerprint) seen in many commits one finding: the earliest introduction wins.
   ``still_present`` says whether the value is still in ``HEAD``'s tree.

The patch parsing (:class:`PatchParser`, :data:`PATCH_OPTIONS`, :func:`reap`) is shared with
the staged-changes source.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import IO, TYPE_CHECKING

from keyward.core.config import DEFAULT_MAX_FILE_SIZE
from keyward.core.errors import SourceError
from keyward.core.lazyre import lazy_bytes
from keyward.scan.model import Chunk, Finding, Location, SourceKind
from keyward.scan.postpass import FirstIntroduction
from keyward.scan.sources.base import PoolPolicy, Skipped, Tally

if TYPE_CHECKING:
    from keyward.scan.rules import Rule

SERIAL_MAX_COMMITS = 192  # below this, one process does it all (a pool costs more)
FIRST_PIECE_BYTES = 1 << 16  # patch text of the first piece of work (then doubling)
PIECE_BYTES = 1 << 19  # patch text per piece of work, in whole commits
MAX_PIECE_BYTES = 1 << 23  # a commit with more patch text than this is cut between files
BINARIES_PER_BATCH = 128  # binary blobs read by one git cat-file
PRESENCE_CHECK_COMMITS = 193  # from this many commits on, see WorktreeCheck
PACE_SECONDS = 0.002  # the pause before reading again when a read found little
_ORDER = 1 << 16  # history order: commit position * _ORDER + piece of the commit
_BINARY_PART = _ORDER - 1  # a commit's binary files come after its text files
_ZERO_OID = lazy_bytes(rb"^0+$")
_STRINGS = lazy_bytes(rb"[\x20-\x7e\t]{8,}")

# Options that make git's output independent of the user's configuration.
_STABLE = (
    "-c", "core.quotepath=off",
    "-c", "diff.noprefix=false",
    "-c", "diff.mnemonicPrefix=false",
    "-c", "log.showroot=true",
    "-c", "log.showSignature=false",
    "-c", "diff.external=",
)  # fmt: skip

PATCH_OPTIONS = (
    "-p", "-U0", "--no-color", "--no-ext-diff", "--no-textconv", "--full-index",
    "--src-prefix=a/", "--dst-prefix=b/", "--no-relative", "-M",
)  # fmt: skip
_HEADER = "--format=%x00%H %aI %an <%ae>"


# ------------------------------------------------------------------------ git runner
@dataclass(frozen=True, slots=True)
class GitRepo:
    """A git repository on disk (work tree or bare), addressed by any path inside it."""

    path: Path
    root: Path | None = None  # the work tree's top level, when known

    def command(self, *args: str) -> list[str]:
        return ["git", "--no-pager", "-C", str(self.path), *_STABLE, *args]

    def run(self, *args: str, check: bool = True, input: bytes | None = None) -> bytes:
        try:
            proc = subprocess.run(
                self.command(*args),
                input=input,
                capture_output=True,
                env=_git_env(),
                check=False,
            )
        except FileNotFoundError:
            raise SourceError(
                "git is not installed or not on PATH", hint="Install git to scan history"
            ) from None
        if check and proc.returncode != 0:
            raise SourceError(_git_message(args, proc.stderr))
        return proc.stdout

    def popen(self, *args: str, stdin: bool = False) -> subprocess.Popen[bytes]:
        try:
            proc = subprocess.Popen(
                self.command(*args),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_git_env(),
                bufsize=1 << 16,
            )
        except FileNotFoundError:
            raise SourceError(
                "git is not installed or not on PATH", hint="Install git to scan history"
            ) from None
        _widen_pipe(proc.stdout)
        return proc

    def has_commits(self) -> bool:
        return self.resolve("HEAD") is not None

    def resolve(self, rev: str) -> str | None:
        out = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}",
                       check=False)  # fmt: skip
        sha = out.decode("ascii", "replace").strip()
        return sha or None

    def toplevel(self) -> Path:
        if self.root is not None:
            return self.root
        out = self.run("rev-parse", "--show-toplevel", check=False).decode("utf-8", "replace")
        return Path(out.strip()) if out.strip() else self.path


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"})
    env.pop("GIT_EXTERNAL_DIFF", None)
    return env


def _git_message(args: Sequence[str], stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip().splitlines()
    detail = text[-1] if text else "no error message"
    detail = detail.removeprefix("fatal: ").removeprefix("error: ")
    words = iter(args)
    verb = ""
    for word in words:  # the sub-command: the first word that is not an option
        if word == "-c":
            next(words, None)
        elif not word.startswith("-"):
            verb = word
            break
    return f"git {verb} failed: {detail}".replace("  ", " ")


def open_repo(path: Path) -> GitRepo:
    """The repository at ``path``; a clear error when there is none."""
    if not path.exists():
        raise SourceError(f"The path {path} does not exist", hint="Check the path and try again")
    where = path if path.is_dir() else path.parent
    # one process: the git dir (is it a repository?) and the top level (none when bare)
    out = GitRepo(where).run("rev-parse", "--git-dir", "--show-toplevel", check=False)
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if not lines or not lines[0].strip():
        raise SourceError(
            f"{path} is not a git repository",
            hint="Run keyward inside a git work tree (or pass the path of one or of a bare "
            "repository); to scan plain files, leave out --git / --staged",
        )
    root = Path(lines[1]) if len(lines) > 1 and lines[1].strip() else where
    return GitRepo(where, root)


# ------------------------------------------------------------------------ diff parsing
@dataclass(slots=True)
class FileDiff:
    """The added lines of one file in one commit (or in the index).

    ``blocks`` holds runs of consecutive added lines: (lines joined by ``\\n``, first line
    number, number of lines). With ``-U0`` each hunk adds one such run.
    """

    path: str
    blocks: list[tuple[bytes, int, int]] = field(default_factory=list, repr=False)  # raw text
    size: int = 0
    binary_oid: str | None = None
    oversized: bool = False

    @property
    def lines(self) -> list[bytes]:
        return [line for block, _, _ in self.blocks for line in block.split(b"\n")]

    @property
    def numbers(self) -> list[int]:
        return [n for _, first, count in self.blocks for n in range(first, first + count)]


@dataclass(slots=True)
class CommitDiff:
    sha: str
    date: str
    author: str
    files: list[FileDiff] = field(default_factory=list)


def unquote_path(raw: bytes) -> bytes:
    """Undo git's C-style quoting of a path (``"a\\tb\\303\\251"``)."""
    if not (raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2):
        return raw
    body = raw[1:-1]
    out = bytearray()
    i = 0
    simple = {ord("n"): 10, ord("t"): 9, ord("r"): 13, ord("a"): 7, ord("b"): 8, ord("f"): 12,
              ord("v"): 11, ord("\\"): 92, ord('"'): 34}  # fmt: skip
    while i < len(body):
        c = body[i]
        if c == 92 and i + 1 < len(body):  # backslash
            nxt = body[i + 1]
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
                continue
            digits = body[i + 1 : i + 4]
            if len(digits) == 3 and all(48 <= d <= 55 for d in digits):
                out.append(int(digits, 8) & 0xFF)
                i += 4
                continue
        out.append(c)
        i += 1
    return bytes(out)


def path_filter(patterns: Sequence[str]) -> Callable[[str], bool] | None:
    """A predicate for paths matching ``--exclude`` / ``scan.exclude`` globs (None: none)."""
    if not patterns:
        return None  # the hook's path: no file walker, archive reader or pathspec import
    from keyward.scan.sources.files import exclude_spec

    spec = exclude_spec(patterns)
    return spec.match_file if spec is not None else None


def display_path(raw: bytes) -> str:
    """A printable, stable path for findings (undecodable bytes shown as ``\\xNN``)."""
    return raw.decode("utf-8", "backslashreplace")


def _strip_prefix(raw: bytes, prefix: bytes) -> bytes:
    raw = unquote_path(raw.rstrip(b"\r\n"))
    if raw.startswith(prefix):
        return raw[len(prefix) :]
    return raw


def _path_from_diff_git(rest: bytes) -> bytes | None:
    """Path from ``a/P b/P`` (the header of a diff with no ``+++`` line, e.g. a mode change)."""
    rest = rest.rstrip(b"\r\n")
    if rest.startswith(b'"'):
        end = rest.find(b'" ', 1)
        if end < 0:
            return None
        second = rest[end + 2 :]
        return _strip_prefix(second, b"b/")
    n = len(rest)
    if (n - 5) % 2 == 0 and n > 5:
        half = (n - 5) // 2
        a, b = rest[2 : 2 + half], rest[5 + half :]
        if rest.startswith(b"a/") and rest[2 + half : 5 + half] == b" b/" and a == b:
            return b
    idx = rest.rfind(b" b/")
    return rest[idx + 3 :] if idx >= 0 else None


_RECORD = lazy_bytes(rb"\n(?=diff --git |diff --cc |\x00)")
# a -U0 hunk's header and removed lines (and a "\ No newline" marker after them)
_HUNK_HEAD = lazy_bytes(rb"@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@[^\n]*\n(?:[-\\][^\n]*\n)*")
_COMBINED_HUNK = lazy_bytes(rb"(@{3,}) (?:-\d+(?:,\d+)? )+\+(\d+)(?:,\d+)? @{3,}")


def split_records(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Cut a patch stream into records: a commit header (``\\0...``) or one file's diff.

    Records start at lines beginning with ``diff --git `` or NUL, which no content line can
    (content lines carry a ``+``/``-``/space prefix), so the cut needs no line-by-line parse.
    """
    rest = b""
    for piece in pieces:
        data = rest + piece if rest else piece
        parts = _RECORD.split(data)
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def read_pieces(stream: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """What the pipe holds, as soon as it holds something (so git keeps writing meanwhile)."""
    read = getattr(stream, "read1", stream.read)
    while piece := read(size):
        yield piece


def _pipe_size(stream: IO[bytes]) -> int:
    """The capacity of the pipe ``stream`` reads (0 when unknown, or not a pipe)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        import fcntl

        return int(fcntl.fcntl(stream.fileno(), 1032))  # F_GETPIPE_SZ
    except (OSError, ValueError, ImportError, AttributeError, io.UnsupportedOperation):
        return 0


def _widen_pipe(stream: IO[bytes] | None) -> None:
    """Let git run up to 1 MiB ahead of the parser (Linux pipes default to 64 KiB)."""
    if stream is None or not sys.platform.startswith("linux"):
        return
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except (OSError, ValueError, ImportError):
        pass  # capped by /proc/sys/fs/pipe-max-size: the default size still works


def commit_of(header: bytes) -> CommitDiff:
    """The commit of a header record (``\\0SHA DATE AUTHOR``, as :data:`_HEADER` prints it)."""
    nl = header.find(b"\n")
    head = header[1 : nl if nl >= 0 else len(header)].decode("utf-8", "replace")
    sha, _, rest = head.partition(" ")
    date, _, author = rest.partition(" ")
    return CommitDiff(sha, date, author.rstrip("\r"))


def _header_line(head: bytes, key: bytes) -> bytes | None:
    """What follows ``key`` on the first line after the first that starts with it."""
    at = head.find(b"\n" + key)
    if at < 0:
        return None
    start = at + 1 + len(key)
    end = head.find(b"\n", start)
    return head[start:] if end < 0 else head[start:end]


class PatchParser:
    """Turns ``git log -p -U0`` / ``git diff -U0`` output into added lines per file.

    Streaming and hunk-at-a-time: the stream is cut into one record per file, and with
    ``-U0`` each hunk header says how many lines it removes and adds, so the added lines are
    a slice of the record's lines, not a per-line state machine. ``core.bigFileThreshold``
    (set by the callers) keeps any one record bounded: larger files are diffed as binary.
    """

    def __init__(self, max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> None:
        self.max_file_size = max_file_size
        self.bytes_read = 0
        self.paths: set[str] = set()  # every path with a change, content or not

    def parse(
        self, pieces: Iterable[bytes], *, single: CommitDiff | None = None
    ) -> Iterator[CommitDiff]:
        """Commits with all their files (convenient; holds one commit's added lines)."""
        current: CommitDiff | None = None
        for commit, fd in self.files(pieces, single=single):
            if commit is not current:
                if current is not None:
                    yield current
                current = commit
            if fd is not None:
                commit.files.append(fd)
        if current is not None:
            yield current

    def files(
        self, pieces: Iterable[bytes], *, single: CommitDiff | None = None
    ) -> Iterator[tuple[CommitDiff, FileDiff | None]]:
        """Each file's diff as soon as it is read, with its commit (memory: one file).

        A commit is also yielded once with ``None`` when it starts, so commits without any
        file change are seen too. ``single`` is the one "commit" of a ``git diff``.
        """
        commit = single
        if single is not None:
            yield single, None
        for record in split_records(pieces):
            self.bytes_read += len(record) + 1
            if record.startswith(b"\0"):
                commit = commit_of(record)
                yield commit, None
            elif record.startswith((b"diff --git ", b"diff --cc ")) and commit is not None:
                fd = self.file_diff(record)
                if fd is not None:
                    yield commit, fd

    def file_diff(self, record: bytes) -> FileDiff | None:
        """The added lines (or the binary blob) of one file's diff record."""
        body = record.find(b"\n@@")  # the first hunk; none: no content change, or binary
        head = record if body < 0 else record[:body]
        nl = head.find(b"\n")
        first = head if nl < 0 else head[:nl]
        combined = first.startswith(b"diff --cc ")
        path = (
            unquote_path(first[10:].rstrip(b"\r")) if combined else _path_from_diff_git(first[11:])
        )
        # the header lines, found rather than looped over (a path with a newline is quoted)
        oid: str | None = None
        index = _header_line(head, b"index ")
        if index is not None:
            new = index.split(b" ", 1)[0].partition(b"..")[2].strip()
            oid = None if not new or _ZERO_OID.match(new) else new.decode("ascii")
        moved = _header_line(head, b"rename to ")
        if moved is None:
            moved = _header_line(head, b"copy to ")
        if moved is not None:
            path = unquote_path(moved.rstrip(b"\r"))
        binary = _header_line(head, b"Binary files ")
        if binary is not None and binary.rstrip().endswith(b" differ"):
            if path is None or oid is None:  # a deleted binary file
                return None
            self.paths.add(display_path(path))
            return FileDiff(display_path(path), binary_oid=oid)
        target = _header_line(head, b"+++ ")
        if target is not None:
            # git appends a tab to names with spaces; a real tab in a name is quoted
            target = target.rstrip(b"\r").removesuffix(b"\t")
            path = None if target == b"/dev/null" else _strip_prefix(target, b"b/")
        if path is not None:
            self.paths.add(display_path(path))
        if path is None or body < 0:
            return None  # deleted, or no content change (mode change, pure rename)
        fd = FileDiff(display_path(path))
        if combined:
            hunks = record[body + 1 :].split(b"\n")
            return self._combined(fd, hunks, 0)
        return self._hunks(fd, record, body + 1)

    def _hunks(self, fd: FileDiff, record: bytes, at: int) -> FileDiff:
        """The added runs of a ``-U0`` diff's hunks, from ``record[at:]`` (a hunk header).

        Hunk-at-a-time, never line by line: a hunk's header (with its counts) and its removed
        lines are one regex match; its added lines are the run up to the next hunk header (or
        the end), less a trailing ``\\ No newline at end of file``.
        """
        limit = self.max_file_size
        end = len(record) - record.endswith(b"\n")  # the stream's last newline
        while at >= 0:
            nxt = record.find(b"\n@@", at)
            stop = end if nxt < 0 else nxt
            m = _HUNK_HEAD.match(record, at)
            at = -1 if nxt < 0 else nxt + 1
            if m is None:
                continue
            added = int(m.group(2)) if m.group(2) is not None else 1
            begin = m.end()
            if not added or begin >= stop:
                continue
            marker = record.rfind(b"\n\\", begin, stop)  # "\ No newline at end of file"
            block = record[begin : marker if marker >= 0 else stop]
            fd.size += len(block)
            if fd.size > limit:
                fd.oversized = True
                fd.blocks.clear()
                return fd
            # drop the "+" of every line at C speed
            fd.blocks.append((block[1:].replace(b"\n+", b"\n"), int(m.group(1)), added))
        return fd

    def _combined(self, fd: FileDiff, lines: list[bytes], i: int) -> FileDiff:
        """Hunks of a merge's dense combined diff (``--cc``): one prefix column per parent.

        A line is in the merge result unless a column says ``-``; it was written by the merge
        itself (not taken from any parent) when every column says ``+``. Only those lines are
        new: everything else was scanned in the commits that brought it in.
        """
        n = len(lines)
        lineno = 0
        parents = 0
        run: list[bytes] = []
        run_start = 0

        def flush() -> None:
            if run:
                fd.blocks.append((b"\n".join(run), run_start, len(run)))
                fd.size += sum(len(r) for r in run)
                run.clear()

        while i < n:
            line = lines[i]
            i += 1
            m = _COMBINED_HUNK.match(line)
            if m is not None:
                flush()
                parents = len(m.group(1)) - 1
                lineno = int(m.group(2))
                continue
            if not parents or line.startswith(b"\\"):
                continue
            prefix = line[:parents]
            if b"-" in prefix:
                continue  # only in a parent, not in the result
            if prefix == b"+" * parents:
                if not run:
                    run_start = lineno
                run.append(line[parents:])
            else:
                flush()
            lineno += 1
        flush()
        if fd.size > self.max_file_size:
            fd.oversized = True
            fd.blocks.clear()
        return fd


def strings_of(data: bytes) -> bytes:
    """Printable ASCII runs of a binary blob, one per line (what ``strings`` shows)."""
    return b"\n".join(_STRINGS.findall(data))  # no groups: the whole runs, no Match objects


def decode_block(block: bytes) -> tuple[str, bytes | None]:
    if block.isascii():
        return block.decode("ascii"), block
    try:
        return block.decode("utf-8"), block
    except UnicodeDecodeError:
        return block.decode("utf-8", "replace"), None


def file_chunk(diff: FileDiff, location: Location) -> Chunk | None:
    """The chunk of a file's added lines (line numbers of the new file)."""
    if not diff.blocks:
        return None
    if len(diff.blocks) == 1:
        block, first, count = diff.blocks[0]
        line_map = tuple(range(first, first + count))
    else:
        block = b"\n".join(b for b, _, _ in diff.blocks)
        line_map = tuple(chain.from_iterable(range(f, f + c) for _, f, c in diff.blocks))
    text, data = decode_block(block)
    return Chunk(text=text, location=location, line_map=line_map, data=data)


def read_blobs(
    repo: GitRepo, oids: Sequence[str], max_size: int
) -> Generator[tuple[str, bytes | None], None, None]:
    """Contents of blobs (None when larger than ``max_size`` or missing), streamed."""
    if not oids:
        return
    sizes: dict[str, int] = {}
    out = repo.run("cat-file", "--batch-check", input="\n".join(oids).encode() + b"\n")
    for row in out.splitlines():
        parts = row.split()
        if len(parts) == 3 and parts[1] == b"blob":
            sizes[parts[0].decode()] = int(parts[2])
    wanted = [o for o in oids if 0 < sizes.get(o, max_size + 1) <= max_size]
    for o in oids:
        if o not in wanted:
            yield o, None
    if not wanted:
        return
    proc = repo.popen("cat-file", "--batch", stdin=True)
    assert proc.stdin is not None and proc.stdout is not None
    # cat-file answers as it reads: feed it from a thread, or a long list fills both pipes
    feeder = threading.Thread(
        target=_feed, args=(proc.stdin, "\n".join(wanted).encode() + b"\n"), daemon=True
    )
    feeder.start()
    try:
        for _ in wanted:
            header = proc.stdout.readline().split()
            if len(header) != 3:
                break
            size = int(header[2])
            data = proc.stdout.read(size)
            proc.stdout.read(1)
            yield header[0].decode(), data
    finally:
        proc.stdout.close()  # stops cat-file (SIGPIPE), which ends the feeder's write
        feeder.join(timeout=10)
        reap(proc, "cat-file")


def _feed(stream: IO[bytes], data: bytes) -> None:
    try:
        stream.write(data)
        stream.close()
    except (BrokenPipeError, ValueError, OSError):  # the reader stopped early
        pass


def reap(proc: subprocess.Popen[bytes], what: str) -> None:
    """Close our ends, reap git, and raise its error (not SIGPIPE after an early stop)."""
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    err = proc.stderr.read() if proc.stderr is not None else b""
    rc = proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()
    if rc not in (0, -13):  # -13: SIGPIPE because we stopped reading early
        raise SourceError(_git_message([what], err))


# ------------------------------------------------------------------------ history scan
@dataclass(frozen=True, slots=True)
class GitOptions:
    """Which commits to scan: HEAD's history by default (combinations are checked by
    :class:`~keyward.scan.request.ScanRequest`; ``range`` wins over the others here)."""

    all_branches: bool = False
    since: str | None = None  # scan REV..HEAD (commits after REV)
    range: str | None = None  # scan A..B (or A...B) as git understands it
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    exclude: tuple[str, ...] = ()  # gitignore-style globs of paths not to scan


def rev_list_args(repo: GitRepo, opts: GitOptions, head: bool | None = None) -> list[str]:
    """Arguments for ``git rev-list`` selecting the commits to scan (revisions checked);
    ``head``: whether HEAD names a commit, when already known."""
    tips = ["--branches", "--tags", "--remotes"] if opts.all_branches else []
    if repo.has_commits() if head is None else head:
        tips.append("HEAD")
    if opts.range is not None:
        rng = opts.range
        sep = "..." if "..." in rng else ".."
        if sep not in rng or rng.startswith("-"):
            raise SourceError(
                f"{rng!r} is not a commit range", hint="Write it as A..B, e.g. main..feature"
            )
        for side in rng.split(sep, 1):
            if side and repo.resolve(side) is None:
                raise SourceError(f"Unknown revision {side!r} in --range {rng}")
        revs = [rng]
    elif opts.since is not None:
        if opts.since.startswith("-") or repo.resolve(opts.since) is None:
            raise SourceError(
                f"Unknown revision {opts.since!r} for --since",
                hint="Give a commit, tag or branch name, e.g. --since v1.2.0",
            )
        revs = [*tips, f"^{opts.since}"]
    else:
        revs = tips
    return ["rev-list", "--topo-order", "--reverse", *revs, "--"]


def _commit_starts(text: bytes, lo: int = 0, hi: int | None = None) -> Iterator[int]:
    """Offsets of the commit headers in ``text[lo:hi]``: a NUL at the start of a line.

    Content lines never start with NUL (they carry a ``+``/``-``/space prefix), but a file git
    diffs as text may hold a NUL further on, so each NUL found (by ``memchr``, much faster
    than a search for two bytes) is checked for the newline before it.
    """
    end = len(text) if hi is None else hi
    at = text.find(b"\0", lo, end)
    while at >= 0:
        if at == 0 or text[at - 1] == 10:
            yield at
        at = text.find(b"\0", at + 1, end)


def _last_commit_start(buf: bytearray, lo: int) -> int:
    """The offset of the last commit header in ``buf[lo:]`` (-1: none)."""
    at = buf.rfind(b"\0", lo)
    while at > 0 and buf[at - 1] != 10:
        at = buf.rfind(b"\0", lo, at)
    return at


def _cut(stream: IO[bytes]) -> Iterator[tuple[bytes, int, int]]:
    """Cut one ``git log`` stream into pieces of whole commits: ``(text, first, part)``.

    ``first`` is the history position of the piece's first commit. A piece ends where the next
    commit starts, once it holds :data:`PIECE_BYTES` (the first ones less, so every worker
    starts early). A single commit larger than :data:`MAX_PIECE_BYTES` is cut between two
    files instead, and the next piece starts with that commit's header again: ``part``
    numbers those pieces of one commit (0: the piece starts with a commit of its own).
    """
    buf = bytearray()
    first = part = 0
    last = 0  # where the last commit in buf starts (0: none but buf's first)
    target = FIRST_PIECE_BYTES
    # git writes 4 KiB at a time: rather than wake for each, let a wide pipe fill a little
    pace = _pipe_size(stream) >= 1 << 19
    for data in read_pieces(stream):
        if pace and len(data) < 1 << 16:
            time.sleep(PACE_SECONDS)  # 2 ms: git fills 1 MiB in ~30 ms, so it never waits
        seen = len(buf)
        buf += data
        found = _last_commit_start(buf, max(1, seen))
        if found > 0:
            last = found
        if len(buf) < target:
            continue
        if last > 0:
            with memoryview(buf) as view:  # one copy (a bytearray slice would be another)
                piece = bytes(view[: last - 1])  # without the newline before the next header
            del buf[:last]
            last = 0
            yield piece, first, part
            first += sum(1 for _ in _commit_starts(piece))
            part = 0
            target = min(2 * target, PIECE_BYTES)
        elif len(buf) > MAX_PIECE_BYTES:  # one commit, so far: cut it between two files
            at = buf.rfind(b"\ndiff --")
            if at <= buf.find(b"\ndiff --"):
                continue  # one file so far: git's big-file threshold bounds it
            header = bytes(buf[: buf.find(b"\n") + 1])
            with memoryview(buf) as view:
                piece = bytes(view[:at])
            del buf[: at + 1]
            buf[:0] = header
            yield piece, first, part
            part += 1
    if buf:
        yield bytes(buf), first, part


def _binaries(piece: bytes, parser: PatchParser) -> Iterator[tuple[int, CommitDiff, FileDiff]]:
    """The binary files of a piece of patch text, each with the index of its commit in the
    piece (found without parsing the text files: a ``Binary files`` line of git's)."""
    pos = piece.find(b"\nBinary files ")
    index = -1  # which commit of the piece `head` starts
    head = counted = 0
    while pos >= 0:
        start = piece.rfind(b"\ndiff --", 0, pos) + 1
        nxt = _RECORD.search(piece, pos + 1)
        end = nxt.start() if nxt is not None else len(piece)
        if start > 0:
            for head in _commit_starts(piece, counted, start):  # noqa: B007 (the last one)
                index += 1
            counted = start
            fd = parser.file_diff(piece[start:end])
            if fd is not None and fd.binary_oid is not None:
                yield index, commit_of(piece[head:start]), fd
        pos = piece.find(b"\nBinary files ", end)


def _order(position: int, part: int) -> int:
    """Where a finding sits in history: commit first, then the piece of that commit (when a
    large commit was cut), then its binary files (:data:`_BINARY_PART`)."""
    return position * _ORDER + part


@dataclass(frozen=True, slots=True)
class PatchPiece:
    """Consecutive commits' patch text, cut from the scan's one ``git log`` stream; their
    text files' added lines are matched where the piece is (binary files are read by a
    :class:`BinaryBatch`)."""

    first: int  # history position of the first commit
    part: int  # 0, or which piece of that commit this is (a large commit cut in several)
    text: bytes = field(repr=False)
    max_size: int = DEFAULT_MAX_FILE_SIZE
    exclude: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.text)

    @property
    def items(self) -> int:
        """Commits that start in this piece."""
        return sum(1 for _ in _commit_starts(self.text)) - (1 if self.part else 0)

    def order_of(self, commit: str | None) -> int:
        at = self.text.find(b"\0" + (commit or "-").encode("ascii", "replace"))
        if at < 0:
            return _order(self.first, self.part)
        index = sum(1 for _ in _commit_starts(self.text, 1, at))
        return _order(self.first + index, 0 if index else self.part)

    def chunks(self, tally: Tally) -> Iterator[Chunk]:
        """The added lines of each text file of each commit."""
        parser = PatchParser(self.max_size)
        excluded = path_filter(self.exclude)
        continued = self.part > 0  # its first commit was counted with the piece before
        for commit, fd in parser.files((self.text,)):
            if fd is None:  # a commit starts
                if continued:
                    continued = False
                else:
                    tally.commits += 1
                continue
            if fd.binary_oid is not None or (excluded is not None and excluded(fd.path)):
                continue
            if fd.oversized:
                tally.skipped.append(
                    Skipped(
                        f"{fd.path}@{commit.sha[:12]}", "added lines larger than the size limit"
                    )
                )
                continue
            loc = Location(
                kind=SourceKind.GIT,
                path=fd.path,
                commit=commit.sha,
                author=commit.author,
                date=commit.date,
            )
            chunk = file_chunk(fd, loc)
            if chunk is not None:
                tally.files += 1
                tally.chunks += 1
                yield chunk
        tally.bytes += parser.bytes_read


@dataclass(frozen=True, slots=True)
class BinaryBatch:
    """Binary files of the history, each blob once, under the first commit that added it;
    their printable strings are matched where the batch is (one ``git cat-file``)."""

    repo: GitRepo
    blobs: tuple[tuple[str, int, Location], ...]  # blob id, history position, where
    max_size: int = DEFAULT_MAX_FILE_SIZE

    @property
    def size(self) -> int:
        return 0  # blob sizes are known only once cat-file answered

    @property
    def items(self) -> int:
        return len(self.blobs)

    def order_of(self, commit: str | None) -> int:
        for _, position, loc in self.blobs:
            if loc.commit == commit:
                return _order(position, _BINARY_PART)
        return _order(self.blobs[0][1], _BINARY_PART) if self.blobs else 0

    def chunks(self, tally: Tally) -> Iterator[Chunk]:
        where = {oid: loc for oid, _, loc in self.blobs}
        for oid, data in read_blobs(self.repo, list(where), self.max_size):
            loc = where[oid]
            if data is None:
                tally.skipped.append(
                    Skipped(
                        f"{loc.path}@{(loc.commit or '')[:12]}",
                        "binary file larger than the size limit",
                    )
                )
                continue
            tally.binary_blobs += 1
            tally.chunks += 1
            tally.bytes += len(data)
            strings = strings_of(data)
            if strings:
                text, raw = decode_block(strings)
                n = strings.count(b"\n") + 1
                yield Chunk(text, loc, line_map=(0,) * n, data=raw)


HistoryWork = PatchPiece | BinaryBatch

# Below this many commits one process does it all (a pool costs more); at most two pieces per
# worker wait to be matched (git waits, too, once its pipe is full).
HISTORY_POOL = PoolPolicy(min_items=SERIAL_MAX_COMMITS + 1, in_flight=2)


@dataclass(slots=True)
class HistorySource:
    """The history of the repository at ``path``, as pieces of one ``git log`` stream.

    Here, in the calling process: ``git rev-list`` lists the commits, one ``git log -p``
    prints them all (so git runs once, with warm caches, while the workers match), and the
    stream is cut at commit boundaries into :class:`PatchPiece` work. The binary files found
    on the way are read in :class:`BinaryBatch` work, each blob once. The post-pass keeps one
    finding per secret (:class:`~keyward.scan.postpass.FirstIntroduction`).
    """

    path: Path
    options: GitOptions = field(default_factory=GitOptions)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    root: Path | None = None  # the work tree's top level, once work() started
    _repo: GitRepo | None = field(default=None, repr=False)
    _commits: int = field(default=0, repr=False)  # how many work() listed
    _worktree: WorktreeCheck | None = field(default=None, repr=False)

    @property
    def pool(self) -> PoolPolicy | None:
        """Once :meth:`work` listed the commits, a long history goes to the pool at once (its
        first piece), instead of after the first 193 commits were read and held."""
        if self._commits > SERIAL_MAX_COMMITS and HISTORY_POOL.min_items > 1:
            return replace(HISTORY_POOL, min_items=1)
        return HISTORY_POOL

    def work(self) -> Iterator[HistoryWork]:
        """Lists the commits now (a bad revision raises here), then streams their patches."""
        opts = self.options
        repo = self._repo = open_repo(self.path)
        self.root = repo.toplevel()
        head = repo.has_commits()
        if not head and not opts.all_branches and opts.range is None:
            self.warnings.append(f"{self.path} has no commits yet: nothing to scan")
            return iter(())
        commits = repo.run(*rev_list_args(repo, opts, head))
        self._commits = commits.count(b"\n")
        if (
            head
            and self._commits >= PRESENCE_CHECK_COMMITS
            and self.root is not None
            and repo.path.resolve() == self.root.resolve()
        ):
            self._worktree = WorktreeCheck(repo)
        if not commits.strip():
            return iter(())  # (git log would show HEAD when given no commit)
        return self._stream(repo, commits)

    def _stream(self, repo: GitRepo, commits: bytes) -> Iterator[HistoryWork]:
        """One ``git log`` over ``commits``, cut into pieces; binary files in batches."""
        opts = self.options
        max_size = opts.max_file_size
        log = repo.popen(
            "-c", f"core.bigFileThreshold={max_size}", "log", *PATCH_OPTIONS,
            "--diff-merges=dense-combined", _HEADER, "--no-walk=unsorted", "--stdin",
            stdin=True,
        )  # fmt: skip
        assert log.stdin is not None and log.stdout is not None
        excluded = path_filter(opts.exclude)
        parser = PatchParser(max_size)
        seen: set[str] = set()
        pending: list[tuple[str, int, Location]] = []
        try:
            try:
                log.stdin.write(commits)  # git reads them all before it prints anything
                log.stdin.close()
            except BrokenPipeError:
                pass  # git stopped: reap() says why
            for text, first, part in _cut(log.stdout):
                if not part and len(pending) >= BINARIES_PER_BATCH:  # whole commits only
                    yield BinaryBatch(repo, tuple(pending), max_size)
                    pending = []
                for index, commit, fd in _binaries(text, parser):
                    oid = fd.binary_oid
                    if oid is None or oid in seen or (excluded is not None and excluded(fd.path)):
                        continue
                    seen.add(oid)
                    loc = Location(
                        kind=SourceKind.GIT,
                        path=fd.path,
                        commit=commit.sha,
                        author=commit.author,
                        date=commit.date,
                    )
                    pending.append((oid, first + index, loc))
                yield PatchPiece(first, part, text, max_size, opts.exclude)
            if pending:
                yield BinaryBatch(repo, tuple(pending), max_size)
        finally:
            reap(log, "log")

    def post_pass(self, rules: Sequence[Rule]) -> FirstIntroduction:
        return FirstIntroduction(self.still_present)

    def still_present(self, findings: Sequence[Finding]) -> set[int]:
        check, self._worktree = self._worktree, None
        worktree = check.matches_head() if check is not None and findings else False
        if check is not None:
            check.close()
        if self._repo is None:
            return set()
        return present_at_head(self._repo, findings, self.options.max_file_size, worktree=worktree)


class WorktreeCheck:
    """Whether ``git grep`` may search the work tree's files for what HEAD holds, instead of
    inflating every blob of HEAD (on Django's 6,800 files 0.07 instead of 0.45 CPU s, at the
    very end of a scan). Started with the scan, in the background, and read at its end:

    * ``git diff-index --quiet HEAD`` finds no difference between HEAD and the work tree
      (nothing staged, changed or deleted; a bare repository fails it), and
    * no file has an attribute that changes its content on checkout other than its line
      endings (a smudge ``filter``, ``working-tree-encoding``, ``ident``): ``git check-attr``
      over ``git ls-files``, written to a temporary file (no thread, no pipe to drain).

    Line-ending conversion cannot hide a value from the search (it looks for one line of a
    value, without its carriage return), and which value a file holds is still decided on
    HEAD's blob.
    """

    ATTRIBUTES = ("filter", "working-tree-encoding", "ident")

    def __init__(self, repo: GitRepo) -> None:
        import tempfile  # not at module level: the pre-commit hook imports this module

        env = _git_env()
        quiet = subprocess.DEVNULL
        self._out = tempfile.TemporaryFile()
        self._procs: list[subprocess.Popen[bytes]] = []
        try:
            self._procs.append(subprocess.Popen(
                repo.command("diff-index", "--quiet", "HEAD", "--"),
                stdin=quiet, stdout=quiet, stderr=quiet, env=env,
            ))  # fmt: skip
            files = subprocess.Popen(
                repo.command("ls-files", "-z"),
                stdin=quiet, stdout=subprocess.PIPE, stderr=quiet, env=env,
            )  # fmt: skip
            self._procs.append(files)
            self._procs.append(subprocess.Popen(
                repo.command("check-attr", "--stdin", "-z", *self.ATTRIBUTES),
                stdin=files.stdout, stdout=self._out, stderr=quiet, env=env,
            ))  # fmt: skip
            assert files.stdout is not None
            files.stdout.close()  # check-attr reads it
        except OSError:
            self.close()

    def matches_head(self) -> bool:
        """Waits for the checks (long done by the end of a scan)."""
        if len(self._procs) != 3 or any(p.wait() != 0 for p in self._procs):
            return False
        self._out.seek(0)
        fields = self._out.read().split(b"\0")  # path, attribute, value, path, ...
        return all(value in (b"unspecified", b"unset") for value in fields[2::3])

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._procs = []
        self._out.close()


def present_at_head(
    repo: GitRepo, findings: Sequence[Finding], max_size: int, *, worktree: bool = False
) -> set[int]:
    """Indexes of findings whose value is still somewhere in HEAD's tree.

    ``git grep -F`` (multi-threaded, in C) finds the files that contain any of the values,
    read from stdin, never from the command line — in the work tree's files when
    ``worktree`` (a :class:`WorktreeCheck` found them to be HEAD's), else in HEAD's blobs;
    only those files are then read from HEAD to tell which value each one holds.
    """
    if not findings or repo.resolve("HEAD") is None:
        return set()
    wanted = {i: f.secret.encode("utf-8", "surrogatepass") for i, f in enumerate(findings)}
    wanted = {i: v for i, v in wanted.items() if v.strip()}
    # one line per pattern: a multi-line value (a PEM key) is looked for by its longest line
    patterns = {max(v.split(b"\n"), key=len).strip(b"\r") for v in wanted.values()}
    patterns.discard(b"")
    if not patterns:
        return set()
    where = ["--full-name"] if worktree else ["HEAD"]
    try:
        proc = subprocess.run(
            repo.command("grep", "-l", "-z", "-F", "--no-color", "--no-textconv", "-f", "-",
                         *where, "--"),
            input=b"\n".join(sorted(patterns)) + b"\n",
            capture_output=True,
            env=_git_env(),
            check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise SourceError("git is not installed or not on PATH") from None
    if proc.returncode == 1:
        return set()  # no file at HEAD holds any of them
    if proc.returncode != 0:
        raise SourceError(_git_message(["grep"], proc.stderr))
    names = proc.stdout.split(b"\0")
    if worktree:
        matched = {n for n in names if n}
    else:
        matched = {n.split(b":", 1)[1] for n in names if b":" in n}
    listing = repo.run("ls-tree", "-r", "-z", "--full-tree", "HEAD")
    oids: dict[str, None] = {}
    for entry in listing.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == b"blob" and path in matched:
            oids[parts[2].decode("ascii")] = None
    found: set[int] = set()
    blobs = read_blobs(repo, list(oids), max(max_size, 64 << 20))
    try:
        for _, data in blobs:
            if data is None:
                continue
            for i, v in list(wanted.items()):
                if v in data:
                    found.add(i)
                    del wanted[i]
            if not wanted:
                break
    finally:
        blobs.close()
    return found
