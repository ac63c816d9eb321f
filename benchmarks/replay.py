"""A git repository that replays a real public project's history from its PyPI releases.

Only package registries are reachable here (no clone of a public repository), so the history is
rebuilt from what PyPI serves: Django's source distributions 3.2, 4.0, 4.1, 4.2, 5.0 and 5.1.1,
in order. The first release is committed one directory at a time; then, for each next release,
every file that release added, changed or removed is its own commit (in path order, dated
between the two release dates). The result is a history of thousands of commits whose diffs
are the real changes between Django versions, with Django's own test credentials in it
(settings ``SECRET_KEY``s, passwords in tests and docs), and no planted secret.

    python benchmarks/replay.py            # builds benchmarks/.cache/replay/django once

The sdists are fetched once through PyPI's simple index into ``benchmarks/.cache`` (as
``corpus.py`` does).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from corpus import download  # noqa: E402

RELEASES = [  # version, release date (from the Django project's release notes)
    ("3.2", "2021-04-06"),
    ("4.0", "2021-12-07"),
    ("4.1", "2022-08-03"),
    ("4.2", "2023-04-03"),
    ("5.0", "2023-12-04"),
    ("5.1.1", "2024-09-03"),
]
REPO = HERE / ".cache" / "replay" / "django"


def release_files(archive: Path) -> dict[str, bytes]:
    """Every regular file of the sdist, by its path below the top directory."""
    out: dict[str, bytes] = {}
    with tarfile.open(archive) as tf:
        for member in tf:
            if not member.isfile():
                continue
            _, _, rel = member.name.partition("/")
            f = tf.extractfile(member)
            if rel and f is not None:
                out[rel] = f.read()
    return out


def _q(path: str) -> bytes:
    return b'"' + path.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def commits(releases: list[tuple[str, str, Path]]) -> Iterator[tuple[int, str, list[bytes]]]:
    """(timestamp, message, fast-import file operations) of every commit, in order."""
    previous: dict[str, bytes] = {}
    for n, (version, date, archive) in enumerate(releases):
        files = release_files(archive)
        start = int(datetime.fromisoformat(date).replace(tzinfo=UTC).timestamp())
        if n == 0:  # the first release: one commit per directory
            by_dir: dict[str, list[str]] = {}
            for path in sorted(files):
                by_dir.setdefault(path.rpartition("/")[0], []).append(path)
            groups = [(f"import {d or '.'} ({version})", ps) for d, ps in sorted(by_dir.items())]
        else:
            changed = sorted(
                p for p in files.keys() | previous.keys() if files.get(p) != previous.get(p)
            )
            groups = [(f"{version}: {p}", [p]) for p in changed]
        end = int(datetime.fromisoformat(releases[n + 1][1]).replace(tzinfo=UTC).timestamp()) \
            if n + 1 < len(releases) else start + 86400  # fmt: skip
        step = max(1, (end - start) // max(1, len(groups)))
        for i, (message, paths) in enumerate(groups):
            ops = []
            for p in paths:
                if p in files:
                    data = files[p]
                    ops.append(b"M 100644 inline %s\ndata %d\n%s\n" % (_q(p), len(data), data))
                else:
                    ops.append(b"D %s\n" % _q(p))
            yield start + i * step, message, ops
        previous = files


def build(repo: Path = REPO) -> int:
    """Build the repository (a work tree checked out at the last release, like a clone);
    returns its number of commits."""
    archives = download([f"Django=={v}" for v, _ in RELEASES])
    by_version = {}
    for v, _ in RELEASES:
        by_version[v] = next(a for a in archives if a.name.lower().startswith(f"django-{v}.tar"))
    releases = [(v, d, by_version[v]) for v, d in RELEASES]
    repo.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=repo, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    n = 0
    for when, message, ops in commits(releases):
        n += 1
        msg = message.encode()
        proc.stdin.write(
            b"commit refs/heads/main\n"
            b"author Django release replay <replay@example.invalid> %d +0000\n"
            b"committer Django release replay <replay@example.invalid> %d +0000\n"
            b"data %d\n%s\n%s\n" % (when, when, len(msg), msg, b"".join(ops))
        )
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "-C", str(repo), "repack", "-a", "-d", "-q"], check=True)
    subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard", "main"], check=True)
    return n


def ensure(repo: Path = REPO) -> Path:
    if not (repo / ".git" / "HEAD").exists():
        print(f"building {repo} ...", file=sys.stderr)
        print(f"{build(repo)} commits", file=sys.stderr)
    return repo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repo", type=Path, default=REPO)
    args = ap.parse_args()
    ensure(args.repo)
    count = subprocess.run(["git", "-C", str(args.repo), "rev-list", "--count", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    print(f"{args.repo}: {count} commits")


if __name__ == "__main__":
    main()
