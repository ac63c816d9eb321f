"""Files and directories: walk, honour ignores, decode safely.

:class:`FileSource` walks in the calling process (cheap: directory entries and one ``lstat``
per file) and yields :class:`FileBatch` work; reading and decoding happen where the batch is
matched (a worker process for a large tree), so a large tree spreads over every core.

Rules of the walk:

* ``.gitignore`` files are honoured the way git does: every ``.gitignore`` from the repository
  top down to each directory (patterns relative to their own directory, the deepest and last
  match wins, ``!`` re-includes), plus ``.git/info/exclude``. A path named on the command line
  is always scanned. ``--no-ignore`` switches all of this off; ``.git`` itself is never scanned.
* Symlinks are never followed: a link to a file inside the tree is scanned under the target's
  own name, everything else (a link out of the tree, a broken link, a loop, a link to a
  directory) is skipped and listed with ``--verbose``.
* Anything that is not a regular file (FIFO, socket, device) is skipped without opening it for
  reading in blocking mode; a file larger than ``max_file_size`` is skipped from its ``stat``
  alone, without reading. No file larger than :data:`HARD_MAX_FILE_SIZE` is ever read whole.
* Binary files (a NUL byte in the first 8 KiB, no BOM) are skipped. Text is decoded from UTF-8,
  UTF-8/16/32 with a BOM, or UTF-8 with invalid bytes replaced (positions stay right).
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pathspec

from keyward.core.config import DEFAULT_MAX_FILE_SIZE
from keyward.core.errors import ConfigError, SourceError
from keyward.scan.model import Chunk, Location, SourceKind
from keyward.scan.postpass import KeepAll
from keyward.scan.sources.archives import ArchiveKind, ArchiveLimits, archive_kind, archive_members
from keyward.scan.sources.base import PoolPolicy, Skipped, Tally

if TYPE_CHECKING:
    from keyward.scan.rules import Rule

BINARY_SNIFF = 8192
# Files are read and decoded whole; this bounds the memory one worker can use (bytes + text
# + lower-cased text is about 3x this), whatever --max-file-size says.
HARD_MAX_FILE_SIZE = 256 * 1024 * 1024
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BOM_PREFIXES = tuple(bom for bom, _ in _BOMS)
# Files up to this size are read whole at once; a larger one is sniffed for binary first.
_READ_WHOLE = 16 * 1024 * 1024
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True, slots=True)
class FileTask:
    path: str  # path to open
    display: str  # path shown in findings (relative to the scanned root)
    size: int
    follow: bool = False  # True only for a path named on the command line


@dataclass(slots=True)
class WalkOptions:
    exclude: Sequence[str] = ()
    use_ignore_files: bool = True
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    # Real paths of files never to scan (the baseline being written or read).
    skip_files: frozenset[str] = frozenset()
    # Look inside archives (zip, jar, whl, tar, tar.gz, ...) within ArchiveLimits.
    archives: bool = True

    def __post_init__(self) -> None:
        check_max_file_size(self.max_file_size)


def check_max_file_size(size: int) -> int:
    if size <= 0:
        raise ConfigError(
            f"--max-file-size must be positive (got {size})", hint="Use e.g. 512k, 10M or 100M"
        )
    if size > HARD_MAX_FILE_SIZE:
        raise ConfigError(
            f"--max-file-size may be at most {HARD_MAX_FILE_SIZE // 1024**2}M because files are "
            "read whole",
            hint="Split the file or scan it with a lower limit",
        )
    return size


@dataclass(frozen=True, slots=True)
class _Ignore:
    """One ignore file: paths under ``base`` (relative to the scanned root) are checked as
    ``prefix + path-below-base`` against ``spec``."""

    base: str
    prefix: str
    spec: pathspec.GitIgnoreSpec


@dataclass(slots=True)
class FileWalker:
    """Plans which files to scan under the given roots."""

    roots: Sequence[Path]
    options: WalkOptions = field(default_factory=WalkOptions)
    skipped: list[Skipped] = field(default_factory=list)
    _exclude: pathspec.GitIgnoreSpec | None = field(init=False, default=None, repr=False)
    # (device, inode) of every planned file: overlapping roots and hard links scan once
    _seen: set[tuple[int, int]] = field(init=False, default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self._exclude = exclude_spec(self.options.exclude)

    def check_roots(self) -> None:
        """Raise a :class:`SourceError` for a root that does not exist or cannot be read."""
        for root in self.roots:
            _stat_root(root)

    def tasks(self) -> Iterator[FileTask]:
        multi = len(self.roots) > 1
        for root in self.roots:
            st = _stat_root(root)
            prefix = root.as_posix().rstrip("/") + "/" if multi else ""
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk_dir(root, prefix)
                continue
            display = root.as_posix() if multi else root.name
            if not stat.S_ISREG(st.st_mode):
                self.skipped.append(Skipped(display, "not a regular file", warning=True))
            elif not (self._excluded(display) or self._excluded(root.name)):
                if not self._skip_file(str(root)) and self._first_time(st):
                    task = self._file_task(str(root), display, st.st_size, follow=True)
                    if task is not None:
                        yield task

    def _first_time(self, st: os.stat_result) -> bool:
        key = (st.st_dev, st.st_ino)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _excluded(self, rel: str) -> bool:
        return self._exclude is not None and self._exclude.match_file(rel)

    def _skip_file(self, path: str) -> bool:
        return bool(self.options.skip_files) and os.path.realpath(path) in self.options.skip_files

    def _file_task(
        self, path: str, display: str, size: int, *, follow: bool = False
    ) -> FileTask | None:
        if size > self.options.max_file_size:
            # a file named on the command line is worth a warning; one found by the walk is not
            reason = f"larger than --max-file-size ({size} bytes)"
            self.skipped.append(Skipped(display, reason, warning=follow))
            return None
        if size == 0:
            return None
        return FileTask(path, display, size, follow)

    def _walk_dir(self, root: Path, prefix: str) -> Iterator[FileTask]:
        real_root = os.path.realpath(root)
        use_ignore = self.options.use_ignore_files
        specs: list[_Ignore] = _outer_ignores(Path(real_root)) if use_ignore else []
        # Iterative depth-first walk in sorted order; the specs stack follows the depth.
        stack: list[tuple[str, str, int]] = [(str(root), "", len(specs))]
        skip_files = self.options.skip_files
        while stack:
            abs_dir, rel_dir, depth = stack.pop()
            del specs[depth:]
            try:
                with os.scandir(abs_dir) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                where = prefix + rel_dir if prefix + rel_dir else "."
                self.skipped.append(
                    Skipped(where, f"cannot list directory: {exc.strerror}", warning=True)
                )
                continue
            if use_ignore:
                for entry in entries:
                    if entry.name == ".gitignore":
                        spec = _read_ignore(entry.path)
                        if spec is not None:
                            specs.append(_Ignore(rel_dir, "", spec))
                        break
            subdirs: list[tuple[str, str]] = []
            for entry in entries:
                name = entry.name
                if name == ".git":
                    continue
                rel = rel_dir + name
                try:
                    is_link = entry.is_symlink()
                    is_dir = not is_link and entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if (specs and _ignored(specs, rel + "/")) or self._excluded(rel + "/"):
                        continue
                    subdirs.append((entry.path, rel + "/"))
                    continue
                if (specs and _ignored(specs, rel)) or self._excluded(rel):
                    continue
                display = prefix + rel
                if is_link:
                    self._symlink(entry.path, display, real_root)
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    self.skipped.append(Skipped(display, f"cannot stat: {exc.strerror}", True))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self.skipped.append(Skipped(display, "not a regular file"))
                    continue
                if skip_files and os.path.realpath(entry.path) in skip_files:
                    continue
                if not self._first_time(st):
                    continue
                task = self._file_task(entry.path, display, st.st_size)
                if task is not None:
                    yield task
            depth_now = len(specs)
            stack.extend((p, r, depth_now) for p, r in reversed(subdirs))

    def _symlink(self, path: str, display: str, real_root: str) -> None:
        """Record why a symlink is not scanned (it never is: see the module docstring)."""
        try:
            target = os.path.realpath(path, strict=True)
        except OSError as exc:
            # realpath(strict=True) reports a loop as ELOOP; anything else: the target is missing
            loop = exc.errno == errno.ELOOP
            self.skipped.append(Skipped(display, "symlink loop" if loop else "broken symlink"))
            return
        if os.path.commonpath([real_root, target]) != real_root:
            self.skipped.append(Skipped(display, "symlink points outside the scanned tree"))
        elif os.path.isdir(target):
            self.skipped.append(Skipped(display, "symlink to a directory (not followed)"))
        else:
            # A target inside the tree is scanned under its own name (if not ignored).
            self.skipped.append(Skipped(display, "symlink to a file inside the tree"))


def _stat_root(root: Path) -> os.stat_result:
    try:
        return os.stat(root)
    except FileNotFoundError:
        raise SourceError(
            f"The path {root} does not exist", hint="Check the path and try again"
        ) from None
    except OSError as exc:
        raise SourceError(f"Cannot read {root}: {exc.strerror}") from None


def _ignored(specs: Sequence[_Ignore], rel: str) -> bool:
    """Git's rule: the last matching pattern of the deepest ignore file decides."""
    for ig in reversed(specs):  # deepest first: the first decisive answer wins
        if ig.base and not rel.startswith(ig.base):
            continue
        result = ig.spec.check_file(ig.prefix + rel[len(ig.base) :])
        if result.include is not None:
            return result.include
    return False


def _outer_ignores(real_root: Path) -> list[_Ignore]:
    """Ignore files that apply to ``real_root`` from above it: the repository's
    ``.git/info/exclude`` and the ``.gitignore`` of every directory from the repository top
    down to (not including) ``real_root``. When the root itself is ignored by them, the user
    named an ignored directory on purpose: none of them apply."""
    top = next((d for d in (real_root, *real_root.parents) if (d / ".git").exists()), None)
    if top is None:
        return []
    parts = real_root.relative_to(top).parts
    out: list[_Ignore] = []
    exclude = _read_ignore(str(top / ".git" / "info" / "exclude"))
    if exclude is not None:
        out.append(_Ignore("", "".join(p + "/" for p in parts), exclude))
    d = top
    for i in range(len(parts)):
        spec = _read_ignore(str(d / ".gitignore"))
        if spec is not None:
            out.append(_Ignore("", "".join(p + "/" for p in parts[i:]), spec))
        d = d / parts[i]
    # Is the root, or a directory between the repository top and it, ignored?
    for ig in out:
        below = ig.prefix.split("/")[:-1]
        for j in range(1, len(below) + 1):
            if ig.spec.check_file("/".join(below[:j]) + "/").include:
                return []
    return out


# More exclude globs than this is a generated list better written as a few broader globs:
# matching costs time per pattern for every path.
MAX_EXCLUDES = 2_000
# pathspec's hyperscan backend matches fastest but compiles super-linearly (20 globs ~0.15 s,
# 1,000 ~10 s); past this many, its plain-regex backend (linear to compile and to match).
_HYPERSCAN_EXCLUDES = 32


def check_excludes(patterns: Sequence[str]) -> None:
    """A ConfigError naming the first exclude glob pathspec cannot read, or too many."""
    if len(patterns) > MAX_EXCLUDES:
        raise ConfigError(
            f"{len(patterns):,} exclude patterns are more than keyward takes ({MAX_EXCLUDES:,})",
            hint="Use broader globs such as build/** in --exclude, scan.exclude or KEYWARD_EXCLUDE",
        )
    for pattern in patterns:
        try:
            pathspec.GitIgnoreSpec.from_lines([pattern], backend="simple")
        except ValueError as exc:  # pathspec's GitIgnorePatternError among others
            raise ConfigError(
                f"The exclude pattern {pattern!r} is not a valid gitignore pattern ({exc})",
                hint="Correct it in --exclude, scan.exclude or KEYWARD_EXCLUDE",
            ) from None


def exclude_spec(patterns: Sequence[str]) -> pathspec.GitIgnoreSpec | None:
    """The matcher of ``--exclude`` / ``scan.exclude`` globs (checked by :func:`check_excludes`
    when the request was built), or None for none."""
    if not patterns:
        return None
    backend = "best" if len(patterns) <= _HYPERSCAN_EXCLUDES else "simple"
    return pathspec.GitIgnoreSpec.from_lines(patterns, backend=backend)


def _read_ignore(path: str) -> pathspec.GitIgnoreSpec | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    if not any(line.strip() and not line.startswith("#") for line in lines):
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def display_to_path(roots: Sequence[Path], display: str) -> Path:
    """The file a display path (as produced by :class:`FileWalker`) refers to."""
    if len(roots) != 1:
        return Path(display)
    root = roots[0]
    return root / display if root.is_dir() else root


def decode(data: bytes) -> tuple[str, bytes | None] | None:
    """Decode file bytes to text.

    Returns ``(text, utf8)`` where ``utf8`` is the UTF-8 encoding of ``text`` when it is
    available for free (a slice of ``data``), or ``None`` for binary content.
    """
    if data.isascii():
        if b"\0" in data[:BINARY_SNIFF]:
            return None
        return data.decode("ascii"), data
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            if encoding == "utf-8-sig":
                body = data[len(bom) :]
                try:
                    return body.decode("utf-8"), body
                except UnicodeDecodeError:
                    return body.decode("utf-8", errors="replace"), None
            return data.decode(encoding, errors="replace"), None
    if b"\0" in data[:BINARY_SNIFF]:
        return None
    try:
        return data.decode("utf-8"), data
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), None


def _read_exactly(fd: int, n: int) -> bytes:
    first = os.read(fd, n)
    if len(first) == n or not first:
        return first
    parts: list[bytes] = [first]
    n -= len(first)
    while n > 0:
        part = os.read(fd, n)
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_task(task: FileTask, max_size: int = HARD_MAX_FILE_SIZE) -> Chunk | Skipped:
    """Read and decode one planned file into a chunk, or say why it was skipped.

    Opening is non-blocking (a FIFO swapped in after planning cannot hang us), a file is
    checked again with ``fstat`` after opening, and binary content is detected from its first
    8 KiB (before the rest is read, for a file larger than 16 MiB).
    """
    flags = _OPEN_FLAGS if task.follow else _OPEN_FLAGS | _NOFOLLOW
    try:
        fd = os.open(task.path, flags)
    except OSError as exc:
        return Skipped(task.display, f"cannot read: {exc.strerror}", warning=True)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced by a FIFO or device after planning
            return Skipped(task.display, "not a regular file")
        size = st.st_size
        if size > max_size:
            return Skipped(task.display, f"larger than --max-file-size ({size} bytes)")
        if size <= _READ_WHOLE:
            # one read into the final buffer: copying a head and a tail together cost more
            # than the few binary files it spares reading
            data = _read_exactly(fd, size)
        else:
            head = _read_exactly(fd, BINARY_SNIFF)
            if b"\0" in head and not head.startswith(_BOM_PREFIXES):
                return Skipped(task.display, "binary file")
            os.lseek(fd, 0, os.SEEK_SET)
            data = _read_exactly(fd, size)
    except OSError as exc:
        return Skipped(task.display, f"cannot read: {exc.strerror}", warning=True)
    finally:
        os.close(fd)
    decoded = decode(data)
    if decoded is None:
        return Skipped(task.display, "binary file")
    text, utf8 = decoded
    return Chunk(text=text, location=Location(kind=SourceKind.FILE, path=task.display), data=utf8)


# ------------------------------------------------------------------ the source
# Work sent to a worker at a time: small enough to keep every core busy to the end.
BATCH_BYTES = 1024 * 1024
BATCH_FILES = 256
# Below these sizes a process pool costs more than it saves.
FILES_POOL = PoolPolicy(min_bytes=8 * 1024 * 1024, min_items=64, in_flight=8)


@dataclass(frozen=True, slots=True)
class FileBatch:
    """Planned files, read (and decoded) where they are matched."""

    tasks: tuple[FileTask, ...]
    max_size: int
    size: int  # bytes on disk
    archives: ArchiveLimits | None = None  # look inside archives within these bounds

    @property
    def items(self) -> int:
        return len(self.tasks)

    def chunks(self, tally: Tally) -> Iterator[Chunk]:
        for task in self.tasks:
            if self.archives is not None:
                kind = archive_kind(task.display)
                if kind is not None:
                    yield from _archive_chunks(task, kind, self.archives, tally)
                    continue
            got = read_task(task, self.max_size)
            if isinstance(got, Skipped):
                tally.skipped.append(got)
                continue
            tally.files += 1
            tally.bytes += task.size
            yield got


def _archive_chunks(
    task: FileTask, kind: ArchiveKind, limits: ArchiveLimits, tally: Tally
) -> Iterator[Chunk]:
    """The text members of an archive as file chunks (``x.whl!pkg/settings.py``)."""
    for member in archive_members(task.path, task.display, kind, limits, follow=task.follow):
        if isinstance(member, Skipped):
            if task.follow and member.what == task.display:  # named on the command line
                member = Skipped(member.what, member.reason, warning=True)
            tally.skipped.append(member)
            continue
        decoded = decode(member.data)
        if decoded is None:
            tally.skipped.append(Skipped(member.display, "binary file"))
            continue
        text, utf8 = decoded
        tally.files += 1
        tally.bytes += len(member.data)
        yield Chunk(
            text=text, location=Location(kind=SourceKind.FILE, path=member.display), data=utf8
        )


@dataclass(slots=True)
class FileSource:
    """Files and directories: the walk plans here, batches of files are read where matched."""

    roots: Sequence[Path]
    options: WalkOptions = field(default_factory=WalkOptions)
    pool: PoolPolicy | None = FILES_POOL
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def work(self) -> Iterator[FileBatch]:
        walker = FileWalker(self.roots, self.options, self.skipped)
        walker.check_roots()
        max_size = self.options.max_file_size
        archives = ArchiveLimits(max_member_size=max_size) if self.options.archives else None
        batch: list[FileTask] = []
        size = 0
        for task in walker.tasks():
            batch.append(task)
            size += task.size
            if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                yield FileBatch(tuple(batch), max_size, size, archives)
                batch, size = [], 0
        if batch:
            yield FileBatch(tuple(batch), max_size, size, archives)

    def post_pass(self, rules: Sequence[Rule]) -> KeepAll:
        return KeepAll()
