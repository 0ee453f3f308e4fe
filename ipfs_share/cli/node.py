"""``ipfs-share node install|start|stop|status|peers|connect``: the Kubo node ipfs-share
manages, and the peers it keeps.

::

    $ ipfs-share node start
    started Kubo v0.43.0 (pid 4242), local network only (loopback, no bootstrap peers)
    api:      /ip4/127.0.0.1/tcp/5001 (http://127.0.0.1:5001)
    ...
    $ ipfs-share node status --json
    {"addresses": ["/ip4/192.168.1.20/tcp/4001/p2p/12D3KooW..."], "running": true, ...}
    $ ipfs-share node connect /ip4/192.168.1.30/tcp/4001/p2p/12D3KooW...   (on the other)
    $ ipfs-share node peers
    $ ipfs-share node stop
    stopped Kubo (pid 4242)

``node status`` exits 4 (node unreachable) when the node is not running or does not answer.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ipfs_share import paths
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.text import printable
from ipfs_share.errors import NodeUnreachableError
from ipfs_share.node.daemon import DaemonStatus, KuboDaemon, RunningNode
from ipfs_share.node.discovery import (
    DEFAULT_API,
    api_source_text,
    multiaddr_to_url,
    resolve_api_source,
)
from ipfs_share.node.install import find_kubo, install_kubo, kubo_version
from ipfs_share.node.managed import managed_daemon, managed_status, start_managed, stop_managed
from ipfs_share.node.peering import add_peer, is_loopback, list_peers, peer_addresses

__all__ = ["register"]

_NETWORK_TEXT = {
    "local": "local network only (loopback, no bootstrap peers)",
    "public": "public IPFS network",
}


def register(subparsers: Subparsers) -> None:
    node = subparsers.add_parser(
        "node",
        help="install, start, stop and inspect the Kubo node ipfs-share manages",
        description="The Kubo node ipfs-share manages, with its repo in the ipfs-share "
        "home. A Kubo you run yourself (or docker/compose.yml) works too: pass --api.",
    )
    sub = node.add_subparsers(dest="node_command", metavar="COMMAND", required=True)

    install = sub.add_parser(
        "install",
        help=f"find or build the pinned Kubo {paths.KUBO_VERSION}",
        description=f"Find Kubo {paths.KUBO_VERSION} on PATH or in the cache, or build it "
        "with Go into the cache (several minutes the first time).",
    )
    install.add_argument("--quiet", action="store_true", help="do not show build progress")
    install.set_defaults(handler=_install)

    start = sub.add_parser(
        "start",
        help="start the managed node (creating it on first use)",
        description="Start the managed Kubo node; idempotent. On first start the repo is "
        "created on ports 5001/8080/4001, or free ones where those are taken.",
    )
    start.add_argument(
        "--public",
        action="store_true",
        help="when creating the node, join the public IPFS network (default: loopback only)",
    )
    for name in ("api", "gateway", "swarm"):
        start.add_argument(
            f"--{name}-port",
            type=int,
            metavar="N",
            help=f"{name} port (0: the OS picks one at each start)",
        )
    start.add_argument(
        "--binary", type=Path, help="the ipfs binary to run (must be the pinned version)"
    )
    start.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the API (default 60)"
    )
    start.set_defaults(handler=_start)

    stop = sub.add_parser("stop", help="stop the managed node")
    stop.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait after SIGTERM before SIGKILL (default 10)",
    )
    stop.set_defaults(handler=_stop)

    status = sub.add_parser(
        "status",
        help="show whether the managed node runs, where, and the addresses to give a peer",
        description="Show the managed node: running or not, its API, peer id and the swarm "
        "addresses another machine passes to 'ipfs-share node connect'. Exits 4 when the "
        "node is not running or does not answer.",
    )
    status.set_defaults(handler=_status)

    peers = sub.add_parser(
        "peers",
        help="list the peers the node is connected to",
        description="The peers the node (the managed one, or --api's) is connected to now, "
        "and those in its peering set (kept connected, from 'node connect').",
    )
    peers.set_defaults(handler=_peers)

    connect = sub.add_parser(
        "connect",
        help="connect to another node and keep it as a peer, across restarts",
        description="Dial ADDR now and keep reconnecting to it. On the managed node the peer "
        "is written into Kubo's Peering.Peers config, so it survives restarts (a stopped "
        "managed node connects at its next start); another node's config is not changed.",
    )
    connect.add_argument(
        "addr",
        metavar="ADDR",
        help="the other node's address, ending /p2p/<peer id> (its 'node status' prints it)",
    )
    connect.set_defaults(handler=_connect)


def _install(args: argparse.Namespace, ctx: Context) -> None:
    binary = find_kubo()
    installed_now = binary is None
    if binary is None:
        binary = install_kubo(progress=not args.quiet)
    version = kubo_version(binary)
    ctx.emit(
        {"binary": str(binary), "version": version, "installed_now": installed_now},
        f"{'installed' if installed_now else 'found'} Kubo {version} at {binary}",
    )


def _node_lines(node: RunningNode, network: str) -> list[str]:
    return [
        f"api:      {node.api_multiaddr} ({node.api_url})",
        f"gateway:  {node.gateway_url or '-'}",
        f"peer id:  {node.peer_id}",
        f"network:  {_NETWORK_TEXT.get(network, network)}",
        f"repo:     {node.repo}",
    ]


def _start(args: argparse.Namespace, ctx: Context) -> None:
    report = start_managed(
        binary=args.binary,
        api_port=args.api_port,
        gateway_port=args.gateway_port,
        swarm_port=args.swarm_port,
        public_network=args.public,
        timeout=args.timeout,
        progress=True,
    )
    node = report.node
    for note in report.notes:
        ctx.note(note)
    if node.api_multiaddr != DEFAULT_API:
        # Our own commands find it through <repo>/api; other tools need telling.
        ctx.note(f"the API is not on the default port: other tools need --api {node.api_multiaddr}")
    if report.already_running:
        head = f"Kubo is already running (pid {node.pid})"
    else:
        created = ", new repo" if report.initialized_now else ""
        head = f"started Kubo {node.version} (pid {node.pid}{created})"
    ctx.emit(
        {
            "already_running": report.already_running,
            "initialized_now": report.initialized_now,
            "pid": node.pid,
            "api": node.api_multiaddr,
            "api_url": node.api_url,
            "gateway_url": node.gateway_url,
            "peer_id": node.peer_id,
            "version": node.version,
            "network": report.network,
            "repo": str(node.repo),
            "notes": list(report.notes),
        },
        "\n".join([head, *_node_lines(node, report.network)]),
    )


def _stop(args: argparse.Namespace, ctx: Context) -> None:
    pid = stop_managed(args.timeout)
    ctx.emit(
        {"stopped": pid is not None, "pid": pid},
        f"stopped Kubo (pid {pid})" if pid is not None else "Kubo is not running",
    )


def _status_text(st: DaemonStatus) -> str:
    if not st.initialized:
        return f"not created yet (repo {st.repo}); 'ipfs-share node start' creates it"
    if not st.running:
        return "\n".join(
            [
                "Kubo is not running",
                f"peer id:  {st.peer_id}",
                f"network:  {_NETWORK_TEXT.get(st.network or '', st.network)}",
                f"repo:     {st.repo}",
                f"log:      {st.log_file}",
            ]
        )
    state = "running" if st.responding else "running, but its API does not answer"
    return "\n".join(
        [
            f"Kubo is {state} (pid {st.pid})",
            f"version:  {st.version or '-'}",
            f"api:      {st.api_multiaddr or '-'} ({st.api_url or '-'})",
            f"gateway:  {st.gateway_url or '-'}",
            f"peer id:  {st.peer_id}",
            f"network:  {_NETWORK_TEXT.get(st.network or '', st.network)}",
            f"repo:     {st.repo}",
            f"log:      {st.log_file}",
        ]
    )


def _addresses_text(addresses: list[str]) -> list[str]:
    if not addresses:
        return []
    lines = ["addresses to give a peer ('ipfs-share node connect ADDR' on the other machine):"]
    lines += [f"  {a}{' (this machine only)' if is_loopback(a) else ''}" for a in addresses]
    if all(is_loopback(a) for a in addresses):
        lines.append(
            "  (the node listens on loopback only: for another machine, create it with "
            "'ipfs-share node start --public')"
        )
    return lines


def _status(args: argparse.Namespace, ctx: Context) -> int:
    st = managed_status()
    addresses: list[str] = []
    if st.responding and st.api_url is not None:
        with contextlib.suppress(NodeUnreachableError):  # stopped between the two calls
            addresses = peer_addresses(st.api_url)[1]
    text = "\n".join([_status_text(st), *_addresses_text(addresses)])
    ctx.emit({**st.to_json(), "addresses": addresses}, text)
    return 0 if st.responding else 4  # exit 4 as node_unreachable: scripts can tell


def _target(ctx: Context) -> tuple[str | None, str, KuboDaemon | None]:
    """(API URL or None if it is down, how to name it, its daemon if it is the managed
    node): the node that peers/connect act on, found as every other command finds it."""
    home = paths.home_dir()
    daemon = managed_daemon(home=home)
    address, source = resolve_api_source(ctx.api, home=home)
    url = multiaddr_to_url(address)
    try:  # --api may name the managed node itself
        managed_api = (daemon.repo / "api").read_text(encoding="utf-8").strip()
    except OSError:
        managed_api = None
    if source == "managed" or (managed_api and multiaddr_to_url(managed_api) == url):
        return url, f"the managed node ({url})", daemon
    if source == "default" and daemon.is_initialized():
        return None, f"the managed node of {home} (not running)", daemon
    return url, f"the node at {url}, {api_source_text(source, home)}", None


def _peers(args: argparse.Namespace, ctx: Context) -> None:
    url, name, _ = _target(ctx)
    if url is None:
        raise NodeUnreachableError(f"{name}: no peers to list")
    found = list_peers(url)
    lines = [
        f"{p.peer_id}  {printable(p.address)}{'  (peering)' if p.peering else ''}" for p in found
    ]
    ctx.emit(
        {
            "node": url,
            "peers": [
                {"peer_id": p.peer_id, "address": p.address, "peering": p.peering} for p in found
            ],
        },
        "\n".join(lines) or f"{name} has no peers; 'ipfs-share node connect ADDR' adds one",
    )


def _connect(args: argparse.Namespace, ctx: Context) -> None:
    url, name, daemon = _target(ctx)
    if daemon is not None and url is None:  # a stopped managed node: its config file
        daemon = managed_daemon(find_kubo(), home=paths.home_dir())
    done = add_peer(url, args.addr, managed=daemon)
    said: list[str] = []
    if done.connected:
        said.append(f"connected {name} to {done.peer_id}")
    elif url is not None:
        said.append(f"could not connect {name} to {done.peer_id} now: {done.error}")
    if done.persisted:
        said.append(
            "kept in the node's Peering.Peers config: it reconnects after restarts"
            if url is not None
            else "written into its Peering.Peers config: it connects when it starts"
        )
    elif done.kept:
        said.append(
            "the node keeps reconnecting while it runs; its config was not changed (not the "
            "managed node): add the peer to Peering.Peers in its config to keep it"
        )
    ctx.emit(
        {
            "node": url,
            "peer_id": done.peer_id,
            "address": done.address,
            "connected": done.connected,
            "kept": done.kept,
            "persisted": done.persisted,
            "error": done.error,
        },
        "\n".join(said),
    )
