"""keyward vs detect-secrets on the benchmark corpus (build it first with corpus.py).

Measures, each as a fresh process (cold start included):
* throughput in MB/s over the real corpus, and peak RSS;
* recall on the planted secrets (a planted secret counts as found when a finding is reported
  in its file at its line);
* findings on the real, unplanted code (everything there is a false positive or a real
  credential shipped in a public package; sample them by hand with --sample).

detect-secrets is slow, so it runs on a subset (--ds-subset) and its MB/s is measured there;
keyward is also measured on that subset for the findings comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
EMPTY_CONFIG = HERE / "empty-config.toml"  # no settings: defaults only
CORPUS = HERE / ".corpus"
BIN = Path(sys.executable).parent


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MiB) of the process tree, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, max(peak, before) // 1024, proc.stdout


def keyward(
    target: Path, engine: str = "auto", out: Path | None = None
) -> tuple[float, int, list[dict]]:
    out = out or Path(tempfile.mkstemp(suffix=".json")[1])
    # an empty config file: the repository's own keyward.toml must not shape the benchmark
    cmd = [str(BIN / "keyward"), "--config", str(EMPTY_CONFIG), "scan", str(target), "--no-ignore",
           "--engine", engine,
           "--format", "json", "--output", str(out), "--no-progress"]  # fmt: skip
    wall, rss, _ = run(cmd, env={**os.environ, "CI": "1"})
    findings = json.loads(out.read_text())["findings"]
    return wall, rss, findings


def detect_secrets(target: Path) -> tuple[float, int, list[dict]]:
    cmd = [str(BIN / "detect-secrets"), "scan", "--all-files", "."]
    before = os.getcwd()
    os.chdir(target)
    try:
        wall, rss, out = run(cmd)
    finally:
        os.chdir(before)
    doc = json.loads(out)
    findings = [
        {"path": path, "line": item["line_number"], "rule": item["type"]}
        for path, items in doc["results"].items()
        for item in items
    ]
    return wall, rss, findings


def recall(findings: list[dict], manifest: list[dict]) -> tuple[float, Counter[str]]:
    hits = {(f["path"], f["line"]) for f in findings}
    missed: Counter[str] = Counter()
    for m in manifest:
        if (m["path"], m["line"]) not in hits:
            missed[m["kind"]] += 1
    return 1 - sum(missed.values()) / len(manifest), missed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ds-subset", default="Django-5.1.1", help="directory under .corpus/real")
    ap.add_argument("--skip-ds", action="store_true", help="do not run detect-secrets")
    ap.add_argument("--sample", type=int, default=0, help="print N random real-code findings")
    args = ap.parse_args()
    real, planted = CORPUS / "real", CORPUS / "planted"
    manifest = json.loads((CORPUS / "planted.json").read_text())
    size = tree_bytes(real)
    rows = []

    keyward(real / args.ds_subset)  # warm the hyperscan database cache once
    for engine in ("hyperscan", "re"):
        wall, rss, found = keyward(real, engine)
        rows.append((f"keyward ({engine}) real corpus", size, wall, rss, len(found)))
        if engine == "hyperscan":
            real_findings = found
    wall, rss, pf = keyward(planted)
    r, missed = recall(pf, manifest)
    print(f"keyward recall on {len(manifest)} planted secrets: {r:.4f}; missed: {dict(missed)}")

    subset = real / args.ds_subset
    sub_size = tree_bytes(subset)
    wall, rss, kf = keyward(subset)
    rows.append((f"keyward {args.ds_subset}", sub_size, wall, rss, len(kf)))
    if not args.skip_ds:
        wall, rss, dsf = detect_secrets(subset)
        rows.append((f"detect-secrets {args.ds_subset}", sub_size, wall, rss, len(dsf)))
        wall, rss, dpf = detect_secrets(planted)
        r2, missed2 = recall(dpf, manifest)
        print(f"detect-secrets recall on planted: {r2:.4f}; missed by kind: {dict(missed2)}")

    print("\n| run | MB | seconds | MB/s | peak RSS MiB | findings |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, nbytes, wall, rss, n in rows:
        mb = nbytes / 1e6
        print(f"| {name} | {mb:.0f} | {wall:.2f} | {mb / wall:.0f} | {rss} | {n} |")
    by_rule = Counter(f["rule"] for f in real_findings)
    print("\nkeyward findings on real code by rule:", dict(by_rule.most_common()))
    if args.sample:
        rng = random.Random(1)
        for f in rng.sample(real_findings, min(args.sample, len(real_findings))):
            print(f"  {f['rule']:<32} {f['path']}:{f['line']}  {f['preview']}")


if __name__ == "__main__":
    main()
