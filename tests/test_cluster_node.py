"""ipfs_share.node's IPFS Cluster side without a running cluster: the install script and
finding the pinned binaries, version checks, and the pid discipline of ServiceDaemon."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ipfs_share import paths
from ipfs_share.errors import (
    ClusterInstallError,
    InvalidInputError,
    NodeManagementError,
    NodeVersionError,
)
from ipfs_share.node.cluster import LocalCluster, ServiceDaemon
from ipfs_share.node.cluster_install import (
    ClusterBinaries,
    cluster_version,
    find_cluster,
    install_cluster,
)


def fake_binaries(directory: Path, version: str) -> Path:
    """Real executables named like Cluster's that report ``version``: another release."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("ipfs-cluster-service", "ipfs-cluster-ctl"):
        script = directory / name
        script.write_text(f"#!/bin/sh\necho {name} version {version}\n", encoding="utf-8")
        script.chmod(0o755)
    return directory


def test_find_and_install_give_the_pinned_pair_fast(cluster_binaries: ClusterBinaries) -> None:
    started = time.monotonic()
    found = find_cluster()
    again = install_cluster(progress=False)
    assert found == again == cluster_binaries
    assert cluster_version(found.service) == cluster_version(found.ctl) == paths.CLUSTER_VERSION
    assert time.monotonic() - started < 5  # found, not rebuilt


def test_install_without_go_fails_naming_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setenv("IPFS_SHARE_CACHE", str(tmp_path / "cache"))
    assert find_cluster() is None
    with pytest.raises(ClusterInstallError) as info:
        install_cluster(progress=False)
    assert "go is not installed" in info.value.message
    assert "docker compose -f docker/cluster-compose.yml up -d" in info.value.hint
    assert info.value.code == "cluster_install_failed"


def test_another_release_on_path_is_skipped(
    cluster_binaries: ClusterBinaries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = fake_binaries(tmp_path / "bin", "1.1.5")
    monkeypatch.setenv("PATH", f"{other}:{os.environ['PATH']}")
    assert cluster_version(other / "ipfs-cluster-service") == "v1.1.5"
    assert find_cluster() == cluster_binaries


def test_cluster_version_rejects_what_is_not_cluster(tmp_path: Path) -> None:
    script = tmp_path / "ipfs-cluster-service"
    script.write_text("#!/bin/sh\necho hello\n", encoding="utf-8")
    script.chmod(0o755)
    with pytest.raises(NodeVersionError):
        cluster_version(script)
    with pytest.raises(NodeManagementError):
        cluster_version(tmp_path / "missing")


def test_a_stale_pid_file_of_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    service = ServiceDaemon(tmp_path / "service")
    service.folder.mkdir()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        service.pid_file.write_text(f"{bystander.pid}\n")
        assert service.running_pid() is None
        assert service.stop() is None and service.kill() is None
        assert bystander.poll() is None, "a process that is not our daemon must not be signalled"
        assert not service.pid_file.exists()
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("peers", [0, -1, 17, True])
def test_a_cluster_of_an_impossible_size_is_refused(tmp_path: Path, peers: int) -> None:
    cluster = LocalCluster(tmp_path / "c")
    with pytest.raises(InvalidInputError) as info:
        cluster.create(peers)
    assert info.value.hint
    assert not cluster.exists()


def test_down_and_status_of_no_cluster(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "none")
    assert cluster.down() == []
    with pytest.raises(NodeManagementError) as info:
        cluster.status()
    assert "cluster up" in info.value.hint
