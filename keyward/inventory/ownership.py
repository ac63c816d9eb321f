"""Who owns a line of code: CODEOWNERS first, else the author of the line (``git blame``).

Lookups are batched: one ``git blame`` per file (several ``-L`` ranges) and one CODEOWNERS
parse per repository. Failures (not a git repository, git missing) just leave no owner.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CODEOWNERS_LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS")
GIT_TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class CodeOwnersRule:
    pattern: str
    owners: tuple[str, ...]


class CodeOwners:
    """GitHub/GitLab CODEOWNERS semantics: gitignore-style patterns, the last match wins."""

    def __init__(self, rules: Iterable[CodeOwnersRule]) -> None:
        import pathspec

        self._rules = [
            (r, pathspec.PathSpec.from_lines("gitwildmatch", [r.pattern])) for r in rules
        ]

    @classmethod
    def parse(cls, text: str) -> CodeOwners:
        rules: list[CodeOwnersRule] = []
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("\\#") else raw
            if not line or line.startswith("["):  # GitLab section headers
                continue
            parts = line.split()
            rules.append(CodeOwnersRule(parts[0], tuple(parts[1:])))
        return cls(rules)

    @classmethod
    def find(cls, repo_root: Path) -> CodeOwners | None:
        for rel in CODEOWNERS_LOCATIONS:
            path = repo_root / rel
            if path.is_file():
                try:
                    return cls.parse(path.read_text(encoding="utf-8", errors="replace"))
                except OSError:
                    return None
        return None

    def owners(self, path: str) -> tuple[str, ...]:
        found: tuple[str, ...] = ()
        for rule, spec in self._rules:
            if spec.match_file(path):
                found = rule.owners
        return found


def author_email(author: str | None) -> str | None:
    """``Name <mail>`` -> ``mail`` (what blame reports); anything else unchanged."""
    if not author:
        return None
    start, end = author.rfind("<"), author.rfind(">")
    if 0 <= start < end:
        return author[start + 1 : end].strip() or author
    return author


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_toplevel(directory: Path) -> Path | None:
    out = _git(["rev-parse", "--show-toplevel"], directory)
    return Path(out.strip()) if out else None


def blame_authors(repo: Path, rel_path: str, lines: Iterable[int]) -> dict[int, str]:
    """Author e-mail of each line (committed lines only)."""
    wanted = sorted({n for n in lines if n > 0})
    if not wanted:
        return {}
    args = ["blame", "--porcelain"]
    for n in wanted:
        args += ["-L", f"{n},{n}"]
    out = _git([*args, "--", rel_path], repo)
    if out is None:
        return {}
    authors: dict[int, str] = {}
    commit_author: dict[str, str] = {}
    current: tuple[str, int] | None = None
    for line in out.splitlines():
        if line.startswith("\t"):
            current = None
            continue
        parts = line.split(" ")
        if len(parts) >= 3 and len(parts[0]) in (40, 64) and parts[1].isdigit():
            current = (parts[0], int(parts[2]))
            if parts[0] in commit_author:
                authors[current[1]] = commit_author[parts[0]]
            continue
        if current is not None and line.startswith("author-mail "):
            mail = line[len("author-mail ") :].strip().strip("<>")
            if current[0] != "0" * len(current[0]):  # not yet committed
                commit_author[current[0]] = mail
                authors[current[1]] = mail
    return authors


@dataclass(slots=True)
class OwnershipResolver:
    """Resolves (file, line) -> (code owner, blame author), caching per repository."""

    blame: bool = True
    _toplevels: dict[Path, Path | None] = field(default_factory=dict)
    _codeowners: dict[Path, CodeOwners | None] = field(default_factory=dict)

    def repo_of(self, path: Path) -> Path | None:
        directory = path.parent
        if directory not in self._toplevels:
            self._toplevels[directory] = git_toplevel(directory) if directory.is_dir() else None
        return self._toplevels[directory]

    def codeowners(self, repo: Path) -> CodeOwners | None:
        if repo not in self._codeowners:
            self._codeowners[repo] = CodeOwners.find(repo)
        return self._codeowners[repo]

    def resolve(self, path: Path, lines: Iterable[int]) -> dict[int, tuple[str | None, str | None]]:
        """line -> (code owner, author) for one file."""
        lines = list(lines)
        path = path.resolve()
        repo = self.repo_of(path)
        if repo is None:
            return {}
        try:
            rel = path.relative_to(repo).as_posix()
        except ValueError:
            return {}
        co = self.codeowners(repo)
        owner = (" ".join(co.owners(rel)) or None) if co else None
        authors = blame_authors(repo, rel, lines) if self.blame else {}
        return {n: (owner or authors.get(n), authors.get(n)) for n in lines}
