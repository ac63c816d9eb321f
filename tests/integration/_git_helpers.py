"""Helpers for tests that drive a real git: commits with fixed identities, minted tokens.

Import with ``from _git_helpers import Git, mint_github_token, engine_for_tests``.
"""

from __future__ import annotations

import os
import random
import string
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from keyward.scan.engine import Engine
from keyward.scan.engine_spec import EngineSpec
from keyward.scan.validators import base62

TEST_KEY = bytes(range(32))
SPEC = EngineSpec(fingerprint_key=TEST_KEY)


def mint_github_token(seed: int) -> str:
    """A GitHub classic token with a valid CRC32 suffix (random, never issued)."""
    rng = random.Random(seed)
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + base62(zlib.crc32(body.encode()), 6)


def mint_aws_key_id(seed: int) -> str:
    rng = random.Random(seed)
    return "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


def engine_for_tests() -> Engine:
    return SPEC.build()


def git_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_SYSTEM": os.devnull,
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    env.update(extra)
    return env


@dataclass
class Git:
    """A real repository driven through the git command line."""

    root: Path

    def __call__(self, *args: str, **env: str) -> str:
        out = subprocess.run(
            ["git", *args],
            cwd=self.root,
            env=git_env(**env),
            check=True,
            capture_output=True,
        )
        return out.stdout.decode("utf-8", "replace").strip()

    def write(self, path: str | bytes, content: str | bytes) -> None:
        full = os.path.join(os.fsencode(self.root), os.fsencode(path))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        with open(full, "wb") as fh:
            fh.write(data)

    def commit(self, message: str, *, author: str = "Dev", date: str | None = None) -> str:
        env = {"GIT_AUTHOR_NAME": author}
        if date:
            env["GIT_AUTHOR_DATE"] = date
            env["GIT_COMMITTER_DATE"] = date
        self("add", "-A")
        self("commit", "-q", "--allow-empty", "-m", message, **env)
        return self("rev-parse", "HEAD")
