"""Benchmark the pre-commit hook: `keyward hook` vs `detect-secrets-hook` on a 5-file commit.

A repository gets a base commit of real source files (benchmarks/.corpus/real if `corpus.py`
was run, else this virtualenv's site-packages), then 5 of them are changed and staged (edits
plus one planted fake token), which is what pre-commit hands each hook. Both hooks run the way
pre-commit runs them: their console script with the 5 file names. Each is warmed up once
(keyward's compiled-rules cache), then timed `--runs` times, alternating; medians are reported.

    python benchmarks/hook.py
    python benchmarks/hook.py --runs 30 --profile    # + keyward's slowest imports
    git archive <commit> | tar -x -C /tmp/kw-before
    python benchmarks/hook.py --before /tmp/kw-before  # + that tree's keyward, interleaved

Wall times swing with the machine's load; the CPU time (user + sys of the hook and of the git
processes it waited for) and the ratio of each keyward run to the detect-secrets run right
after it are the steadier numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import string
import subprocess
import sys
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TEXT_EXT = {".py", ".js", ".yaml", ".yml", ".json", ".md", ".cfg", ".toml", ".sh", ".rst"}


def real_files(n: int, rng: random.Random) -> list[tuple[str, bytes]]:
    corpus = HERE / ".corpus" / "real"
    root = (
        corpus
        if corpus.is_dir()
        else next(Path(p) for p in sys.path if p.endswith("site-packages"))
    )
    picked: list[tuple[str, bytes]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if p.suffix not in TEXT_EXT:
                continue
            try:
                size = p.stat().st_size
            except OSError:
                continue
            if 2_000 <= size <= 40_000:
                picked.append((str(p.relative_to(root)), p.read_bytes()))
        if len(picked) >= n * 20:
            break
    rng.shuffle(picked)
    return picked[:n]


def mint_token(rng: random.Random) -> str:
    sys.path.insert(0, str(HERE.parent))
    from keyward.scan.validators import base62

    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + base62(zlib.crc32(body.encode()), 6)


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}  # fmt: skip
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def build(repo: Path) -> list[str]:
    rng = random.Random(5)
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    files = real_files(40, rng)
    for path, data in files:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    changed = [path for path, _ in files[:5]]
    for k, path in enumerate(changed):
        lines = (repo / path).read_bytes().split(b"\n")
        at = rng.randrange(len(lines))
        extra = [b"# edited line %d" % i for i in range(20)]
        if k == 0:
            extra.append(f'API_TOKEN = "{mint_token(rng)}"'.encode())
        lines[at:at] = extra
        (repo / path).write_bytes(b"\n".join(lines))
    git(repo, "add", *changed)
    return changed


ENTRY = "import sys; from keyward.cli import main; sys.argv[0] = 'keyward'; sys.exit(main())"


def timed(
    cmd: list[str], repo: Path, env: dict[str, str] | None = None
) -> tuple[float, int, float]:
    """Wall seconds, exit code and CPU seconds (user + sys of the process and every process
    it waited for: git's too), the steadier number on a loaded machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, proc.returncode, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--profile", action="store_true", help="print keyward's slowest imports")
    ap.add_argument("--before", type=Path, help="a source tree of another keyward to time too")
    args = ap.parse_args()
    os.environ.setdefault("KEYWARD_CACHE_DIR", str(HERE / ".cache" / "keyward-cache"))
    os.environ.setdefault("KEYWARD_DATA_DIR", str(HERE / ".cache" / "keyward-data"))
    # byte-compile keyward as an install does (PYTHONDONTWRITEBYTECODE would leave a
    # checkout's edited modules to be recompiled in every run)
    trees = [HERE.parent] + ([args.before.resolve()] if args.before else [])
    for tree in trees:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "keyward")],
                       check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})  # fmt: skip
    repo = HERE / ".cache" / "hook-bench"
    files = build(repo)
    size = sum((repo / f).stat().st_size for f in files)
    commands = {
        "keyward hook": [str(BIN / "keyward"), "hook", *files],
        "detect-secrets-hook": [str(BIN / "detect-secrets-hook"), *files],
    }
    envs: dict[str, dict[str, str]] = {}
    if args.before:  # as its console script runs it, from that tree, with its own caches
        name = "keyward hook (before)"
        commands[name] = [sys.executable, "-c", ENTRY, "hook", *files]
        envs[name] = {
            **os.environ,
            "PYTHONPATH": str(args.before.resolve()),
            "KEYWARD_CACHE_DIR": str(HERE / ".cache" / "keyward-cache-before"),
        }
    codes = {}
    for name, cmd in commands.items():  # warm-up (and keyward's rule cache)
        _, codes[name], _ = timed(cmd, repo, envs.get(name))
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            wall, _, cpu = timed(cmd, repo, envs.get(name))
            times[name].append(wall)
            cpus[name].append(cpu)
    bare = statistics.median(timed([sys.executable, "-c", "pass"], repo)[0] for _ in range(5))

    print(
        f"5 staged files, {size / 1024:.0f} KiB, 101 added lines, 1 planted token; "
        f"{args.runs} runs each, medians; bare `python -c pass`: {bare * 1000:.0f} ms\n"
    )
    print("| hook | median wall ms | min wall ms | median CPU ms | exit code |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in commands:
        t = [x * 1000 for x in times[name]]
        c = statistics.median(cpus[name]) * 1000
        print(f"| `{name}` | {statistics.median(t):.0f} | {min(t):.0f} | {c:.0f} | {codes[name]} |")
    d = statistics.median(times["detect-secrets-hook"])
    dc = statistics.median(cpus["detect-secrets-hook"])
    print()
    for name in commands:
        if name == "detect-secrets-hook":
            continue
        k = statistics.median(times[name])
        # each keyward run / the detect-secrets run of the same round: load swings cancel out
        pairs = statistics.median(
            a / b for a, b in zip(times[name], times["detect-secrets-hook"], strict=True)
        )
        kc = statistics.median(cpus[name])
        print(
            f"`{name}` takes {k / d:.0%} of detect-secrets-hook's wall time (same-round pairs: "
            f"{pairs:.0%}), {kc / dc:.0%} of its CPU time (target: at most 20%)."
        )
    print(f"Load average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}.")
    if args.profile:
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "keyward", "hook", *files],
                              cwd=repo, capture_output=True, text=True)  # fmt: skip
        rows = []
        for line in proc.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                parts = [p.strip() for p in line[12:].split("|")]
                if parts[0].isdigit():
                    rows.append((int(parts[1]), parts[2]))
        for cum, name in sorted(rows, reverse=True)[:25]:
            print(f"{cum / 1000:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
