"""Parsing git's patch output into added lines (no git needed: the text is what git prints)."""

from __future__ import annotations

import pytest

from keyward.scan.model import Location, SourceKind
from keyward.scan.sources.git import (
    PatchParser,
    _path_from_diff_git,
    file_chunk,
    strings_of,
    unquote_path,
)

PATCH = b"""\x00aaaa 2024-01-01T00:00:00+00:00 Ann <ann@example.com>

diff --git a/src/app.py b/src/app.py
index 1111111111111111111111111111111111111111..2222222222222222222222222222222222222222 100644
--- a/src/app.py
+++ b/src/app.py
@@ -3,0 +4,2 @@ def f():
+x = 1
+++ not a header, an added line starting with two pluses
@@ -10 +12 @@
-old
+new line twelve
\\ No newline at end of file
diff --git "a/we\\"ird\\tname" "b/we\\"ird\\tname"
new file mode 100644
index 0000000000000000000000000000000000000000..3333333333333333333333333333333333333333
--- /dev/null
+++ "b/we\\"ird\\tname"
@@ -0,0 +1 @@
+quoted
diff --git a/img.png b/img.png
new file mode 100644
index 0000000000000000000000000000000000000000..4444444444444444444444444444444444444444
Binary files /dev/null and b/img.png differ
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
index 5555555555555555555555555555555555555555..0000000000000000000000000000000000000000
--- a/gone.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
\x00bbbb 2024-01-02T00:00:00+00:00 Bob <bob@example.com>

diff --git a/old.py b/new.py
similarity index 90%
rename from old.py
rename to new.py
index 6666666666666666666666666666666666666666..7777777777777777777777777777777777777777 100644
--- a/old.py
+++ b/new.py
@@ -5,0 +6 @@
+moved and changed
"""


def parse(data: bytes, piece: int = 7):  # type: ignore[no-untyped-def]
    """Feed the patch in small pieces, as a pipe delivers it."""
    return list(PatchParser().parse(data[i : i + piece] for i in range(0, len(data), piece)))


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
def test_added_lines_carry_the_new_file_line_numbers(piece: int) -> None:
    first, second = parse(PATCH, piece)
    assert (first.sha, first.author, first.date) == (
        "aaaa",
        "Ann <ann@example.com>",
        "2024-01-01T00:00:00+00:00",
    )
    app = first.files[0]
    assert app.path == "src/app.py"
    assert app.lines == [b"x = 1", b"++ not a header, an added line starting with two pluses",
                         b"new line twelve"]  # fmt: skip
    assert app.numbers == [4, 5, 12]
    [renamed] = second.files
    assert (renamed.path, renamed.numbers) == ("new.py", [6])


def test_quoted_binary_and_deleted_files() -> None:
    first, _ = parse(PATCH)
    paths = [(f.path, f.binary_oid) for f in first.files]
    assert paths == [
        ("src/app.py", None),
        ('we"ird\tname', None),
        ("img.png", "4444444444444444444444444444444444444444"),
    ]  # the deleted file adds nothing


def test_oversized_added_lines_are_flagged_not_kept() -> None:
    patch = (
        b"diff --git a/big b/big\n--- /dev/null\n+++ b/big\n@@ -0,0 +1,3 @@\n"
        + (b"+" + b"x" * 60 + b"\n") * 3
    )
    from keyward.scan.sources.git import CommitDiff

    [c] = PatchParser(max_file_size=100).parse([patch], single=CommitDiff("", "", ""))
    assert c.files[0].oversized


def test_unquote_path_handles_octal_utf8_and_escapes() -> None:
    assert unquote_path(b'"caf\\303\\251 \\"x\\"\\\\"') == 'café "x"\\'.encode()
    assert unquote_path(b"plain/path") == b"plain/path"


def test_path_from_diff_git_header_with_spaces() -> None:
    assert _path_from_diff_git(b"a/dir x/f y.txt b/dir x/f y.txt\n") == b"dir x/f y.txt"
    assert _path_from_diff_git(b'"a/q\\"x" "b/q\\"x"\n') == b'q"x'


def test_file_chunk_keeps_the_line_map_and_raw_bytes_for_ascii() -> None:
    [c, _] = parse(PATCH)
    chunk = file_chunk(c.files[0], Location(kind=SourceKind.GIT, path="src/app.py"))
    assert chunk is not None
    assert chunk.line_map == (4, 5, 12)
    assert chunk.source_line(2) == 12
    assert chunk.data == chunk.text.encode()


def test_strings_of_binary_keeps_printable_runs() -> None:
    data = b"\x00\x01AKIAQYLPMN5HHHFPZAM2\x00\xff\xfeshort\x00a longer printable run\x00"
    assert strings_of(data) == b"AKIAQYLPMN5HHHFPZAM2\na longer printable run"


COMBINED = b"""\x00cccc 2024-01-03T00:00:00+00:00 Meg <meg@example.com>

diff --cc s.py
index 68a11f2,7be73ce..409b666
--- a/s.py
+++ b/s.py
@@@ -2,1 -2,1 +2,2 @@@
- bb
+ B
++evil line
@@@ -4,0 -4,0 +5,2 @@@
++d
++e
"""


def test_merge_combined_diff_keeps_only_lines_the_merge_wrote() -> None:
    [merge] = parse(COMBINED)
    [fd] = merge.files
    assert fd.path == "s.py"
    assert fd.lines == [b"evil line", b"d", b"e"]  # "B" came from the second parent
    assert fd.numbers == [3, 5, 6]


def test_no_newline_markers_around_a_replaced_last_line() -> None:
    patch = (
        b"\x00dddd 2024-01-04T00:00:00+00:00 Dee <dee@example.com>\n\n"
        b"diff --git a/v.txt b/v.txt\nindex 1..2 100644\n--- a/v.txt\n+++ b/v.txt\n"
        b"@@ -2 +2,2 @@\n-old last\n\\ No newline at end of file\n+new last\n+really last\n"
        b"\\ No newline at end of file\n"
    )
    [c] = parse(patch)
    assert (c.files[0].lines, c.files[0].numbers) == ([b"new last", b"really last"], [2, 3])


def cut(
    data: bytes, monkeypatch: pytest.MonkeyPatch, read: int = 5, largest: int = 1 << 20
) -> list[tuple[bytes, int, int]]:
    """The pieces of work a stream is cut into, read ``read`` bytes at a time."""
    import io

    from keyward.scan.sources import git

    monkeypatch.setattr(git, "FIRST_PIECE_BYTES", 1)
    monkeypatch.setattr(git, "PIECE_BYTES", 1)
    monkeypatch.setattr(git, "MAX_PIECE_BYTES", largest)
    stream = io.BytesIO(data)
    monkeypatch.setattr(git, "read_pieces", lambda _: iter(lambda: stream.read(read), b""))
    return list(git._cut(stream))


@pytest.mark.parametrize("read", [1, 5, 1 << 20])
def test_the_stream_is_cut_at_commit_headers_only(
    monkeypatch: pytest.MonkeyPatch, read: int
) -> None:
    nul_in_text = (
        b"\x00eeee 2024-01-05T00:00:00+00:00 Eve <eve@example.com>\n\n"
        b"diff --git a/t b/t\n--- /dev/null\n+++ b/t\n@@ -0,0 +1,2 @@\n+a\x00b\n+\x00c\n"
    )
    data = PATCH + nul_in_text + COMBINED
    pieces = cut(data, monkeypatch, read)
    assert b"\n".join(text for text, _, _ in pieces) == data
    assert all(text.startswith(b"\x00") and part == 0 for text, _, part in pieces)
    if read == 1:  # every commit is a piece of its own, numbered in history order
        assert [(t[1:5], first) for t, first, _ in pieces] == [
            (b"aaaa", 0), (b"bbbb", 1), (b"eeee", 2), (b"cccc", 3)
        ]  # fmt: skip


def test_a_commit_larger_than_a_piece_is_cut_between_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = cut(PATCH, monkeypatch, read=1)
    split = cut(PATCH, monkeypatch, read=1, largest=1)
    header = PATCH[: PATCH.index(b"\n") + 1]
    # the first commit's four files in four pieces, each with the commit's header
    assert [(first, part) for _, first, part in split] == [(0, 0), (0, 1), (0, 2), (0, 3),
                                                            (1, 0)]  # fmt: skip
    assert all(text.startswith(header) for text, _, _ in split[:4])

    def files(pieces: list[tuple[bytes, int, int]]) -> list[tuple[str, str, list[bytes]]]:
        return [(c.sha, f.path, f.lines) for text, _, _ in pieces
                for c in PatchParser().parse([text]) for f in c.files]  # fmt: skip

    assert files(split) == files(whole)
