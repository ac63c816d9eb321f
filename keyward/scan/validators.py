"""Checksum and structure validators named by rules (``validator = "github-crc32"``).

A validator gets the captured secret and returns True when it is structurally valid. Only
formats whose checksum or structure is published get a validator: it removes random strings
that merely look like a token, at no cost to recall.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

Validator = Callable[[str], bool]


def base62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(BASE62[r])
    return "".join(reversed(out)).rjust(width, "0")


def crc32_base62_suffix(secret: str, prefix_len: int, body_len: int = 30) -> bool:
    """``<prefix><body><6 chars base62(crc32(body))>``: GitHub and npm tokens."""
    body = secret[prefix_len : prefix_len + body_len]
    check = secret[prefix_len + body_len :]
    if len(body) != body_len or len(check) != 6:
        return False
    return base62(zlib.crc32(body.encode("ascii")), 6) == check


def github_crc32(secret: str) -> bool:
    """GitHub ``ghp_/gho_/ghu_/ghs_/ghr_`` tokens: 30 random chars + base62 CRC32."""
    return crc32_base62_suffix(secret, 4)


def npm_crc32(secret: str) -> bool:
    """npm ``npm_`` access tokens use the same scheme as GitHub."""
    return crc32_base62_suffix(secret, 4)


def _b64decode(text: str) -> bytes | None:
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def pypi_macaroon(secret: str) -> bool:
    """PyPI API tokens are base64 macaroons whose location is pypi.org (or test.pypi.org)."""
    raw = _b64decode(secret.removeprefix("pypi-"))
    return raw is not None and b"pypi.org" in raw[:64]


def jwt(secret: str) -> bool:
    """A JWT: base64url JSON header with ``alg``, base64url JSON payload, any signature."""
    parts = secret.split(".")
    if len(parts) != 3:
        return False
    header, payload = _b64decode(parts[0]), _b64decode(parts[1])
    if header is None or payload is None:
        return False
    try:
        h = json.loads(header)
        p = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(h, dict) and "alg" in h and isinstance(p, dict)


def luhn(secret: str) -> bool:
    digits = [int(c) for c in secret if c.isdigit()]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _b64json(text: str) -> object:
    raw = _b64decode(text)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def grafana_crc32(secret: str) -> bool:
    """Grafana ``glsa_<32 chars>_<8 hex>``: hex of the little-endian CRC32 of ``glsa_<32>``."""
    head, sep, check = secret.rpartition("_")
    if not sep or len(check) != 8:
        return False
    crc = zlib.crc32(head.encode("ascii"))
    return crc.to_bytes(4, "little").hex() == check.lower()


def grafana_cloud_token(secret: str) -> bool:
    """Grafana Cloud ``glc_`` tokens: base64 JSON naming the org (``o``) and key (``k``)."""
    doc = _b64json(secret.removeprefix("glc_"))
    return isinstance(doc, dict) and "o" in doc and "k" in doc


def grafana_api_key(secret: str) -> bool:
    """Legacy Grafana API keys: base64 JSON ``{"k": ..., "n": ..., "id": ...}``."""
    doc = _b64json(secret)
    return isinstance(doc, dict) and "k" in doc and "n" in doc


def sentry_org_token(secret: str) -> bool:
    """Sentry ``sntrys_<base64 JSON payload>_<secret>``: the payload carries ``iat`` and ``org``."""
    parts = secret.split("_")
    if len(parts) != 3 or parts[0] != "sntrys":
        return False
    doc = _b64json(parts[1])
    return isinstance(doc, dict) and "iat" in doc and "org" in doc


def onepassword_service_account(secret: str) -> bool:
    """1Password ``ops_`` service-account tokens are base64 JSON objects."""
    doc = _b64json(secret.removeprefix("ops_"))
    return isinstance(doc, dict) and len(doc) >= 2


def mapbox_token(secret: str) -> bool:
    """Mapbox ``sk.<base64 JSON {"u": user, "a": ...}>.<22 chars>`` secret tokens."""
    parts = secret.split(".")
    if len(parts) != 3:
        return False
    doc = _b64json(parts[1])
    return isinstance(doc, dict) and "u" in doc


def intercom_token(secret: str) -> bool:
    """Intercom access tokens are base64 of ``tok:<uuid>...``."""
    raw = _b64decode(secret)
    return raw is not None and raw.startswith(b"tok:")


def discord_bot_token(secret: str) -> bool:
    """Discord bot tokens start with the base64 of the bot's numeric id (a snowflake)."""
    raw = _b64decode(secret.split(".", 1)[0])
    return raw is not None and raw.isdigit() and 17 <= len(raw) <= 20


VALIDATORS: dict[str, Validator] = {
    "github-crc32": github_crc32,
    "npm-crc32": npm_crc32,
    "pypi-macaroon": pypi_macaroon,
    "jwt": jwt,
    "luhn": luhn,
    "grafana-crc32": grafana_crc32,
    "grafana-cloud-token": grafana_cloud_token,
    "grafana-api-key": grafana_api_key,
    "sentry-org-token": sentry_org_token,
    "onepassword-service-account": onepassword_service_account,
    "mapbox-token": mapbox_token,
    "intercom-token": intercom_token,
    "discord-bot-token": discord_bot_token,
}
