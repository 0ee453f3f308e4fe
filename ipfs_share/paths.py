"""Where ipfs-share keeps its files.

- home (``IPFS_SHARE_HOME``, else ``$XDG_DATA_HOME/ipfs-share``, else
  ``~/.local/share/ipfs-share``): keys, the SQLite state, the managed node's repo;
- cache (``IPFS_SHARE_CACHE``, else ``$XDG_CACHE_HOME/ipfs-share``, else
  ``~/.cache/ipfs-share``): things that can be rebuilt, such as the Kubo and IPFS Cluster
  binaries.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CLUSTER_VERSION",
    "KUBO_VERSION",
    "cache_dir",
    "cluster_dir",
    "home_dir",
    "kubo_repo_dir",
]

# The Kubo release ipfs-share pins (docs/decisions/0002-kubo-version.md says why not v0.43.1).
KUBO_VERSION = "v0.43.0"

# The IPFS Cluster release `ipfs-share cluster` runs (ipfs-cluster-service, ipfs-cluster-ctl).
CLUSTER_VERSION = "v1.1.6"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def home_dir() -> Path:
    explicit = os.environ.get("IPFS_SHARE_HOME")
    if explicit:
        return Path(explicit).expanduser()
    return _xdg("XDG_DATA_HOME", ".local/share") / "ipfs-share"


def cache_dir() -> Path:
    explicit = os.environ.get("IPFS_SHARE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return _xdg("XDG_CACHE_HOME", ".cache") / "ipfs-share"


def kubo_repo_dir(home: Path | None = None) -> Path:
    """The repo of the node ipfs-share manages itself."""
    return (home or home_dir()) / "kubo"


def cluster_dir(home: Path | None = None) -> Path:
    """The local cluster ``ipfs-share cluster up`` manages (one folder per peer)."""
    return (home or home_dir()) / "cluster"
