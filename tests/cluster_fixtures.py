"""A real 3-peer IPFS Cluster on 127.0.0.1 for the tests, started once per session.

- ``cluster_binaries``: the pinned ipfs-cluster-service/-ctl (found, or built on a fresh
  machine: minutes);
- ``cluster``: a :class:`TestCluster`: three peers, each its own Kubo and cluster service
  (crdt), with ``.rest`` and ``.kubo`` (URLs, peer order), ``.peers``
  (:class:`~ipfs_share.node.cluster.ClusterPeer`), ``.local`` (the
  :class:`~ipfs_share.node.cluster.LocalCluster`) and ``.token`` (for the peers' Pinning
  Service API), plus ``storage()`` to open a ClusterStorage on it.

Tests that stop or kill a peer start it again before they end (``stopped_peer``), so the
next test finds all three running. Every daemon is stopped by its own pid at teardown;
the kernel's parent-death signal is the fallback, and the session fails if one of them is
still alive at the end.

>>> async def test_something(cluster):           # doctest: +SKIP
...     async with await cluster.storage(replication=2) as store:
...         ...
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ipfs_share.node.cluster import ClusterPeer, LocalCluster
from ipfs_share.node.cluster_install import ClusterBinaries, find_cluster, install_cluster
from ipfs_share.node.daemon import pid_alive
from ipfs_share.storage.cluster import ClusterStorage

# Every pid the cluster fixture started, and its clusters, for the leak check at the end.
CLUSTER_PIDS: set[int] = set()
CLUSTERS: list[LocalCluster] = []

# Short enough that a pin nobody can fetch fails within a test, long enough for a loaded
# machine to pin what is there.
PIN_TIMEOUT = 10.0


@dataclass
class TestCluster:
    __test__ = False  # not a test class, whatever its name

    local: LocalCluster
    peers: list[ClusterPeer]
    rest: list[str]
    kubo: list[str]
    token: str

    async def storage(
        self,
        *,
        replication: int | None = None,
        pin_wait: float = 60.0,
        peers: list[int] | None = None,
    ) -> ClusterStorage:
        """A ClusterStorage on every peer (or on ``peers``' REST APIs and Kubo nodes)."""
        chosen = list(range(len(self.peers))) if peers is None else peers
        return await ClusterStorage.connect(
            [self.rest[i] for i in chosen],
            kubo=[self.kubo[i] for i in chosen],
            replication=replication,
            pin_wait=pin_wait,
        )

    def index_of(self, peer_id: str) -> int:
        return next(i for i, p in enumerate(self.peers) if peer_id in (p.peer_id, p.kubo_peer_id))

    @contextmanager
    def stopped_peer(self, index: int, *, kill: bool = False) -> Iterator[list[int]]:
        """Peer ``index`` stopped (or SIGKILLed) inside the block, running again after it."""
        pids = self.local.stop_peer(index, kill=kill)
        try:
            yield pids
        finally:
            self.start(index)

    @contextmanager
    def restarted(self, index: int) -> Iterator[None]:
        """Peer ``index`` started again when the block ends (the block may kill it)."""
        try:
            yield
        finally:
            self.stop(index)  # whatever still runs of it; clears what a kill left behind
            self.start(index)

    def stop(self, index: int, *, kill: bool = False) -> list[int]:
        return self.local.stop_peer(index, kill=kill)

    def start(self, index: int) -> None:
        self.local.start_peer(index, die_with_parent=True)
        self._remember()

    def _remember(self) -> None:
        for peer in self.local.status():
            CLUSTER_PIDS.update(p for p in (peer.service_pid, peer.kubo_pid) if p is not None)


@pytest.fixture(scope="session")
def cluster_binaries() -> ClusterBinaries:
    """The pinned IPFS Cluster binaries; built with Go on first use on a fresh machine."""
    return find_cluster() or install_cluster(progress=True)


@pytest.fixture(scope="session")
def cluster(
    cluster_binaries: ClusterBinaries, kubo_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestCluster]:
    """A running 3-peer cluster for the whole session."""
    local = LocalCluster(
        tmp_path_factory.mktemp("cluster") / "c", binaries=cluster_binaries, kubo=kubo_binary
    )
    CLUSTERS.append(local)
    began = time.monotonic()
    try:
        peers = local.up(peers=3, die_with_parent=True, pin_timeout=PIN_TIMEOUT, progress=False)
        rest, kubo = local.endpoints()
        token = local.token()
        assert token is not None
        found = TestCluster(local, peers, rest, kubo, token)
        found._remember()
        print(f"\ncluster_fixtures: 3-peer cluster up in {time.monotonic() - began:.1f} s")
        yield found
    finally:
        local.down(timeout=10)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a cluster daemon a fixture started outlived its teardown."""
    leaked = sorted(pid for pid in CLUSTER_PIDS if pid_alive(pid))
    if leaked:
        for local in CLUSTERS:
            local.down(timeout=5)  # by pid, each checked to be that cluster's daemon
        print(f"\ncluster_fixtures: cluster daemons outlived their fixture: {leaked}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
