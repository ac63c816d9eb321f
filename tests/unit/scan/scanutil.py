"""Helpers for scanner tests: a private rule set (independent of the shipped rules), valid
GitHub-format tokens, and an engine spec."""

from __future__ import annotations

import random
import string
import zlib
from collections.abc import Sequence
from pathlib import Path

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Backend, Engine
from keyward.scan.engine_spec import EngineSpec
from keyward.scan.result import ScanResult
from keyward.scan.rules import RuleSet, load_rules
from keyward.scan.runner import Runner
from keyward.scan.sources.base import PoolPolicy
from keyward.scan.sources.files import FILES_POOL, FileSource, WalkOptions
from keyward.scan.validators import base62

KEY = b"0123456789abcdef0123456789abcdef"

TEST_RULES = """
[[rules]]
id = "kw-test-token"
description = "Test token"
severity = "high"
regex = '''\\b(?P<secret>kwt_[A-Za-z0-9]{32})\\b'''
keywords = ["kwt_"]
examples.positive = ['t = "kwt_AbCdEfGhIjKlMnOpQrStUvWxYz012345"']
examples.negative = ['kwt_short']

[[rules]]
id = "kw-test-block"
description = "Test multi-line key block"
severity = "critical"
regex = '''-----BEGIN KWT KEY-----\\s*(?P<secret>[\\w+/=\\s]{40,}?)\\s*-----END KWT KEY-----'''
keywords = ["begin kwt key"]
examples.positive = ['''-----BEGIN KWT KEY-----
QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo3ODkw
YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0
-----END KWT KEY-----''']
examples.negative = ['-----BEGIN KWT KEY-----']
"""


def write_rules(directory: Path) -> Path:
    path = directory / "kw-test-rules.toml"
    path.write_text(TEST_RULES, encoding="utf-8")
    return path


def make_ruleset(directory: Path) -> RuleSet:
    return load_rules([write_rules(directory)], builtin=False)


def spec_for(directory: Path, backend: Backend = "re", builtin: bool = False) -> EngineSpec:
    return EngineSpec(
        rule_files=(write_rules(directory),),
        builtin_rules=builtin,
        fingerprint_key=KEY,
        backend=backend,
    )


def engine_for(rules: RuleSet, backend: Backend = "re", cache: Path | None = None) -> Engine:
    return Engine(rules, Fingerprinter(KEY), backend=backend, cache_dir=cache)


def kw_token(seed: int) -> str:
    rnd = random.Random(seed)
    return "kwt_" + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(32))


def github_token(seed: int) -> str:
    """A classic GitHub token with a valid CRC32 check (random, never a real one)."""
    rnd = random.Random(seed)
    body = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(30))
    return f"ghp_{body}{base62(zlib.crc32(body.encode()), 6)}"


def scan_files(
    roots: Sequence[Path],
    spec: EngineSpec,
    walk: WalkOptions,
    *,
    jobs: int | None = None,
    pool: PoolPolicy | None = FILES_POOL,
) -> ScanResult:
    """Scan files and directories as ``keyward scan`` does (the engine built from ``spec``)."""
    return Runner(spec.build(), spec=spec, jobs=jobs).run(FileSource(roots, walk, pool=pool))
