"""What every Source shares: the protocols between sources and the runner.

A :class:`Source` only *produces work*: it plans in the calling process (walks a tree, lists
commits, lists Lambda functions) and yields :class:`Work`. A piece of work turns into chunks
(:class:`~keyward.scan.model.Chunk`) where it is matched — in a worker process for files and
commit batches, in this process for everything else — and counts what it read in a
:class:`Tally`. Sources never run the engine: :class:`keyward.scan.runner.Runner` does, then
hands every finding to the source's :class:`PostPass`, the explicit stage after matching
(history de-duplication, pairing across variables, configuration findings).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from keyward.scan.model import Chunk, Finding

if TYPE_CHECKING:
    from keyward.scan.rules import Rule


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something a source did not scan, and why (shown with --verbose, counted in stats)."""

    what: str
    reason: str
    warning: bool = False  # True when the user should hear about it without --verbose


@dataclass(slots=True)
class Tally:
    """What one piece of work read and skipped; added up into the scan's stats."""

    files: int = 0
    bytes: int = 0
    chunks: int = 0
    commits: int = 0
    binary_blobs: int = 0
    skipped: list[Skipped] = field(default_factory=list)


class Work(Protocol):
    """A piece of a source's work. It must pickle when its source allows a process pool."""

    @property
    def size(self) -> int:
        """Bytes it will read, when known ahead (progress), else 0."""
        ...

    @property
    def items(self) -> int:
        """Files or commits it holds (decides when a process pool pays off)."""
        ...

    def chunks(self, tally: Tally) -> Iterator[Chunk]:
        """Read the work into chunks, where it is matched; count and record skips in
        ``tally``."""
        ...


@dataclass(frozen=True, slots=True)
class ChunkWork:
    """A chunk already read in this process (environment, staged changes, Lambda)."""

    chunk: Chunk

    @property
    def size(self) -> int:
        return len(self.chunk.data) if self.chunk.data is not None else 0

    @property
    def items(self) -> int:
        return 1

    def chunks(self, tally: Tally) -> Iterator[Chunk]:
        chunk = self.chunk
        data = chunk.data if chunk.data is not None else chunk.text.encode("utf-8", "replace")
        tally.chunks += 1
        tally.bytes += len(data)  # bytes, as for files (text may be non-ASCII)
        yield chunk


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """When a source's work is worth worker processes: once the planned work reaches both
    ``min_bytes`` and ``min_items``. ``in_flight`` pieces per worker are queued at most."""

    min_bytes: int = 0
    min_items: int = 1
    in_flight: int = 2


W = TypeVar("W", bound=Work)
W_contra = TypeVar("W_contra", bound=Work, contravariant=True)


class PostPass(Protocol[W_contra]):
    """The stage after matching: sees each piece of work's findings as they arrive (in any
    order), then gives the source's findings."""

    def add(self, work: W_contra, findings: Sequence[Finding]) -> None: ...

    def finish(self) -> list[Finding]: ...


class Source(Protocol[W]):
    """Produces work; records what it skipped and what the user should be warned about."""

    skipped: list[Skipped]
    warnings: list[str]

    @property
    def pool(self) -> PoolPolicy | None:
        """None: the work is matched in this process (it holds sessions, pipes, or is small)."""
        ...

    def work(self) -> Iterator[W]: ...

    def post_pass(self, rules: Sequence[Rule]) -> PostPass[W]: ...
