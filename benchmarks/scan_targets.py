"""Benchmark ``keyward scan --targets --shard K/N --record``: an organisation's repositories
cloned and scanned by N processes (the pods of an Indexed Job) into one PostgreSQL inventory.

The repositories are copies of the generated 5,000-commit history of real code of
``git_history.py`` (built once and cached), each served under its own ``file://`` URL, so every
target is really cloned (git's pack protocol, as for a remote; no network here). For each run:
wall time, time per target (clone and scan), and memory: the peak of the whole process tree
of one shard (keyward, its worker processes and git, sampled from /proc) and of its largest
process. Those are what ``deploy/kubernetes/keyward-scan.yaml`` asks for.

    python benchmarks/scan_targets.py                   # 8 repositories, 1 and 2 shards
    python benchmarks/scan_targets.py --repos 16 --shards 1 2 4

PostgreSQL: ``KEYWARD_BENCH_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test);
a database is created for each run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import git_history  # noqa: E402

ADMIN = os.environ.get("KEYWARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
LINE = re.compile(r"^keyward: (\S+): (\d+) findings? .* in ([\d.]+) s(?:, clone ([\d.]+) s)?$")


def history(commits: int) -> Path:
    repo = HERE / ".cache" / "git-history" / str(commits)
    if not (repo / ".planted").exists():
        if repo.exists():
            subprocess.run(["rm", "-rf", str(repo)], check=True)
        repo.mkdir(parents=True)
        planted = git_history.build(repo, commits)
        (repo / ".planted").write_text("\n".join(f"{i} {t}" for t, i in planted.items()))
    return repo


def mirrors(repo: Path, count: int) -> list[str]:
    """``count`` bare repositories with the history (hard-linked copies of one), as URLs."""
    root = HERE / ".cache" / "scan-targets" / repo.name
    origin = root / "origin.git"
    if not origin.exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(origin)], check=True)
    urls = []
    for i in range(count):
        copy = root / f"repo-{i:03d}.git"
        if not copy.exists():  # a local clone hard-links the objects: cheap, and its own name
            subprocess.run(["git", "clone", "-q", "--bare", str(origin), str(copy)], check=True)
        urls.append(f"file://{copy}")
    return urls


def tree_rss(pid: int) -> tuple[int, int]:
    """(sum, largest) resident set of ``pid`` and its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(entry)
        children.setdefault(int(fields[1]), []).append(child)
        rss[child] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
    total = largest = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        largest = max(largest, rss.get(p, 0))
        todo.extend(children.get(p, []))
    return total, largest


def run(urls: list[str], shards: int, jobs: int, workdir: Path) -> dict[str, float]:
    import psycopg

    name = f"keyward_bench_targets_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    targets = workdir / "targets.txt"
    targets.write_text("\n".join(urls) + "\n")
    env = {
        **os.environ,
        "KEYWARD_DATABASE_URL": url,
        "KEYWARD_FINGERPRINT_KEY": "ab" * 32,
        "KEYWARD_DATA_DIR": str(workdir / "data"),
        "KEYWARD_CLONE_DIR": str(workdir),
    }
    # migrate first (once per installation), so the runs time scanning only
    subprocess.run([sys.executable, "-m", "keyward", "db", "upgrade"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    peaks = [(0, 0)] * shards
    try:
        started = time.perf_counter()
        command = [sys.executable, "-m", "keyward", "scan", "--targets", str(targets), "--record",
                   "--jobs", str(jobs), "--exit-zero", "--no-progress", "--format", "json",
                   "--output", os.devnull]  # fmt: skip
        procs = [
            subprocess.Popen(
                [*command, "--shard", f"{k}/{shards}"], env=env, stderr=subprocess.PIPE, text=True
            )
            for k in range(shards)
        ]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                for k, p in enumerate(procs):
                    total, largest = tree_rss(p.pid)
                    peaks[k] = (max(peaks[k][0], total), max(peaks[k][1], largest))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        errs = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        for p, err in zip(procs, errs, strict=True):
            assert p.returncode == 0, err[-2000:]
        with psycopg.connect(url) as conn:
            per_target = conn.execute(
                "SELECT count(DISTINCT target), count(*) FROM findings"
            ).fetchone()
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    scans, clones = [], []
    for err in errs:
        for line in err.splitlines():
            m = LINE.match(line)
            if m:
                scans.append(float(m.group(3)))
                clones.append(float(m.group(4) or 0))
    assert per_target is not None and per_target[0] == len(urls), (per_target, errs)
    return {
        "wall": wall,
        "targets": len(scans),
        "findings": per_target[1],
        "target_median": statistics.median(scans),
        "clone_median": statistics.median(clones),
        "tree_peak_mib": max(p[0] for p in peaks) / 1024,
        "largest_mib": max(p[1] for p in peaks) / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repos", type=int, default=8)
    ap.add_argument("--commits", type=int, default=5000)
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--jobs", type=int, default=None, help="per shard (default: 2 // shards)")
    args = ap.parse_args()
    os.environ.setdefault("KEYWARD_CACHE_DIR", str(HERE / ".cache" / "keyward-cache"))
    urls = mirrors(history(args.commits), args.repos)
    workdir = HERE / ".cache" / "scan-targets" / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    size = sum(f.stat().st_size for f in Path(urls[0][7:]).rglob("*") if f.is_file())
    print(f"{args.repos} repositories of {args.commits} commits ({size / 1e6:.0f} MB packed each); "
          f"load average {os.getloadavg()[0]:.1f} at start\n")  # fmt: skip
    print("| shards | jobs each | wall s | targets/s | per target s (median) | clone s (median) "
          "| peak RSS of a shard (all its processes) | largest process |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for shards in args.shards:
        jobs = args.jobs or max(1, 2 // shards)
        r = run(urls, shards, jobs, workdir)
        print(f"| {shards} | {jobs} | {r['wall']:.1f} | {r['targets'] / r['wall']:.2f} "
              f"| {r['target_median']:.1f} | {r['clone_median']:.1f} "
              f"| {r['tree_peak_mib']:.0f} MiB | {r['largest_mib']:.0f} MiB |")  # fmt: skip
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
