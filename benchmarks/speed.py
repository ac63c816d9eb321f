"""Whole-process speed of keyward against gitleaks and Kingfisher, interleaved, as ratios.

Every round runs each tool once over the same tree (a fresh process each: interpreter or
binary start-up, rule loading and the scan), in turn, so load from other jobs on the machine
hits every tool alike; the report gives each tool's median wall time, CPU time (user + sys of
the whole process tree) and peak RSS, and the ratios of the medians. The machine's load
average is printed before and after, because wall times on a shared machine mean little
without it.

    python benchmarks/speed.py files [--root DIR] [--rounds 5]
    python benchmarks/speed.py files --cold         # also keyward with an empty cache dir

keyward runs with an empty config file (``benchmarks/empty-config.toml``) and a cache
directory of its own under ``benchmarks/.cache/speed`` (warmed by one untimed run; ``--cold``
adds a run per round that starts from an empty one: rules parsed from TOML, hyperscan
databases compiled). The peers
are fetched as ``peers.py`` does (their PyPI wheels), all tools use their default thread
counts (every core), with network validation off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
EMPTY_CONFIG = HERE / "empty-config.toml"  # no settings: defaults only
sys.path.insert(0, str(HERE))
from peers import fetch  # noqa: E402

CORPUS = HERE / ".corpus"
CACHE = HERE / ".cache" / "speed"
BIN = Path(sys.executable).parent


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float
    findings: int


@dataclass
class Tool:
    name: str
    argv: Callable[[Path, Path], list[str]]  # (root, output file) -> command
    count: Callable[[Path], int]  # output file -> number of findings
    ok: tuple[int, ...] = (0, 1)
    env: dict[str, str] = field(default_factory=dict)
    before: Callable[[], None] | None = None  # untimed, before each run (e.g. empty a cache)
    drain: bool = False  # read its standard output through a pipe (git log), else /dev/null
    samples: list[Sample] = field(default_factory=list)


def run_once(tool: Tool, root: Path) -> Sample:
    if tool.before is not None:
        tool.before()
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = tool.argv(root, out)
    env = {**os.environ, "CI": "1", **tool.env}
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE if tool.drain else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    if proc.stdout is not None:
        while proc.stdout.read1(1 << 20):
            pass
        proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    rc = os.waitstatus_to_exitcode(status)
    proc.returncode = rc
    err = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    if rc not in tool.ok:
        raise SystemExit(f"{tool.name} failed ({rc}): {err.decode(errors='replace')[-2000:]}")
    # wait4's usage covers the process and its waited-for children (workers, git)
    cpu = usage.ru_utime + usage.ru_stime
    found = tool.count(out)
    out.unlink(missing_ok=True)
    return Sample(wall, cpu, usage.ru_maxrss / 1024, found)


def keyward_tool(
    name: str,
    cache: Path,
    *extra: str,
    cold: bool = False,
    history: bool = False,
    tree: Path | None = None,
) -> Tool:
    """keyward as installed, or the ``keyward`` package of another source ``tree`` (e.g. an
    earlier commit's, from ``git archive``) run by the same interpreter."""
    program = [str(BIN / "keyward")]
    if tree is not None:
        # -P: not the working directory first on sys.path (it may hold another keyward)
        program = [sys.executable, "-P", "-c", "import sys; from keyward.cli import main; "
                   "sys.argv = ['keyward', *sys.argv[1:]]; main()"]  # fmt: skip

    def argv(root: Path, out: Path) -> list[str]:
        what = ["--git", str(root)] if history else [str(root), "--no-ignore"]
        return [*program, "--config", str(EMPTY_CONFIG), "scan", *what,
                "--format", "json", "--output", str(out), "--no-progress", *extra]  # fmt: skip

    def count(out: Path) -> int:
        return len(json.loads(out.read_text())["findings"])

    def empty() -> None:
        shutil.rmtree(cache, ignore_errors=True)

    env = {"KEYWARD_CACHE_DIR": str(cache)}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return Tool(name, argv, count, env=env, before=empty if cold else None)


def git_log_tool(name: str, *options: str) -> Tool:
    def argv(root: Path, out: Path) -> list[str]:
        return ["git", "-C", str(root), "--no-pager", "log", *options]

    return Tool(name, argv, lambda out: 0, ok=(0,), drain=True)


def gitleaks_tool(binary: Path, mode: str = "dir") -> Tool:
    def argv(root: Path, out: Path) -> list[str]:
        return [str(binary), mode, str(root), "--report-format", "json", "--report-path",
                str(out), "--no-banner", "--redact", "--exit-code", "0",
                "--log-level", "error"]  # fmt: skip

    def count(out: Path) -> int:
        return len(json.loads(out.read_text() or "[]"))

    return Tool(f"gitleaks 8.30 {mode}", argv, count, ok=(0,))


def kingfisher_tool(binary: Path, history: bool = False) -> Tool:
    def argv(root: Path, out: Path) -> list[str]:
        return [str(binary), "--no-update-check", "-q", "scan", str(root), "--no-validate",
                "--git-history", "full" if history else "none",
                "--format", "json", "--output", str(out)]  # fmt: skip

    def count(out: Path) -> int:
        return len(json.loads(out.read_text() or '{"findings": []}').get("findings", []))

    return Tool("Kingfisher 2.14", argv, count, ok=(0, 200, 205))


def compile_keyward(*trees: Path) -> None:
    """Byte-compile keyward as an install does: with PYTHONDONTWRITEBYTECODE set (as in some
    development shells), a checkout's edited modules would be recompiled in every process."""
    import keyward

    for d in (Path(keyward.__file__).parent, *(t / "keyward" for t in trees)):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(d)],
                       check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})  # fmt: skip


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def tree_size(root: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                files += 1
                size += os.path.getsize(p)
    return files, size


def report(tools: list[Tool], base: Tool) -> None:
    print("\n| tool | median wall s | min wall s | median CPU s | peak RSS MiB | findings |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for t in tools:
        walls = [s.wall for s in t.samples]
        cpus = [s.cpu for s in t.samples]
        rss = max(s.rss_mib for s in t.samples)
        found = sorted({s.findings for s in t.samples})
        shown = "/".join(map(str, found))
        print(f"| {t.name} | {statistics.median(walls):.2f} | {min(walls):.2f} | "
              f"{statistics.median(cpus):.2f} | {rss:.0f} | {shown} |")  # fmt: skip
    bw = statistics.median(s.wall for s in base.samples)
    print()
    for t in tools:
        if t is base:
            continue
        tw = statistics.median(s.wall for s in t.samples)
        # the per-round ratio too: rounds are interleaved, so each one compares like with like
        per_round = [o.wall / b.wall for o, b in zip(t.samples, base.samples, strict=False)]
        print(f"{t.name} / {base.name}: {tw / bw:.2f}x (median of medians); per round "
              f"median {statistics.median(per_round):.2f}x, "
              f"range {min(per_round):.2f}-{max(per_round):.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=["files", "history"])
    ap.add_argument("--root", type=Path, help="tree (files) or repository (history)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="also keyward from an empty cache")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--gitleaks", type=Path)
    ap.add_argument("--kingfisher", type=Path)
    ap.add_argument("--keyward-arg", action="append", default=[], help="extra keyward argument")
    ap.add_argument("--before", type=Path, help="also keyward from this source tree "
                    "(e.g. git archive OLD keyward | tar -x -C DIR)")  # fmt: skip
    args = ap.parse_args()
    history = args.what == "history"
    if history:
        from replay import ensure

        root = args.root or ensure()
        count = subprocess.run(
            ["git", "-C", str(root), "rev-list", "--count", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        print(f"repository: {root} ({count} commits); cores: {os.cpu_count()}")
    else:
        root = args.root or CORPUS / "real"
        files, size = tree_size(root)
        print(f"tree: {root} ({files:,} files, {size / 1e6:.0f} MB); cores: {os.cpu_count()}")
    warm = keyward_tool("keyward", CACHE / "warm", *args.keyward_arg, history=history)
    tools = [warm]
    if args.before is not None:
        before = keyward_tool(f"keyward before ({args.before})", CACHE / "before",
                              *args.keyward_arg, history=history, tree=args.before)  # fmt: skip
        tools.append(before)
    if history:
        tools.append(git_log_tool("git log -p", "-p"))
        keyward_options = ("-p", "-U0", "--full-index", "-M", "--diff-merges=dense-combined")
        tools.append(git_log_tool("git log -p -U0 (keyward's options)", *keyward_options))
    if args.cold:
        tools.append(keyward_tool("keyward, empty cache", CACHE / "cold", *args.keyward_arg,
                                  cold=True, history=history))  # fmt: skip
    if not args.no_peers:
        tools.append(kingfisher_tool(fetch("kingfisher", args.kingfisher), history))
        tools.append(gitleaks_tool(fetch("gitleaks", args.gitleaks), "git" if history else "dir"))
    compile_keyward(*([args.before] if args.before else []))
    for t in tools:
        if t.name.startswith("keyward") and t.before is None:
            run_once(t, root)  # warm its caches and the page cache (untimed)
    print(f"load average before: {loadavg()}")
    for n in range(args.rounds):
        for t in tools:
            s = run_once(t, root)
            t.samples.append(s)
            print(f"round {n + 1} {t.name}: {s.wall:.2f} s wall, {s.cpu:.2f} s CPU, "
                  f"{s.rss_mib:.0f} MiB, {s.findings} findings (load {loadavg()})",
                  flush=True)  # fmt: skip
    print(f"load average after: {loadavg()}")
    report(tools, warm)


if __name__ == "__main__":
    main()
