"""Staged changes: only the lines *added* in the index, with the new file's line numbers.

``git diff --cached -U0`` gives the added lines; each file's added lines become one chunk whose
``line_map`` holds their real line numbers, so inline ``keyward: allow`` comments, baselines and
reports work as for files. Staged binary files are read from the index (their printable
strings are scanned). Files named explicitly but not staged at all (``pre-commit run
--all-files``) are scanned whole from the work tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from keyward.core.config import DEFAULT_MAX_FILE_SIZE
from keyward.scan.model import Chunk, Location, SourceKind
from keyward.scan.postpass import KeepAll
from keyward.scan.sources.base import ChunkWork, PoolPolicy, Skipped
from keyward.scan.sources.git import (
    PATCH_OPTIONS,
    CommitDiff,
    PatchParser,
    decode_block,
    file_chunk,
    open_repo,
    path_filter,
    read_blobs,
    read_pieces,
    reap,
    strings_of,
)

if TYPE_CHECKING:
    from keyward.scan.rules import Rule


@dataclass(slots=True)
class StagedSource:
    """Chunks of the lines added in the index of the repository at ``path``.

    ``files`` limits the scan to those paths (relative to ``path``, as pre-commit passes them
    from the repository root); ``None`` scans every staged change.
    """

    path: Path = field(default_factory=lambda: Path("."))
    files: Sequence[str] | None = None
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    exclude: Sequence[str] = ()  # gitignore-style globs of paths not to scan
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bytes_read: int = 0
    root: Path | None = None  # the work tree's top level, once chunks() started
    # paths (from the top level) whose staged changes were read, once the diff was read; named
    # files outside it were read whole from the work tree
    changed: frozenset[str] | None = None

    @property
    def pool(self) -> PoolPolicy | None:
        return None  # a few files, read from one git process: matched here

    def work(self) -> Iterator[ChunkWork]:
        for chunk in self.chunks():
            yield ChunkWork(chunk)

    def post_pass(self, rules: Sequence[Rule]) -> KeepAll:
        return KeepAll()

    def chunks(self) -> Iterator[Chunk]:
        repo = open_repo(self.path)
        root = self.root = repo.toplevel()
        if self.files is not None and not self.files:
            return
        pathspec = list(self.files or ())
        proc = repo.popen(
            "--literal-pathspecs", "-c", f"core.bigFileThreshold={self.max_file_size}",
            "diff", "--cached", *PATCH_OPTIONS, "--diff-filter=d",
            "--", *pathspec,
        )  # fmt: skip
        assert proc.stdout is not None
        parser = PatchParser(self.max_file_size)
        staged = CommitDiff("", "", "")
        binaries: dict[str, str] = {}
        excluded = path_filter(self.exclude)
        try:
            for _, fd in parser.files(read_pieces(proc.stdout), single=staged):
                if fd is None or (excluded is not None and excluded(fd.path)):
                    continue
                loc = Location(kind=SourceKind.STAGED, path=fd.path)
                if fd.binary_oid is not None:
                    binaries[fd.binary_oid] = fd.path
                elif fd.oversized:
                    self.skipped.append(
                        Skipped(fd.path, "added lines larger than --max-file-size", True)
                    )
                else:
                    chunk = file_chunk(fd, loc)
                    if chunk is not None:
                        yield chunk
        finally:
            reap(proc, "diff")
        self.bytes_read = parser.bytes_read
        self.changed = frozenset(parser.paths)
        for oid, data in read_blobs(repo, list(binaries), self.max_file_size):
            where = binaries[oid]
            if data is None:
                self.skipped.append(Skipped(where, "binary file larger than --max-file-size"))
                continue
            strings = strings_of(data)
            if strings:
                text, raw = decode_block(strings)
                loc = Location(kind=SourceKind.STAGED, path=where)
                yield Chunk(text, loc, line_map=(0,) * (strings.count(b"\n") + 1), data=raw)
        if self.files:
            yield from self._unstaged(root, parser.paths, excluded)

    def _unstaged(
        self, root: Path, changed: set[str], excluded: Callable[[str], bool] | None
    ) -> Iterator[Chunk]:
        """Named files with no staged change at all: scan them whole from the work tree."""
        real_root = os.path.realpath(root)
        for name in self.files or ():
            full = os.path.realpath(os.path.join(self.path, name))
            rel = os.path.relpath(full, real_root).replace(os.sep, "/")
            if rel in changed or rel.startswith("../") or (excluded and excluded(rel)):
                continue
            try:
                size = os.stat(full).st_size
            except OSError:
                continue  # deleted or not a file: nothing staged to scan
            if size > self.max_file_size:
                self.skipped.append(Skipped(rel, "larger than --max-file-size", True))
                continue
            from keyward.scan.sources.files import FileTask, read_task

            got = read_task(FileTask(full, rel, size))
            if isinstance(got, Skipped):
                self.skipped.append(got)
                continue
            self.bytes_read += size
            yield Chunk(
                got.text,
                Location(kind=SourceKind.STAGED, path=rel),
                data=got.data,
            )
