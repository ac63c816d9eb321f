"""Files and directories: walk, honour ignores, decode safely.

Walking happens in the parent process (cheap: directory entries and ``stat``); reading and
decoding happen where the chunk is scanned, so a large tree spreads over every core.
"""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from keyward.core.config import DEFAULT_MAX_FILE_SIZE
from keyward.core.errors import SourceError
from keyward.scan.model import Chunk, Location, SourceKind
from keyward.scan.sources.base import Skipped

BINARY_SNIFF = 8192
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True, slots=True)
class FileTask:
    path: str  # absolute path to open
    display: str  # path shown in findings (relative to the scanned root)
    size: int


@dataclass(slots=True)
class WalkOptions:
    exclude: Sequence[str] = ()
    use_ignore_files: bool = True
    max_file_size: int = DEFAULT_MAX_FILE_SIZE


@dataclass(slots=True)
class FileWalker:
    """Plans which files to scan under the given roots."""

    roots: Sequence[Path]
    options: WalkOptions = field(default_factory=WalkOptions)
    skipped: list[Skipped] = field(default_factory=list)
    _exclude: pathspec.GitIgnoreSpec | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self._exclude = (
            pathspec.GitIgnoreSpec.from_lines(self.options.exclude)
            if self.options.exclude
            else None
        )

    def tasks(self) -> Iterator[FileTask]:
        multi = len(self.roots) > 1
        for root in self.roots:
            try:
                st = os.stat(root)
            except FileNotFoundError:
                raise SourceError(
                    f"The path {root} does not exist", hint="Check the path and try again"
                ) from None
            except OSError as exc:
                raise SourceError(f"Cannot read {root}: {exc.strerror}") from None
            prefix = root.as_posix().rstrip("/") + "/" if multi else ""
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk_dir(root, prefix)
            elif stat.S_ISREG(st.st_mode):
                display = root.as_posix() if multi else root.name
                if self._excluded(display) or self._excluded(root.name):
                    continue
                task = self._file_task(str(root), display, st.st_size)
                if task is not None:
                    yield task
            else:
                self.skipped.append(Skipped(str(root), "not a regular file", warning=True))

    def _excluded(self, rel: str) -> bool:
        return self._exclude is not None and self._exclude.match_file(rel)

    def _file_task(self, path: str, display: str, size: int) -> FileTask | None:
        if size > self.options.max_file_size:
            self.skipped.append(Skipped(display, f"larger than --max-file-size ({size} bytes)"))
            return None
        if size == 0:
            return None
        return FileTask(path, display, size)

    def _walk_dir(self, root: Path, prefix: str) -> Iterator[FileTask]:
        real_root = os.path.realpath(root)
        specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
        if self.options.use_ignore_files:
            info_exclude = root / ".git" / "info" / "exclude"
            spec = _read_ignore(info_exclude)
            if spec is not None:
                specs.append(("", spec))
        # Iterative depth-first walk in sorted order; specs stack follows the directory depth.
        stack: list[tuple[str, str, int]] = [(str(root), "", len(specs))]
        while stack:
            abs_dir, rel_dir, depth = stack.pop()
            del specs[depth:]
            if self.options.use_ignore_files:
                spec = _read_ignore(Path(abs_dir) / ".gitignore")
                if spec is not None:
                    specs.append((rel_dir, spec))
            try:
                with os.scandir(abs_dir) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self.skipped.append(
                    Skipped(
                        prefix + rel_dir or ".",
                        f"cannot list directory: {exc.strerror}",
                        warning=True,
                    )
                )
                continue
            subdirs: list[tuple[str, str]] = []
            for entry in entries:
                name = entry.name
                rel = f"{rel_dir}{name}"
                if name == ".git":
                    continue
                try:
                    is_link = entry.is_symlink()
                    is_dir = not is_link and entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if self._ignored(specs, rel, True) or self._excluded(rel + "/"):
                        continue
                    subdirs.append((entry.path, rel + "/"))
                    continue
                if self._ignored(specs, rel, False) or self._excluded(rel):
                    continue
                display = prefix + rel
                if is_link:
                    task = self._symlink_task(entry.path, display, real_root)
                    if task is not None:
                        yield task
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    self.skipped.append(Skipped(display, f"cannot stat: {exc.strerror}", True))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self.skipped.append(Skipped(display, "not a regular file"))
                    continue
                task = self._file_task(entry.path, display, st.st_size)
                if task is not None:
                    yield task
            depth_now = len(specs)
            stack.extend((p, r, depth_now) for p, r in reversed(subdirs))

    def _symlink_task(self, path: str, display: str, real_root: str) -> FileTask | None:
        try:
            target = os.path.realpath(path, strict=True)
        except OSError as exc:
            reason = "symlink loop" if "loop" in str(exc).lower() else "broken symlink"
            self.skipped.append(Skipped(display, reason))
            return None
        if os.path.commonpath([real_root, target]) != real_root:
            self.skipped.append(Skipped(display, "symlink points outside the scanned tree"))
            return None
        try:
            st = os.stat(target)
        except OSError as exc:
            self.skipped.append(Skipped(display, f"cannot stat: {exc.strerror}", True))
            return None
        if stat.S_ISDIR(st.st_mode):
            self.skipped.append(Skipped(display, "symlink to a directory (not followed)"))
            return None
        if not stat.S_ISREG(st.st_mode):
            self.skipped.append(Skipped(display, "not a regular file"))
            return None
        # The target is inside the tree and will be scanned under its own name.
        self.skipped.append(Skipped(display, "symlink to a file inside the tree"))
        return None

    @staticmethod
    def _ignored(specs: list[tuple[str, pathspec.GitIgnoreSpec]], rel: str, is_dir: bool) -> bool:
        ignored = False
        for base, spec in specs:
            if base and not rel.startswith(base):
                continue
            sub = rel[len(base) :] + ("/" if is_dir else "")
            result = spec.check_file(sub)
            if result.include is not None:
                ignored = result.include
        return ignored


def _read_ignore(path: Path) -> pathspec.GitIgnoreSpec | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = text.splitlines()
    if not any(line.strip() and not line.startswith("#") for line in lines):
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def decode(data: bytes) -> tuple[str, bool] | None:
    """Decode file bytes to text. Returns (text, data_is_utf8) or None for binary content."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace"), encoding == "utf-8-sig"
    if b"\0" in data[:BINARY_SNIFF]:
        return None
    if data.isascii():
        return data.decode("ascii"), True
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), False


def read_task(task: FileTask) -> Chunk | Skipped:
    """Read and decode one planned file into a chunk, or say why it was skipped."""
    try:
        fd = os.open(task.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        return Skipped(task.display, f"cannot read: {exc.strerror}", warning=True)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced by a FIFO or device after planning
            return Skipped(task.display, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(task.size + 1)
    except OSError as exc:
        return Skipped(task.display, f"cannot read: {exc.strerror}", warning=True)
    finally:
        os.close(fd)
    decoded = decode(data)
    if decoded is None:
        return Skipped(task.display, "binary file")
    text, raw_ok = decoded
    return Chunk(
        text=text,
        location=Location(kind=SourceKind.FILE, path=task.display),
        data=data if raw_ok and not data.startswith(codecs.BOM_UTF8) else None,
    )
