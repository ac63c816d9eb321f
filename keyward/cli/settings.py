"""Settings of a scan request, from the configuration and the command line (no click: the
pre-commit hook's plain case reads them without it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from keyward.core.config import DEFAULT_MAX_FILE_SIZE, Config, cache_dir, parse_size
from keyward.core.errors import ConfigError, KeyNotCreated
from keyward.core.redaction import MIN_KEY_BYTES, load_key

if TYPE_CHECKING:  # the scan package is imported by the commands that scan, when they run
    from keyward.scan.engine import Backend
    from keyward.scan.engine_spec import EngineSpec
    from keyward.scan.model import Confidence

CONFIDENCE_LEVELS = ("low", "medium", "high")
DEFAULT_MIN_CONFIDENCE = "medium"


def fingerprint_key(config: Config, *, keeps_nothing: bool = False) -> bytes:
    """The installation's fingerprint key: ``KEYWARD_FINGERPRINT_KEY`` (hex) or the key file.

    ``keeps_nothing``: the command stores no fingerprint (a scan without ``--record``), so when
    the key file cannot be created (a read-only data directory or HOME) a key for this run
    does, with one warning that its fingerprints will not match another run's."""
    env = os.environ.get("KEYWARD_FINGERPRINT_KEY")
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise ConfigError(
                "KEYWARD_FINGERPRINT_KEY is not hex", hint="Use 64 hex characters"
            ) from None
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError("KEYWARD_FINGERPRINT_KEY is too short", hint="Use 64 hex characters")
        return key
    try:
        return load_key(config.fingerprint_key_file())
    except KeyNotCreated as exc:
        if not keeps_nothing:
            raise
        from keyward.cli.boundary import write_err

        write_err(
            f"keyward: warning: {exc.message.rstrip('.')}, so this run's fingerprints are not "
            "comparable with another run's (set KEYWARD_FINGERPRINT_KEY for stable ones)"
        )
        return os.urandom(32)


def engine_spec(
    config: Config,
    rule_files: Sequence[Path] = (),
    backend: Backend = "auto",
    *,
    detect_secrets: bool = False,
    baseline: Path | None = None,
    keeps_nothing: bool = False,
) -> EngineSpec:
    """Rule files from the config file, then ``KEYWARD_RULES``, then the command line (later
    files override rules of the same id). ``detect_secrets`` adds the plugins of ``baseline``'s
    ``plugins_used`` (all built-in plugins without one). ``keeps_nothing``: see
    :func:`fingerprint_key`."""
    from keyward.scan.engine_spec import EngineSpec

    files = (*config.rule_files(), *rule_files)
    cache = cache_dir()
    return EngineSpec(
        rule_files=tuple(files),
        fingerprint_key=fingerprint_key(config, keeps_nothing=keeps_nothing),
        backend=backend,
        cache_dir=cache / "hyperscan",
        rule_cache=cache / "rules",
        detect_secrets=detect_secrets,
        detect_secrets_baseline=baseline,
    )


def light_engine_spec(config: Config, rule_files: Sequence[Path] = ()) -> EngineSpec:
    """An engine for one short process (the pre-commit hook): rules from the rule cache, the
    largest hyperscan database loaded only when it pays (``short``), and a per-process
    fingerprint key instead of the installation key (the hook never prints or stores
    fingerprints; baselines match on the secret's SHA-1), so no key file is read."""
    from keyward.scan.engine_spec import EngineSpec

    cache = cache_dir()
    return EngineSpec(
        rule_files=(*config.rule_files(), *rule_files),
        fingerprint_key=os.urandom(32),
        cache_dir=cache / "hyperscan",
        rule_cache=cache / "rules",
        short=True,
    )


def excludes_setting(config: Config, cli_value: Sequence[str] = ()) -> tuple[str, ...]:
    """Exclude globs add up: config file, ``KEYWARD_EXCLUDE``, ``--exclude``."""
    return (*config.excludes(), *cli_value)


def max_file_size_setting(config: Config, cli_value: str | None = None) -> int:
    """``--max-file-size`` beats ``KEYWARD_MAX_FILE_SIZE`` beats the config file."""
    if cli_value:
        return parse_size(cli_value)
    configured = config.max_file_size()
    return configured if configured is not None else DEFAULT_MAX_FILE_SIZE


def min_confidence_setting(config: Config, cli_value: str | None = None) -> Confidence:
    """``--min-confidence`` beats ``KEYWARD_MIN_CONFIDENCE`` beats ``[scan] min_confidence``
    in the config file beats ``medium``."""
    from keyward.scan.model import Confidence

    if cli_value is not None:
        return Confidence(cli_value)
    value = config.get("scan", "min_confidence", DEFAULT_MIN_CONFIDENCE)
    if isinstance(value, str) and value.strip().lower() in CONFIDENCE_LEVELS:
        return Confidence(value.strip().lower())
    where = (
        "KEYWARD_MIN_CONFIDENCE"
        if os.environ.get("KEYWARD_MIN_CONFIDENCE") is not None
        else "[scan] min_confidence"
    )
    raise ConfigError(
        f"{where} must be one of {', '.join(CONFIDENCE_LEVELS)} (got {value!r})",
        hint="Use low to see every finding, high for checksum-proven formats only",
    )


def real_paths(*paths: Path | None) -> frozenset[str]:
    """Files never to scan (a baseline being read or written), by real path."""
    return frozenset(os.path.realpath(p) for p in paths if p is not None)


def baseline_setting(config: Config, cli_value: Path | None) -> Path | None:
    """``--baseline`` beats ``KEYWARD_BASELINE`` beats ``scan.baseline`` in the config file."""
    return cli_value if cli_value is not None else config.path_setting("scan", "baseline")


def flag_setting(value: object, name: str) -> bool:
    """A boolean setting from the config file or a ``KEYWARD_*`` variable (``1``, ``true``...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ConfigError(f"{name} must be true or false")
