"""Shared fixtures: real Kubo daemons on 127.0.0.1, started once per test session.

- ``kubo_binary``: the pinned ``ipfs`` binary (found, or built on a fresh machine);
- ``kubo``: one running node, a :class:`~ipfs_share.node.RunningNode` (``.api_url``
  ``http://127.0.0.1:<port>``, ``.api_multiaddr``, ``.peer_id``, ``.repo``, ``.binary``,
  ``.pid``, ``.gateway_url``, ``.swarm_addrs``, ``.version``);
- ``kubo_pair``: two more nodes ``(a, b)`` joined by ``swarm/connect``;
- ``isolated_home``: a temporary ``IPFS_SHARE_HOME`` (and no ``IPFS_SHARE_API``).

Nodes are local-only (``ipfs init --profile=test``: loopback, no bootstrap, AutoConf
off), with pubsub and IPNS-over-pubsub on, and let the OS pick their ports at start (Kubo
reports them in ``<repo>/api``), so parallel test runs never fight over a port.

Every daemon is stopped by its own pid at teardown, also when a test fails; an atexit
hook and the kernel's parent-death signal are fallbacks, and the session fails if a
daemon it started is still alive at the end.

>>> async def test_something(kubo):          # doctest: +SKIP
...     async with await KuboStorage.connect(kubo.api_url) as store:
...         ...
"""

from __future__ import annotations

import atexit
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.node import KuboDaemon, RunningNode, find_kubo, install_kubo
from ipfs_share.node.daemon import pid_alive

# The IPFS Cluster fixtures (a real 3-peer cluster): tests/cluster_fixtures.py.
pytest_plugins = ["cluster_fixtures"]

# Every daemon any fixture started in this process, by pid: for teardown and leak checks.
STARTED: dict[int, KuboDaemon] = {}

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def rpc(node: RunningNode, command: str, *args: str, timeout: float = 10.0) -> Any:
    """POST ``/api/v0/<command>?arg=...`` to a test node and return its decoded JSON."""
    query = urllib.parse.urlencode([("arg", a) for a in args])
    url = f"{node.api_url}/api/v0/{command}" + (f"?{query}" if query else "")
    request = urllib.request.Request(url, data=b"", method="POST")
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def start_test_node(repo: Path, binary: Path) -> tuple[KuboDaemon, RunningNode]:
    """Init and start a local-only node in ``repo``; stop it again if it does not come up."""
    daemon = KuboDaemon(repo, binary)
    daemon.init()
    pid = daemon.start(die_with_parent=True)
    STARTED[pid] = daemon
    try:
        node = daemon.wait_ready(timeout=30)
    except BaseException:
        daemon.stop(timeout=5)
        raise
    return daemon, node


def _stop_all() -> None:
    for pid, daemon in list(STARTED.items()):
        if pid_alive(pid):
            daemon.stop(timeout=5)


# If the session dies before fixture teardown runs (an internal error, sys.exit), this
# still stops every daemon by its pid.
atexit.register(_stop_all)


@pytest.fixture(scope="session")
def kubo_binary() -> Path:
    """The pinned Kubo binary; built with Go on first use on a fresh machine (minutes)."""
    return find_kubo() or install_kubo(progress=True)


@pytest.fixture(scope="session")
def kubo(kubo_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    """One running local Kubo node for the whole session."""
    daemon, node = start_test_node(tmp_path_factory.mktemp("kubo") / "repo", kubo_binary)
    try:
        yield node
    finally:
        daemon.stop(timeout=10)


@pytest.fixture(scope="session")
def kubo_pair(
    kubo_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningNode, RunningNode]]:
    """Two running local nodes ``(a, b)``, connected to each other."""
    base = tmp_path_factory.mktemp("kubo-pair")
    daemon_a, a = start_test_node(base / "a", kubo_binary)
    try:
        daemon_b, b = start_test_node(base / "b", kubo_binary)
        try:
            rpc(a, "swarm/connect", b.swarm_addrs[0])
            _wait_connected(a, b.peer_id)
            yield a, b
        finally:
            daemon_b.stop(timeout=10)
    finally:
        daemon_a.stop(timeout=10)


def _wait_connected(node: RunningNode, peer_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        peers = rpc(node, "swarm/peers").get("Peers") or []
        if any(p.get("Peer") == peer_id for p in peers):
            return
        time.sleep(0.05)
    raise RuntimeError(f"expected {node.peer_id} to be connected to {peer_id}, found it is not")


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ipfs-share home (IPFS_SHARE_HOME) with IPFS_SHARE_API unset."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("IPFS_SHARE_HOME", str(home))
    monkeypatch.delenv("IPFS_SHARE_API", raising=False)
    return home


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any daemon a fixture started outlived its teardown (then kill it)."""
    leaked = [pid for pid in STARTED if pid_alive(pid)]
    for pid in leaked:
        STARTED[pid].stop(timeout=5)  # by pid, after checking it is still that daemon
    if leaked:
        print(f"\nconftest: kubo daemons outlived their fixtures: {leaked}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
