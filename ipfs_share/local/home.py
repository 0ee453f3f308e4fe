"""The ipfs-share home folder: created 0700 and kept 0700, whatever the umask.

Every command that writes into the home calls :func:`prepare_home` first (the state
database, the keystore, the managed node, the spool of unsized puts), so whichever runs
first creates it private. ``mkdir(mode=0o700)`` alone is not enough: the umask can take
bits away (0o277 would leave the owner without write access) and an existing folder keeps
whatever mode it had. Files that hold state are 0600 (:func:`private_file`).

>>> import os, stat, tempfile
>>> from pathlib import Path
>>> old = os.umask(0)
>>> home = prepare_home(Path(tempfile.mkdtemp()) / "home")
>>> _ = os.umask(old)
>>> oct(stat.S_IMODE(home.stat().st_mode))
'0o700'
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ipfs_share.errors import StoreError

__all__ = ["prepare_home", "private_file"]

HOME_MODE = 0o700
FILE_MODE = 0o600


def prepare_home(home: Path) -> Path:
    """Create ``home`` (and its parents) if needed and make it 0700; return it."""
    try:
        home.mkdir(parents=True, exist_ok=True, mode=HOME_MODE)
        _chmod(home, HOME_MODE)
    except OSError as exc:
        raise StoreError(
            f"cannot prepare the ipfs-share home {home}: {exc.strerror}",
            hint="check IPFS_SHARE_HOME points at a folder you own",
        ) from exc
    return home


def private_file(path: Path) -> None:
    """Make an existing file 0600 (a file that does not exist is left alone)."""
    try:
        _chmod(path, FILE_MODE)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot make {path} private: {exc.strerror}") from exc


def _chmod(path: Path, mode: int) -> None:
    if stat.S_IMODE(path.stat().st_mode) != mode:
        os.chmod(path, mode)
