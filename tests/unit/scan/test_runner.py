"""Planning and running a scan: stable order, the same result on any number of cores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scanutil import kw_token, scan_files, spec_for

from keyward.scan.report import OutputFormat, to_string
from keyward.scan.result import ScanResult
from keyward.scan.runner import default_jobs
from keyward.scan.sources.base import PoolPolicy
from keyward.scan.sources.files import FILES_POOL, WalkOptions


def make_tree(root: Path, n: int = 120) -> None:
    for i in range(n):
        d = root / f"pkg{i % 7}" / f"sub{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        body = "".join(f"line {j} of file {i}\n" for j in range(i % 13))
        if i % 4 == 0:
            body += f"token = '{kw_token(i)}'\n"
        if i % 9 == 0:
            body += f"a, b = '{kw_token(i + 1000)}', '{kw_token(i + 2000)}'\n"
        (d / f"f{i}.py").write_text(body + "x" * (i * 37))
        if i % 10 == 0:
            (d / f"bin{i}.dat").write_bytes(b"\0\1\2" * 100)


def run(root: Path, jobs: int | None, **kw: int) -> ScanResult:
    spec = spec_for(root.parent)
    pool = FILES_POOL
    if kw:  # parallel_min_bytes, parallel_min_files: when a process pool pays off
        pool = PoolPolicy(kw["parallel_min_bytes"], kw["parallel_min_files"], FILES_POOL.in_flight)
    return scan_files([root], spec, WalkOptions(), jobs=jobs, pool=pool)


def test_same_findings_in_the_same_order_on_every_run_and_any_job_count(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    low = {"parallel_min_bytes": 1, "parallel_min_files": 1}
    serial = run(tree, 1)
    parallel = run(tree, 2, **low)
    again = run(tree, 2, **low)
    assert serial.stats.jobs == 1 and parallel.stats.jobs == 2
    outputs = {
        to_string(r, OutputFormat.JSON).split('"stats"')[0] for r in (serial, parallel, again)
    }
    assert len(outputs) == 1
    assert [s.what for s in serial.skipped] == [s.what for s in parallel.skipped]
    assert len(serial.findings) == 30 + 2 * 14
    paths = [(f.location.path, f.location.line, f.location.column) for f in serial.findings]
    assert paths == sorted(paths)
    assert serial.stats.files == parallel.stats.files == 120


def test_large_trees_use_every_core(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree, 80)
    result = run(tree, None, parallel_min_bytes=1, parallel_min_files=1)
    assert result.stats.jobs == default_jobs() == len(os.sched_getaffinity(0))


def test_small_trees_stay_in_process(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree, 10)
    assert run(tree, None).stats.jobs == 1


def test_extend_merges_another_sources_result(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree, 20)
    a = run(tree, 1)
    merged = ScanResult().extend(a).extend(run(tree, 1))
    assert merged.stats.files == 2 * a.stats.files
    assert len(merged.findings) == 2 * len(a.findings)
    assert merged.stats.findings == len(merged.reported)


def test_spawned_workers_build_their_engine_and_find_the_same(tmp_path: Path) -> None:
    from keyward.scan.runner import Runner
    from keyward.scan.sources.files import FileSource

    tree = tmp_path / "tree"
    make_tree(tree, 60)
    spec = spec_for(tmp_path)
    low = PoolPolicy(1, 1, FILES_POOL.in_flight)
    serial = run(tree, 1)
    runner = Runner(spec.build(), spec=spec, jobs=2, start_method="spawn")
    spawned = runner.run(FileSource([tree], WalkOptions(), pool=low))
    assert spawned.stats.jobs == 2
    assert [(f.location.path, f.fingerprint) for f in spawned.findings] == [
        (f.location.path, f.fingerprint) for f in serial.findings
    ]
    assert spawned.stats.files == serial.stats.files


def test_without_a_spec_spawned_workers_cannot_be_used_so_work_stays_here(tmp_path: Path) -> None:
    from keyward.scan.runner import Runner
    from keyward.scan.sources.files import FileSource

    tree = tmp_path / "tree"
    make_tree(tree, 20)
    runner = Runner(spec_for(tmp_path).build(), jobs=2, start_method="spawn")
    result = runner.run(FileSource([tree], WalkOptions(), pool=PoolPolicy(1, 1)))
    assert result.stats.jobs == 1 and result.stats.files == 20
