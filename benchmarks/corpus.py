"""Build the scan benchmark corpus: real public code plus planted fake secrets.

Real code: pinned source distributions from PyPI, unpacked under benchmarks/.corpus/real.
Planted: copies of randomly chosen real files, each with one fake secret inserted at a random
line in the file's own syntax, under benchmarks/.corpus/planted, with a manifest of
(path, line, kind) — never the value itself.

The secrets come from this file's own generator (not from keyward's rule examples), written
to each provider's published format, with valid checksums where the format has one.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import string
import tarfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
CACHE = HERE / ".cache"
CORPUS = HERE / ".corpus"

# Pinned sdists: a mix of Python, C, C++, Fortran, JS, YAML, JSON, docs.
SDISTS = [
    "Django==5.1.1",
    "ansible-core==2.17.4",
    "numpy==2.1.1",
    "pandas==2.2.3",
    "SQLAlchemy==2.0.35",
    "botocore==1.35.20",
    "scipy==1.14.1",
    "sympy==1.13.3",
    "matplotlib==3.9.2",
    "jupyterlab==4.2.5",
]

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B32 = string.ascii_uppercase + "234567"
UPNUM = string.ascii_uppercase + string.digits
URLSAFE = ALNUM + "-_"


def rs(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(width, "0")


def crc_token(rng: random.Random, prefix: str) -> str:
    body = rs(rng, ALNUM, 30)
    return prefix + body + b62(zlib.crc32(body.encode()), 6)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# The first bytes of each key's encoding, so that a planted body has the structure its label
# names (as a real key does): PKCS#1 is a DER SEQUENCE (length 896) opening with version 0 and
# the modulus INTEGER; an OpenSSH key opens with "openssh-key-v1\0", cipher and KDF "none",
# an empty KDF block and one key.
PEM_HEADERS = {
    "RSA PRIVATE KEY": bytes.fromhex("308203800201000282010100"),
    "OPENSSH PRIVATE KEY": b"openssh-key-v1\0" + b"\0\0\0\x04none" * 2 + b"\0" * 7 + b"\x01",
}


def pem(rng: random.Random, label: str) -> str:
    raw = rng.randbytes(900)  # the same draws as before, so every other planted value is unchanged
    head = PEM_HEADERS.get(label, b"")
    body = base64.b64encode(head + raw[len(head) :]).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"


def password(rng: random.Random) -> str:
    chars = string.ascii_letters + string.digits + "!#%&*+-=?@^_"
    while True:
        p = rs(rng, chars, rng.randint(12, 20))
        if (
            any(c.isdigit() for c in p)
            and any(c.isupper() for c in p)
            and any(c.islower() for c in p)
        ):
            return p


def slack_bot(r: random.Random) -> str:
    return f"xoxb-{rs(r, string.digits, 12)}-{rs(r, string.digits, 13)}-{rs(r, ALNUM, 24)}"


def slack_webhook(r: random.Random) -> str:
    team, bot, secret = rs(r, UPNUM, 10), rs(r, UPNUM, 10), rs(r, ALNUM, 24)
    return f"https://hooks.slack.com/services/T{team}/B{bot}/{secret}"


def openai_key(r: random.Random) -> str:
    return "sk-proj-" + rs(r, URLSAFE, 74) + "T3BlbkFJ" + rs(r, URLSAFE, 74)


def postgres_url(r: random.Random) -> str:
    return f"postgresql://app:{rs(r, ALNUM, 16)}@db.internal:5432/app"


def basic_auth_url(r: random.Random) -> str:
    return f"https://deploy:{rs(r, ALNUM, 14)}@ci.internal.example.org/hook"


def jwt(r: random.Random) -> str:
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    claims = {"sub": rs(r, string.digits, 8), "name": "svc", "iat": 1700000000}
    return f"{header}.{b64url(json.dumps(claims).encode())}.{b64url(r.randbytes(32))}"


# kind -> (key name used in an assignment, value generator)
GENERATORS: dict[str, tuple[str, Callable[[random.Random], str]]] = {
    "aws-access-key-id": ("aws_access_key_id", lambda r: "AKIA" + rs(r, B32, 16)),
    "aws-secret-access-key": ("aws_secret_access_key", lambda r: rs(r, ALNUM + "/+", 40)),
    "github-pat": ("github_token", lambda r: crc_token(r, "ghp_")),
    "github-oauth": ("gh_oauth", lambda r: crc_token(r, "gho_")),
    "github-fine-grained": ("token", lambda r: f"github_pat_{rs(r, ALNUM, 22)}_{rs(r, ALNUM, 59)}"),
    "gitlab-pat": ("gitlab_token", lambda r: "glpat-" + rs(r, ALNUM + "-_", 20)),
    "slack-bot": ("slack_token", slack_bot),
    "slack-webhook": ("webhook_url", slack_webhook),
    "stripe-live": ("stripe_key", lambda r: "sk_live_" + rs(r, ALNUM, 99)),
    "google-api-key": ("maps_key", lambda r: "AIza" + rs(r, ALNUM + "-_", 35)),
    "npm-token": ("npm_token", lambda r: crc_token(r, "npm_")),
    "openai": ("openai_api_key", openai_key),
    "anthropic": ("anthropic_key", lambda r: "sk-ant-api03-" + rs(r, ALNUM + "-_", 93) + "AA"),
    "huggingface": ("hf_token", lambda r: "hf_" + rs(r, string.ascii_letters, 34)),
    "sendgrid": ("sendgrid_key", lambda r: f"SG.{rs(r, URLSAFE, 22)}.{rs(r, URLSAFE, 43)}"),
    "twilio-api-key": ("twilio_key", lambda r: "SK" + rs(r, HEX, 32)),
    "digitalocean": ("do_token", lambda r: "dop_v1_" + rs(r, HEX, 64)),
    "shopify": ("shopify_token", lambda r: "shpat_" + rs(r, "0123456789abcdef", 32)),
    "databricks": ("databricks_token", lambda r: "dapi" + rs(r, HEX, 32)),
    "doppler": ("doppler_token", lambda r: "dp.pt." + rs(r, ALNUM, 43)),
    "linear": ("linear_key", lambda r: "lin_api_" + rs(r, ALNUM, 40)),
    "vault-token": ("vault_token", lambda r: "hvs." + rs(r, ALNUM + "_-", 90)),
    "postgres-url": ("database_url", postgres_url),
    "basic-auth-url": ("endpoint", basic_auth_url),
    "jwt": ("id_token", jwt),
    "private-key-rsa": ("", lambda r: pem(r, "RSA PRIVATE KEY")),
    "private-key-openssh": ("", lambda r: pem(r, "OPENSSH PRIVATE KEY")),
    "generic-password": ("db_password", password),
    "generic-secret": ("client_secret", lambda r: rs(r, ALNUM, 32)),
    "generic-api-key": ("api_key", lambda r: rs(r, HEX, 40)),
}  # fmt: skip

COMMENT = {".py": "#", ".sh": "#", ".yml": "#", ".yaml": "#", ".toml": "#", ".cfg": "#",
           ".ini": ";"}  # fmt: skip


def assignment(path: Path, key: str, value: str) -> str:
    ext = path.suffix.lower()
    if not key:  # a multi-line block such as a PEM key, as a string literal in the file's syntax
        if ext == ".py":
            return f'KEY = """{value}"""'
        return value
    if ext in {".py", ".pyx", ".pxd"}:
        return f'{key} = "{value}"'
    if ext in {".js", ".ts", ".mjs", ".tsx", ".jsx"}:
        return f'const {key} = "{value}";'
    if ext in {".c", ".h", ".cpp", ".cc", ".hpp"}:
        return f'static const char *{key} = "{value}";'
    if ext in {".yml", ".yaml"}:
        return f"{key}: {value}"
    if ext == ".json":
        return f'"{key}": "{value}",'
    if ext in {".ini", ".cfg", ".toml"}:
        return f'{key} = "{value}"'
    if ext in {".sh", ".bash"}:
        return f'export {key.upper()}="{value}"'
    return f"{key.upper()}={value}"


def download(specs: list[str] = SDISTS) -> list[Path]:
    """Fetch each pinned sdist through PyPI's simple index (no build, no metadata step)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for spec in specs:
        name, version = spec.split("==")
        norm = re.sub(r"[-_.]+", "-", name).lower()
        stems = (f"{norm.replace('-', '_')}-{version}", f"{norm}-{version}")
        existing = [p for p in CACHE.iterdir() if p.name.lower().startswith(stems)]
        if existing:
            out.append(existing[0])
            continue
        req = urllib.request.Request(
            f"https://pypi.org/simple/{norm}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            files = json.load(resp)["files"]
        sdist = next(
            f
            for f in files
            if f["filename"].endswith((".tar.gz", ".zip"))
            and re.search(rf"[-_]{re.escape(version)}\.(tar\.gz|zip)$", f["filename"])
        )
        target = CACHE / sdist["filename"]
        with urllib.request.urlopen(sdist["url"], timeout=300) as resp:
            target.write_bytes(resp.read())
        out.append(target)
    return sorted(out)


def unpack(archives: list[Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for a in archives:
        marker = dest / f".{a.name}.done"
        if marker.exists():
            continue
        if a.name.endswith(".tar.gz"):
            with tarfile.open(a) as tf:
                tf.extractall(dest, filter="data")
        elif a.suffix == ".zip":
            with zipfile.ZipFile(a) as zf:
                zf.extractall(dest)
        marker.touch()


def plant(real: Path, planted: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    exts = {".py", ".js", ".ts", ".c", ".h", ".yml", ".yaml", ".json", ".cfg", ".ini", ".toml",
            ".sh", ".txt", ".rst", ".md", ".cpp"}  # fmt: skip
    files = sorted(
        p for p in real.rglob("*")
        if p.is_file() and not p.is_symlink() and p.suffix in exts
        and 200 < p.stat().st_size < 200_000
    )  # fmt: skip
    planted.mkdir(parents=True, exist_ok=True)
    manifest = []
    kinds = sorted(GENERATORS)
    for i in range(n):
        src = rng.choice(files)
        kind = kinds[i % len(kinds)]
        key, gen = GENERATORS[kind]
        value = gen(rng)
        try:
            lines = src.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            continue
        at = rng.randint(0, len(lines))
        lines.insert(at, assignment(src, key, value))
        rel = Path(f"{i:04d}") / src.relative_to(real)
        out = planted / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        manifest.append({"path": rel.as_posix(), "line": at + 1, "kind": kind})
    (CORPUS / "planted.json").write_text(json.dumps(manifest, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--planted", type=int, default=1200, help="number of planted secrets")
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args()
    archives = download()
    unpack(archives, CORPUS / "real")
    plant(CORPUS / "real", CORPUS / "planted", args.planted, args.seed)
    size = sum(p.stat().st_size for p in (CORPUS / "real").rglob("*") if p.is_file())
    print(f"real corpus: {size / 1e6:.0f} MB in {CORPUS / 'real'}; planted: {args.planted}")


if __name__ == "__main__":
    main()
