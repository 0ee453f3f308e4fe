"""Writing a file so that nobody ever sees half of it, with the mode set before any byte."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ipfs_share.errors import StoreError

__all__ = ["fsync_dir", "write_atomic"]


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, created with
    ``mode`` (so a secret is never readable by others, not even for a moment), fsync'd,
    renamed over ``path``, and the folder fsync'd so the rename survives a crash."""
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(folder)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror}") from exc


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries, so a rename in it survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
