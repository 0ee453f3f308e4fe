"""The three TCP ports of a Kubo node, and picking free ones.

>>> ports, notes = choose_ports(NodePorts(api=0, gateway=0, swarm=0))
>>> ports, notes
(NodePorts(api=0, gateway=0, swarm=0), [])

A port of 0 means "let the OS pick one each time the daemon starts"; Kubo then writes the
address it got to ``$IPFS_PATH/api`` (that is race-free, so the test fixtures use it).
"""

from __future__ import annotations

import socket
from contextlib import ExitStack
from dataclasses import dataclass, fields

from ipfs_share.errors import InvalidInputError

__all__ = [
    "DEFAULT_PORTS",
    "NodePorts",
    "choose_ports",
    "free_port",
    "free_ports",
    "port_is_free",
]


@dataclass(frozen=True)
class NodePorts:
    """TCP ports for the RPC API, the HTTP gateway and the libp2p swarm (0: OS picks)."""

    api: int = 0
    gateway: int = 0
    swarm: int = 0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 65536:
                raise InvalidInputError(
                    f"expected the {field.name} port to be an integer in 0..65535, found {value!r}",
                    hint="give a port between 1 and 65535 (0 lets the OS pick one)",
                )


# Kubo's own defaults: what a user and other tools expect to find.
DEFAULT_PORTS = NodePorts(api=5001, gateway=8080, swarm=4001)


def _bind(port: int, host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Kubo (Go) listens with SO_REUSEADDR, so a port in TIME_WAIT is free for it too.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if a TCP listener could bind ``host:port`` right now."""
    try:
        _bind(port, host).close()
    except OSError:
        return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS says is free now (another process may take it before you do)."""
    with _bind(0, host) as sock:
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports the OS says are free now (each probe socket is held
    until all are chosen, so no two are the same)."""
    with ExitStack() as held:
        return [held.enter_context(_bind(0, host)).getsockname()[1] for _ in range(count)]


def choose_ports(
    preferred: NodePorts = DEFAULT_PORTS, *, swarm_host: str = "127.0.0.1"
) -> tuple[NodePorts, list[str]]:
    """Keep each preferred port that is free, replace each busy one by a free one.

    Returns the ports and one note per replacement, such as
    ``"port 5001 (api) is in use; using 41234"``. Ports of 0 stay 0.
    """
    chosen: dict[str, int] = {}
    notes: list[str] = []
    # Hold every probe socket open until all three are chosen, so no two get the same port.
    with ExitStack() as held:
        for field in fields(preferred):
            want: int = getattr(preferred, field.name)
            host = swarm_host if field.name == "swarm" else "127.0.0.1"
            if want == 0:
                chosen[field.name] = 0
                continue
            try:
                held.enter_context(_bind(want, host))
                chosen[field.name] = want
            except OSError:
                sock = held.enter_context(_bind(0, host))
                chosen[field.name] = sock.getsockname()[1]
                notes.append(f"port {want} ({field.name}) is in use; using {chosen[field.name]}")
    return NodePorts(**chosen), notes
