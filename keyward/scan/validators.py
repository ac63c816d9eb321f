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

from keyward.core.lazyre import lazy, lazy_bytes

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


def gitlab_token(secret: str) -> bool:
    """GitLab tokens. Routable ones end ``.[<2 version>.]<2 base36 length><7 base36 CRC32>``.

    The CRC32 covers every character before it (prefix included) and the length holder gives
    the size of the base64url payload. Classic (non-routable) tokens carry no checksum.
    https://handbook.gitlab.com/handbook/engineering/architecture/design-documents/cells/routable_tokens/
    """
    if "." not in secret:
        return True
    body, check = secret[:-7], secret[-7:]
    try:
        if int(check, 36) != zlib.crc32(body.encode("ascii")):
            return False
        length = int(body[-2:], 36)
    except ValueError:
        return False
    head = body[:-2]
    if not head.endswith("."):
        return False
    head = head[:-1]
    if len(head) > 3 and head[-3] == ".":  # version field, "01" today
        head = head[:-3]
    return 0 < length <= len(head)


def atlassian_crc32(secret: str) -> bool:
    """Atlassian ``ATATT``/``ATCTT`` tokens end in 8 hex digits: CRC32 of everything before."""
    head, check = secret[:-8], secret[-8:]
    return len(head) > 12 and f"{zlib.crc32(head.encode('ascii')):08X}" == check.upper()


_ADO_PAT_SEEDS = (0xE0B9692D, 0x1019F92E)  # user and application PATs


def azure_devops_pat(secret: str) -> bool:
    """Legacy Azure DevOps PATs: 52 base32 chars holding a CRC32 (XOR a seed) in 4 bytes.

    Layout from microsoft/security-utilities (MIT): bytes 2, 7, 8 and 22 hold the checksum
    (little-endian 22, 8, 7, 2); the other 28 bytes are the token.
    """
    if len(secret) != 52:
        return False
    try:
        raw = base64.b32decode(secret.upper() + "====")
    except (binascii.Error, ValueError):
        return False
    token = raw[0:2] + raw[3:7] + raw[9:22] + raw[23:32]
    embedded = int.from_bytes(bytes((raw[22], raw[8], raw[7], raw[2])), "little")
    crc = zlib.crc32(token)
    return any(crc ^ seed == embedded for seed in _ADO_PAT_SEEDS)


def jwt_base64(secret: str) -> bool:
    """A JWT that was base64-encoded once more (``ZXlK...`` is base64 of ``eyJ``), as in
    Kubernetes Secret ``data:`` values and some CI variables: the decoded text is a JWT."""
    raw = _b64decode(secret.rstrip("="))
    if raw is None:
        return False
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return False
    return jwt(text)


_SLACK_CONFIG_PAYLOAD = lazy(r"[0-9]{1,3}(?:-[0-9]{1,20}){3,6}-[0-9a-f]{32,128}")


def slack_config_token(secret: str) -> bool:
    """Slack app configuration tokens (``xoxe.xoxp-1-``, ``xoxe-1-``): after the version, the
    body is unpadded base64 of ``<version>-<ids...>-<hex digest>``."""
    body = secret.rsplit("-", 1)[-1]
    raw = _b64decode(body)
    if raw is None:
        return False
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return False
    return _SLACK_CONFIG_PAYLOAD.fullmatch(text) is not None


def atlassian_data_center_pat(secret: str) -> bool:
    """Jira/Confluence/Bitbucket Data Center personal access tokens: base64 of
    ``<12-digit token id>:<20 random bytes>``."""
    raw = _b64decode(secret)
    return raw is not None and len(raw) == 33 and raw[:12].isdigit() and raw[12:13] == b":"


_DISCORD_LAUNCH_MS = 132 * 86_400_000  # 2015-05-13
_DISCORD_LATEST_MS = 35 * 365 * 86_400_000  # about 2050
_DIGIT_RUN = lazy_bytes(rb"01234567|12345678|23456789|98765432|87654321|76543210")


def discord_user_id(secret: str) -> bool:
    """The first part of a Discord bot token is the bot's id (a snowflake: 17-20 decimal
    digits, no leading zero) in unpadded base64; the second a 6-character timestamp."""
    parts = secret.split(".")
    if len(parts) != 3 or len(parts[1]) != 6:
        return False
    raw = _b64decode(parts[0])
    return (
        raw is not None
        and raw.isdigit()
        and 17 <= len(raw) <= 20
        and raw[:1] != b"0"
        and _DIGIT_RUN.search(raw) is None  # 123456789012345678: a documentation id
        # a snowflake's high bits are milliseconds since 2015-01-01: Discord opened in May 2015
        and _DISCORD_LAUNCH_MS <= int(raw) >> 22 <= _DISCORD_LATEST_MS
    )


def grafana_cloud_token_any(secret: str) -> bool:
    """Grafana Cloud ``glc_`` tokens. Access-policy tokens are base64 JSON naming the org and
    key; older Cloud API keys are opaque base64. A JSON-looking body (``eyJ``) must decode."""
    body = secret.removeprefix("glc_")
    if body.startswith("eyJ"):
        return grafana_cloud_token(secret)
    return len(set(body)) >= 16


# Microsoft's "identifiable secrets" carry a Marvin32 checksum, keyed by a per-service seed,
# in their last four bytes, right after a fixed 4-character service signature
# (https://github.com/microsoft/security-utilities, MIT: IdentifiableSecrets.cs and
# IdentifiableMetadata.cs, where the seeds are published).
_M32 = 0xFFFFFFFF


def _rotl32(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M32


def marvin32(data: bytes, seed: int) -> int:
    """Marvin32 (as in .NET's string hashing), collapsed to 32 bits (``p0 ^ p1``)."""
    p0, p1 = seed & _M32, (seed >> 32) & _M32

    def block(p0: int, p1: int) -> tuple[int, int]:
        p1 ^= p0
        p0 = _rotl32(p0, 20)
        p0 = (p0 + p1) & _M32
        p1 = _rotl32(p1, 9)
        p1 ^= p0
        p0 = _rotl32(p0, 27)
        p0 = (p0 + p1) & _M32
        p1 = _rotl32(p1, 19)
        return p0, p1

    full = len(data) - len(data) % 4
    for i in range(0, full, 4):
        p0 = (p0 + int.from_bytes(data[i : i + 4], "little")) & _M32
        p0, p1 = block(p0, p1)
    tail = data[full:]
    final = 0x80 << (8 * len(tail)) | int.from_bytes(tail, "little")
    p0 = (p0 + final) & _M32
    p0, p1 = block(p0, p1)
    p0, p1 = block(p0, p1)
    return p0 ^ p1


def _seed(name: str) -> int:
    """An HIS v1 checksum seed: the 8 ASCII bytes of ``name``, reversed, read as an integer."""
    return int.from_bytes(name.encode("ascii")[::-1], "little")


_COSMOS_KEY_KINDS = "SysAll00 Resour00 MastRO00 SystRO00 Encryp00 MastRW00 SystRW00".split()
_MESSAGING = (_seed("Send0000"), _seed("Listen00"), _seed("Manage00"), _seed("System00"))
_AZURE_SEEDS: dict[str, tuple[int, ...]] = {
    "+ASb": _MESSAGING,  # Service Bus
    "+AEh": _MESSAGING,  # Event Hubs
    "+ARm": _MESSAGING,  # Relay
    "AzFu": (_seed("Functi00"), _seed("System00"), _seed("Master00")),  # Functions
    "ACDb": tuple(_seed(n) for n in _COSMOS_KEY_KINDS),  # Cosmos DB
    "AzCa": (_seed("Access00"),),  # Cache for Redis
    "+ASt": (_seed("Default0"),),  # Storage
    "+ACR": (_seed("ACRDflt0"),),  # Container Registry
    "AIoT": (_seed("IoTHub00"), _seed("DpsKey00"), _seed("Device00")),  # IoT Hub, DPS, devices
    "APIM": (_seed("Tenant00"), _seed("IoTHub00"), _seed("Gatewy00"), _seed("GitKey00")),
    "+ABa": (_seed("AbAcct00"),),  # Batch
    "+AMC": (_seed("Classic0"),),  # Machine Learning classic web services
    "/AM7": (_seed("Classic0"),),  # (the signature later releases use)
    "AZEG": (_seed("SendRecv"),),  # Event Grid (32-byte legacy identifiable keys)
    "AzSe": (_seed("Query000"), _seed("PAdmin00")),  # AI Search query and admin keys
}
_AZURE_SEARCH_QUERY = (_seed("Query000"),)
_AZURE_SEARCH_ADMIN = (_seed("PAdmin00"),)


def _azure_identifiable(secret: str, seeds: tuple[int, ...] | None = None) -> bool:
    trimmed = secret.rstrip("=")
    if len(trimmed) < 40:
        return False
    signature = trimmed[-10:-6]
    if seeds is None:
        seeds = _AZURE_SEEDS.get(signature)
        if seeds is None:
            return False
    raw = _b64decode(secret)
    if raw is None or len(raw) < 24:
        return False
    checksum = int.from_bytes(raw[-4:], "little")
    body = raw[:-4]
    return any(marvin32(body, s) == checksum for s in seeds)


def azure_identifiable_key(secret: str) -> bool:
    """An Azure identifiable key (Storage ``+ASt``, Cosmos DB ``ACDb``, Functions ``AzFu``,
    API Management ``APIM``, Service Bus ``+ASb``, ...): the Marvin32 checksum under one of
    its service's published seeds matches the last four bytes."""
    return _azure_identifiable(secret)


def azure_search_query_key(secret: str) -> bool:
    """Azure AI Search identifiable query key (``AzSe``, query-key seed)."""
    return _azure_identifiable(secret, _AZURE_SEARCH_QUERY)


def azure_search_admin_key(secret: str) -> bool:
    """Azure AI Search identifiable admin key (``AzSe``, admin-key seed)."""
    return _azure_identifiable(secret, _AZURE_SEARCH_ADMIN)


_CASK_SEED = _seed("Default0")


def azure_common_annotated_key(secret: str) -> bool:
    """Microsoft "common annotated security keys" (84 characters, ``JQQJ99`` at offset 52, a
    4-letter provider signature at offset 76): the last four characters are the base64 of
    the first three bytes of Marvin32 (seed ``Default0``) over the decoded first 80."""
    if len(secret) != 84 or secret[52:57] != "JQQJ9":
        return False
    try:
        raw = base64.b64decode(secret[:80], validate=True)
    except (binascii.Error, ValueError):
        return False
    check = marvin32(raw, _CASK_SEED).to_bytes(4, "little")[:3]
    return base64.b64encode(check).decode("ascii") == secret[80:]


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32(secret: str) -> bool:
    """A Bech32 string (BIP 173) with a valid checksum, e.g. age ``AGE-SECRET-KEY-1...``."""
    text = secret.lower()
    hrp, sep, data = text.rpartition("1")
    if not sep or not hrp or len(data) < 6 or any(c not in _BECH32 for c in data):
        return False
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    values += [_BECH32.index(c) for c in data]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            if (top >> i) & 1:
                chk ^= g
    return chk == 1


def pem_private_key(secret: str) -> bool:
    """A PEM/armored private key block whose body decodes to the structure its label names.

    DER keys start with an ASN.1 SEQUENCE (0x30), OpenSSH keys with ``openssh-key-v1``, PGP
    blocks with a packet tag (high bit set). Legacy encrypted PEM (``Proc-Type``) only needs to
    decode. JSON-escaped newlines (``\\n``) are accepted, as in service-account files.
    """
    lines = [ln.strip() for ln in secret.replace("\\r", "").replace("\\n", "\n").splitlines()]
    lines = [ln for ln in lines if ln]
    if len(lines) < 3:
        return False
    label = lines[0]
    headers = [ln for ln in lines[1:-1] if ":" in ln]
    body = [ln for ln in lines[1:-1] if ":" not in ln]
    if "PGP" in label:
        body = [ln for ln in body if not ln.startswith("=")]  # CRC-24 line
    text = "".join(body)
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) < 32:
        return False
    if "OPENSSH" in label:
        return raw.startswith(b"openssh-key-v1\0")
    if "PGP" in label:
        return bool(raw[0] & 0x80)
    if any(h.startswith("Proc-Type:") for h in headers):
        return True
    return raw[0] == 0x30


def kubernetes_service_account_token(secret: str) -> bool:
    """A Kubernetes service-account JWT: the payload is issued by ``kubernetes/serviceaccount``
    (legacy secret-based tokens) or carries the ``kubernetes.io`` claim (bound tokens)."""
    if not jwt(secret):
        return False
    payload = _b64json(secret.split(".")[1])
    if not isinstance(payload, dict):
        return False
    return payload.get("iss") == "kubernetes/serviceaccount" or isinstance(
        payload.get("kubernetes.io"), dict
    )


def private_key_base64(secret: str) -> bool:
    """Base64 of a PEM private key block (kubeconfig ``client-key-data``, CI variables)."""
    raw = _b64decode(secret.rstrip("="))
    if raw is None:
        return False
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return False
    first = text.lstrip().split("\n", 1)[0]
    return "PRIVATE KEY-----" in first and pem_private_key(text)


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
    "gitlab-token": gitlab_token,
    "atlassian-crc32": atlassian_crc32,
    "azure-devops-pat": azure_devops_pat,
    "bech32": bech32,
    "pem-private-key": pem_private_key,
    "jwt-base64": jwt_base64,
    "slack-config-token": slack_config_token,
    "atlassian-data-center-pat": atlassian_data_center_pat,
    "discord-user-id": discord_user_id,
    "grafana-cloud-token-any": grafana_cloud_token_any,
    "azure-identifiable-key": azure_identifiable_key,
    "azure-search-query-key": azure_search_query_key,
    "azure-search-admin-key": azure_search_admin_key,
    "azure-common-annotated-key": azure_common_annotated_key,
    "kubernetes-service-account-token": kubernetes_service_account_token,
    "private-key-base64": private_key_base64,
}
