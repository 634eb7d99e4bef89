"""Reading .pn files: every way a file can fail becomes a one-line E0xx diagnostic."""

from __future__ import annotations

import os

from . import limits
from .diagnostics import Diagnostic, SourceError
from .record import record


@record
class Source:
    name: str  # the path as the user wrote it, or "<string>"
    text: str


def _fail(code: str, message: str, help: str | None = None) -> SourceError:
    return SourceError([Diagnostic(code, message, help=help)])


def decode(data: bytes, name: str) -> Source:
    if len(data) > limits.MAX_FILE_BYTES:
        raise _fail("E003", f"{name}: file is {len(data):,} bytes, over the limit of "
                    f"{limits.MAX_FILE_BYTES:,} bytes (MAX_FILE_BYTES)",
                    "split the architecture over several files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise _fail("E002", f"{name}: not UTF-8: byte 0x{data[e.start]:02x} at line {line} "
                    f"(offset {e.start})", "save the file as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return Source(name, text)


def read_bytes(path: str | os.PathLike, kind: str = ".pn file", limit: int = -1) -> bytes:
    """The bytes of a file (at most ``limit``); any failure is one E001 line."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise _fail("E001", f"{name}: is a directory, not a {kind}")
    try:
        with open(name, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise _fail("E001", f"{name}: no such file") from None
    except PermissionError:
        raise _fail("E001", f"{name}: permission denied") from None
    except OSError as e:
        raise _fail("E001", f"{name}: cannot read: {e.strerror or e}") from None


def read(path: str | os.PathLike) -> Source:
    """Read a .pn file; raise SourceError with one clear line on any failure."""
    name = os.fspath(path)
    return decode(read_bytes(name, limit=limits.MAX_FILE_BYTES + 1), name)
