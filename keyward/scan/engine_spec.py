"""How to build the scan :class:`~keyward.scan.engine.Engine`: rules, backend, caches.

A :class:`EngineSpec` is part of the :class:`~keyward.scan.request.ScanRequest` a command
builds, and what the runner hands each worker process (it is picklable), which builds its own
engine from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Backend, Engine
from keyward.scan.rules import RuleSet, load_rules


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Everything needed to build an :class:`Engine`, here or in a worker process (picklable).

    ``rule_cache``: load the validated rules from this cache directory when it is fresh.
    ``detect_secrets``: also run detect-secrets plugins, those of ``detect_secrets_baseline``'s
    ``plugins_used`` when given. ``short``: see :class:`Engine`.
    """

    rule_files: tuple[Path, ...] = ()
    builtin_rules: bool = True
    fingerprint_key: bytes = field(default=b"", repr=False)
    backend: Backend = "auto"
    cache_dir: Path | None = None
    rule_cache: Path | None = None
    detect_secrets: bool = False
    detect_secrets_baseline: Path | None = None
    short: bool = False  # a few small chunks, then exit (the hook): see Engine

    def rules(self) -> RuleSet:
        if self.rule_cache is not None and self.builtin_rules:
            from keyward.scan.rulecache import load_rules_cached

            return load_rules_cached(self.rule_files, self.rule_cache)
        return load_rules(self.rule_files, builtin=self.builtin_rules)

    def build(self, rules: RuleSet | None = None) -> Engine:
        engine = Engine(
            rules or self.rules(),
            Fingerprinter(self.fingerprint_key),
            backend=self.backend,
            cache_dir=self.cache_dir,
            short=self.short,
        )
        if not self.detect_secrets:
            return engine
        from keyward.scan.plugins_ds import with_detect_secrets

        return with_detect_secrets(
            engine, Fingerprinter(self.fingerprint_key), baseline=self.detect_secrets_baseline
        )
