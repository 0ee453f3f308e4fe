"""``ipfs-share node status|peers|connect``: two real nodes finding each other.

The managed node runs in a temporary home on free ports; the session's ``kubo`` node is
the other machine. A peer added to the managed node must survive its restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import rpc
from test_cli_node import free_ports_args, remember

from ipfs_share import paths
from ipfs_share.cli.main import main
from ipfs_share.node import KuboDaemon, RunningNode


@pytest.fixture
def home(isolated_home: Path) -> Iterator[Path]:
    try:
        yield isolated_home
    finally:
        KuboDaemon(paths.kubo_repo_dir(isolated_home)).stop(timeout=5)


def cli(capsys: Any, *argv: str) -> tuple[int, Any, str]:
    code = main(["--json", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def connected(node: RunningNode, peer_id: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.get("Peer") == peer_id for p in rpc(node, "swarm/peers").get("Peers") or []):
            return True
        time.sleep(0.2)
    return False


def peering_of(home: Path) -> list[dict[str, Any]]:
    config = json.loads((paths.kubo_repo_dir(home) / "config").read_text())
    return list(config.get("Peering", {}).get("Peers") or [])


def test_status_connect_peers_and_a_restart(home: Path, kubo: RunningNode, capsys: Any) -> None:
    code, down, _ = cli(capsys, "node", "status")
    assert code == 4 and down["running"] is False  # not created yet: down, and says so

    assert main(["node", "start", *free_ports_args()]) == 0
    remember(home)
    capsys.readouterr()
    code, st, _ = cli(capsys, "node", "status")
    assert code == 0 and st["responding"]
    assert st["addresses"] and all(a.endswith(f"/p2p/{st['peer_id']}") for a in st["addresses"])
    main(["node", "status"])
    text = capsys.readouterr().out
    assert "addresses to give a peer" in text and st["addresses"][0] in text

    other = next(a for a in kubo.swarm_addrs if "/tcp/" in a and "/ip4/127.0.0.1/" in a)
    if "/p2p/" not in other:
        other = f"{other}/p2p/{kubo.peer_id}"
    code, done, err = cli(capsys, "node", "connect", other)
    assert code == 0, err
    assert done["connected"] and done["kept"] and done["persisted"], done
    assert [p["ID"] for p in peering_of(home)] == [kubo.peer_id]
    code, listed, _ = cli(capsys, "node", "peers")
    assert code == 0
    assert {"peer_id": kubo.peer_id, "peering": True} in [
        {k: p[k] for k in ("peer_id", "peering")} for p in listed["peers"]
    ]

    # Stopped: status is down; a peer added now goes into the config file.
    assert main(["node", "stop"]) == 0
    capsys.readouterr()
    code, st_down, _ = cli(capsys, "node", "status")
    assert code == 4 and st_down["running"] is False
    again = cli(capsys, "node", "connect", other)
    assert again[0] == 0 and again[1]["persisted"] and not again[1]["connected"]
    assert [p["ID"] for p in peering_of(home)] == [kubo.peer_id]  # merged, not doubled

    # Restarted, it finds the peer by itself: the peering config survived.
    assert main(["node", "start"]) == 0
    remember(home)
    capsys.readouterr()
    restarted = KuboDaemon(paths.kubo_repo_dir(home)).wait_ready(10)
    assert connected(restarted, kubo.peer_id)


def test_a_node_not_managed_is_not_reconfigured(
    isolated_home: Path, kubo_pair: tuple[RunningNode, RunningNode], capsys: Any
) -> None:
    a, b = kubo_pair
    target = next(x for x in b.swarm_addrs if "/ip4/127.0.0.1/" in x and "/tcp/" in x)
    target = target if "/p2p/" in target else f"{target}/p2p/{b.peer_id}"
    before = rpc(a, "config/show")
    try:
        code, done, err = cli(capsys, "--api", a.api_url, "node", "connect", target)
        assert code == 0, err
        assert done["connected"] and done["kept"] and not done["persisted"]
        assert rpc(a, "config/show").get("Peering") == before.get("Peering")
        main(["--api", a.api_url, "node", "connect", target])
        assert "its config was not changed (not the managed node)" in capsys.readouterr().out
    finally:
        rpc(a, "swarm/peering/rm", b.peer_id)


@pytest.mark.parametrize(
    "bad",
    ["/ip4/127.0.0.1/tcp/4001", "12D3KooWxyz", "/p2p/12D3KooWAbcdefghijkLMNopqrstuvwxyz12345"],
)
def test_a_bad_address_is_refused(isolated_home: Path, capsys: Any, bad: str) -> None:
    code, out, _err = cli(capsys, "--api", "http://127.0.0.1:9", "node", "connect", bad)
    assert code == 3 and out["error"]["code"] == "invalid_input"
    assert "node status" in out["error"]["hint"]
