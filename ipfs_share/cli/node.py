"""``ipfs-share node install|start|stop|status``: the Kubo node ipfs-share manages.

::

    $ ipfs-share node start
    started Kubo v0.43.0 (pid 4242), local network only (loopback, no bootstrap peers)
    api:      /ip4/127.0.0.1/tcp/5001 (http://127.0.0.1:5001)
    ...
    $ ipfs-share node status --json
    {"api": "/ip4/127.0.0.1/tcp/5001", "running": true, ...}
    $ ipfs-share node stop
    stopped Kubo (pid 4242)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ipfs_share import paths
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.node.daemon import DaemonStatus, RunningNode
from ipfs_share.node.discovery import DEFAULT_API
from ipfs_share.node.install import find_kubo, install_kubo, kubo_version
from ipfs_share.node.managed import managed_status, start_managed, stop_managed

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

    status = sub.add_parser("status", help="show whether the managed node runs, and where")
    status.set_defaults(handler=_status)


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


def _status(args: argparse.Namespace, ctx: Context) -> None:
    st = managed_status()
    ctx.emit(st.to_json(), _status_text(st))
