"""Where the agent keeps its files in a home; stdlib only (the command line reads them).

- ``agent.sock`` -- the unix socket the command line talks to (0600; the home is 0700);
- ``agent.lock`` -- held (``flock``) by the running agent, which writes its pid in it;
- ``agent.token`` -- the bearer token for the HTTP API on TCP (0600, written once).

>>> from pathlib import Path
>>> socket_path(Path("/h")), lock_path(Path("/h")), token_path(Path("/h"))
(PosixPath('/h/agent.sock'), PosixPath('/h/agent.lock'), PosixPath('/h/agent.token'))
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["ensure_token", "lock_path", "read_token", "socket_path", "token_path"]


def socket_path(home: Path) -> Path:
    return home / "agent.sock"


def lock_path(home: Path) -> Path:
    return home / "agent.lock"


def token_path(home: Path) -> Path:
    return home / "agent.token"


def ensure_token(home: Path) -> str:
    """The agent's API token, made on first use: 32 random bytes in hex, in a 0600 file
    written atomically (a temp file, then a rename that never replaces one made meanwhile)."""
    path = token_path(home)
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    token = secrets.token_hex(32)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process made one first: keep theirs
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
    finally:
        tmp.unlink(missing_ok=True)
    return token


def read_token(home: Path) -> str | None:
    try:
        return token_path(home).read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None
