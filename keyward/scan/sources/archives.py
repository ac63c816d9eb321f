"""Archives: the members of zip files (jar, war, ear, whl, egg, nupkg), tar files (plain,
gzip, bzip2, xz: sdists among them) and single gzip / bzip2 / xz files, read in memory within
bounds.

A member is named ``archive.zip!path/in/archive``; an archive inside an archive adds its own
``!`` (``app.ear!lib/core.jar!config.properties``). Nothing is ever written to disk, so member
names like ``../../etc/passwd`` are only names.

Every archive is read within :class:`ArchiveLimits`: how deep archives nest, how many members
and how many uncompressed bytes one archive (with everything nested in it) may hold, how large
one member may be, and how much a stream may expand over its compressed size. A member or an
archive past a bound is *skipped with its reason* (``--verbose`` lists it); a zip bomb costs at
most the bytes the bounds allow, never a hang or the machine's memory:

* zip: sizes come from the central directory, and reading a member never yields more than its
  declared size (:mod:`zipfile` stops there and checks the CRC), so a member is judged before
  it is inflated;
* tar and single compressed files are streams: the decompressed stream itself is counted
  (:class:`_Counted`) and stops the archive as soon as it expands past the total bound or the
  ratio bound, including the data of members that are skipped.

This module only reads: :meth:`keyward.scan.sources.files.FileBatch.chunks` turns the members
it yields into chunks where the batch is matched (a worker process), so archive members go
through the one runner and engine path like every other file.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from typing import IO

from keyward.core.config import DEFAULT_MAX_FILE_SIZE
from keyward.scan.sources.base import Skipped

SEPARATOR = "!"
# Streams and members are judged by their compression ratio only once they are this large:
# small files of repeated text compress very well and are harmless.
RATIO_FLOOR = 1024 * 1024
_READ = 64 * 1024


class ArchiveKind(Enum):
    ZIP = "zip"
    TAR = "tar"
    TAR_GZ = "tar.gz"
    TAR_BZ2 = "tar.bz2"
    TAR_XZ = "tar.xz"
    GZIP = "gz"
    BZIP2 = "bz2"
    XZ = "xz"


# Longest suffix first: "x.tar.gz" is a compressed tar, "x.gz" a compressed file.
_SUFFIXES: tuple[tuple[str, ArchiveKind], ...] = (
    (".tar.gz", ArchiveKind.TAR_GZ),
    (".tar.bz2", ArchiveKind.TAR_BZ2),
    (".tar.xz", ArchiveKind.TAR_XZ),
    (".tgz", ArchiveKind.TAR_GZ),
    (".tbz2", ArchiveKind.TAR_BZ2),
    (".tbz", ArchiveKind.TAR_BZ2),
    (".txz", ArchiveKind.TAR_XZ),
    (".tar", ArchiveKind.TAR),
    (".zip", ArchiveKind.ZIP),
    (".jar", ArchiveKind.ZIP),
    (".war", ArchiveKind.ZIP),
    (".ear", ArchiveKind.ZIP),
    (".whl", ArchiveKind.ZIP),
    (".egg", ArchiveKind.ZIP),
    (".nupkg", ArchiveKind.ZIP),
    (".gz", ArchiveKind.GZIP),
    (".bz2", ArchiveKind.BZIP2),
    (".xz", ArchiveKind.XZ),
)
_DECOMPRESSORS = {
    ArchiveKind.TAR_GZ: "gz",
    ArchiveKind.TAR_BZ2: "bz2",
    ArchiveKind.TAR_XZ: "xz",
    ArchiveKind.GZIP: "gz",
    ArchiveKind.BZIP2: "bz2",
    ArchiveKind.XZ: "xz",
}


@cache
def _broken() -> tuple[type[BaseException], ...]:
    """What a damaged or unsupported archive raises while it is read. The readers are imported
    only when an archive is met: a scan without archives never loads them."""
    import lzma
    import tarfile
    import zipfile
    import zlib

    return (
        zipfile.BadZipFile,
        tarfile.TarError,
        OSError,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        RuntimeError,  # zipfile: an encrypted member
        NotImplementedError,  # zipfile: a compression method Python lacks
        ValueError,
    )


def archive_kind(name: str) -> ArchiveKind | None:
    """What kind of archive a file is, from its name (case-insensitive)."""
    lower = name.lower()
    for suffix, kind in _SUFFIXES:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return kind
    return None


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """The bounds every archive is read within (see the module docstring)."""

    max_depth: int = 3  # archives inside archives: app.ear!lib/x.war!WEB-INF/lib/y.jar
    max_members: int = 10_000  # per archive on disk, nested members included
    max_member_size: int = DEFAULT_MAX_FILE_SIZE  # uncompressed, one member (--max-file-size)
    max_total_size: int = 256 * 1024 * 1024  # uncompressed, per archive on disk
    max_ratio: int = 200  # uncompressed / compressed, past RATIO_FLOOR


@dataclass(frozen=True, slots=True)
class Member:
    """One file inside an archive, read whole (at most ``max_member_size`` bytes)."""

    display: str  # archive.zip!path/in/archive
    data: bytes = field(repr=False)


class _Stop(Exception):
    """The archive (and everything left in it) is not read further: ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reported = False  # a nested archive said so already


@dataclass(slots=True)
class _Budget:
    """What one archive on disk has used of its limits, nested archives included."""

    limits: ArchiveLimits
    members: int = 0
    bytes: int = 0

    def member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise _Stop(f"more than {self.limits.max_members} members; the rest is not scanned")

    def expand(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_total_size:
            raise _Stop(
                f"expands to more than {_size(self.limits.max_total_size)}; the rest is not scanned"
            )


class _Counted(io.RawIOBase):
    """A decompressed stream that stops its archive once it expands past the budget or past
    ``max_ratio`` times the compressed bytes read so far."""

    def __init__(self, stream: io.BufferedIOBase, raw: _CountingReader, budget: _Budget) -> None:
        super().__init__()
        self._stream = stream
        self._raw = raw
        self._budget = budget
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.total += n
        self._budget.expand(n)
        ratio = self._budget.limits.max_ratio
        if self.total > RATIO_FLOOR and self.total > ratio * max(1, self._raw.count):
            raise _Stop(
                f"expands more than {ratio} times its compressed size (a compression bomb?); "
                "not scanned further"
            )
        return n


class _CountingReader(io.RawIOBase):
    """The compressed bytes read from the archive (for the ratio)."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def _decompress(kind: ArchiveKind, raw: IO[bytes], budget: _Budget) -> _Counted:
    counting = _CountingReader(raw)
    compressed = io.BufferedReader(counting, _READ)
    method = _DECOMPRESSORS[kind]
    stream: io.BufferedIOBase
    if method == "gz":
        import gzip

        stream = gzip.GzipFile(fileobj=compressed, mode="rb")
    elif method == "bz2":
        import bz2

        stream = bz2.BZ2File(compressed, mode="rb")
    else:
        import lzma

        stream = lzma.LZMAFile(compressed, mode="rb")
    return _Counted(stream, counting, budget)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _brief(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _open_regular(path: str, follow: bool) -> IO[bytes] | str:
    """The file opened for reading, or why not (a FIFO swapped in cannot hang the scan)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return "not a regular file"
        return os.fdopen(fd, "rb")
    except OSError as exc:
        os.close(fd)
        return f"cannot read: {exc.strerror}"


# ------------------------------------------------------------------ reading
def archive_members(
    path: str, display: str, kind: ArchiveKind, limits: ArchiveLimits, *, follow: bool = False
) -> Iterator[Member | Skipped]:
    """Every member of the archive file at ``path`` (shown as ``display``), archives inside
    it opened in turn, or why a member or the rest of the archive was skipped."""
    opened = _open_regular(path, follow)
    if isinstance(opened, str):
        yield Skipped(display, opened, warning=opened.startswith("cannot"))
        return
    budget = _Budget(limits)
    with opened:
        yield from _members(opened, display, kind, budget, depth=1)


def _members(
    fh: IO[bytes], display: str, kind: ArchiveKind, budget: _Budget, depth: int
) -> Iterator[Member | Skipped]:
    """One archive's members; a bound or damage stops this archive with its reason (an
    outer archive goes on with its next member unless the budget they share is spent)."""
    try:
        if kind is ArchiveKind.ZIP:
            yield from _zip_members(fh, display, budget, depth)
        elif kind in (ArchiveKind.GZIP, ArchiveKind.BZIP2, ArchiveKind.XZ):
            yield from _compressed_member(fh, display, kind, budget, depth)
        else:
            yield from _tar_members(fh, display, kind, budget, depth)
    except _Stop as stop:
        if not stop.reported:
            stop.reported = True
            yield Skipped(display, stop.reason)
        if depth > 1 and _spent(budget):
            raise  # the budget is shared: the outer archives stop too
    except _broken() as exc:
        yield Skipped(display, f"cannot read the archive: {_brief(exc)}")


def _spent(budget: _Budget) -> bool:
    limits = budget.limits
    return budget.members > limits.max_members or budget.bytes > limits.max_total_size


def _member(
    name: str, data: bytes, display: str, budget: _Budget, depth: int
) -> Iterator[Member | Skipped]:
    """A member read: scanned as a file, or opened as an archive in its turn."""
    shown = f"{display}{SEPARATOR}{name}"
    kind = archive_kind(name)
    if kind is None:
        yield Member(shown, data)
    elif depth >= budget.limits.max_depth:
        yield Skipped(shown, f"archive nested more than {budget.limits.max_depth} deep; not opened")
    else:
        yield from _members(io.BytesIO(data), shown, kind, budget, depth + 1)


def _too_large(size: int, limits: ArchiveLimits) -> str | None:
    if size > limits.max_member_size:
        return f"larger than --max-file-size once uncompressed ({size} bytes)"
    return None


def _zip_members(
    fh: IO[bytes], display: str, budget: _Budget, depth: int
) -> Iterator[Member | Skipped]:
    limits = budget.limits
    entries = _zip_entries(fh)
    if entries is not None and budget.members + entries > limits.max_members:
        raise _Stop(f"holds {entries} members, more than {limits.max_members}; not opened")
    import zipfile

    with zipfile.ZipFile(fh) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            budget.member()
            shown = f"{display}{SEPARATOR}{info.filename}"
            if info.flag_bits & 0x1:
                yield Skipped(shown, "encrypted")
                continue
            size = info.file_size
            reason = _too_large(size, limits)
            if (
                reason is None
                and size > RATIO_FLOOR
                and size > limits.max_ratio * max(1, info.compress_size)
            ):
                ratio = size // max(1, info.compress_size)
                reason = (
                    f"compressed {ratio}:1, more than {limits.max_ratio}:1 (a zip bomb?); "
                    "not inflated"
                )
            if reason is not None:
                yield Skipped(shown, reason)
                continue
            budget.expand(size)
            try:
                with archive.open(info) as member:
                    data = member.read(limits.max_member_size + 1)
            except _broken() as exc:
                yield Skipped(shown, f"cannot read: {_brief(exc)}")
                continue
            yield from _member(info.filename, data, display, budget, depth)


def _zip_entries(fh: IO[bytes]) -> int | None:
    """The member count of a zip's end-of-central-directory record (zip64 too), read before
    :mod:`zipfile` builds an object per member; None when there is no record to read."""
    size = fh.seek(0, os.SEEK_END)
    window = min(size, 22 + 0xFFFF + 56 + 20)  # the record, its comment, zip64 record and locator
    fh.seek(size - window)
    tail = fh.read(window)
    fh.seek(0)
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        return None
    entries = int.from_bytes(tail[end + 10 : end + 12], "little")
    if entries == 0xFFFF:
        zip64 = tail.rfind(b"PK\x06\x06", 0, end)
        if zip64 >= 0 and end - zip64 >= 56:
            entries = int.from_bytes(tail[zip64 + 32 : zip64 + 40], "little")
    return entries


def _tar_members(
    fh: IO[bytes], display: str, kind: ArchiveKind, budget: _Budget, depth: int
) -> Iterator[Member | Skipped]:
    limits = budget.limits
    stream: IO[bytes]
    if kind is ArchiveKind.TAR:
        stream = fh
    else:
        stream = io.BufferedReader(_decompress(kind, fh, budget), _READ)
    import tarfile

    # stream mode: one pass, no seeking, members read in order
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for info in archive:
            if not info.isfile():  # directories, links, devices: nothing to read
                continue
            budget.member()
            shown = f"{display}{SEPARATOR}{info.name}"
            reason = _too_large(info.size, limits)
            if reason is not None:
                yield Skipped(shown, reason)
                continue
            if kind is ArchiveKind.TAR:
                budget.expand(info.size)  # compressed tars count their whole stream
            member = archive.extractfile(info)
            if member is None:
                continue
            data = member.read(limits.max_member_size + 1)
            yield from _member(info.name, data, display, budget, depth)


def _compressed_member(
    fh: IO[bytes], display: str, kind: ArchiveKind, budget: _Budget, depth: int
) -> Iterator[Member | Skipped]:
    """A single compressed file (``app.log.gz``): one member named after the archive."""
    limits = budget.limits
    budget.member()
    base = display.rsplit(SEPARATOR, 1)[-1].rsplit("/", 1)[-1]
    name = base[: base.lower().rfind(".")]
    stream = _decompress(kind, fh, budget)
    data = io.BufferedReader(stream, _READ).read(limits.max_member_size + 1)
    if len(data) > limits.max_member_size:
        yield Skipped(
            f"{display}{SEPARATOR}{name}",
            f"larger than --max-file-size once uncompressed (over {limits.max_member_size} bytes)",
        )
        return
    yield from _member(name, data, display, budget, depth)
