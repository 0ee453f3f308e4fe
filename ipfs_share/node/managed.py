"""The node ipfs-share manages itself: one Kubo repo in the ipfs-share home.

What ``ipfs-share node start|stop|status`` do, as functions. The repo lives at
:func:`ipfs_share.paths.kubo_repo_dir`; on first start it is initialized on Kubo's default
ports 5001/8080/4001 where they are free and on free ports where not (the report says
which). While it runs Kubo writes ``<repo>/api``, which is how
:func:`~ipfs_share.node.discovery.resolve_api` finds it.

>>> from ipfs_share.node.managed import start_managed, stop_managed
>>> report = start_managed()             # doctest: +SKIP
>>> report.node.api_multiaddr            # doctest: +SKIP
'/ip4/127.0.0.1/tcp/5001'
>>> stop_managed()                       # doctest: +SKIP
12345
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ipfs_share import paths
from ipfs_share.errors import NodeManagementError
from ipfs_share.local.home import prepare_home
from ipfs_share.node.daemon import DaemonStatus, KuboDaemon, RunningNode
from ipfs_share.node.install import find_kubo, install_kubo
from ipfs_share.node.ports import DEFAULT_PORTS, NodePorts, choose_ports, port_is_free

__all__ = ["StartReport", "managed_daemon", "managed_status", "start_managed", "stop_managed"]


@dataclass(frozen=True)
class StartReport:
    """What :func:`start_managed` did."""

    node: RunningNode
    already_running: bool
    initialized_now: bool
    network: str
    notes: tuple[str, ...]


def managed_daemon(binary: Path | None = None, *, home: Path | None = None) -> KuboDaemon:
    """The :class:`KuboDaemon` of the managed repo (``binary`` only needed to start it)."""
    return KuboDaemon(paths.kubo_repo_dir(home), binary)


def _requested(
    base: NodePorts, api: int | None, gateway: int | None, swarm: int | None
) -> NodePorts:
    return NodePorts(
        api=base.api if api is None else api,
        gateway=base.gateway if gateway is None else gateway,
        swarm=base.swarm if swarm is None else swarm,
    )


def start_managed(
    *,
    binary: Path | None = None,
    api_port: int | None = None,
    gateway_port: int | None = None,
    swarm_port: int | None = None,
    public_network: bool = False,
    timeout: float = 60.0,
    progress: bool = True,
    home: Path | None = None,
) -> StartReport:
    """Start the managed node (installing Kubo and initializing the repo if needed).

    Idempotent: if it already runs, reports that. Port arguments are used as given
    (a busy one is an error); the defaults that are busy are replaced by free ports.
    On a repo that exists, port arguments reconfigure the stopped node;
    ``public_network`` only applies when the repo is created.
    """
    notes: list[str] = []
    # Validates the numbers first (InvalidInputError), before any socket sees them.
    preferred = _requested(DEFAULT_PORTS, api_port, gateway_port, swarm_port)
    daemon = managed_daemon(home=home)
    explicit = (api_port, gateway_port, swarm_port) != (None, None, None)
    if daemon.running_pid() is not None:
        if explicit:
            notes.append("the node is already running; port options ignored (stop it first)")
        node = daemon.wait_ready(timeout)
        return StartReport(node, True, False, daemon.network() or "local", tuple(notes))

    if binary is None:
        binary = find_kubo()
        if binary is None:
            if progress:
                print(
                    f"ipfs-share: Kubo {paths.KUBO_VERSION} not found; building it "
                    "(several minutes the first time)",
                    file=sys.stderr,
                )
            binary = install_kubo(progress=progress)
    daemon = managed_daemon(binary, home=home)
    prepare_home(home or paths.home_dir())  # the repo goes inside: the home is private first

    initialized_now = False
    if not daemon.is_initialized():
        swarm_host = "0.0.0.0" if public_network else "127.0.0.1"  # noqa: S104
        # Only the defaults may move: a port the user asked for is theirs or an error.
        for name, port in (("api", api_port), ("gateway", gateway_port), ("swarm", swarm_port)):
            host = swarm_host if name == "swarm" else "127.0.0.1"
            if port and not port_is_free(port, host):
                raise NodeManagementError(
                    f"expected the {name} port {port} to be free, found it in use",
                    hint=f"choose another port, or leave out --{name}-port to get a free one",
                )
        ports, moved = choose_ports(preferred, swarm_host=swarm_host)
        notes.extend(moved)
        daemon.init(ports=ports, public_network=public_network)
        initialized_now = True
    else:
        if public_network and daemon.network() != "public":
            notes.append(
                "the node was created for the local network; --public applies only when "
                f"the repo is created (remove {daemon.repo} to recreate it, losing its keys)"
            )
        if explicit:
            current = daemon.configured_ports()
            wanted = _requested(current, api_port, gateway_port, swarm_port)
            if wanted != current:
                daemon.set_ports(wanted)
                notes.append(f"ports changed to {_describe(wanted)}")

    daemon.start()
    node = daemon.wait_ready(timeout)
    return StartReport(node, False, initialized_now, daemon.network() or "local", tuple(notes))


def _describe(ports: NodePorts) -> str:
    return f"api {ports.api}, gateway {ports.gateway}, swarm {ports.swarm}"


def stop_managed(timeout: float = 10.0, *, home: Path | None = None) -> int | None:
    """Stop the managed node; its pid, or None if it was not running."""
    return managed_daemon(home=home).stop(timeout)


def managed_status(*, home: Path | None = None) -> DaemonStatus:
    return managed_daemon(home=home).status()
