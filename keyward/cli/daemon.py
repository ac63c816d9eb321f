"""``keyward daemon``: scheduled rotation with leases, /healthz, /metrics and JSON logs."""

from __future__ import annotations

import logging

import click

from keyward.cli.app import EPILOG, get_state
from keyward.cli.db import database_option, open_db

DAEMON_EPILOG = (
    """\b
Examples:
  keyward daemon                            tick every 60 s, metrics on 127.0.0.1:9464
  keyward daemon --interval 30 --port 9100
  keyward daemon --once                     one tick, then exit (cron-style)
  curl -s http://127.0.0.1:9464/healthz
  curl -s http://127.0.0.1:9464/metrics

"""
    + EPILOG
)


@click.command(epilog=DAEMON_EPILOG)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=None,
    help="Seconds between ticks (default: [daemon] interval or 60).",
)
@click.option("--host", default=None, help="Address for /healthz and /metrics (127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port (default 9464; 0: any)."
)
@click.option(
    "--batch", type=click.IntRange(min=1), default=None, help="Rotations claimed at a time."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Rotations driven at once (default: [daemon] workers, else 4 on PostgreSQL and 1 on "
    "SQLite).",
)
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@database_option
def daemon(
    interval: float | None,
    host: str | None,
    port: int | None,
    batch: int | None,
    workers: int | None,
    once: bool,
    database_url: str | None,
) -> None:
    """Rotate due secrets and finish unfinished rotations, several replicas safely.

    Work is claimed from the inventory with leases (and FOR UPDATE SKIP LOCKED on
    PostgreSQL). On SIGTERM the current rotation parks at its next step and the daemon exits 0.
    """
    from keyward.cli.compose import compose_rotation
    from keyward.core.errors import ConfigError
    from keyward.core.logging import configure
    from keyward.rotation.driver import default_holder
    from keyward.rotation.scheduler import DaemonSettings, Metrics, Worker, run_daemon

    st = get_state()
    configure(logging.DEBUG if st.debug else logging.INFO, json_logs=True)
    config = st.config
    d = DaemonSettings()
    configured_host = config.file_value("daemon", "host")
    if configured_host is not None and not (isinstance(configured_host, str) and configured_host):
        raise ConfigError(f"[daemon] host in {config.path} must be an address such as 127.0.0.1")
    settings = DaemonSettings(
        interval=(
            interval
            if interval is not None
            else config.number("daemon", "interval", d.interval, minimum=0.2)
        ),
        host=host or configured_host or d.host,
        port=int(
            port
            if port is not None
            else config.number("daemon", "port", d.port, minimum=0, maximum=65535, whole=True)
        ),
        batch=int(
            batch
            if batch is not None
            else config.number("daemon", "batch", d.batch, minimum=1, whole=True)
        ),
    )
    holder = default_holder()
    parts = compose_rotation(
        config, lambda: open_db(database_url), actor=f"keyward-daemon@{holder}", holder=holder
    )
    # fresh clients per tick: no stale connections or expired tokens held across ticks
    # several rotations at once where the database takes concurrent writers well
    default_workers = 4 if parts.inventory.db.dialect == "postgresql" else 1
    if workers is None:
        workers = int(
            config.number("daemon", "workers", default_workers, minimum=1, maximum=64, whole=True)
        )
    worker = Worker(
        parts.inventory,
        lambda stop: parts.engine(stop=stop),
        holder,
        lease_ttl=parts.settings.lease_ttl,
        # a few claims' worth per worker: threads do not wait for a batch's last rotation long
        batch=max(settings.batch, 5 * workers) if workers > 1 else settings.batch,
        workers=workers,
        metrics=Metrics(),
        # the posture follows the rotations, and the ages, every posture_interval seconds
        posture=lambda refresh: parts.refresh_posture() if refresh else parts.posture_counts(),
        posture_interval=config.number("daemon", "posture_interval", 300, minimum=0),
        on_leak=parts.settings.on_leak,
    )
    try:
        code = run_daemon(worker, settings, once=once)
    finally:
        parts.close()
    click.get_current_context().exit(code)
