"""`keyward scan --git`: real repositories, real git, every shape of history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _git_helpers import SPEC, Git, engine_for_tests, mint_aws_key_id, mint_github_token

from keyward.core.errors import SourceError
from keyward.scan.engine import Engine
from keyward.scan.model import SourceKind
from keyward.scan.runner import Runner
from keyward.scan.sources.base import PoolPolicy
from keyward.scan.sources.git import GitOptions, HistorySource

TOKEN = mint_github_token(1)
TOKEN2 = mint_github_token(2)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return engine_for_tests()


@pytest.fixture
def git(git_repo: Path) -> Git:
    return Git(git_repo)


def scan(git: Git, engine: Engine, **opts: object):  # type: ignore[no-untyped-def]
    jobs = opts.pop("jobs", 1)
    source = HistorySource(git.root, GitOptions(**opts))  # type: ignore[arg-type]
    result = Runner(engine, spec=SPEC, jobs=jobs).run(source)  # type: ignore[arg-type]
    return result, result.stats


def test_secret_added_then_deleted_is_one_finding_naming_its_commit(
    git: Git, engine: Engine
) -> None:
    git.write("app.py", "import os\n")
    git.commit("start", date="2024-01-02T03:04:05+00:00")
    git.write("app.py", f'import os\n\nTOKEN = "{TOKEN}"\n')
    added = git.commit("add token", author="Mallory", date="2024-02-03T04:05:06+00:00")
    git.write("app.py", f'import os\n\nTOKEN = "{TOKEN}"  # still\nX = 1\n')
    git.commit("touch the line again")
    git.write("app.py", "import os\nTOKEN = os.environ['TOKEN']\n")
    git.commit("remove token")

    result, stats = scan(git, engine)

    assert stats.commits == 4
    [f] = result.reported
    assert f.rule_id == "github-pat-classic"
    loc = f.location
    assert loc.kind is SourceKind.GIT
    assert (loc.path, loc.line, loc.column) == ("app.py", 3, 10)
    assert loc.commit == added and f.introduced == added
    assert loc.author == "Mallory <dev@example.com>"
    assert loc.date == "2024-02-03T04:05:06+00:00"
    assert f.still_present is False


def test_secret_still_at_head_is_marked_present(git: Git, engine: Engine) -> None:
    git.write("config.env", f"GITHUB_TOKEN={TOKEN}\n")
    git.commit("add")
    git.write("other.txt", "unrelated\n")
    git.commit("more")
    [f] = scan(git, engine)[0].reported
    assert f.still_present is True


def test_secret_introduced_by_a_merge_commit_names_the_merge(git: Git, engine: Engine) -> None:
    git.write("settings.py", "A = 1\n")
    git.commit("base")
    git("checkout", "-q", "-b", "feature")
    git.write("settings.py", "A = 2\n")
    git.commit("feature change")
    git("checkout", "-q", "main")
    git.write("settings.py", "A = 3\n")
    git.commit("main change")
    # conflicting merge, resolved by hand with a secret that neither parent has
    subprocess.run(["git", "merge", "-q", "feature"], cwd=git.root, capture_output=True)
    git.write("settings.py", f'A = 4\nTOKEN = "{TOKEN}"\n')
    merge = git.commit("merge feature")
    assert len(git("rev-list", "--parents", "-n1", "HEAD").split()) == 3

    [f] = scan(git, engine)[0].reported
    assert f.introduced == merge
    assert (f.location.path, f.location.line) == ("settings.py", 2)


def test_secret_from_a_merged_branch_names_the_branch_commit_not_the_merge(
    git: Git, engine: Engine
) -> None:
    git.write("a.txt", "a\n")
    git.commit("base")
    git("checkout", "-q", "-b", "feature")
    git.write("b.py", f'TOKEN = "{TOKEN}"\n')
    on_branch = git.commit("branch adds token")
    git("checkout", "-q", "main")
    git.write("c.txt", "c\n")
    git.commit("main moves on")
    git("merge", "-q", "--no-edit", "feature")

    [f] = scan(git, engine)[0].reported
    assert f.introduced == on_branch
    assert f.still_present is True


def test_renamed_file_keeps_one_finding_at_the_original_introduction(
    git: Git, engine: Engine
) -> None:
    body = "".join(f"line {i}\n" for i in range(20)) + f'TOKEN = "{TOKEN}"\n'
    git.write("old_name.py", body)
    first = git.commit("add")
    git("mv", "old_name.py", "new_name.py")
    git.commit("rename")

    result, _ = scan(git, engine)
    [f] = result.reported
    assert f.introduced == first
    assert (f.location.path, f.location.line) == ("old_name.py", 21)
    assert f.still_present is True  # it lives on under the new name


def test_secret_in_a_binary_file_is_found(git: Git, engine: Engine) -> None:
    key = mint_aws_key_id(7)
    blob = b"\x00\x01\x02SQLite format\x00" + b"\xff" * 64 + f"aws_access_key_id={key}".encode()
    git.write("data/app.db", blob + b"\x00" * 32)
    commit = git.commit("add database dump")

    result, stats = scan(git, engine)
    assert stats.binary_blobs == 1
    [f] = result.reported
    assert f.rule_id == "aws-access-key-id"
    assert (f.location.path, f.location.line, f.introduced) == ("data/app.db", 0, commit)


def test_secret_only_on_another_branch_needs_all_branches(git: Git, engine: Engine) -> None:
    git.write("README", "hello\n")
    git.commit("base")
    git("checkout", "-q", "-b", "experiment")
    git.write("try.py", f'TOKEN = "{TOKEN}"\n')
    on_branch = git.commit("experiment")
    git("checkout", "-q", "main")

    assert scan(git, engine)[0].reported == []
    [f] = scan(git, engine, all_branches=True)[0].reported
    assert f.introduced == on_branch
    assert f.still_present is False  # not in HEAD's tree


def test_since_and_range_limit_the_commits(git: Git, engine: Engine) -> None:
    git.write("one.py", f'T = "{TOKEN}"\n')
    c1 = git.commit("one")
    git.write("two.py", f'T = "{TOKEN2}"\n')
    c2 = git.commit("two")
    git.write("three.txt", "x\n")
    c3 = git.commit("three")

    since = scan(git, engine, since=c1)[0]
    assert [f.introduced for f in since.reported] == [c2]
    rng = scan(git, engine, range=f"{c2}..{c3}")[0]
    assert rng.reported == []
    assert {f.introduced for f in scan(git, engine, range=f"{c1}~0..{c2}")[0].reported} == {c2}


def test_unknown_revision_is_a_clear_error(git: Git, engine: Engine) -> None:
    git.write("a", "a\n")
    git.commit("a")
    with pytest.raises(SourceError, match="Unknown revision 'nope'"):
        scan(git, engine, since="nope")
    with pytest.raises(SourceError, match="not a commit range"):
        scan(git, engine, range="main")


def test_non_utf8_path_and_content_are_scanned(git: Git, engine: Engine) -> None:
    git.write(b"caf\xe9.txt", b"caf\xe9 cr\xe8me\ntoken: " + TOKEN.encode() + b"\n")
    git.commit("latin-1")
    [f] = scan(git, engine)[0].reported
    assert f.location.path == "caf\\xe9.txt"
    assert f.location.line == 2


def test_quoted_path_with_spaces_and_quotes(git: Git, engine: Engine) -> None:
    git.write('dir with space/we"ird\tname.py', f'T = "{TOKEN}"\n')
    git.commit("odd name")
    [f] = scan(git, engine)[0].reported
    assert f.location.path == 'dir with space/we"ird\tname.py'


def test_empty_repository_has_nothing_to_scan(git: Git, engine: Engine) -> None:
    result, stats = scan(git, engine)
    assert result.reported == [] and stats.commits == 0
    assert any("no commits" in w for w in result.warnings)


def test_not_a_repository_is_a_clear_error(tmp_path: Path, engine: Engine) -> None:
    with pytest.raises(SourceError, match="is not a git repository"):
        Runner(engine, spec=SPEC).run(HistorySource(tmp_path))


def test_pool_finds_the_same_as_one_process_on_a_long_history(git: Git, engine: Engine) -> None:
    """A few hundred commits (built with fast-import) go through the process pool."""
    lines = []
    mark = 0
    for i in range(400):
        mark += 1
        content = f"value = {i}\n"
        if i == 123:
            content += f'TOKEN = "{TOKEN}"\n'
        if i == 345:
            content += f'OTHER = "{TOKEN2}"\n'
        data = content.encode()
        lines.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
        msg = f"commit {i}".encode()
        lines.append(
            b"commit refs/heads/main\nmark :%d\ncommitter Dev <dev@example.com> %d +0000\n"
            b"data %d\n%s\nM 100644 :%d file%d.py\n"
            % (mark + 100000, 1700000000 + i, len(msg), msg, mark, i % 7)
        )
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=git.root, input=b"".join(lines), check=True
    )
    serial, s1 = scan(git, engine, jobs=1)
    pooled, s2 = scan(git, engine, jobs=2)
    assert s1.commits == s2.commits == 400
    assert pooled.stats.jobs == 2
    key = [(f.rule_id, f.fingerprint, f.introduced, f.location.line) for f in serial.reported]
    assert key == [
        (f.rule_id, f.fingerprint, f.introduced, f.location.line) for f in pooled.reported
    ]
    assert len(key) == 2


def test_cli_reports_git_findings_in_json_without_the_raw_value(git: Git) -> None:
    git.write("app.py", f'TOKEN = "{TOKEN}"\n')
    commit = git.commit("add")
    proc = subprocess.run(
        [sys.executable, "-m", "keyward", "scan", "--git", str(git.root), "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
    [f] = json.loads(proc.stdout)["findings"]
    assert f["commit"] == commit and f["source"] == "git" and f["still_present"] is True


def test_cli_not_a_repository_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "keyward", "scan", "--git", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "is not a git repository" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dotenv_variables_in_history_keep_commit_and_variable(git: Git, engine: Engine) -> None:
    git.write("deploy/.env", "STAGE=prod\n")
    git.commit("env")
    git.write("deploy/.env", "STAGE=prod\nDB_PASSWORD=hunter2-Prod-88\n")
    added = git.commit("password", author="Eve")
    [f] = scan(git, engine)[0].reported
    loc = f.location
    assert (loc.path, loc.line, loc.variable, loc.commit) == (
        "deploy/.env",
        2,
        "DB_PASSWORD",
        added,
    )
    assert loc.author == "Eve <dev@example.com>"


def test_still_present_check_reads_a_large_head_tree(git: Git, engine: Engine) -> None:
    """Thousands of blobs at HEAD: cat-file is fed while it answers (no pipe deadlock)."""
    files = b"".join(
        b"M 100644 inline dir%d/file%d.txt\ndata 12\nfile number\n\n" % (i % 50, i)
        for i in range(4000)
    )
    token = f'TOKEN = "{TOKEN}"\n'.encode()
    stream = (
        b"commit refs/heads/main\ncommitter Dev <dev@example.com> 1700000000 +0000\ndata 4\nbulk\n"
        + files
        + b"M 100644 inline z/app.py\ndata %d\n%s\n" % (len(token), token)
    )
    subprocess.run(["git", "fast-import", "--quiet"], cwd=git.root, input=stream, check=True)
    [f] = scan(git, engine)[0].reported
    assert f.still_present is True and f.location.path == "z/app.py"


def test_files_above_the_size_limit_are_skipped_not_read(git: Git, engine: Engine) -> None:
    big = "".join(f"line {i} of a generated file\n" for i in range(400)) + f'T = "{TOKEN}"\n'
    git.write("big.txt", big)
    git.write("small.py", f'T = "{TOKEN2}"\n')
    git.commit("big and small")
    result, _ = scan(git, engine, max_file_size=4096)
    assert [f.location.path for f in result.reported] == ["small.py"]
    assert [(s.what.split("@")[0], "size limit" in s.reason) for s in result.skipped] == [
        ("big.txt", True)
    ]


def test_exclude_globs_apply_to_history(git: Git, engine: Engine) -> None:
    git.write("vendor/lib/keys.py", f'T = "{TOKEN}"\n')
    git.write("src/app.py", f'T = "{TOKEN2}"\n')
    git.commit("both")
    result, _ = scan(git, engine, exclude=("vendor/",))
    assert [f.location.path for f in result.reported] == ["src/app.py"]


def _mixed_history(git: Git) -> dict[str, str]:
    """Merges, a rename, deletions, binary files (one deleted and added again): the commits."""
    t1, t2, t3, t4, t5 = (mint_github_token(n) for n in range(11, 16))
    key = mint_aws_key_id(17)
    db = b"\x00SQLite format\x00" + b"\xfe" * 40 + f"aws_access_key_id={key}\n".encode() + b"\x00"
    c: dict[str, str] = {}
    git.write("app.py", "".join(f"line {i}\n" for i in range(20)) + f'TOKEN = "{t1}"\n')
    git.write("data/app.db", db)
    git.write("notes.txt", f"token: {t2}\n")
    git.write("zz.txt", f"a\nb\ntoken: {t2}")  # the same secret twice in one commit
    c["base"] = git.commit("base", author="Ann", date="2024-01-01T00:00:00+00:00")
    (git.root / "src").mkdir()
    git("mv", "app.py", "src/app.py")
    git("rm", "-q", "notes.txt")
    git.write("settings.py", "A = 1\n")
    c["rename"] = git.commit("rename, delete", author="Bob", date="2024-01-02T00:00:00+00:00")
    git("checkout", "-q", "-b", "feature")
    git.write("feature.py", f'T = "{t3}"\n')
    git.write("img/logo.bin", b"\x89PNG\x00\x00" + f"gh={t4}\n".encode() + b"\x00" * 8)
    git.write("feature_doc.md", f"first line\nuse {t4}\n")  # and in a binary, same commit
    git.write("settings.py", "A = 2\n")
    c["feature"] = git.commit("feature", author="Cid", date="2024-01-03T00:00:00+00:00")
    git("checkout", "-q", "main")
    git("rm", "-q", "data/app.db")
    git.write("settings.py", "A = 3\n")
    c["main"] = git.commit("main", author="Dee", date="2024-01-04T00:00:00+00:00")
    subprocess.run(["git", "merge", "-q", "feature"], cwd=git.root, capture_output=True)
    git.write("settings.py", f'A = 4\nTOKEN = "{t5}"\n')  # written by the merge itself
    c["merge"] = git.commit("merge", author="Eve", date="2024-01-05T00:00:00+00:00")
    git.write("data/app.db", db)  # the same blob again
    git.write("later.py", f'T = "{t1}"  # keyward:allow\n')
    c["readd"] = git.commit("re-add", author="Fay", date="2024-01-06T00:00:00+00:00")
    git("rm", "-q", "src/app.py", "feature.py")
    c["delete"] = git.commit("delete", author="Gus", date="2024-01-07T00:00:00+00:00")
    return c


def test_mixed_history_findings_and_attribution(
    git: Git, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which commit, author, path and line each secret is reported with on a history of
    merges, a rename, deletions and binary files, in one process and through the pool."""
    c = _mixed_history(git)
    result, stats = scan(git, engine)
    assert stats.commits == 7
    got = [
        (f.rule_id, f.location.path, f.location.line, f.introduced, f.location.author,
         f.still_present, f.suppressed_by)
        for f in result.findings
    ]  # fmt: skip
    assert sorted(got, key=str) == sorted(
        [
            ("github-pat-classic", "app.py", 21, c["base"], "Ann <dev@example.com>", True,
             "inline"),
            ("aws-access-key-id", "data/app.db", 0, c["base"], "Ann <dev@example.com>", True,
             None),
            ("github-pat-classic", "notes.txt", 1, c["base"], "Ann <dev@example.com>", True,
             None),
            ("github-pat-classic", "feature.py", 1, c["feature"], "Cid <dev@example.com>", False,
             None),
            ("github-pat-classic", "feature_doc.md", 2, c["feature"], "Cid <dev@example.com>",
             True, None),
            ("github-pat-classic", "settings.py", 2, c["merge"], "Eve <dev@example.com>", True,
             None),
        ],
        key=str,
    )  # fmt: skip
    assert stats.binary_blobs == 2
    import keyward.scan.sources.git as history

    # tiny pieces through the pool: a piece per commit, the base commit cut between its
    # files, a cat-file per binary blob, all matched in two worker processes
    monkeypatch.setattr(history, "HISTORY_POOL", PoolPolicy(min_items=1, in_flight=1))
    monkeypatch.setattr(history, "FIRST_PIECE_BYTES", 1)
    monkeypatch.setattr(history, "PIECE_BYTES", 1)
    monkeypatch.setattr(history, "MAX_PIECE_BYTES", 1)
    monkeypatch.setattr(history, "BINARIES_PER_BATCH", 1)
    monkeypatch.setattr(history, "read_pieces", lambda out: iter(lambda: out.read1(64), b""))
    pieces = list(HistorySource(git.root).work())
    parts = [p.part for p in pieces if isinstance(p, history.PatchPiece)]
    assert len(pieces) - len(parts) == 2 and max(parts) >= 3, pieces
    pooled, pstats = scan(git, engine, jobs=2)
    assert (pstats.jobs, pstats.commits, pstats.binary_blobs) == (2, 7, 2)
    assert pooled.findings == result.findings


def test_head_check_reads_the_work_tree_only_when_it_is_heads(
    git: Git, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long history's still-present check searches the work tree's files when they are
    HEAD's; a changed file or a converting attribute sends it back to HEAD's blobs."""
    import keyward.scan.sources.git as history

    monkeypatch.setattr(history, "PRESENCE_CHECK_COMMITS", 1)
    git.write("kept.py", f'T = "{TOKEN}"\n')
    git.write("gone.py", f'T = "{TOKEN2}"\n')
    git.commit("both")
    git.write("gone.py", "T = None\n")
    git.commit("remove one")
    repo = history.open_repo(git.root)

    def present() -> dict[str, bool | None]:
        return {f.location.path or "": f.still_present for f in scan(git, engine)[0].findings}

    assert history.WorktreeCheck(repo).matches_head() is True
    assert present() == {"kept.py": True, "gone.py": False}

    git.write("kept.py", "T = 'edited, not committed'\n")  # HEAD still holds the token
    assert history.WorktreeCheck(repo).matches_head() is False
    assert present() == {"kept.py": True, "gone.py": False}
    git("checkout", "--", "kept.py")

    git.write(".gitattributes", "*.txt working-tree-encoding=UTF-16\n")
    token3 = mint_github_token(3)
    git.write("notes.txt", f"T = {token3}\n".encode("utf-16"))  # UTF-8 in the blob
    git.commit("utf-16 in the work tree")
    assert token3.encode() not in (git.root / "notes.txt").read_bytes()
    assert history.WorktreeCheck(repo).matches_head() is False
    assert present() == {"kept.py": True, "gone.py": False, "notes.txt": True}

    sub = git.root / "sub"
    sub.mkdir()
    checks: list[object] = []
    monkeypatch.setattr(history, "WorktreeCheck", lambda r: checks.append(r))
    HistorySource(sub).work()
    assert checks == []  # a sub-directory: HEAD's blobs, as ever
