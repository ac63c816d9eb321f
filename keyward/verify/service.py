"""Verify findings: bounded concurrency, one request per distinct credential, in-memory only."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from keyward.core.errors import ConfigError
from keyward.scan.model import Finding, Verification
from keyward.verify.base import DEFAULT_RATE, DEFAULT_TIMEOUT, Verifier, VerifyContext

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 8


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """The ``[verify]`` table: timeouts, concurrency, rate, provider URLs, which verifiers."""

    timeout: float = DEFAULT_TIMEOUT
    workers: int = DEFAULT_WORKERS
    rate: float = DEFAULT_RATE
    names: tuple[str, ...] | None = None  # None: every registered verifier
    table: Mapping[str, Any] | None = None

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> VerifySettings:
        try:
            timeout = float(table.get("timeout", DEFAULT_TIMEOUT))
            workers = int(table.get("workers", DEFAULT_WORKERS))
            rate = float(table.get("rate_limit", DEFAULT_RATE))
        except (TypeError, ValueError):
            raise ConfigError(
                "[verify] timeout, workers and rate_limit must be numbers",
                hint="e.g. timeout = 10, workers = 8, rate_limit = 5",
            ) from None
        if timeout <= 0 or workers < 1 or rate <= 0:
            raise ConfigError(
                "[verify] timeout and rate_limit must be positive and workers at least 1"
            )
        names = table.get("verifiers")
        if names is not None and (
            not isinstance(names, list) or not all(isinstance(n, str) for n in names)
        ):
            raise ConfigError('[verify] verifiers must be a list of names, e.g. ["aws"]')
        return cls(
            timeout=timeout,
            workers=workers,
            rate=rate,
            names=tuple(names) if names is not None else None,
            table=dict(table),
        )

    def context(self) -> VerifyContext:
        return VerifyContext(settings=dict(self.table or {}), timeout=self.timeout, rate=self.rate)


def verify_findings(
    findings: Sequence[Finding], verifiers: Sequence[Verifier], *, workers: int = DEFAULT_WORKERS
) -> list[Finding]:
    """Return the findings with ``verification`` set where a verifier accepts them.

    Findings no verifier accepts are returned unchanged (``verification`` stays None). The same
    credential found in many places is verified once.
    """
    # (verifier index, secret, companion) -> the first finding that verifier accepted
    jobs: dict[tuple[int, str, str | None], Finding] = {}
    plan: list[tuple[int, str, str | None] | None] = []
    for f in findings:
        chosen = next((i for i, v in enumerate(verifiers) if _accepts(v, f)), None)
        if chosen is None or not f.secret:
            plan.append(None)
            continue
        key = (chosen, f.secret, f.companion)
        jobs.setdefault(key, f)
        plan.append(key)
    results: dict[tuple[int, str, str | None], Verification] = {}
    if jobs:
        with ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(jobs))), thread_name_prefix="keyward-verify"
        ) as pool:
            futures = {key: pool.submit(_run, verifiers[key[0]], f) for key, f in jobs.items()}
            results = {key: fut.result() for key, fut in futures.items()}
    return [
        f if key is None else f.with_(verification=results[key])
        for f, key in zip(findings, plan, strict=True)
    ]


def _accepts(verifier: Verifier, finding: Finding) -> bool:
    try:
        return bool(verifier.accepts(finding))
    except Exception:
        log.debug("verifier %s failed in accepts()", verifier.name)
        return False


def _run(verifier: Verifier, finding: Finding) -> Verification:
    try:
        result = verifier.verify(finding)
    except Exception as exc:  # a plugin's bug must not end the scan or leak the value
        log.warning("verifier %s failed (%s); result unknown", verifier.name, type(exc).__name__)
        return Verification.UNKNOWN
    return result if isinstance(result, Verification) else Verification.UNKNOWN
