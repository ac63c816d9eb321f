"""Does throughput hold as rules are added? The same corpus with today's rules, 2x and 3x.

The extra rules are copies of every built-in provider and context rule under new ids
(``<id>-copy1``, ...; pairs re-pointed to the copy of their partner), given with ``--rules``:
every keyword then names two or three rules, the provider unions hold two or three times the
patterns, and every copy matches wherever its original does (overlapping matches of equal
rules resolve to one finding, so the findings stay the same). That is harsher than real
growth, where a new provider's keywords rarely occur. The few generic rules (``generic =
true``: password, secret, token assignments) are a fixed family the rule set does not grow by;
``--with-generic`` copies them too, and then every keyword start in every file is tried two or
three times. Each rule set runs as whole ``keyward scan`` processes,
interleaved round by round, after one untimed run that fills its caches (rule cache, hyperscan
databases); CPU seconds (user + sys of the process tree) are the number to compare on a shared
machine.

    python benchmarks/rule_scaling.py [--root DIR] [--rounds 3] [--engine hyperscan|re]
    python benchmarks/rule_scaling.py --with-generic     # copies of the generic rules too
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from speed import CACHE, CORPUS, compile_keyward, keyward_tool, loadavg, run_once  # noqa: E402

RULES = HERE.parent / "keyward" / "rules"
_ID = re.compile(r'^(id\s*=\s*")([a-z0-9-]+)(")', re.MULTILINE)
_PAIR = re.compile(r'(pair\s*=\s*\{\s*rule\s*=\s*")([a-z0-9-]+)(")')


def copies(n: int, out: Path, with_generic: bool = False) -> list[Path]:
    """Rule files holding the n-th copy of every built-in rule (generic ones only if asked)."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for src in sorted(RULES.glob("*.toml")):
        text = src.read_text(encoding="utf-8")
        if not with_generic:
            head, *blocks = text.split("[[rules]]")
            kept = [b for b in blocks if not re.search(r"^generic\s*=\s*true", b, re.M)]
            if not kept:
                continue
            text = "[[rules]]".join([head, *kept])
        text = _ID.sub(lambda m: f"{m.group(1)}{m.group(2)}-copy{n}{m.group(3)}", text)
        text = _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}-copy{n}{m.group(3)}", text)
        dest = out / f"copy{n}{'g' if with_generic else ''}-{src.name}"
        dest.write_text(text, encoding="utf-8")
        files.append(dest)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", type=Path, default=CORPUS / "real")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engine", default="hyperscan")
    ap.add_argument("--with-generic", action="store_true", help="copy the generic rules too")
    args = ap.parse_args()
    work = CACHE / "rule-scaling"
    tools = []
    for times in (1, 2, 3):
        extra: list[str] = ["--engine", args.engine]
        for n in range(1, times):
            for f in copies(n, work / "rules", args.with_generic):
                extra += ["--rules", str(f)]
        cache = work / f"cache-{times}{'g' if args.with_generic else ''}"
        tools.append(keyward_tool(f"{times}x rules", cache, *extra))
    compile_keyward()
    for t in tools:
        run_once(t, args.root)  # fill this rule set's caches (untimed)
    print(f"load average before: {loadavg()}")
    for r in range(args.rounds):
        for t in tools:
            s = run_once(t, args.root)
            t.samples.append(s)
            print(f"round {r + 1} {t.name}: {s.wall:.2f} s wall, {s.cpu:.2f} s CPU, "
                  f"{s.rss_mib:.0f} MiB, {s.findings} findings (load {loadavg()})",
                  flush=True)  # fmt: skip
    print(f"load average after: {loadavg()}\n")
    print("| rules | median CPU s | median wall s | peak RSS MiB | findings |")
    print("| --- | ---: | ---: | ---: | ---: |")
    base = statistics.median(s.cpu for s in tools[0].samples)
    for t in tools:
        cpu = statistics.median(s.cpu for s in t.samples)
        wall = statistics.median(s.wall for s in t.samples)
        rss = max(s.rss_mib for s in t.samples)
        found = "/".join(str(x) for x in sorted({s.findings for s in t.samples}))
        print(f"| {t.name} | {cpu:.2f} ({cpu / base:.2f}x) | {wall:.2f} | {rss:.0f} | {found} |")


if __name__ == "__main__":
    main()
