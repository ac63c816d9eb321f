"""Redacted previews and keyed fingerprints: how secrets are shown and remembered.

A raw secret value is never displayed or stored. People see a preview such as ``AKIA…WXYZ``;
machines compare keyed fingerprints (HMAC-SHA256 with a per-installation key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from keyward.core.lazyre import lazy

ELLIPSIS = "…"

# Public, structural prefixes that are safe to show in full (they identify the provider).
_PREFIX = lazy(r"^(?:[A-Za-z][A-Za-z0-9]{1,12}[_\-.](?:[A-Za-z0-9]{1,8}[_\-.])?)")
# A PEM / armored block (RFC 7468): its label names the key type, which is public.
_PEM = lazy(r"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_PEM_END = lazy(r"-----END [A-Z0-9 ]{1,40}-----\s*\Z")
_NOT_BASE64 = lazy(r"\\[nr]|[^A-Za-z0-9+/=]")


def redact(value: str) -> str:
    """Return a preview that identifies a secret without disclosing it.

    Long values show a short head and tail (``ghp_…Xy12``), short ones far less, and values
    shorter than 8 characters show nothing at all.
    """
    pem = _PEM.match(value)
    if pem is not None:
        return _redact_pem(value, pem)
    n = len(value)
    if n < 8:
        return ELLIPSIS
    if n < 12:
        return f"{value[:1]}{ELLIPSIS}{value[-1:]}"
    if n < 20:
        return f"{value[:2]}{ELLIPSIS}{value[-2:]}"
    head = 4
    m = _PREFIX.match(value)
    if m and len(m.group(0)) <= 12 and n - len(m.group(0)) >= 20:
        head = len(m.group(0))
    return f"{value[:head]}{ELLIPSIS}{value[-4:]}"


def _redact_pem(value: str, pem: re.Match[str]) -> str:
    """A PEM block shows its type and the end of its body: ``RSA PRIVATE KEY…Yg==`` (not
    ``----…----``, which says nothing)."""
    end = _PEM_END.search(value)
    body = value[pem.end() : end.start() if end else len(value)]
    lines = body.replace("\\n", "\n").splitlines()
    # headers such as "Proc-Type: 4,ENCRYPTED" are not the body
    body = _NOT_BASE64.sub("", "".join(ln for ln in lines if ":" not in ln))
    tail = body[-4:] if len(body) >= 40 else ""
    return f"{pem.group(1)}{ELLIPSIS}{tail}"


class Fingerprinter:
    """Keyed HMAC-SHA256 fingerprints of secret values."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("fingerprint key must be at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Fingerprinter(key=<hidden>)"

    def fingerprint(self, value: str) -> str:
        return hmac.new(
            self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()

    @classmethod
    def from_file(cls, path: Path) -> Fingerprinter:
        """A fingerprinter with the installation key of :func:`load_key`."""
        return cls(load_key(path))


# A shorter HMAC key would make fingerprints of short passwords cheap to guess offline.
MIN_KEY_BYTES = 16


def load_key(path: Path) -> bytes:
    """Load the installation key, creating it (mode 0600) on first use.

    Raises :class:`KeyNotCreated` when there is no key and none can be made (a read-only
    data directory): callers that keep nothing may then use a key of their own."""
    from keyward.core.errors import ConfigError, KeyNotCreated

    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        try:
            data = _create_key(path)
        except OSError as exc:
            raise KeyNotCreated(
                f"Cannot create the fingerprint key {path}: {exc.strerror}",
                hint="Make the data directory writable (or set KEYWARD_DATA_DIR), or set "
                "KEYWARD_FINGERPRINT_KEY",
            ) from None
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the fingerprint key {path}: {exc.strerror}",
            hint="Check its permissions or set KEYWARD_FINGERPRINT_KEY_FILE",
        ) from None
    key = data.strip()
    try:
        raw = bytes.fromhex(key.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(
            f"The fingerprint key {path} is not valid hex",
            hint="Restore it from backup or delete it to start a new key "
            "(existing fingerprints will no longer match)",
        ) from None
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigError(
            f"The fingerprint key {path} is too short ({len(raw)} bytes; at least "
            f"{MIN_KEY_BYTES} are needed)",
            hint="Restore it from backup or delete it to start a new key "
            "(existing fingerprints will no longer match)",
        )
    return raw


def _create_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    import secrets

    data = secrets.token_hex(32).encode("ascii") + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return data


def sha1_hex(value: str) -> str:
    """Unkeyed SHA-1, only for detect-secrets' baseline format (``hashed_secret``)."""
    return hashlib.sha1(value.encode("utf-8", "surrogatepass")).hexdigest()
