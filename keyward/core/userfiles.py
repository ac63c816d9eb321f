"""Reading a file because the user named it (config, rule files, baselines): bounded.

Such a file must be a regular file (never a device such as ``/dev/zero``, a FIFO or a
directory) no larger than its kind's limit, and is read with at most that many bytes, whatever
its size claims (``/proc`` files claim 0). Its path must not contain a NUL byte. Every failure
is the caller's error class with one sentence naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from keyward.core.errors import KeywardError

MiB = 1024 * 1024
CONFIG_LIMIT = 4 * MiB  # keyward.toml or a pyproject.toml
RULE_FILE_LIMIT = 16 * MiB  # keyward's largest built-in rule file is ~120 KiB
BASELINE_LIMIT = 64 * MiB  # ~250,000 detect-secrets entries


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n} bytes"


def check_path(path: Path | str, what: str, error: type[KeywardError]) -> None:
    """A path with a NUL byte cannot name a file (the OS would refuse it)."""
    if "\0" in str(path):
        raise error(
            f"The {what} path {str(path)!r} contains a NUL byte",
            hint="Correct the path in the setting or option that names it",
        )


def read_user_file(
    path: Path,
    what: str,
    *,
    limit: int,
    error: type[KeywardError],
    missing_hint: str | None = None,
) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes (see the module)."""
    check_path(path, what, error)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"The {what} {path} does not exist", hint=missing_hint) from None
    except IsADirectoryError:
        raise error(f"The {what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise error(f"Cannot read the {what} {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"The {what} {path} is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise error(
                f"The {what} {path} is not a regular file (a device, pipe or socket)",
                hint="Name a file",
            )
        if st.st_size > limit:
            raise error(
                f"The {what} {path} is larger than {_size(limit)} ({_size(st.st_size)})",
                hint="Name the right file, or split it",
            )
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, MiB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise error(f"Cannot read the {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise error(f"The {what} {path} is larger than {_size(limit)}", hint="Name the right file")
    return data


def read_user_text(
    path: Path,
    what: str,
    *,
    limit: int,
    error: type[KeywardError],
    missing_hint: str | None = None,
) -> str:
    """:func:`read_user_file` decoded as UTF-8 (a BOM is dropped)."""
    data = read_user_file(path, what, limit=limit, error=error, missing_hint=missing_hint)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"The {what} {path} is not UTF-8 text (byte {exc.start + 1} is not valid UTF-8)",
            hint="Save it as UTF-8",
        ) from None
