"""Run ``keyward ARGS...`` counting what it asks of PostgreSQL and Vault (for
``rotation_throughput.py``; not part of keyward).

    python benchmarks/_daemon_probe.py OUT.json daemon --interval 1 ...

Counts, through SQLAlchemy's and requests' own hooks: SQL statements sent (an executemany is
one), transactions committed (all, and those that wrote something), seconds spent inside
statement execution and commits, and HTTP requests to Vault. The counts are written to
OUT.json every half second and at exit, so a process that is SIGKILLed leaves its last ones.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import threading
import time
from typing import Any

COUNTS: dict[str, float] = {
    "statements": 0, "commits": 0, "write_commits": 0, "rollbacks": 0,
    "sql_seconds": 0.0, "commit_seconds": 0.0, "vault_requests": 0, "cpu_seconds": 0.0,
}  # fmt: skip
CALLS: dict[str, int] = {}  # Vault requests by method and path
STATEMENTS: dict[str, int] = {}  # SQL statements by their first words
_lock = threading.Lock()
_local = threading.local()


def _add(key: str, value: float = 1) -> None:
    with _lock:
        COUNTS[key] += value


def install() -> None:
    import requests.adapters
    import sqlalchemy as sa

    @sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        _local.started = time.perf_counter()
        if not statement.lstrip()[:6].upper().startswith(("SELECT", "SHOW")):
            conn.info["keyward_probe_wrote"] = True
        _add("statements")
        words = " ".join(statement.split()[:4])
        with _lock:
            STATEMENTS[words] = STATEMENTS.get(words, 0) + 1

    @sa.event.listens_for(sa.engine.Engine, "after_cursor_execute")
    def after(*args: Any) -> None:
        _add("sql_seconds", time.perf_counter() - getattr(_local, "started", time.perf_counter()))

    @sa.event.listens_for(sa.engine.Engine, "commit")
    def commit(conn: Any) -> None:
        _add("commits")
        if conn.info.pop("keyward_probe_wrote", False):
            _add("write_commits")

    @sa.event.listens_for(sa.engine.Engine, "rollback")
    def rollback(conn: Any) -> None:
        conn.info.pop("keyward_probe_wrote", None)
        _add("rollbacks")

    # the time a commit takes (the WAL flush) is spent in the DBAPI connection's commit()
    import psycopg

    original_commit = psycopg.Connection.commit

    def timed_commit(self: Any) -> None:
        started = time.perf_counter()
        try:
            original_commit(self)
        finally:
            _add("commit_seconds", time.perf_counter() - started)

    psycopg.Connection.commit = timed_commit  # type: ignore[method-assign]

    vault = os.environ.get("VAULT_ADDR", "")
    original_send = requests.adapters.HTTPAdapter.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if vault and str(request.url).startswith(vault):
            _add("vault_requests")
            # which calls: the path with the secret's own name folded (bench/s00042 -> bench/*)
            path = re.sub(r"s\d{5}", "*", str(request.url)[len(vault) :].split("?")[0])
            with _lock:
                CALLS[f"{request.method} {path}"] = CALLS.get(f"{request.method} {path}", 0) + 1
        return original_send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]


def dump(path: str) -> None:
    with _lock:
        COUNTS["cpu_seconds"] = time.process_time()  # this process, every thread
        data = json.dumps({**COUNTS, "pid": os.getpid(), "at": time.time(),
                           "calls": CALLS, "statements_by_kind": STATEMENTS})  # fmt: skip
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(data)
    os.replace(tmp, path)


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    install()

    def every_half_second() -> None:
        while True:
            time.sleep(0.5)
            dump(out)

    threading.Thread(target=every_half_second, daemon=True).start()
    atexit.register(dump, out)
    from keyward.cli import main as keyward

    profile = None
    if os.environ.get("KEYWARD_PROBE_PROFILE"):  # cProfile of the ticks, at exit
        import cProfile

        from keyward.rotation import scheduler

        profile = cProfile.Profile()
        tick = scheduler.tick

        def profiled(worker: Any) -> None:
            assert profile is not None
            profile.runcall(tick, worker)

        scheduler.tick = profiled  # type: ignore[assignment]
    try:
        keyward(args)
    finally:
        dump(out)
        if profile is not None:
            profile.dump_stats(f"{out}.prof")


if __name__ == "__main__":
    main()
