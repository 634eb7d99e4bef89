"""Writing files so that a reader never sees half of one: a temporary file in the same
folder, flushed to disk, then renamed over the target (``os.replace`` is atomic)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import IO, Iterator

#: temporary files being written now: the command line's Ctrl-C handler removes them
#: before it exits (cli.main), since it exits without unwinding
PENDING: set = set()


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path``.

    On an exception (or Ctrl-C) the temporary file is removed and ``path`` is
    untouched.  An existing file's permission bits are kept; a new file gets the
    usual 0o666 less the umask.
    """
    import tempfile

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path),
                               dir=directory)
    PENDING.add(tmp)
    try:
        text = "b" not in mode
        with (os.fdopen(fd, mode, encoding="utf-8", newline="") if text
              else os.fdopen(fd, mode)) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            perms = os.stat(path).st_mode & 0o7777
        except OSError:  # a new file: the mode open() would give it, not mkstemp's 0600
            mask = os.umask(0)
            os.umask(mask)
            perms = 0o666 & ~mask
        try:
            os.chmod(tmp, perms)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    finally:
        PENDING.discard(tmp)


def discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
