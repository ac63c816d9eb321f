"""What every Source shares: the protocol and the record of what was skipped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from keyward.scan.model import Chunk


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something a source did not scan, and why (shown with --verbose, counted in stats)."""

    what: str
    reason: str
    warning: bool = False  # True when the user should hear about it without --verbose


class Source(Protocol):
    """Yields chunks to scan; records what it skipped."""

    skipped: list[Skipped]

    def chunks(self) -> Iterator[Chunk]: ...
