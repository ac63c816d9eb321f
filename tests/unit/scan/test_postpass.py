"""Post-passes: what happens to a source's findings after matching."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from keyward.scan.model import Chunk, Finding, Location, Severity, SourceKind
from keyward.scan.postpass import FirstIntroduction
from keyward.scan.sources.base import Tally


@dataclass(frozen=True)
class Commits:
    """A piece of history work (our own protocol): commits in history order from ``first``."""

    first: int
    commits: tuple[str, ...]
    size: int = 0

    @property
    def items(self) -> int:
        return len(self.commits)

    def order_of(self, commit: str | None) -> int:
        return self.first + self.commits.index(commit or "")

    def chunks(self, tally: Tally) -> Iterator[Chunk]:
        return iter(())


def found(commit: str, secret: str = "s3cr3t", inline: bool = False) -> Finding:
    loc = Location(kind=SourceKind.GIT, path="app.py", line=1, commit=commit)
    return Finding(
        "kw-test-token", Severity.HIGH, loc, "s3…t", f"fp-{secret}", secret=secret,
        suppressed_by="inline" if inline else None,
    )  # fmt: skip


def test_one_finding_per_secret_from_its_earliest_commit_whatever_the_arrival_order() -> None:
    seen: list[list[Finding]] = []

    def present(findings: object) -> set[int]:
        seen.append(list(findings))  # type: ignore[call-overload]
        return {0}

    post = FirstIntroduction(present)
    late, early = Commits(10, ("c10", "c11")), Commits(0, ("c0", "c1", "c2"))
    post.add(late, [found("c11"), found("c10", "other")])  # a later batch finishes first
    post.add(early, [found("c2", inline=True), found("c1")])
    [first, other] = post.finish()
    assert (first.location.commit, first.introduced) == ("c1", "c1")
    assert first.suppressed_by == "inline"  # allowed in one version: allowed
    assert first.still_present and not other.still_present
    assert other.introduced == "c10" and other.suppressed_by is None
    assert [f.location.commit for f in seen[0]] == ["c1", "c10"]  # history order
