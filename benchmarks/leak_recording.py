"""Recording findings that are leaks: 100,000 findings from one scan, 1,000 of them the current
values of 1,000 secrets (of 20,000 secrets, each with a current version and a field
fingerprint), on SQLite and/or PostgreSQL. Prints the wall and CPU time of ``record_findings``
and the time spent in the parts that link findings to versions and mark leaks.

    python benchmarks/leak_recording.py                 # both databases
    python benchmarks/leak_recording.py --backend sqlite

Results are recorded in docs/benchmarks.md ("Recording leaks").
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import sqlalchemy as sa  # noqa: E402
from inventory import SyntheticOwners, findings  # noqa: E402

from keyward.inventory import models as m  # noqa: E402
from keyward.inventory.db import connect  # noqa: E402
from keyward.inventory.leaks import LeakPolicy  # noqa: E402
from keyward.inventory.migrate import upgrade_to  # noqa: E402
from keyward.inventory.recording import record_findings  # noqa: E402

PG_ADMIN = os.environ.get("KEYWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PARTS = ("_known_versions", "fields_by_fingerprint", "_remediated", "mark_leaks", "_bulk_upsert")


def database(backend: str) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp()}/inventory.db", lambda: None
    import psycopg

    name = f"keyward_leakbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://{PG_ADMIN.split('://', 1)[1].rsplit('/', 1)[0]}/{name}", drop


def run(backend: str, n_findings: int, n_secrets: int, n_leaks: int) -> None:
    url, drop = database(backend)
    try:
        db = connect(url)
        upgrade_to(db)
        found = findings(0, n_findings, seed=1)
        now = m.utcnow()
        fps = [f.fingerprint for f in found[:n_leaks]]
        fps += [f"{i:064x}" for i in range(n_secrets - len(fps))]
        with db.engine.begin() as conn:
            conn.execute(
                sa.insert(m.Secret.__table__),
                [
                    {"name": f"s{i}", "kind": "random", "store": "vault-kv", "reference": f"r{i}",
                     "tags": {}, "attributes": {}, "status": "active", "source": "benchmark",
                     "created_at": now, "updated_at": now}
                    for i in range(n_secrets)
                ],
            )  # fmt: skip
            ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM secrets ORDER BY id"))]
            conn.execute(
                sa.insert(m.SecretVersion.__table__),
                [
                    {"secret_id": sid, "fingerprint": fp, "identifier": f"v{sid}",
                     "stage": "current", "created_at": now}
                    for sid, fp in zip(ids, fps, strict=True)
                ],
            )  # fmt: skip
            vids = [
                r[0] for r in conn.execute(sa.text("SELECT id FROM secret_versions ORDER BY id"))
            ]
            conn.execute(
                sa.insert(m.SecretField.__table__),
                [
                    {"version_id": v, "secret_id": s, "field": "value", "fingerprint": fp}
                    for v, s, fp in zip(vids, ids, fps, strict=True)
                ],
            )
        policy = LeakPolicy(None, frozenset({"random"}), frozenset({"vault-kv"}))
        prof = cProfile.Profile()
        wall, cpu = time.perf_counter(), time.process_time()
        prof.enable()
        summary = record_findings(
            db, found, "files:/repo/0", ownership=SyntheticOwners(), roots=[Path("/")],
            leak_policy=policy,
        )  # fmt: skip
        prof.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{backend}: {summary.recorded} findings recorded, {summary.linked} linked, "
            f"{len(summary.leaks)} leaks in {wall:.2f} s ({cpu:.2f} s CPU)"
        )
        stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        for part in PARTS:
            spent = [v[3] for k, v in stats.items() if k[2] == part]
            if spent:
                print(f"  {part}: {sum(spent):.2f} s")
        db.close()
    finally:
        drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--findings", type=int, default=100_000)
    ap.add_argument("--secrets", type=int, default=20_000)
    ap.add_argument("--leaks", type=int, default=1_000)
    args = ap.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run(backend, args.findings, args.secrets, args.leaks)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
