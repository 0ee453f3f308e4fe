"""ipfs_share.node against real Kubo daemons: install, KuboDaemon, ports, discovery.

No mocks: every daemon is the pinned Kubo binary on 127.0.0.1. The one stand-in is a
tiny shell script named ``ipfs`` that prints another version, to play a different
installed Kubo.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import STARTED, rpc

from ipfs_share import paths
from ipfs_share.errors import (
    InvalidInputError,
    KuboInstallError,
    NodeManagementError,
    NodeVersionError,
)
from ipfs_share.node import (
    DEFAULT_API,
    KuboDaemon,
    NodePorts,
    RunningNode,
    choose_ports,
    find_kubo,
    install_kubo,
    kubo_version,
    multiaddr_to_url,
    port_is_free,
    probe_api,
    resolve_api,
    resolve_api_source,
    url_to_multiaddr,
)
from ipfs_share.node.daemon import pid_alive


def pick_port() -> int:
    """A free port below Linux's ephemeral range, so no OS-picked port races with it."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port_is_free(port):
            return port
    raise RuntimeError("no free port found in 20000..32000")


def fake_ipfs(directory: Path, version: str) -> Path:
    """A real executable named ipfs that reports ``version``: another installed Kubo."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "ipfs"
    script.write_text(f"#!/bin/sh\necho {version}\n", encoding="utf-8")
    script.chmod(0o755)
    return script


@pytest.fixture
def daemon(kubo_binary: Path, tmp_path: Path) -> Iterator[KuboDaemon]:
    """An initialized local repo; whatever runs on it is stopped by pid afterwards."""
    d = KuboDaemon(tmp_path / "repo", kubo_binary)
    d.init()
    try:
        yield d
    finally:
        d.stop(timeout=5)


def _start(d: KuboDaemon) -> RunningNode:
    STARTED[d.start()] = d  # so the session's leak check covers it too
    return d.wait_ready(timeout=30)


# --- the session fixtures ----------------------------------------------------------------


def test_kubo_fixture_is_a_local_pubsub_node(kubo: RunningNode) -> None:
    assert kubo.version == paths.KUBO_VERSION
    assert kubo.api_url == multiaddr_to_url(kubo.api_multiaddr)
    assert kubo.api_url.startswith("http://127.0.0.1:")
    assert rpc(kubo, "id")["ID"] == kubo.peer_id
    assert kubo.swarm_addrs and all(a.startswith("/ip4/127.0.0.1/") for a in kubo.swarm_addrs)
    config = json.loads((kubo.repo / "config").read_text())
    assert config["Bootstrap"] == []
    assert config["AutoConf"]["Enabled"] is False
    assert config["Pubsub"]["Enabled"] is True
    assert config["Ipns"]["UsePubsub"] is True
    assert rpc(kubo, "pubsub/ls") is not None  # answers only when pubsub is enabled
    assert pid_alive(kubo.pid)


def test_kubo_pair_is_connected_both_ways(kubo_pair: tuple[RunningNode, RunningNode]) -> None:
    a, b = kubo_pair
    assert a.peer_id != b.peer_id and a.api_url != b.api_url
    assert b.peer_id in {p["Peer"] for p in rpc(a, "swarm/peers")["Peers"]}
    assert a.peer_id in {p["Peer"] for p in rpc(b, "swarm/peers")["Peers"]}


async def test_probe_api(kubo: RunningNode) -> None:
    assert await probe_api(kubo.api_url) is True
    closed = pick_port()
    assert await probe_api(f"http://127.0.0.1:{closed}", timeout=1) is False
    # Something answers, but it is not Kubo's RPC API (the gateway has no /api/v0).
    assert kubo.gateway_url is not None
    assert await probe_api(kubo.gateway_url, timeout=2) is False


# --- install ------------------------------------------------------------------------------


def test_find_kubo_returns_the_pinned_binary(kubo_binary: Path) -> None:
    found = find_kubo()
    assert found is not None and kubo_version(found) == paths.KUBO_VERSION


def test_install_is_idempotent(kubo_binary: Path) -> None:
    before = kubo_binary.stat()
    first = install_kubo(progress=False)
    second = install_kubo(progress=False)
    assert first == second
    assert kubo_version(first) == paths.KUBO_VERSION
    after = first.stat()  # found, not rebuilt: the same file, untouched
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_install_without_go_fails_naming_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))  # no go, no ipfs
    monkeypatch.setenv("IPFS_SHARE_CACHE", str(tmp_path / "cache"))
    assert find_kubo() is None
    with pytest.raises(KuboInstallError) as info:
        install_kubo(progress=False)
    assert "go is not installed" in info.value.message
    assert "docker compose -f docker/compose.yml up -d" in info.value.hint
    assert info.value.code == "kubo_install_failed"


def test_find_kubo_skips_another_version_on_path(
    kubo_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_ipfs(tmp_path / "bin", "0.42.0")
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    assert kubo_version(fake) == "v0.42.0"
    found = find_kubo()
    assert found is not None and found != fake


def test_kubo_version_rejects_what_is_not_kubo(tmp_path: Path) -> None:
    with pytest.raises(NodeVersionError):
        kubo_version(fake_ipfs(tmp_path / "bin", "hello"))
    with pytest.raises(NodeManagementError):
        kubo_version(tmp_path / "no-such-binary")


# --- KuboDaemon --------------------------------------------------------------------------


def test_start_status_stop(daemon: KuboDaemon) -> None:
    assert daemon.status().running is False
    node = _start(daemon)
    assert node.peer_id == daemon.peer_id()
    assert daemon.start() == node.pid  # idempotent: the running daemon's pid
    status = daemon.status()
    assert status.running and status.responding and status.pid == node.pid
    assert status.version == paths.KUBO_VERSION
    assert status.api_multiaddr == node.api_multiaddr
    assert status.network == "local"
    assert daemon.pid_file.read_text().strip() == str(node.pid)
    assert daemon.log_file.is_file()

    assert daemon.stop() == node.pid
    assert not pid_alive(node.pid)
    assert not daemon.pid_file.exists()
    assert not (daemon.repo / "api").exists()  # Kubo removes it on a clean exit
    assert daemon.status().running is False
    assert daemon.stop() is None  # not running: says so, does nothing


def test_restart_after_sigkill_fallback(daemon: KuboDaemon) -> None:
    first = _start(daemon)
    # timeout=0 skips the grace period: the SIGKILL path, which leaves Kubo no cleanup.
    assert daemon.stop(timeout=0) == first.pid
    assert not pid_alive(first.pid)
    assert not (daemon.repo / "api").exists()
    second = _start(daemon)
    assert second.pid != first.pid and second.peer_id == first.peer_id
    assert daemon.stop() == second.pid


def test_stale_pid_file_of_a_reused_pid_is_not_killed(daemon: KuboDaemon) -> None:
    # A live process that is not our daemon holds the pid the file names.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        daemon.pid_file.write_text(f"{bystander.pid}\n")
        assert daemon.running_pid() is None
        assert daemon.status().running is False
        assert daemon.stop() is None
        assert bystander.poll() is None, "stop() must not signal a process that is not ours"
        assert not daemon.pid_file.exists()
        # And a start goes ahead, replacing the stale file.
        daemon.pid_file.write_text(f"{bystander.pid}\n")
        node = _start(daemon)
        assert node.pid != bystander.pid
        assert daemon.pid_file.read_text().strip() == str(node.pid)
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("content", ["", "not a pid\n", "999999999\n"])
def test_garbage_or_dead_pid_file(daemon: KuboDaemon, content: str) -> None:
    daemon.pid_file.write_text(content)
    assert daemon.status().running is False
    assert daemon.stop() is None
    assert not daemon.pid_file.exists()


def test_a_daemon_not_started_by_us_is_not_started_twice(daemon: KuboDaemon) -> None:
    node = _start(daemon)
    daemon.pid_file.unlink()  # as if someone ran `ipfs daemon` on this repo by hand
    try:
        with pytest.raises(NodeManagementError, match="not started by ipfs-share"):
            daemon.start()
    finally:
        daemon.pid_file.write_text(f"{node.pid}\n")
    assert daemon.stop() == node.pid


def test_wrong_version_binary_is_refused(kubo_binary: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    KuboDaemon(repo, kubo_binary).init()
    fake = fake_ipfs(tmp_path / "bin", "0.42.0")
    wrong = KuboDaemon(repo, fake)
    with pytest.raises(NodeVersionError) as info:
        wrong.start()
    assert f"expected Kubo {paths.KUBO_VERSION}, found v0.42.0" in info.value.message
    assert "ipfs-share node install" in info.value.hint
    assert not wrong.pid_file.exists()
    with pytest.raises(NodeVersionError):
        KuboDaemon(tmp_path / "other", fake).init()
    assert not (tmp_path / "other" / "config").exists()


def test_busy_port_is_refused_with_a_hint(kubo_binary: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d = KuboDaemon(tmp_path / "repo", kubo_binary)
        d.init(ports=NodePorts(api=port))
        with pytest.raises(NodeManagementError) as info:
            d.start()
    assert f"api port {port} is in use" in info.value.message
    assert "--api-port" in info.value.hint
    assert d.running_pid() is None


def test_daemon_that_exits_at_start_reports_its_log(daemon: KuboDaemon) -> None:
    config_path = daemon.repo / "config"
    config = json.loads(config_path.read_text())
    config["Addresses"]["API"] = "/ip4/127.0.0.1/tcp/not-a-port"
    config_path.write_text(json.dumps(config))
    pid = daemon.start()
    STARTED[pid] = daemon
    with pytest.raises(NodeManagementError, match="kubo exited while starting") as info:
        daemon.wait_ready(timeout=30)
    assert str(daemon.log_file) in info.value.hint
    assert not pid_alive(pid)


def test_init_twice_is_refused(daemon: KuboDaemon) -> None:
    with pytest.raises(NodeManagementError, match="already initialized"):
        daemon.init()


def test_public_network_config(kubo_binary: Path, tmp_path: Path) -> None:
    # Configured only, never started: a public node would dial the internet.
    d = KuboDaemon(tmp_path / "repo", kubo_binary)
    d.init(ports=NodePorts(api=15001, gateway=18080, swarm=14001), public_network=True)
    config = d.config()
    assert config["Addresses"]["API"] == "/ip4/127.0.0.1/tcp/15001"
    assert config["Addresses"]["Gateway"] == "/ip4/127.0.0.1/tcp/18080"
    assert "/ip4/0.0.0.0/tcp/14001" in config["Addresses"]["Swarm"]
    assert config["Bootstrap"]
    assert config["Pubsub"]["Enabled"] is True and config["Ipns"]["UsePubsub"] is True
    assert d.network() == "public"
    assert d.configured_ports() == NodePorts(api=15001, gateway=18080, swarm=14001)
    d.set_ports(NodePorts(api=15002, gateway=18082, swarm=14002))
    assert d.configured_ports() == NodePorts(api=15002, gateway=18082, swarm=14002)
    swarm = d.config()["Addresses"]["Swarm"]
    assert "/ip4/0.0.0.0/udp/14002/quic-v1" in swarm
    assert not any("14001" in a for a in swarm)


def test_sigterm_is_what_stops_it(daemon: KuboDaemon) -> None:
    # The daemon runs in its own session: a SIGINT to our process group does not reach it.
    node = _start(daemon)
    assert os.getpgid(node.pid) != os.getpgid(0)
    os.kill(node.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_alive(node.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(node.pid)
    assert daemon.stop() is None


# --- ports and discovery -----------------------------------------------------------------


def test_choose_ports_keeps_free_and_replaces_busy() -> None:
    free = pick_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports, notes = choose_ports(NodePorts(api=taken, gateway=free, swarm=0))
    assert ports.gateway == free and ports.swarm == 0
    assert ports.api not in (0, taken, free)
    assert notes == [f"port {taken} (api) is in use; using {ports.api}"]


def test_node_ports_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="api port"):
        NodePorts(api=70000)


def test_resolve_api_order(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_api_source() == (DEFAULT_API, "default")
    api_file = paths.kubo_repo_dir() / "api"
    api_file.parent.mkdir(parents=True)
    api_file.write_text("/ip4/127.0.0.1/tcp/25001")
    assert resolve_api_source() == ("/ip4/127.0.0.1/tcp/25001", "managed")
    monkeypatch.setenv("IPFS_SHARE_API", "http://127.0.0.1:25002")
    assert resolve_api_source() == ("/ip4/127.0.0.1/tcp/25002", "env")
    assert resolve_api("/ip4/127.0.0.1/tcp/25003") == "/ip4/127.0.0.1/tcp/25003"


def test_resolve_api_rejects_malformed_values(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for bad in [
        "5001",
        "/ip4/127.0.0.1/udp/5001",
        "/ip4/::1/tcp/5001",
        "ftp://x:1",
        "/ip4/1.2.3.4/tcp/0",
    ]:
        with pytest.raises(InvalidInputError) as info:
            resolve_api(bad)
        assert "--api" in info.value.hint
    monkeypatch.setenv("IPFS_SHARE_API", "garbage")
    with pytest.raises(InvalidInputError, match="IPFS_SHARE_API"):
        resolve_api()


def test_multiaddr_url_round_trip() -> None:
    cases = {
        "/ip4/127.0.0.1/tcp/5001": "http://127.0.0.1:5001",
        "/ip6/::1/tcp/5001": "http://[::1]:5001",
        "/dns/kubo.local/tcp/5001": "http://kubo.local:5001",
        "/dns4/kubo.example/tcp/443/https": "https://kubo.example:443",
    }
    for maddr, url in cases.items():
        assert multiaddr_to_url(maddr) == url
    assert url_to_multiaddr("http://127.0.0.1:5001") == "/ip4/127.0.0.1/tcp/5001"
    assert url_to_multiaddr("https://kubo.example") == "/dns/kubo.example/tcp/443/https"
