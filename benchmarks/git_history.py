"""Benchmark `keyward scan --git` on a history of several thousand commits of real code.

No network to GitHub here, so the history is generated: real source files (the unpacked sdists
of benchmarks/.corpus/real if `corpus.py` was run, else this virtualenv's site-packages) are
committed one change at a time with `git fast-import` — new files, edits that replace a run of
lines with lines from another real file, renames, deletions, and a side branch merged back
every few hundred commits. Fake GitHub tokens (minted here, valid checksums) are planted in a
few commits, some deleted again later, to check every one is reported once with the commit
that introduced it.

    python benchmarks/git_history.py                 # 5000 commits, prints a Markdown table
    python benchmarks/git_history.py --commits 20000 --rebuild

Reports commits/s and MB/s of patch text (what `git log -p -U0` prints), for one process and
for every core, against `git log -p` alone (the floor: git must produce the diffs).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import string
import subprocess
import sys
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from keyward.scan.engine_spec import EngineSpec  # noqa: E402
from keyward.scan.runner import Runner  # noqa: E402
from keyward.scan.sources.git import HistorySource  # noqa: E402
from keyward.scan.validators import base62  # noqa: E402

TEXT_EXT = {".py", ".c", ".h", ".js", ".ts", ".rst", ".md", ".txt", ".yaml", ".yml", ".json",
            ".cfg", ".toml", ".html", ".css", ".sh", ".pyx", ".cpp", ".f", ".po"}  # fmt: skip


def real_files(limit_bytes: int) -> list[tuple[str, bytes]]:
    corpus = HERE / ".corpus" / "real"
    roots = (
        [corpus] if corpus.is_dir() else [Path(p) for p in sys.path if p.endswith("site-packages")]
    )
    out: list[tuple[str, bytes]] = []
    total = 0
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                if Path(name).suffix not in TEXT_EXT:
                    continue
                path = Path(dirpath, name)
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                if not data or len(data) > 200_000 or b"\0" in data[:4096]:
                    continue
                out.append((str(path.relative_to(root)), data))
                total += len(data)
                if total >= limit_bytes:
                    return out
    return out


def q(path: str) -> bytes:
    """A path quoted for fast-import (names may contain spaces)."""
    return b'"' + path.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def mint_token(rng: random.Random) -> str:
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + base62(zlib.crc32(body.encode()), 6)


def build(repo: Path, n_commits: int, seed: int = 7) -> dict[str, int]:
    """Generate the repository; returns {token: index of the commit that introduces it}."""
    rng = random.Random(seed)
    files = real_files(120 * 1024 * 1024)
    if not files:
        raise SystemExit("no source files found")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    stream: list[bytes] = []
    tree: dict[str, bytes] = {}
    planted: dict[str, int] = {}
    mark = 0
    next_file = 0
    plant_at = set(rng.sample(range(50, n_commits), 25))
    branch_open = False

    marks: dict[str, int] = {}
    touched: set[str] = set()  # paths changed on the side branch

    def blob(data: bytes, path: str) -> int:
        nonlocal mark
        mark += 1
        stream.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
        marks[path] = mark
        touched.add(path)
        return mark

    main_head = 0
    side_head = 0
    for i in range(n_commits):
        ops: list[bytes] = []
        action = rng.random()
        if i % 400 == 380:  # open a side branch from main's head
            branch_open = True
            touched.clear()
            stream.append(b"reset refs/heads/side\nfrom :%d\n" % main_head)
        merging = branch_open and i % 400 == 399
        if merging:
            pass  # the merge commit only brings the side branch in
        elif next_file < len(files) and (action < 0.35 or len(tree) < 20):
            path, data = files[next_file]
            next_file += 1
            tree[path] = data
            ops.append(b"M 100644 :%d %s\n" % (blob(data, path), q(path)))
        elif action < 0.93 or len(tree) < 40:
            path = rng.choice(sorted(tree))
            lines = tree[path].split(b"\n")
            donor = files[rng.randrange(len(files))][1].split(b"\n")
            at = rng.randrange(len(lines))
            n = rng.randint(1, 30)
            d_at = rng.randrange(len(donor))
            lines[at : at + rng.randint(0, n)] = donor[d_at : d_at + n]
            tree[path] = b"\n".join(lines)
            ops.append(b"M 100644 :%d %s\n" % (blob(tree[path], path), q(path)))
        elif action < 0.97:
            old = rng.choice(sorted(tree))
            new = f"moved/{i}/{Path(old).name}"
            tree[new] = tree.pop(old)
            marks[new] = marks.pop(old)
            touched.update((old, new))
            ops.append(b"R %s %s\n" % (q(old), q(new)))
        else:
            old = rng.choice(sorted(tree))
            del tree[old]
            marks.pop(old, None)
            touched.add(old)
            ops.append(b"D %s\n" % q(old))
        if i in plant_at and not merging:
            token = mint_token(rng)
            planted[token] = i
            path = f"config/settings_{i}.py"
            tree[path] = f'DEBUG = False\nGITHUB_TOKEN = "{token}"\n'.encode()
            ops.append(b"M 100644 :%d %s\n" % (blob(tree[path], path), q(path)))
        # every 400 commits: 20 commits on a side branch, then merged back
        ref = b"refs/heads/main"
        if branch_open:
            ref = b"refs/heads/side"
        mark += 1
        msg = f"commit {i}".encode()
        header = b"commit %s\nmark :%d\nauthor Dev <dev@example.com> %d +0000\n" % (
            ref,
            mark,
            1_600_000_000 + i * 600,
        )
        header += b"committer Dev <dev@example.com> %d +0000\ndata %d\n%s\n" % (
            1_600_000_000 + i * 600,
            len(msg),
            msg,
        )
        if merging:
            # merge the side branch into main with this commit
            header = header.replace(b"refs/heads/side", b"refs/heads/main", 1)
            header += b"from :%d\nmerge :%d\n" % (main_head, side_head)
            # main did not move meanwhile: the merge result is the side branch's tree
            ops = [
                b"M 100644 :%d %s\n" % (marks[p], p.encode())
                if p in tree
                else b"D %s\n" % p.encode()
                for p in sorted(touched)
            ] + ops
            branch_open = False
            main_head = mark
        elif branch_open:
            side_head = mark
        else:
            main_head = mark
        stream.append(header + b"".join(ops) + b"\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(stream), check=True)
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=repo, check=True)
    return planted


def cpu() -> float:
    """CPU seconds of this process and its reaped children (load-independent)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def patch_bytes(repo: Path) -> tuple[int, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "log", "-p", "-U0", "--full-index", "-M",
         "--diff-merges=dense-combined", "--format=%H"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    n = 0
    while chunk := proc.stdout.read(1 << 20):
        n += len(chunk)
    proc.wait()
    return n, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--commits", type=int, default=5000)
    ap.add_argument("--repo", type=Path, default=HERE / ".cache" / "git-history")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()

    os.environ.setdefault("KEYWARD_CACHE_DIR", str(HERE / ".cache" / "keyward-cache"))
    repo: Path = args.repo / str(args.commits)
    planted_file = repo / ".planted"
    if args.rebuild or not planted_file.exists():
        if repo.exists():
            subprocess.run(["rm", "-rf", str(repo)], check=True)
        repo.mkdir(parents=True)
        t = time.perf_counter()
        planted = build(repo, args.commits)
        print(f"built {args.commits} commits in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        planted_file.write_text("\n".join(f"{i} {tok}" for tok, i in planted.items()))
    planted = {}
    for row in planted_file.read_text().splitlines():
        i, tok = row.split()
        planted[tok] = int(i)

    commits = int(subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "HEAD"],
                                 capture_output=True, text=True, check=True).stdout)  # fmt: skip
    c0 = cpu()
    nbytes, git_seconds = patch_bytes(repo)
    cpu_used = {"git": cpu() - c0}
    # as the CLI does: compiled rule databases cached on disk (warmed by one untimed run)
    hs_cache = Path(os.environ["KEYWARD_CACHE_DIR"]) / "hyperscan"
    spec = EngineSpec(fingerprint_key=bytes(range(32)), cache_dir=hs_cache)
    Runner(spec.build(), spec=spec, jobs=1).run(HistorySource(repo))
    engine = spec.build()
    rows = [("`git log -p -U0` alone (the floor)", git_seconds, None)]
    for jobs in (1, os.cpu_count() or 1):
        t, c0 = time.perf_counter(), cpu()
        result = Runner(engine, spec=spec, jobs=jobs).run(HistorySource(repo))
        elapsed = time.perf_counter() - t
        cpu_used[f"keyward-{jobs}"] = cpu() - c0
        name = f"keyward, {jobs} process{'es' if jobs > 1 else ''}"
        rows.append((name, elapsed, result))
    # a cold CLI run (interpreter start, rules, everything)
    t = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "keyward", "scan", "--git", str(repo), "-f", "json",
                          "-o", os.devnull], capture_output=True)  # fmt: skip
    rows.append(("`keyward scan --git` CLI, cold start", time.perf_counter() - t, None))
    assert cli.returncode in (0, 1), cli.stderr.decode()[-500:]

    result = next(r for _, _, r in reversed(rows) if r is not None)
    stats = result.stats
    found = {f.secret: f for f in result.findings if f.rule_id == "github-pat-classic"}
    hits = sum(1 for tok in planted if tok in found)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"History: {commits} commits, {nbytes / 1e6:.1f} MB of patch text, "
          f"{stats.binary_blobs} binary blobs; {len(planted)} planted tokens\n")  # fmt: skip
    print("| run | seconds | commits/s | MB/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, secs, _ in rows:
        print(f"| {name} | {secs:.2f} | {commits / secs:,.0f} | {nbytes / 1e6 / secs:.1f} |")
    print(
        f"\nCPU seconds (user+sys, all processes): git alone {cpu_used['git']:.2f}, "
        f"keyward 1 process {cpu_used['keyward-1']:.2f}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"\nPlanted tokens found: {hits}/{len(planted)}; total findings {len(result.findings)}; "
          f"peak RSS parent {peak:.0f} MiB, largest child {peak_children:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
