"""Writing a file all or nothing, so a reader or a crash never sees half of it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: bytes) -> None:
    """Make `path` hold `data`, all or nothing, unless it already does."""
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return  # an idempotent re-write leaves the file (and its mtime) alone
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)  # published files; mkstemp's 0600 would hide them
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
