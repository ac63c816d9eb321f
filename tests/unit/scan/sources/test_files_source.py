"""The file source: ignore files, excludes, binaries, sizes, encodings, symlinks, odd files."""

from __future__ import annotations

import codecs
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scanutil import kw_token, make_ruleset, scan_files, spec_for

from keyward.core.errors import ConfigError, SourceError
from keyward.scan.sources.files import FileWalker, WalkOptions, decode, read_task


def planned(root: Path, **opts: object) -> list[str]:
    return [t.display for t in FileWalker([root], WalkOptions(**opts)).tasks()]  # type: ignore[arg-type]


def write(path: Path, text: str = "x = 1\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_gitignore_nested_files_negation_and_info_exclude(tmp_path: Path) -> None:
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("secret-notes.txt\n")
    write(tmp_path / ".gitignore", "*.log\nbuild/\n")
    write(tmp_path / "app.log")
    write(tmp_path / "build" / "out.py")
    write(tmp_path / "secret-notes.txt")
    write(tmp_path / "src" / ".gitignore", "*.tmp\n!keep.log\n")
    write(tmp_path / "src" / "keep.log")  # re-included by the deeper file
    write(tmp_path / "src" / "drop.log")
    write(tmp_path / "src" / "a.tmp")
    write(tmp_path / "src" / "main.py")
    write(tmp_path / "src" / "deep" / "b.tmp")
    write(tmp_path / ".git" / "config")  # .git is never scanned
    assert planned(tmp_path) == [".gitignore", "src/.gitignore", "src/keep.log", "src/main.py"]
    everything = planned(tmp_path, use_ignore_files=False)
    assert "app.log" in everything and "build/out.py" in everything
    assert "secret-notes.txt" in everything and "src/deep/b.tmp" in everything
    assert not any(p.startswith(".git/") for p in everything)


def test_scanning_a_subdirectory_honours_the_repository_ignore_files(tmp_path: Path) -> None:
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("pkg/local.cfg\n")
    write(tmp_path / ".gitignore", "*.pyc\n/pkg/generated/\n")
    write(tmp_path / "pkg" / "mod.pyc")
    write(tmp_path / "pkg" / "mod.py")
    write(tmp_path / "pkg" / "local.cfg")
    write(tmp_path / "pkg" / "generated" / "x.py")
    assert planned(tmp_path / "pkg") == ["mod.py"]


def test_a_named_directory_that_is_itself_ignored_is_scanned(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / ".gitignore", "vendor/\n")
    write(tmp_path / "vendor" / "lib.py")
    assert planned(tmp_path) == [".gitignore"]
    assert planned(tmp_path / "vendor") == ["lib.py"]


def test_exclude_globs_are_repeatable(tmp_path: Path) -> None:
    for name in ("a.min.js", "b.js", "fixtures/x.py", "src/y.py", "src/fixtures/z.py"):
        write(tmp_path / name)
    assert planned(tmp_path, exclude=["*.min.js", "fixtures/"]) == ["b.js", "src/y.py"]


def test_binary_files_are_skipped_but_utf16_with_bom_is_text(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\x7fELF\0\0\0" + kw_token(1).encode())
    (tmp_path / "big.bin").write_bytes(b"\0" * 100_000 + kw_token(2).encode())
    (tmp_path / "u16.txt").write_bytes(codecs.BOM_UTF16_LE + f"k={kw_token(3)}".encode("utf-16-le"))
    spec = spec_for(tmp_path)
    result = scan_files([tmp_path], spec, WalkOptions(exclude=["*.toml"]))
    assert [f.location.path for f in result.findings] == ["u16.txt"]
    assert {s.what: s.reason for s in result.skipped} == {
        "big.bin": "binary file",
        "blob.bin": "binary file",
    }


def test_files_over_the_size_limit_are_skipped_from_stat_and_listed(tmp_path: Path) -> None:
    write(tmp_path / "small.py", f"t = '{kw_token(1)}'\n")
    write(tmp_path / "large.py", f"t = '{kw_token(2)}'\n" + "#" * 5000)
    walker = FileWalker([tmp_path], WalkOptions(max_file_size=1000))
    assert [t.display for t in walker.tasks()] == ["small.py"]
    assert [(s.what, s.reason.split(" (")[0]) for s in walker.skipped] == [
        ("large.py", "larger than --max-file-size")
    ]


def test_a_named_file_over_the_limit_is_a_warning(tmp_path: Path) -> None:
    big = write(tmp_path / "big.sql", "x" * 2000)
    walker = FileWalker([big], WalkOptions(max_file_size=1000))
    assert list(walker.tasks()) == []
    assert walker.skipped[0].warning is True


def test_sparse_2gb_file_is_skipped_without_reading(tmp_path: Path) -> None:
    huge = tmp_path / "huge.dat"
    with huge.open("wb") as fh:
        fh.truncate(2 * 1024**3)
    walker = FileWalker([tmp_path], WalkOptions())
    assert list(walker.tasks()) == []
    assert walker.skipped[0].what == "huge.dat"
    assert "larger than --max-file-size" in walker.skipped[0].reason


def test_max_file_size_has_a_hard_cap_and_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="at most 256M"):
        WalkOptions(max_file_size=2 * 1024**3)
    with pytest.raises(ConfigError, match="positive"):
        WalkOptions(max_file_size=0)


def test_a_file_that_grew_past_the_limit_after_planning_is_not_read_whole(tmp_path: Path) -> None:
    f = write(tmp_path / "grows.txt", "short\n")
    (task,) = FileWalker([tmp_path], WalkOptions(max_file_size=100)).tasks()
    f.write_text("y" * 10_000)
    skipped = read_task(task, max_size=100)
    assert not hasattr(skipped, "text")
    assert "larger than" in skipped.reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
    ],
)
def test_encodings_decode_and_report_the_right_line_and_column(
    tmp_path: Path, encoding: str, bom: bytes
) -> None:
    token = kw_token(7)
    text = f"# héllo wörld ✓\nname = 'ünï' ; key = '{token}'\n"
    (tmp_path / "enc.txt").write_bytes(bom + text.encode(encoding))
    result = scan_files([tmp_path / "enc.txt"], spec_for(tmp_path), WalkOptions())
    (f,) = result.findings
    assert (f.location.path, f.location.line, f.location.column) == (
        "enc.txt",
        2,
        text.splitlines()[1].index(token) + 1,
    )


def test_invalid_utf8_does_not_crash_and_valid_parts_are_scanned(tmp_path: Path) -> None:
    token = kw_token(8)
    data = b"caf\xe9 \xff\xfe\xfd garbage\n\xc3(\n" + f"ok = '{token}'\n".encode()
    (tmp_path / "latin.txt").write_bytes(data)
    text, utf8 = decode(data)  # type: ignore[misc]
    assert utf8 is None and "\ufffd" in text
    result = scan_files([tmp_path / "latin.txt"], spec_for(tmp_path), WalkOptions())
    (f,) = result.findings
    assert (f.location.line, f.location.column) == (3, 7)


def test_symlinks_are_never_followed_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "secret.py", f"t = '{kw_token(1)}'\n")
    tree = tmp_path / "tree"
    write(tree / "inner.py", f"t = '{kw_token(2)}'\n")
    (tree / "to-outside-file").symlink_to(outside / "secret.py")
    (tree / "to-outside-dir").symlink_to(outside, target_is_directory=True)
    (tree / "to-inner").symlink_to(tree / "inner.py")
    (tree / "broken").symlink_to(tmp_path / "nope")
    (tree / "loop-a").symlink_to(tree / "loop-b")
    (tree / "loop-b").symlink_to(tree / "loop-a")
    result = scan_files([tree], spec_for(tmp_path), WalkOptions())
    assert [f.location.path for f in result.findings] == ["inner.py"]
    reasons = {s.what: s.reason for s in result.skipped}
    assert reasons == {
        "broken": "broken symlink",
        "loop-a": "symlink loop",
        "loop-b": "symlink loop",
        "to-inner": "symlink to a file inside the tree",
        "to-outside-dir": "symlink points outside the scanned tree",
        "to-outside-file": "symlink points outside the scanned tree",
    }


def test_fifo_in_a_tree_is_skipped_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    write(tmp_path / "a.py", f"t = '{kw_token(1)}'\n")
    result = scan_files([tmp_path], spec_for(tmp_path), WalkOptions(exclude=["*.toml"]))
    assert [f.location.path for f in result.findings] == ["a.py"]
    assert [(s.what, s.reason) for s in result.skipped] == [("pipe", "not a regular file")]


def test_a_fifo_swapped_in_after_planning_is_not_read(tmp_path: Path) -> None:
    f = write(tmp_path / "soon-a-fifo")
    (task,) = FileWalker([tmp_path], WalkOptions()).tasks()
    f.unlink()
    os.mkfifo(f)
    skipped = read_task(task)
    assert skipped.reason == "not a regular file"  # type: ignore[union-attr]


def test_a_file_swapped_for_a_symlink_after_planning_is_not_followed(tmp_path: Path) -> None:
    f = write(tmp_path / "victim.txt")
    write(tmp_path / "elsewhere.txt", "other")
    (task,) = [
        t for t in FileWalker([tmp_path], WalkOptions()).tasks() if t.display == "victim.txt"
    ]
    f.unlink()
    f.symlink_to(tmp_path / "elsewhere.txt")
    skipped = read_task(task)
    assert "cannot read" in skipped.reason  # type: ignore[union-attr]


def test_a_missing_path_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        list(FileWalker([tmp_path / "missing"], WalkOptions()).tasks())


def test_multiple_roots_display_paths_with_their_root(tmp_path: Path) -> None:
    write(tmp_path / "a" / "x.py")
    write(tmp_path / "b.py")
    roots = [tmp_path / "a", tmp_path / "b.py"]
    displays = [t.display for t in FileWalker(roots, WalkOptions()).tasks()]
    assert displays == [(tmp_path / "a" / "x.py").as_posix(), (tmp_path / "b.py").as_posix()]


def test_overlapping_roots_and_hard_links_are_planned_once(tmp_path: Path) -> None:
    write(tmp_path / "src" / "a.py")
    os.link(tmp_path / "src" / "a.py", tmp_path / "src" / "b.py")
    roots = [tmp_path / "src", tmp_path / "src" / "a.py", tmp_path / "src"]
    displays = [t.display for t in FileWalker(roots, WalkOptions()).tasks()]
    assert displays == [(tmp_path / "src" / "a.py").as_posix()]


def test_test_rules_are_self_consistent(tmp_path: Path) -> None:
    from keyward.scan.checking import check_examples

    rules = make_ruleset(tmp_path)
    assert check_examples(rules.rules) == []
