"""Benchmark the inventory at scale: 1,000,000 findings and 100,000 secrets.

For each database (a temporary SQLite file; a temporary PostgreSQL database on the local
server) it measures:

* bulk recording: ``record_findings`` of 100,000 findings from one scan (10 targets, so ten
  such scans fill 1,000,000 rows), then a re-scan of one target (updates + resolution);
* a posture refresh (``keyward.inventory.posture.refresh``) over 100,000 secrets, each with
  a current version and field, 20,000 with two Lambda dependents: first, then unchanged;
* ``inventory report`` (``build_report``) over 100,000 secrets and 1,000,000 findings;
* ``findings list --state open --owner X`` (``Inventory.list_findings``);
* both commands end to end through the CLI (a fresh ``python -m keyward`` process, so the
  figure includes interpreter start-up and imports).

    python benchmarks/inventory.py                          # both databases, full size
    python benchmarks/inventory.py --backend sqlite --findings 200000 --secrets 20000
    KEYWARD_TEST_POSTGRES_URL=postgresql://postgres@db:5432/postgres python benchmarks/inventory.py

Prints a Markdown table (recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import sqlalchemy as sa  # noqa: E402

from keyward.inventory import models as m  # noqa: E402
from keyward.inventory.db import Database, connect, normalize_url  # noqa: E402
from keyward.inventory.migrate import upgrade_to  # noqa: E402
from keyward.inventory.ownership import OwnershipResolver  # noqa: E402
from keyward.inventory.posture import refresh  # noqa: E402
from keyward.inventory.recording import record_findings  # noqa: E402
from keyward.inventory.report import build_report  # noqa: E402
from keyward.inventory.service import Inventory  # noqa: E402
from keyward.scan.model import Finding, Location, Severity  # noqa: E402

OWNERS = 1000
TEAMS = 50
RULES = ("github-pat-classic", "aws-access-key-id", "slack-bot-token", "generic-password")
PG_ADMIN = os.environ.get("KEYWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def owner_of(path: str) -> str:
    return f"@org/team-{int(hashlib.md5(path.encode()).hexdigest()[:6], 16) % OWNERS}"


class SyntheticOwners(OwnershipResolver):
    """CODEOWNERS stand-in: every file has one of OWNERS owners (no git needed)."""

    def resolve(self, path: Path, lines: Any) -> dict[int, tuple[str | None, str | None]]:
        owner = owner_of(path.name)
        return dict.fromkeys(lines, (owner, None))


def findings(target: int, n: int, seed: int) -> list[Finding]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        path = f"t{target}-dir{i % 997}-file{i // 7}.py"
        fp = hashlib.sha256(f"{target}:{i}".encode()).hexdigest()
        out.append(
            Finding(
                rule_id=RULES[i % len(RULES)],
                severity=Severity.HIGH,
                location=Location(path=path, line=1 + rng.randrange(500), column=5),
                preview=f"ghp_…{fp[:4]}",
                fingerprint=fp,
            )
        )
    return out


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return (statistics.median(times) if repeat > 1 else times[0]), result


def insert_secrets(db: Database, n: int) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        created = now - timedelta(days=rng.randrange(1, 1200))
        rotated = created + timedelta(days=rng.randrange(0, 60)) if rng.random() < 0.6 else None
        max_age = rng.choice((None, 30, 90, 180, 365))
        base = rotated or created
        rows.append(
            {
                "name": f"secret-{i:06d}",
                "kind": rng.choice(("random", "postgres-password", "aws-iam-access-key")),
                "store": "vault-kv",
                "reference": f"secret/app/{i}",
                "owner": f"@org/team-{i % OWNERS}",
                "team": f"team-{i % TEAMS}",
                "tags": {},
                "attributes": {},
                "status": "active",
                "source": "benchmark",
                "created_at": created,
                "last_rotated_at": rotated,
                "max_age_seconds": max_age * 86400 if max_age else None,
                "rotation_due_at": base + timedelta(days=max_age) if max_age else None,
                "updated_at": now,
            }
        )
    table = m.Secret.__table__
    with db.engine.begin() as conn:
        for i in range(0, len(rows), 10_000):
            conn.execute(sa.insert(table), rows[i : i + 10_000])


def insert_posture_world(db: Database, n: int) -> None:
    """What posture looks at, for the secrets ``insert_secrets`` made (ids 1..n): a current
    version per secret with a ``password`` field (1 % of them in pairs that share a value), a
    leaked current version for 0.5 %, a last use for 30 %, and two Lambda dependents for 20 %
    (environment and application tags drawn from a few)."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    versions, fields, deps, used = [], [], [], []
    for i in range(n):
        sid = i + 1
        twin = i // 2 if i < n // 100 else i  # the first 1 %: pairs share one value
        fp = hashlib.sha256(f"value:{twin}".encode()).hexdigest()
        leaked = now - timedelta(days=3) if rng.random() < 0.005 else None
        versions.append(
            {"id": sid, "secret_id": sid, "fingerprint": fp, "identifier": f"v{sid}",
             "stage": "current", "created_at": now, "leaked_at": leaked}
        )  # fmt: skip
        fields.append({"version_id": sid, "secret_id": sid, "field": "password", "fingerprint": fp})
        if rng.random() < 0.3:
            used.append({"sid": sid, "used": now - timedelta(days=rng.randrange(0, 400))})
        if rng.random() < 0.2:
            deps.extend(_dependent_rows(rng, sid, now))
    with db.engine.begin() as conn:
        for table, rows in (
            (m.SecretVersion.__table__, versions),
            (m.SecretField.__table__, fields),
            (m.Dependent.__table__, deps),
        ):
            for i in range(0, len(rows), 10_000):
                conn.execute(sa.insert(table), rows[i : i + 10_000])  # type: ignore[arg-type]
        s = m.Secret.__table__
        conn.execute(
            sa.update(s)
            .where(s.c.id == sa.bindparam("sid"))
            .values(last_used_at=sa.bindparam("used")),
            used,
        )


def _dependent_rows(rng: random.Random, sid: int, now: datetime) -> list[dict[str, Any]]:
    """Two functions holding secret ``sid``: mostly in prod, sometimes one in dev; both of
    the secret's application, but one in ten of the first ones another's."""
    return [
        {
            "secret_id": sid,
            "kind": "aws-lambda",
            "target": f"arn:aws:lambda:eu-west-1:123456789012:function:f{sid}-{k}",
            "variable": "DB_PASSWORD",
            "attributes": {
                "environment": rng.choice(("prod", "prod", "prod", "dev")),
                "application": f"app-{(sid + (k == 0 and rng.random() < 0.1)) % 50}",
            },
            "created_at": now,
            "origin": "discovered",
            "status": "active",
        }
        for k in range(2)
    ]


def cli_seconds(url: str, *args: str) -> float:
    env = {**os.environ, "KEYWARD_DATABASE_URL": url}
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "keyward", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


def python_startup() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import keyward.cli"], check=True)
    return time.perf_counter() - t


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="keyward-bench-") as tmp:
            yield f"sqlite:///{tmp}/inventory.db"
        return
    import psycopg

    name = f"keyward_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield normalize_url(f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(backend: str, n_findings: int, n_secrets: int) -> dict[str, Any]:
    with database(backend) as url:
        return measure(backend, url, n_findings, n_secrets)


def measure(backend: str, url: str, n_findings: int, n_secrets: int) -> dict[str, Any]:
    res: dict[str, Any] = {"backend": backend}
    per_target = min(100_000, n_findings)
    targets = max(1, n_findings // per_target)
    db = connect(url)
    upgrade_to(db)
    owners = SyntheticOwners()
    record_times = []
    for t in range(targets):
        batch = findings(t, per_target, seed=t)
        cpu = time.process_time()
        secs, _ = timed(
            lambda b=batch, t=t: record_findings(
                db, b, f"files:/repo/{t}", ownership=owners, roots=[Path("/")]
            )
        )
        record_times.append(secs)
        if t == 0:
            res["record_cpu"] = time.process_time() - cpu
        print(f"  {backend}: recorded target {t} ({per_target} findings) in {secs:.2f}s",
              file=sys.stderr)  # fmt: skip
    res["record_first"] = record_times[0]
    res["record_last"] = record_times[-1]
    # a re-scan of target 0 where 10% are gone: updates 90% and resolves 10%
    again = findings(0, per_target, seed=0)[: per_target * 9 // 10]
    secs, summary = timed(
        lambda: record_findings(db, again, "files:/repo/0", ownership=owners, roots=[Path("/")])
    )
    res["rescan"] = secs
    res["resolved"] = summary.resolved
    # some ignored findings, as people would mark them
    with db.engine.begin() as conn:
        conn.execute(
            sa.update(m.Finding)
            .where(m.Finding.id % 20 == 0)
            .values(state=m.FindingState.IGNORED, state_reason="bench")
        )
    secs, _ = timed(lambda: insert_secrets(db, n_secrets))
    res["insert_secrets"] = secs
    insert_posture_world(db, n_secrets)
    if backend == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    inv = Inventory(db, "bench")
    with db.engine.connect() as conn:
        res["findings"] = conn.scalar(sa.select(sa.func.count()).select_from(m.Finding))
        res["secrets"] = conn.scalar(sa.select(sa.func.count()).select_from(m.Secret))
    owner = owner_of(findings(0, 10, seed=0)[5].location.path or "")
    # posture: the first refresh writes every breach, the next ones find nothing changed
    cpu = time.process_time()
    res["posture_first"], summary = timed(lambda: refresh(db))
    res["posture_first_cpu"] = time.process_time() - cpu
    res["posture_rows"] = summary.added
    cpu = time.process_time()
    res["posture_again"], again = timed(lambda: refresh(db), repeat=3)
    res["posture_again_cpu"] = (time.process_time() - cpu) / 3
    assert again.added == again.removed == 0, again
    res["posture_counts"] = ", ".join(f"{n:,} {b.value}" for b, n in summary.counts.items())
    print(f"  {backend}: posture {res['posture_counts']}", file=sys.stderr)
    cpu = time.process_time()
    res["report"], report = timed(lambda: build_report(db), repeat=5)
    res["report_cpu"] = (time.process_time() - cpu) / 5
    res["overdue"] = report.overdue_count
    res["list_owner"], page = timed(
        lambda: inv.list_findings(state="open", owner=owner, limit=None), repeat=5
    )
    res["list_owner_rows"] = len(page.findings)
    res["list_owner_500"], _ = timed(lambda: inv.list_findings(state="open", owner=owner), repeat=5)
    db.close()
    res["cli_report"] = min(cli_seconds(url, "inventory", "report", "--format", "json")
                            for _ in range(3))  # fmt: skip
    res["cli_list"] = min(
        cli_seconds(url, "findings", "list", "--state", "open", "--owner", owner,
                    "--format", "json")
        for _ in range(3)
    )  # fmt: skip
    if backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        res["size_mb"] = sum(p.stat().st_size for p in path.parent.glob("inventory.db*")) / 1e6
    else:
        with connect(url).engine.connect() as conn:
            res["size_mb"] = (
                conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() / 1e6
            )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--findings", type=int, default=1_000_000)
    ap.add_argument("--secrets", type=int, default=100_000)
    args = ap.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [run(b, args.findings, args.secrets) for b in backends]
    start = python_startup()
    load = os.getloadavg()[0]
    print(f"\n{args.findings:,} findings, {args.secrets:,} secrets; "
          f"`python -c 'import keyward.cli'` alone takes {start:.2f}s; "
          f"load average at the end {load:.1f} on {os.cpu_count()} cores\n")  # fmt: skip
    cols = [
        ("findings", "rows in findings", "{:,}"),
        ("secrets", "rows in secrets", "{:,}"),
        ("size_mb", "database size (MB)", "{:.0f}"),
        ("record_first", "record 100,000 findings, first scan (s)", "{:.2f}"),
        ("record_cpu", "… of which CPU time in the keyward process (s)", "{:.2f}"),
        ("record_last", "record 100,000 findings, last target (s)", "{:.2f}"),
        ("rescan", "re-scan: 90,000 seen again, 10,000 resolved (s)", "{:.2f}"),
        ("insert_secrets", "insert 100,000 secrets (setup, s)", "{:.2f}"),
        ("posture_rows", "posture breaches stored (rows)", "{:,}"),
        ("posture_first", "posture refresh, first (every breach written, s)", "{:.2f}"),
        ("posture_first_cpu", "… CPU time in the keyward process (s)", "{:.2f}"),
        ("posture_again", "posture refresh, nothing changed (median of 3, s)", "{:.2f}"),
        ("posture_again_cpu", "… CPU time in the keyward process (s)", "{:.2f}"),
        ("report", "`build_report` (query time, median of 5, s)", "{:.3f}"),
        ("report_cpu", "… CPU time in the keyward process (SQLite runs in it; s)", "{:.3f}"),
        ("list_owner", "`list_findings(state=open, owner=X)`, all rows (s)", "{:.3f}"),
        ("list_owner_rows", "… rows returned", "{:,}"),
        ("list_owner_500", "… with the CLI's default --limit 500 (s)", "{:.3f}"),
        ("cli_report", "`keyward inventory report --format json`, whole process (s)", "{:.2f}"),
        ("cli_list", "`keyward findings list --state open --owner X`, whole process (s)",
         "{:.2f}"),
    ]  # fmt: skip
    print("| measure | " + " | ".join(r["backend"] for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for key, label, fmt in cols:
        print(f"| {label} | " + " | ".join(fmt.format(r[key]) for r in results) + " |")


if __name__ == "__main__":
    main()
