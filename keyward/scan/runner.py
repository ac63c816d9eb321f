"""The runner: the one place that drives the engine, in this process or in a process pool.

    request -> sources -> work -> (workers) chunks -> engine -> post-pass -> ScanResult

:func:`run_scan` turns a :class:`~keyward.scan.request.ScanRequest` into its sources (files,
live Lambda, git history or staged changes, environment: in that order) and runs each through
one :class:`Runner`. The runner plans in this process while the source yields work; when the
source allows a pool and the planned work reaches its
:class:`~keyward.scan.sources.base.PoolPolicy`, worker processes (default: one per core)
start and match batches while planning goes on.
Every finding of a piece of work goes to the source's post-pass, then the result is sorted
into a stable order, so the output is the same whatever the number of jobs.

Nothing here imports a process pool, a file walker or a cloud library until a scan needs it:
``keyward hook`` runs through :func:`run_scan` too.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from keyward.scan.engine import Engine
from keyward.scan.engine_spec import EngineSpec
from keyward.scan.model import Chunk, Finding, SourceKind
from keyward.scan.result import ScanResult
from keyward.scan.sources.base import PoolPolicy, Source, Tally, Work
from keyward.scan.variables import match_with_variables

if TYPE_CHECKING:
    from concurrent.futures import Future

    from keyward.scan.request import ScanRequest

Progress = Callable[[int, int], None]  # (bytes done, bytes planned)
StartMethod = Literal["fork", "spawn"]
W = TypeVar("W", bound=Work)

# Chunks of a file (on disk, in a commit, in the index) are matched with the variables the
# file declares; other chunks (a variable, a Lambda package member) as they are.
_FILE_KINDS = frozenset({SourceKind.FILE, SourceKind.GIT, SourceKind.STAGED})


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------- matching
def match_chunk(engine: Engine, chunk: Chunk) -> list[Finding]:
    """The findings of one chunk: a file's also from the variables it declares."""
    if chunk.location.kind in _FILE_KINDS and chunk.location.path:
        return match_with_variables(engine, chunk)
    return engine.scan(chunk)


@dataclass(slots=True)
class Matched:
    """What matching one piece of work gave (sent back from a worker)."""

    findings: list[Finding]
    tally: Tally


def match_work(engine: Engine, work: Work) -> Matched:
    tally = Tally()
    findings: list[Finding] = []
    for chunk in work.chunks(tally):
        found = match_chunk(engine, chunk)
        if found:
            findings.extend(found)
    return Matched(findings, tally)


# ---------------------------------------------------------------- worker processes
# The one piece of module state, and only worker processes read it: the engine a worker
# matches with. The parent sets it just before forking the pool (the workers inherit the
# compiled engine, detect-secrets plugins included) and clears it when the pool is done; with
# spawn, each worker's initializer builds it from the spec.
_WORKER_ENGINE: Engine | None = None


def _worker_init(spec: EngineSpec | None) -> None:
    global _WORKER_ENGINE
    if _WORKER_ENGINE is None:  # not inherited through fork
        assert spec is not None
        _WORKER_ENGINE = spec.build()


def _worker_match(work: Work) -> Matched:
    assert _WORKER_ENGINE is not None
    return match_work(_WORKER_ENGINE, work)


# ---------------------------------------------------------------- the runner
class Runner:
    """Drives ``engine`` over a source's work; ``spec`` rebuilds it in spawned workers.

    ``jobs`` is the number of worker processes (default: every core); a source's work is
    matched in this process when it is small, when ``jobs`` is 1, or when its source has no
    :class:`PoolPolicy`. Workers are forked on Linux (they inherit the compiled engine), else
    spawned (each builds its engine from ``spec``; without one, work stays in this process).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        spec: EngineSpec | None = None,
        jobs: int | None = None,
        start_method: StartMethod | None = None,
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.jobs = jobs if jobs is not None else default_jobs()
        method = start_method or ("fork" if sys.platform == "linux" else "spawn")
        self._fork = method == "fork"

    def run(self, source: Source[W], *, progress: Progress | None = None) -> ScanResult:
        """Match every piece of the source's work, then its post-pass."""
        started = time.perf_counter()
        result = ScanResult()
        result.stats.engine = self.engine.backend
        result.stats.rules = len(self.engine.rules)
        post = source.post_pass(self.engine.rules)
        done = planned = 0

        def collect(piece: W, matched: Matched) -> None:
            nonlocal done
            post.add(piece, matched.findings)
            t, s = matched.tally, result.stats
            s.files += t.files
            s.bytes += t.bytes
            s.chunks += t.chunks
            s.commits += t.commits
            s.binary_blobs += t.binary_blobs
            result.skipped.extend(t.skipped)
            done += piece.size
            if progress:
                progress(done, planned)

        work = source.work()
        try:
            head: list[W] = []
            policy = source.pool
            pooled = False
            if policy is not None and self.jobs > 1 and (self._fork or self.spec is not None):
                head_bytes = head_items = 0
                for piece in work:  # plan until the work is worth a pool, or is all planned
                    head.append(piece)
                    head_bytes += piece.size
                    head_items += piece.items
                    if head_bytes >= policy.min_bytes and head_items >= policy.min_items:
                        pooled = True
                        break
            planned = sum(p.size for p in head)

            def planning() -> Iterator[W]:
                nonlocal planned
                yield from head
                for piece in work:
                    planned += piece.size
                    yield piece

            if pooled and policy is not None:
                result.stats.jobs = self.jobs
                self._pool(planning(), policy, collect)
            else:
                for piece in planning():
                    collect(piece, match_work(self.engine, piece))
        finally:
            close = getattr(work, "close", None)
            if close is not None:
                close()  # a generator's clean-up runs now (e.g. git processes are reaped)
        result.findings = post.finish()
        result.skipped.extend(source.skipped)
        result.warnings.extend(source.warnings)
        return result.finish(started)

    def _pool(
        self,
        work: Iterator[W],
        policy: PoolPolicy,
        collect: Callable[[W, Matched], None],
    ) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        global _WORKER_ENGINE
        ctx = multiprocessing.get_context("fork" if self._fork else "spawn")
        if self._fork:
            self.engine.prepare()  # built once here, shared by every forked worker
        _WORKER_ENGINE = self.engine if self._fork else None
        window = max(1, policy.in_flight) * self.jobs
        running: dict[Future[Matched], W] = {}

        def harvest(finished: Iterator[Future[Matched]] | set[Future[Matched]]) -> None:
            for fut in list(finished):
                collect(running.pop(fut), fut.result())

        try:
            with ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=ctx,
                initializer=_worker_init,
                initargs=(None if self._fork else self.spec,),
            ) as pool:
                for piece in work:
                    running[pool.submit(_worker_match, piece)] = piece
                    harvest(f for f in list(running) if f.done())
                    if len(running) >= window:
                        harvest(wait(running, return_when=FIRST_COMPLETED).done)
                while running:
                    harvest(wait(running, return_when=FIRST_COMPLETED).done)
        finally:
            _WORKER_ENGINE = None


# ---------------------------------------------------------------- a whole scan
def run_scan(
    request: ScanRequest,
    *,
    engine: Engine | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Run every source the request names and merge their results (not yet baselined).

    ``engine`` is built from ``request.engine`` when not given; ``progress`` follows the file
    scan.
    """
    engine = engine or request.engine.build()
    runner = Runner(engine, spec=request.engine, jobs=request.jobs)
    result = ScanResult()
    if request.scans_files:
        from keyward.scan.sources.files import FileSource

        roots = request.roots
        result.extend(runner.run(FileSource(roots, request.walk_options()), progress=progress))
        result.roots = roots
    if request.aws_lambda:
        from keyward.scan.sources.aws_lambda import LambdaSource

        result.extend(runner.run(LambdaSource(request.lambda_options())))
    if request.git:
        from keyward.scan.sources.git import HistorySource

        history = HistorySource(request.repository, request.git_options())
        result.extend(runner.run(history))
        result.repository = history.root
    elif request.staged:
        from keyward.scan.sources.staged import StagedSource

        staged = StagedSource(
            request.repository,
            request.staged_files,
            max_file_size=request.max_file_size,
            exclude=request.exclude,
        )
        result.extend(runner.run(staged))
        result.repository = staged.root
        result.staged_changes = staged.changed
    if request.environment:
        from keyward.scan.sources.env import ProcessEnvSource

        result.extend(runner.run(ProcessEnvSource()))
    result.min_confidence = request.min_confidence
    result.recount()
    return result
