"""Run a scan: plan the work, spread it over every core, collect findings in a stable order."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Backend, Engine
from keyward.scan.model import Chunk, Finding
from keyward.scan.rules import RuleSet, load_rules
from keyward.scan.sources.base import Skipped
from keyward.scan.sources.files import FileTask, FileWalker, WalkOptions, read_task
from keyward.scan.sources.structured import scan_file_chunk

# Below these sizes a process pool costs more than it saves.
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
PARALLEL_MIN_FILES = 64
BATCH_BYTES = 4 * 1024 * 1024
BATCH_FILES = 512
# Work sent to a worker at a time: small enough to keep every core busy to the end.
PARALLEL_BATCH_BYTES = 1024 * 1024
PARALLEL_BATCH_FILES = 256


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Everything needed to build an :class:`Engine` in another process (picklable)."""

    rule_files: tuple[Path, ...] = ()
    builtin_rules: bool = True
    fingerprint_key: bytes = field(default=b"", repr=False)
    backend: Backend = "auto"
    cache_dir: Path | None = None

    def rules(self) -> RuleSet:
        return load_rules(self.rule_files, builtin=self.builtin_rules)

    def build(self, rules: RuleSet | None = None) -> Engine:
        return Engine(
            rules or self.rules(),
            Fingerprinter(self.fingerprint_key),
            backend=self.backend,
            cache_dir=self.cache_dir,
        )


@dataclass(slots=True)
class ScanStats:
    files: int = 0
    bytes: int = 0
    chunks: int = 0
    skipped: int = 0
    findings: int = 0
    suppressed_inline: int = 0
    suppressed_baseline: int = 0
    seconds: float = 0.0
    engine: str = ""
    rules: int = 0
    jobs: int = 1

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "chunks": self.chunks,
            "skipped": self.skipped,
            "findings": self.findings,
            "suppressed_inline": self.suppressed_inline,
            "suppressed_baseline": self.suppressed_baseline,
            "seconds": round(self.seconds, 3),
            "engine": self.engine,
            "rules": self.rules,
            "jobs": self.jobs,
        }


@dataclass(slots=True)
class ScanResult:
    findings: list[Finding] = field(default_factory=list)  # every finding, suppressed or not
    skipped: list[Skipped] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    warnings: list[str] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)  # the scanned paths, as given

    def extend(self, other: ScanResult) -> ScanResult:
        """Add another source's result (e.g. git history or environment) to this one."""
        self.findings.extend(other.findings)
        self.skipped.extend(other.skipped)
        self.warnings.extend(other.warnings)
        for name in ("files", "bytes", "chunks", "seconds"):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(other.stats, name))
        self.stats.engine = self.stats.engine or other.stats.engine
        self.stats.rules = self.stats.rules or other.stats.rules
        self.stats.jobs = max(self.stats.jobs, other.stats.jobs)
        self._order()
        return self

    def _order(self) -> None:
        """The stable output order (the same whatever the job count), and the counts."""
        self.findings.sort(key=Finding.sort_key)
        self.skipped.sort(key=_skipped_key)
        self._count()

    def _count(self) -> None:
        self.stats.findings = len(self.reported)
        self.stats.suppressed_inline = sum(1 for f in self.findings if f.suppressed_by == "inline")
        self.stats.suppressed_baseline = sum(
            1 for f in self.findings if f.suppressed_by == "baseline"
        )
        self.stats.skipped = len(self.skipped)

    @property
    def reported(self) -> list[Finding]:
        """The unsuppressed findings, in output order."""
        return [f for f in self.findings if f.suppressed_by is None]

    def finish(self, started: float) -> ScanResult:
        """Sort into the stable output order and count; record the time since ``started``."""
        self._order()
        self.stats.seconds = time.perf_counter() - started
        return self


def _skipped_key(s: Skipped) -> tuple[str, str]:
    return (s.what, s.reason)


# ---------------------------------------------------------------- worker side
# A worker process builds (or, with fork, inherits) one engine and keeps it for its lifetime.
# This module-level slot is the one piece of process state, and only workers use it.
_WORKER_ENGINE: Engine | None = None
_BatchResult = tuple[list[Finding], list[Skipped], int, int]


def _worker_init(spec: EngineSpec) -> None:
    global _WORKER_ENGINE
    if _WORKER_ENGINE is None:  # inherited through fork when possible
        _WORKER_ENGINE = spec.build()


def _scan_batch(job: tuple[Sequence[FileTask], int]) -> _BatchResult:
    engine = _WORKER_ENGINE
    assert engine is not None
    return _scan_tasks(engine, job[0], job[1])


def _scan_tasks(engine: Engine, batch: Iterable[FileTask], max_size: int) -> _BatchResult:
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    files = nbytes = 0
    for task in batch:
        chunk = read_task(task, max_size)
        if isinstance(chunk, Skipped):
            skipped.append(chunk)
            continue
        files += 1
        nbytes += task.size
        found = scan_file_chunk(engine, chunk)  # .env, compose, k8s, IaC: per variable too
        if found:
            findings.extend(found)
    return findings, skipped, files, nbytes


def _batches(tasks: Iterable[FileTask], max_bytes: int, max_files: int) -> Iterator[list[FileTask]]:
    batch: list[FileTask] = []
    size = 0
    for t in tasks:
        batch.append(t)
        size += t.size
        if size >= max_bytes or len(batch) >= max_files:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def scan_paths(
    roots: Sequence[Path],
    spec: EngineSpec,
    walk: WalkOptions,
    *,
    jobs: int | None = None,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
    parallel_min_files: int = PARALLEL_MIN_FILES,
) -> ScanResult:
    """Scan files and directories. ``progress(done_bytes, planned_bytes)`` is called as it goes.

    The walk (directory entries and one ``lstat`` per file) runs in this process. A small tree
    is read and scanned here too; once the walk has found more than ``parallel_min_bytes`` in
    ``parallel_min_files`` files, ``jobs`` worker processes (default: every core) start and
    scan batches while the walk goes on. Findings and skips come back sorted, so the output is
    the same whatever the job count.
    """
    started = time.perf_counter()
    walker = FileWalker(roots, walk)
    walker.check_roots()
    engine = engine or spec.build()
    result = ScanResult(skipped=walker.skipped, roots=list(roots))
    result.stats.engine = engine.backend
    result.stats.rules = len(engine.rules)
    n_jobs = jobs if jobs is not None else default_jobs()
    max_size = walk.max_file_size
    tasks = walker.tasks()
    head: list[FileTask] = []
    head_bytes = 0
    parallel = False
    for task in tasks:
        head.append(task)
        head_bytes += task.size
        if n_jobs > 1 and head_bytes >= parallel_min_bytes and len(head) >= parallel_min_files:
            parallel = True
            break
    done = 0
    planned = head_bytes

    def add(batch_size: int, found: _BatchResult) -> None:
        nonlocal done
        findings, skipped, files, nbytes = found
        result.findings.extend(findings)
        result.skipped.extend(skipped)
        result.stats.files += files
        result.stats.bytes += nbytes
        done += batch_size
        if progress:
            progress(done, planned)

    if not parallel:  # the walk is over: a small tree, or one job
        result.stats.jobs = 1
        for batch in _batches(head, BATCH_BYTES, BATCH_FILES):
            add(sum(t.size for t in batch), _scan_tasks(engine, batch, max_size))
        return result.finish(started)

    global _WORKER_ENGINE
    result.stats.jobs = n_jobs
    method = "fork" if sys.platform == "linux" else "spawn"
    ctx = multiprocessing.get_context(method)
    _WORKER_ENGINE = engine if method == "fork" else None

    def planning() -> Iterator[FileTask]:
        nonlocal planned
        yield from head
        for task in tasks:
            planned += task.size
            yield task

    try:
        with ProcessPoolExecutor(
            max_workers=n_jobs, mp_context=ctx, initializer=_worker_init, initargs=(spec,)
        ) as pool:
            running: dict[Future[_BatchResult], int] = {}
            for batch in _batches(planning(), PARALLEL_BATCH_BYTES, PARALLEL_BATCH_FILES):
                running[pool.submit(_scan_batch, (batch, max_size))] = sum(t.size for t in batch)
                finished = [f for f in running if f.done()]
                for fut in finished:
                    add(running.pop(fut), fut.result())
            for fut in as_completed(running):
                add(running[fut], fut.result())
    finally:
        _WORKER_ENGINE = None
    return result.finish(started)


def scan_chunks(engine: Engine, chunks: Iterable[Chunk]) -> ScanResult:
    """Scan chunks from any source in this process (env, git, IaC, Lambda...)."""
    started = time.perf_counter()
    result = ScanResult()
    result.stats.engine = engine.backend
    result.stats.rules = len(engine.rules)
    for chunk in chunks:
        result.stats.chunks += 1
        data = chunk.data if chunk.data is not None else chunk.text.encode("utf-8", "replace")
        result.stats.bytes += len(data)  # bytes, as for files (text may be non-ASCII)
        result.findings.extend(engine.scan(chunk))
    return result.finish(started)
