"""``ipfs-share cluster install|up|status|down|replication``: a local IPFS Cluster.

::

    $ ipfs-share cluster up --peers 3
    created and started a 3-peer cluster in ~/.local/share/ipfs-share/cluster
    peer0   12D3KooW...  rest http://127.0.0.1:41234  kubo http://127.0.0.1:41240  ...  running
    ...
    $ ipfs-share --cluster local put --replication 2 report.pdf
    $ ipfs-share --cluster local files          # where each file is pinned
    $ ipfs-share cluster down                   # stops what 'up' started, by pid

Each peer is its own Kubo node and its own ``ipfs-cluster-service`` (crdt consensus), all on
127.0.0.1. A cluster you run elsewhere works the same: pass a peer's REST API with
``--cluster URL`` and its peers' Kubo RPC APIs in ``IPFS_SHARE_CLUSTER_KUBO``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ipfs_share import paths
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.client import home_replication, set_home_replication
from ipfs_share.node.cluster import MAX_PEERS, ClusterPeer, LocalCluster
from ipfs_share.node.cluster_install import find_cluster, install_cluster

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    cluster = subparsers.add_parser(
        "cluster",
        help="run a local IPFS Cluster (development, tests) and set the home's replication",
        description="A local IPFS Cluster on 127.0.0.1: each peer its own Kubo and "
        "ipfs-cluster-service. Use it with the global option --cluster local.",
    )
    sub = cluster.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)

    install = sub.add_parser(
        "install",
        help=f"find or build IPFS Cluster {paths.CLUSTER_VERSION}",
        description="Find ipfs-cluster-service and ipfs-cluster-ctl "
        f"{paths.CLUSTER_VERSION} on PATH or in the cache, or build them with Go into the "
        "cache (a few minutes the first time).",
    )
    install.add_argument("--quiet", action="store_true", help="do not show build progress")
    install.set_defaults(handler=_install)

    up = sub.add_parser(
        "up",
        help="create (the first time) and start the local cluster",
        description="Create the local cluster if there is none, start what of it is not "
        "running, and wait until every peer can take pins. Idempotent.",
    )
    up.add_argument(
        "--peers",
        type=int,
        metavar="N",
        help=f"peers of a new cluster, 1 to {MAX_PEERS} (default 3; an existing one keeps its own)",
    )
    _dir_option(up)
    up.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the peers (default 120)"
    )
    up.set_defaults(handler=_up)

    status = sub.add_parser("status", help="show the local cluster's peers and whether they run")
    _dir_option(status)
    status.set_defaults(handler=_status)

    down = sub.add_parser(
        "down",
        help="stop the local cluster (only what 'up' started, by pid)",
        description="Stop every daemon of the local cluster: SIGTERM to each pid it "
        "recorded (after checking the pid is still that daemon), SIGKILL after --timeout.",
    )
    _dir_option(down)
    down.add_argument(
        "--timeout", type=float, default=10.0, help="seconds before SIGKILL (default 10)"
    )
    down.add_argument(
        "--remove",
        action="store_true",
        help="also delete the cluster's folder (its keys, pins and data)",
    )
    down.set_defaults(handler=_down)

    replication = sub.add_parser(
        "replication",
        help="show or set how many copies this home asks a cluster for",
        description="The number of peers each file put from this home is pinned on when "
        "put does not say (--replication N). Without one, the cluster's own setting.",
    )
    group = replication.add_mutually_exclusive_group()
    group.add_argument("copies", type=int, nargs="?", metavar="N", help="copies from now on")
    group.add_argument("--clear", action="store_true", help="leave it to the cluster again")
    replication.set_defaults(handler=_replication)


def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="the cluster's folder (default: <home>/cluster)",
    )


def _cluster(args: argparse.Namespace) -> LocalCluster:
    folder: Path | None = getattr(args, "dir", None)
    return LocalCluster(folder or paths.cluster_dir())


def _install(args: argparse.Namespace, ctx: Context) -> None:
    found = find_cluster()
    installed_now = found is None
    if found is None:
        found = install_cluster(progress=not args.quiet)
    ctx.emit(
        {
            "service": str(found.service),
            "ctl": str(found.ctl),
            "version": found.version,
            "installed_now": installed_now,
        },
        f"{'installed' if installed_now else 'found'} IPFS Cluster {found.version} in "
        f"{found.service.parent}",
    )


def _peer_line(peer: ClusterPeer) -> str:
    state = "running" if peer.running and peer.responding else "stopped"
    if peer.running and not peer.responding:
        state = "running, its REST API does not answer"
    elif not peer.running and (peer.service_pid or peer.kubo_pid):
        state = "partly running"
    return (
        f"{peer.name:<7} {peer.peer_id}  rest {peer.rest_url}  kubo {peer.kubo_api_url}  "
        f"pinsvc {peer.pinsvc_url}  {state}"
    )


def _report(cluster: LocalCluster, peers: list[ClusterPeer]) -> dict[str, object]:
    rest, kubo = cluster.endpoints()
    return {
        "dir": str(cluster.folder),
        "peers": [p.to_json() for p in peers],
        "rest": rest,
        "kubo": kubo,
        "token_file": str(cluster.folder / "pinsvc.token"),
    }


def _up(args: argparse.Namespace, ctx: Context) -> None:
    cluster = _cluster(args)
    created = not cluster.exists()
    peers = cluster.up(args.peers, timeout=args.timeout, progress=not ctx.json)
    head = (
        f"{'created and started' if created else 'started'} a {len(peers)}-peer cluster "
        f"in {cluster.folder}"
    )
    lines = [head, *(_peer_line(p) for p in peers)]
    _, kubo = cluster.endpoints()
    lines.append(
        f"use it with: ipfs-share --cluster local ... (or --cluster {peers[0].rest_url} and "
        f"IPFS_SHARE_CLUSTER_KUBO={','.join(kubo)})"
    )
    ctx.emit({"created": created, **_report(cluster, peers)}, "\n".join(lines))


def _status(args: argparse.Namespace, ctx: Context) -> None:
    cluster = _cluster(args)
    if not cluster.exists():
        ctx.emit(
            {"dir": str(cluster.folder), "exists": False, "peers": []},
            f"no local cluster in {cluster.folder}; 'ipfs-share cluster up' creates one",
        )
        return
    peers = cluster.status()
    running = sum(p.running and p.responding for p in peers)
    lines = [f"{running} of {len(peers)} peers running ({cluster.folder})"]
    lines.extend(_peer_line(p) for p in peers)
    ctx.emit({"exists": True, "running": running, **_report(cluster, peers)}, "\n".join(lines))


def _down(args: argparse.Namespace, ctx: Context) -> None:
    cluster = _cluster(args)
    stopped = cluster.down(timeout=args.timeout, remove=args.remove)
    removed = f"; removed {cluster.folder}" if args.remove else ""
    text = (
        f"stopped {len(stopped)} daemons (pids {', '.join(map(str, stopped))}){removed}"
        if stopped
        else f"nothing of the cluster was running{removed}"
    )
    ctx.emit({"stopped": stopped, "removed": bool(args.remove)}, text)


def _replication(args: argparse.Namespace, ctx: Context) -> None:
    home = paths.home_dir()
    if args.clear or args.copies is not None:
        set_home_replication(home, None if args.clear else args.copies)
    copies = home_replication(home)
    ctx.emit(
        {"replication": copies},
        f"files put to a cluster get {copies} cop{'y' if copies == 1 else 'ies'}"
        if copies is not None
        else "files put to a cluster get as many copies as the cluster's own setting says",
    )
