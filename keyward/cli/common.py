"""Pieces shared by several commands: building the engine, reading rule options."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import click

from keyward.core.config import Config, cache_dir
from keyward.core.errors import ConfigError
from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Backend
from keyward.scan.service import EngineSpec


def fingerprint_key(config: Config) -> bytes:
    """The installation's fingerprint key: ``KEYWARD_FINGERPRINT_KEY`` (hex) or the key file."""
    env = os.environ.get("KEYWARD_FINGERPRINT_KEY")
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise ConfigError(
                "KEYWARD_FINGERPRINT_KEY is not hex", hint="Use 64 hex characters"
            ) from None
        if len(key) < 16:
            raise ConfigError("KEYWARD_FINGERPRINT_KEY is too short", hint="Use 64 hex characters")
        return key
    return Fingerprinter.from_file(config.fingerprint_key_file())._key


def engine_spec(
    config: Config, rule_files: Sequence[Path] = (), backend: Backend = "auto"
) -> EngineSpec:
    files = (*config.rule_files(), *rule_files)
    return EngineSpec(
        rule_files=tuple(files),
        fingerprint_key=fingerprint_key(config),
        backend=backend,
        cache_dir=cache_dir() / "hyperscan",
    )


rules_option = click.option(
    "--rules",
    "rule_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Extra rule file (TOML); repeatable. Rules with a built-in id override it.",
)
engine_option = click.option(
    "--engine",
    type=click.Choice(["auto", "hyperscan", "re"]),
    default="auto",
    show_default=True,
    help="Matching engine; auto uses hyperscan when installed.",
)
