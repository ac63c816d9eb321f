"""``keyward daemon``: rotate due secrets, resume and retire unfinished rotations.

APScheduler 3 only ticks: one ``BackgroundScheduler`` per process with an in-memory job store
and one module-level job (:func:`tick`). What to do is claimed from the inventory on every
tick, with leases (and ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several
replicas never rotate the same secret twice:

1. leaked secrets (a scan found their current version) whose ``on_leak`` policy is to rotate
   are rotated, oldest leak first; the leaked credential is revoked as soon as the new one is
   current (no grace period);
2. unfinished rotations nobody holds a live lease on (a crashed worker's, a parked one, one
   waiting out its grace period) are resumed;
3. secrets whose ``rotation_due_at`` has passed and that have no rotation in flight are rotated.

A leaked secret that no installed rotator or store plugin can rotate is never claimed (it
would fail at every tick): the daemon logs one warning per leaked version and process.

The daemon serves ``/healthz`` and Prometheus ``/metrics`` on a loopback port, logs JSON, and
on SIGTERM (or SIGINT) stops claiming work, lets the running rotation park at its next step
boundary (every step is persisted, so nothing is lost), and exits 0.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from keyward.rotation.ports import SchedulerInventory, rotation_lease

if TYPE_CHECKING:
    from keyward.rotation.driver import Outcome
    from keyward.rotation.engine import RotationEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    interval: float = 60.0  # seconds between ticks
    host: str = "127.0.0.1"
    port: int = 9464  # 0: pick a free port
    batch: int = 10  # at most this many rotations claimed at a time
    workers: int = 1  # rotations driven at once (threads)


class Metrics:
    """Prometheus metrics in a registry of their own (no global state)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.rotations = Counter(
            "keyward_rotations",
            "Rotation runs by outcome (finished, retiring, rolled_back, failed, parked, skipped).",
            ["outcome"],
            registry=self.registry,
        )
        self.ticks = Counter("keyward_ticks", "Scheduler ticks.", registry=self.registry)
        self.tick_errors = Counter(
            "keyward_tick_errors", "Ticks that failed (e.g. database down).", registry=self.registry
        )
        self.last_tick = Gauge(
            "keyward_last_tick_timestamp_seconds",
            "Unix time the last tick finished.",
            registry=self.registry,
        )
        self.duration = Histogram(
            "keyward_rotation_duration_seconds",
            "Wall time of one rotation run.",
            buckets=(1, 5, 15, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.busy = Gauge("keyward_busy", "Rotations running now.", registry=self.registry)
        self.breaches = Gauge(
            "keyward_secrets_breaches",
            "Secrets with each posture breach (leaked, reused, duplicated, long-lived, "
            "no-owner, no-policy, unused, cross-environment), as of the last posture refresh.",
            ["breach"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


# The inventory's posture as the daemon sees it (composed by the CLI: rotation knows nothing
# of the inventory): called with True it recomputes and stores every secret's breaches, with
# False it reads the stored counts; either way, secrets per breach name.
PostureHook = Callable[[bool], Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class _Job:
    """One claimed piece of work: an unfinished rotation to resume or a secret to rotate."""

    what: str
    resume: int | None = None
    rotate: str | None = None
    leaked: bool = False  # a leak rotation: only while the secret is still leaked


class Worker:
    """Claims due work from the inventory and drives it through RotationEngines.

    ``workers`` rotations of a batch run at once, each thread with its own engine (its own
    provider clients); they share the inventory (one connection each from its pool). A
    rotation spends most of its time waiting for the database's commits and the providers'
    answers, so a few at once multiply what one daemon does; the leases keep them apart as
    they keep replicas apart."""

    def __init__(
        self,
        repo: SchedulerInventory,
        make_engine: Callable[[threading.Event], RotationEngine],
        holder: str,
        *,
        lease_ttl: timedelta,
        batch: int = 10,
        workers: int = 1,
        metrics: Metrics | None = None,
        stop: threading.Event | None = None,
        posture: PostureHook | None = None,
        posture_interval: float = 300.0,
        on_leak: str | None = None,
    ) -> None:
        self.repo = repo
        self.make_engine = make_engine
        self.holder = holder
        self.lease_ttl = lease_ttl
        self.batch = batch
        self.workers = max(1, workers)
        self.metrics = metrics or Metrics()
        self.stop = stop or threading.Event()
        self.last_tick: datetime | None = None
        self._lock = threading.Lock()
        self._plugin_names: tuple[list[str], set[str]] | None = None
        self.posture = posture
        self.posture_interval = posture_interval
        self._posture_at: float | None = None  # monotonic time of the last refresh
        self.on_leak = on_leak  # [rotation] on_leak: the policy of secrets without their own
        self._told: set[tuple[int, int]] = set()  # unrotatable leaks warned about (secret, version)

    def run_once(self) -> list[str]:
        """One tick: rotate leaked secrets, resume what is unfinished, then start what is due,
        a batch at a time;
        a full batch is followed by another claim at once (the tick goes on while work is
        due), so a replica never idles until the next tick with work waiting. Returns
        outcomes."""
        if not self._lock.acquire(blocking=False):
            return []  # the previous tick still runs
        try:
            outcomes: list[str] = []
            self._plugin_names = None
            self._tell_unrotatable(*self._plugins())  # once a tick
            while True:
                full = self._run(outcomes)
                self._progress()  # a long tick is alive: /healthz stays healthy
                if not full or self.stop.is_set():
                    break
            self._refresh_posture(outcomes)
            return outcomes
        finally:
            self._lock.release()
            self._progress()
            self.metrics.ticks.inc()

    def _refresh_posture(self, outcomes: list[str]) -> None:
        """The posture gauges: recomputed after a tick that ran rotations, and every
        ``posture_interval`` seconds (ages and last uses move on); otherwise the stored counts
        are read (one GROUP BY). A failure is logged; the tick's rotations stand."""
        if self.posture is None or self.stop.is_set():
            return
        now = time.monotonic()
        refresh = (
            bool(outcomes)
            or self._posture_at is None
            or now - self._posture_at >= self.posture_interval
        )
        try:
            counts = self.posture(refresh)
        except Exception as exc:
            from keyward.rotation.driver import error_text

            log.error("posture %s failed: %s", "refresh" if refresh else "read", error_text(exc))
            return
        if refresh:
            self._posture_at = now
        for breach, n in counts.items():
            self.metrics.breaches.labels(breach).set(n)

    def _progress(self) -> None:
        self.last_tick = datetime.now(UTC)
        self.metrics.last_tick.set(time.time())

    def _run(self, outcomes: list[str]) -> bool:
        """One batch: claim it and drive it, ``workers`` rotations at a time; True when a
        claim filled the batch (there may be more)."""
        kinds, stores = self._plugins()
        leaked = self.repo.claim_leaked(
            self.holder,
            self.lease_ttl,
            on_leak=self.on_leak,
            limit=self.batch,
            kinds=kinds,
            stores=stores,
        )
        resumable = self.repo.claim_in_flight(self.holder, self.lease_ttl, limit=self.batch)
        due: tuple[str, ...] = ()
        if not self.stop.is_set():
            due = self.repo.claim_due_secrets(
                self.holder, self.lease_ttl, limit=self.batch, kinds=kinds, stores=stores
            )
        # leaked secrets first, then unfinished rotations, then the due ones, each in the
        # order claimed
        jobs: list[_Job] = [_Job(x.secret, rotate=x.secret, leaked=True) for x in leaked]
        jobs += [_Job(f"#{rid}", resume=rid) for rid in resumable]
        jobs += [_Job(name, rotate=name) for name in due]
        engines = threading.local()  # one engine (fresh provider clients) per thread and batch

        def run(job: _Job) -> str | None:
            if self.stop.is_set():  # not started: its lease goes back at once
                self._release(job)
                return None
            engine = getattr(engines, "engine", None)
            if engine is None:
                engine = engines.engine = self.make_engine(self.stop)
            if job.resume is not None:
                return self._run_one(functools.partial(engine.resume, job.resume), job.what)
            assert job.rotate is not None
            call = functools.partial(engine.rotate, job.rotate, only_if_leaked=job.leaked)
            return self._run_one(call, job.what)

        if self.workers == 1 or len(jobs) <= 1:
            done = [run(job) for job in jobs]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(
                max_workers=min(self.workers, len(jobs)), thread_name_prefix="keyward-rotate"
            ) as pool:
                done = list(pool.map(run, jobs))
        outcomes.extend(o for o in done if o is not None)
        if self.stop.is_set():
            return False
        return len(leaked) >= self.batch or len(resumable) >= self.batch or len(due) >= self.batch

    def _tell_unrotatable(self, kinds: list[str], stores: set[str]) -> None:
        """One warning per leaked version no installed plugin can rotate (never claimed)."""
        for leak in self.repo.leaked_unrotatable(kinds, stores, on_leak=self.on_leak):
            key = (leak.secret_id, leak.version_id)
            if key in self._told:
                continue
            self._told.add(key)
            log.warning(
                "%s leaked (since %s) and its policy is to rotate it, but no installed "
                "rotator or secret store plugin can: it is not claimed; rotate it by hand or "
                "install the plugin",
                leak.secret,
                f"{leak.leaked_at:%Y-%m-%d %H:%M} UTC",
            )

    def _plugins(self) -> tuple[list[str], set[str]]:
        """What can be rotated: a kind nobody can rotate is not claimed, nor a secret in no
        store plugin (e.g. a discovered IAM key, store "aws-iam"), which would fail at every
        lease expiry. Found once per tick."""
        if self._plugin_names is None:
            from keyward.rotation.wiring import rotatable_plugins

            rotators, stores = rotatable_plugins()
            self._plugin_names = (sorted(rotators), set(stores))
        return self._plugin_names

    def _release(self, job: _Job) -> None:
        if job.resume is not None:
            secret_id = self.repo.entry(job.resume).secret_id
        else:
            assert job.rotate is not None
            secret_id = self.repo.rotatable(job.rotate).id
        self.repo.release_lease(rotation_lease(secret_id), self.holder)

    def _run_one(self, call: Callable[[], Outcome], what: str) -> str:
        from keyward.rotation.driver import error_text

        started = time.monotonic()
        self.metrics.busy.inc()
        try:
            out = call()
        except Exception as exc:
            self.metrics.rotations.labels("failed").inc()
            log.error("rotation of %s: %s", what, error_text(exc))
            return "failed"
        finally:
            self.metrics.busy.dec()
            self.metrics.duration.observe(time.monotonic() - started)
        outcome = "skipped" if out.skipped else "parked" if out.parked else out.state.value
        self.metrics.rotations.labels(outcome).inc()
        log.info("%s", out.message)
        for text in out.warnings:
            log.warning("rotation of %s: %s", what, text)
        return str(outcome)


def tick(worker: Worker) -> None:
    """The APScheduler job (module level): one tick of ``worker``; never raises."""
    try:
        worker.run_once()
    except Exception as exc:
        from keyward.rotation.driver import error_text

        worker.metrics.tick_errors.inc()
        log.error("tick failed: %s", error_text(exc))


def serve_http(worker: Worker, settings: DaemonSettings) -> ThreadingHTTPServer:
    """/healthz (JSON; 503 once ticks stall or while stopping) and /metrics, in a thread."""
    stale_after = max(3 * settings.interval, 30.0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body = worker.metrics.render()
                self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")
            elif self.path == "/healthz":
                last = worker.last_tick
                age = (datetime.now(UTC) - last).total_seconds() if last else None
                healthy = not worker.stop.is_set() and (age is None or age < stale_after)
                doc = {
                    "status": "ok" if healthy else "unhealthy",
                    "holder": worker.holder,
                    "last_tick": last.isoformat() if last else None,
                    "stopping": worker.stop.is_set(),
                }
                self._send(200 if healthy else 503, json.dumps(doc).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: %s", format % args)

    server = ThreadingHTTPServer((settings.host, settings.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="keyward-http", daemon=True).start()
    return server


def run_daemon(worker: Worker, settings: DaemonSettings, *, once: bool = False) -> int:
    """Tick until SIGTERM/SIGINT; returns the exit code (0)."""
    if once:
        tick(worker)
        return 0
    from apscheduler.schedulers.background import BackgroundScheduler

    # APScheduler logs through its own logger: same (JSON) handlers, and only errors (a tick
    # longer than the interval is skipped on purpose, not worth a warning each time).
    aps = logging.getLogger("apscheduler")
    aps.handlers[:] = list(logging.getLogger("keyward").handlers)
    aps.setLevel(logging.ERROR)
    aps.propagate = False
    server = serve_http(worker, settings)
    log.info(
        "keyward daemon %s listening on http://%s:%s (tick every %ss)",
        worker.holder, settings.host, server.server_address[1], settings.interval,
    )  # fmt: skip

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: stopping after the current step", signal.Signals(signum).name)
        worker.stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True})
    scheduler.add_job(
        tick,
        "interval",
        seconds=settings.interval,
        args=[worker],
        id="tick",
        max_instances=1,
        next_run_time=datetime.now(UTC),
        misfire_grace_time=None,
    )
    scheduler.start()
    try:
        while not worker.stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)  # waits for the running tick (which parks)
        server.shutdown()
        server.server_close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        log.info("keyward daemon stopped")
    return 0
