"""One agent per home: an exclusive ``flock`` on ``<home>/agent.lock``, which holds the
pid of the agent that has it.

The kernel drops the lock when its holder dies, however it dies, so a lock file left
behind by a crash never blocks the next start: only a live holder does. A second agent
is refused with the holder's pid in the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ipfs_share.agent.files import lock_path
from ipfs_share.errors import AgentRunningError, StoreError

__all__ = ["InstanceLock", "holder"]


def holder(home: Path) -> int | None:
    """The pid of the agent holding ``home``'s lock, or None if no agent holds it."""
    path = lock_path(home)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


class InstanceLock:
    """``acquire()`` or :class:`AgentRunningError`; ``release()`` when the agent stops."""

    def __init__(self, home: Path) -> None:
        self.path = lock_path(home)
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreError(f"cannot open the agent lock {self.path}: {exc.strerror}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise AgentRunningError(
                    f"an agent is already running for {self.path.parent} "
                    f"(pid {pid if pid is not None else 'unknown'})"
                ) from None
            # The file we locked may have been unlinked by an agent stopping meanwhile: then
            # the lock guards nothing, and we try again on the file now at the path.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return
        raise AgentRunningError(f"the agent lock {self.path} kept changing; retry")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still held, so nobody locks a file on its way out
        os.close(fd)
