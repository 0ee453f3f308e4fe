"""Find or install the pinned IPFS Cluster binaries: ``ipfs-cluster-service``, ``-ctl``.

The same scheme as Kubo's (:mod:`ipfs_share.node.install`): the pair is looked for on
``PATH`` and then in the cache (``<cache>/ipfs-cluster/<version>/``); if neither holds the
pinned :data:`~ipfs_share.paths.CLUSTER_VERSION`, :func:`install_cluster` builds both with
this machine's Go through the packaged ``install-cluster.sh`` (about 2.5 min on 2 cores).

>>> from ipfs_share.node.cluster_install import find_cluster, install_cluster
>>> binaries = find_cluster() or install_cluster(progress=True)   # doctest: +SKIP
>>> binaries.service.name, binaries.version                         # doctest: +SKIP
('ipfs-cluster-service', 'v1.1.6')
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ipfs_share import paths
from ipfs_share.errors import ClusterInstallError, NodeManagementError, NodeVersionError
from ipfs_share.node.install import normalize_version, run_install_script

__all__ = [
    "INSTALL_SCRIPT",
    "ClusterBinaries",
    "cached_cluster_dir",
    "cluster_version",
    "find_cluster",
    "install_cluster",
]

INSTALL_SCRIPT = Path(__file__).with_name("install-cluster.sh")

SERVICE = "ipfs-cluster-service"
CTL = "ipfs-cluster-ctl"
_VERSION_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClusterBinaries:
    """Both binaries of one release, side by side in one folder."""

    service: Path
    ctl: Path
    version: str

    @classmethod
    def in_dir(cls, folder: Path, version: str = paths.CLUSTER_VERSION) -> ClusterBinaries:
        return cls(folder / SERVICE, folder / CTL, version)


def cluster_version(binary: Path | str) -> str:
    """Run ``<binary> --version`` (``ipfs-cluster-service version 1.1.6``) and return ``v1.1.6``.

    Raises :class:`NodeManagementError` if it cannot be run and :class:`NodeVersionError`
    if what it prints is not a Cluster version."""
    try:
        done = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeManagementError(
            f"could not run '{binary} --version': {exc}",
            hint="install the pinned IPFS Cluster with 'ipfs-share cluster install'",
        ) from exc
    words = done.stdout.strip().split()
    if done.returncode != 0 or len(words) != 3 or words[1] != "version":
        raise NodeVersionError(
            f"expected '{binary} --version' to print '<name> version X.Y.Z', found exit "
            f"code {done.returncode} and output {done.stdout.strip()[:80]!r}",
            hint="install the pinned IPFS Cluster with 'ipfs-share cluster install'",
        )
    return normalize_version(words[2])


def _pinned(folder: Path) -> ClusterBinaries | None:
    found = ClusterBinaries.in_dir(folder)
    for binary in (found.service, found.ctl):
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            return None
        try:
            if cluster_version(binary) != paths.CLUSTER_VERSION:
                return None
        except (NodeManagementError, NodeVersionError):
            return None
    return found


def cached_cluster_dir(version: str = paths.CLUSTER_VERSION) -> Path:
    """Where the install script keeps the binaries of ``version``."""
    return paths.cache_dir() / "ipfs-cluster" / version


def find_cluster() -> ClusterBinaries | None:
    """The pinned pair on ``PATH`` (both in one folder), else in the cache, else None."""
    on_path = shutil.which(SERVICE)
    if on_path is not None:
        found = _pinned(Path(on_path).parent)
        if found is not None:
            return found
    return _pinned(cached_cluster_dir())


def install_cluster(progress: bool = True) -> ClusterBinaries:
    """Build the pinned release into the cache (or find it) and return both binaries.

    Idempotent: a cached pair is found in well under a second. A failure raises
    :class:`ClusterInstallError` with the script's own message and hint."""
    env = dict(os.environ)
    env["CLUSTER_VERSION"] = paths.CLUSTER_VERSION
    env["IPFS_SHARE_CACHE"] = str(paths.cache_dir())
    folder = run_install_script(
        INSTALL_SCRIPT, env, tag="install-cluster", progress=progress, error=ClusterInstallError
    )
    found = _pinned(folder)
    if found is None:
        raise NodeVersionError(
            f"expected IPFS Cluster {paths.CLUSTER_VERSION} in {folder}, found none",
            hint="remove that folder and run 'ipfs-share cluster install' again",
        )
    return found
