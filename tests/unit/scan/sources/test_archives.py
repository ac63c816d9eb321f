"""Archives are scanned inside (zip, jar, whl, tar, tar.gz/bz2/xz, gzip), members named
``archive!path``, within bounds: a bomb, a liar or a damaged archive is a skip with a reason."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scanutil import kw_token, scan_files, spec_for

from keyward.cli import main
from keyward.scan.sources.archives import (
    ArchiveKind,
    ArchiveLimits,
    Member,
    archive_kind,
    archive_members,
)
from keyward.scan.sources.base import PoolPolicy, Skipped
from keyward.scan.sources.files import WalkOptions

GITHUB_TOKEN = "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"  # valid checksum, never a real one


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def line(seed: int) -> bytes:
    return f"TOKEN = '{kw_token(seed)}'\n".encode()


def members(path: Path, limits: ArchiveLimits | None = None) -> list[Member | Skipped]:
    kind = archive_kind(path.name)
    assert kind is not None
    return list(archive_members(str(path), path.name, kind, limits or ArchiveLimits()))


def skipped(items: list[Member | Skipped]) -> dict[str, str]:
    return {s.what: s.reason for s in items if isinstance(s, Skipped)}


def test_every_archive_kind_is_scanned_inside_with_members_named_archive_bang_path(
    tmp_path: Path,
) -> None:
    files = {
        "app.zip": zip_bytes({"conf/app.py": line(1)}),
        "lib.jar": zip_bytes({"META-INF/x.properties": line(2)}, zipfile.ZIP_STORED),
        "pkg-1.0-py3-none-any.whl": zip_bytes({"pkg/settings.py": line(3)}),
        "plain.tar": tar_bytes({"a/b.env": line(4)}),
        "pkg-1.0.tar.gz": tar_bytes({"pkg-1.0/pkg/settings.py": line(5)}, "w:gz"),
        "x.tar.bz2": tar_bytes({"y.cfg": line(6)}, "w:bz2"),
        "x.tar.xz": tar_bytes({"z.cfg": line(7)}, "w:xz"),
        "app.log.gz": gzip.compress(line(8)),
        "dump.sql.bz2": bz2.compress(line(9)),
        "notes.txt.xz": lzma.compress(line(10)),
        # an archive inside an archive
        "bundle.tgz": tar_bytes({"lib/inner.jar": zip_bytes({"c.properties": line(11)})}, "w:gz"),
    }
    tree = tmp_path / "tree"
    tree.mkdir()
    for name, data in files.items():
        (tree / name).write_bytes(data)
    result = scan_files([tree], spec_for(tmp_path), WalkOptions())
    found = sorted(f.location.display() for f in result.findings)
    assert found == sorted(
        [
            "app.zip!conf/app.py:1:10",
            "lib.jar!META-INF/x.properties:1:10",
            "pkg-1.0-py3-none-any.whl!pkg/settings.py:1:10",
            "plain.tar!a/b.env:1:10 $TOKEN",  # a .env member is read as one
            "pkg-1.0.tar.gz!pkg-1.0/pkg/settings.py:1:10",
            "x.tar.bz2!y.cfg:1:10",
            "x.tar.xz!z.cfg:1:10",
            "app.log.gz!app.log:1:10",
            "dump.sql.bz2!dump.sql:1:10",
            "notes.txt.xz!notes.txt:1:10",
            "bundle.tgz!lib/inner.jar!c.properties:1:10",
        ]
    )
    assert result.stats.files == 11 and result.skipped == []


def test_archive_members_are_matched_in_worker_processes_too(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(4):
        (tree / f"a{i}.zip").write_bytes(zip_bytes({f"m{i}.py": line(i)}))
    result = scan_files([tree], spec_for(tmp_path), WalkOptions(), jobs=2, pool=PoolPolicy(0, 1, 1))
    assert result.stats.jobs == 2
    assert sorted(f.location.path or "" for f in result.findings) == [
        f"a{i}.zip!m{i}.py" for i in range(4)
    ]


def test_an_sdist_and_a_wheel_handed_to_scan_report_their_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    settings = f"GITHUB = '{GITHUB_TOKEN}'\n".encode()
    (dist / "pkg-1.0.tar.gz").write_bytes(tar_bytes({"pkg-1.0/pkg/settings.py": settings}, "w:gz"))
    (dist / "pkg-1.0-py3-none-any.whl").write_bytes(zip_bytes({"pkg/settings.py": settings}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["scan", "dist/pkg-1.0.tar.gz", "--no-color"])
    out, _ = capsys.readouterr()
    assert exc.value.code == 1, out
    # the path as given, then the member
    assert out.splitlines()[0] == "dist/pkg-1.0.tar.gz!pkg-1.0/pkg/settings.py"
    assert out.splitlines()[-1].startswith("1 finding in 1 file")
    with pytest.raises(SystemExit) as exc:
        main(["scan", "dist/pkg-1.0-py3-none-any.whl", "--format", "json"])
    out, _ = capsys.readouterr()
    (doc,) = json.loads(out)["findings"]
    assert (exc.value.code, doc["path"]) == (1, "pkg-1.0-py3-none-any.whl!pkg/settings.py")
    assert GITHUB_TOKEN not in out  # the preview only, as for any file


def test_a_zip_bomb_member_is_skipped_from_its_header_and_the_rest_is_scanned(
    tmp_path: Path,
) -> None:
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zip_bytes({"zeros.txt": bytes(50 * 1024 * 1024), "app.py": line(1)}))
    started = time.perf_counter()
    got = members(bomb, ArchiveLimits(max_member_size=100 * 1024 * 1024))
    assert time.perf_counter() - started < 2  # judged from the central directory, not inflated
    assert [m.display for m in got if isinstance(m, Member)] == ["bomb.zip!app.py"]
    reason = skipped(got)["bomb.zip!zeros.txt"]
    assert "more than 200:1" in reason and "zip bomb" in reason


def test_a_compressed_tar_bomb_stops_once_it_expands_past_its_ratio(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    zeros = bytes(40 * 1024 * 1024)
    bomb.write_bytes(tar_bytes({"a.py": line(1), "zeros.bin": zeros, "b.py": line(2)}, "w:gz"))
    del zeros
    got = members(bomb)
    assert [m.display for m in got if isinstance(m, Member)] == ["bomb.tar.gz!a.py"]
    assert "bomb.tar.gz!zeros.bin" in skipped(got)  # too large for --max-file-size
    assert "times its compressed size" in skipped(got)["bomb.tar.gz"]  # then the stream stops


def test_a_zip_member_that_lies_about_its_size_yields_no_more_than_it_declared(
    tmp_path: Path,
) -> None:
    data = bytearray(zip_bytes({"small.txt": bytes(8 * 1024 * 1024)}))
    real = (8 * 1024 * 1024).to_bytes(4, "little")
    fake = (100).to_bytes(4, "little")
    assert data.count(real) == 2  # uncompressed size in the local header and central directory
    liar = tmp_path / "liar.zip"
    liar.write_bytes(bytes(data).replace(real, fake))
    got = members(liar)
    assert not any(isinstance(m, Member) for m in got)
    assert "cannot read" in skipped(got)["liar.zip!small.txt"]  # bad CRC after 100 bytes


def test_bounds_on_depth_member_count_member_size_and_total_size(tmp_path: Path) -> None:
    nested = zip_bytes({"deep.py": line(1)})
    for level in range(4):
        nested = zip_bytes({f"level{level}.zip": nested})
    (tmp_path / "nest.zip").write_bytes(nested)
    got = members(tmp_path / "nest.zip")
    assert skipped(got) == {
        "nest.zip!level3.zip!level2.zip!level1.zip": "archive nested more than 3 deep; not opened"
    }

    many = {f"f{i}.py": line(i) for i in range(8)}
    (tmp_path / "many.zip").write_bytes(zip_bytes(many))
    (tmp_path / "many.tar").write_bytes(tar_bytes(many))
    limits = ArchiveLimits(max_members=5)
    assert skipped(members(tmp_path / "many.zip", limits)) == {
        "many.zip": "holds 8 members, more than 5; not opened"
    }
    got = members(tmp_path / "many.tar", limits)
    assert sum(isinstance(m, Member) for m in got) == 5  # a stream: the first five
    assert skipped(got) == {"many.tar": "more than 5 members; the rest is not scanned"}

    got = members(tmp_path / "many.tar", ArchiveLimits(max_member_size=10))
    assert (
        len(skipped(got)) == 8 and "larger than --max-file-size" in skipped(got)["many.tar!f0.py"]
    )
    size = len(line(0))
    got = members(tmp_path / "many.tar", ArchiveLimits(max_total_size=3 * size))
    assert sum(isinstance(m, Member) for m in got) == 3
    assert "expands to more than" in skipped(got)["many.tar"]


def test_damaged_archives_are_skipped_with_a_reason(tmp_path: Path) -> None:
    good = tar_bytes({"a.py": line(1)}, "w:gz")
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really a zip" * 10)
    (tmp_path / "junk.gz").write_bytes(b"\x1f\x8b\x08 this is not gzip data")
    (tmp_path / "enc.zip").write_bytes(zip_bytes({"a.py": line(1)}))  # flagged encrypted below
    data = bytearray((tmp_path / "enc.zip").read_bytes())
    data[6] |= 1  # general-purpose flag bit 0: encrypted (local header) ...
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 1  # ... and in the central directory
    (tmp_path / "enc.zip").write_bytes(bytes(data))
    for name in ("cut.tar.gz", "junk.zip", "junk.gz"):
        reasons = skipped(members(tmp_path / name))
        assert any("cannot read" in r for r in reasons.values()), (name, reasons)
    assert skipped(members(tmp_path / "enc.zip")) == {"enc.zip!a.py": "encrypted"}
    result = scan_files([tmp_path], spec_for(tmp_path), WalkOptions())  # and the scan goes on
    assert len(result.skipped) >= 4 and not any(s.warning for s in result.skipped)
    named = scan_files([tmp_path / "junk.zip"], spec_for(tmp_path), WalkOptions())
    assert [s.warning for s in named.skipped] == [True]  # named on the command line: a warning


def test_archives_are_opened_only_by_name_and_never_followed_through_a_fifo(tmp_path: Path) -> None:
    assert archive_kind("X.TAR.GZ") is ArchiveKind.TAR_GZ
    assert archive_kind("a.tgz") is ArchiveKind.TAR_GZ and archive_kind("a.gz") is ArchiveKind.GZIP
    assert archive_kind("photo.png") is None and archive_kind(".zip") is None
    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    got = list(archive_members(str(fifo), "pipe.zip", ArchiveKind.ZIP, ArchiveLimits()))
    assert got == [Skipped("pipe.zip", "not a regular file")]
