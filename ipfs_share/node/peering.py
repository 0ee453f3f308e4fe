"""Two nodes that find each other: the swarm addresses to give a peer, the peers a node
has, and a peer added for good (Kubo's ``Peering.Peers``).

A node on a local network does not find another through the public DHT; it needs the
other's address. ``node status`` on one machine prints it, ``node connect ADDR`` on the
other dials it now (``swarm/connect``), asks the running node to keep reconnecting
(``swarm/peering/add``) and, on the node ipfs-share manages, writes it into the
``Peering.Peers`` config so that it survives restarts. A node ipfs-share does not manage
is not reconfigured: :class:`PeerAdded` says what was and was not done.

Synchronous, like the rest of :mod:`ipfs_share.node` (from async code use
``asyncio.to_thread``).

>>> peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
>>> split_peer_addr(f"/ip4/10.0.0.2/tcp/4001/p2p/{peer}") == (peer, "/ip4/10.0.0.2/tcp/4001")
True
>>> is_loopback("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWAbc"), is_loopback("/ip4/10.0.0.2/tcp/1")
(True, False)
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ipfs_share.errors import (
    InvalidInputError,
    NodeRequestError,
    NodeUnreachableError,
)
from ipfs_share.node.daemon import KuboDaemon

__all__ = [
    "PeerAdded",
    "SwarmPeer",
    "add_peer",
    "is_loopback",
    "list_peers",
    "peer_addresses",
    "split_peer_addr",
]

# Requests to a loopback daemon must never go through an HTTP(S)_PROXY from the env.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_PEER_ID = re.compile(r"^(12D3Koo|Qm|k51|bafz)[1-9A-HJ-NP-Za-km-z]{20,80}$|^[a-z2-7]{50,70}$")
_ADDR_HINT = (
    "give the address 'ipfs-share node status' prints on the other machine, such as "
    "/ip4/192.168.1.20/tcp/4001/p2p/12D3KooW..."
)


@dataclass(frozen=True, slots=True)
class SwarmPeer:
    """A peer the node is connected to, and whether it is in the node's peering set."""

    peer_id: str
    address: str
    peering: bool


@dataclass(frozen=True, slots=True)
class PeerAdded:
    """What :func:`add_peer` did: ``connected`` (dialled now), ``kept`` (the running node
    keeps reconnecting), ``persisted`` (in ``Peering.Peers``: survives restarts)."""

    peer_id: str
    address: str
    connected: bool
    kept: bool
    persisted: bool
    error: str | None  # why the dial failed, when it did


def split_peer_addr(addr: str) -> tuple[str, str]:
    """(peer id, transport address) of ``/.../p2p/<id>``; a clear error for anything else."""
    text = addr.strip()
    head, sep, peer_id = text.rpartition("/p2p/")
    if not sep or not text.startswith("/") or "/" in peer_id:
        raise InvalidInputError(
            f"expected a multiaddr ending /p2p/<peer id>, found {addr!r:.120}", hint=_ADDR_HINT
        )
    if not _PEER_ID.match(peer_id):
        raise InvalidInputError(
            f"expected a peer id such as 12D3KooW... after /p2p/, found {peer_id!r:.80}",
            hint=_ADDR_HINT,
        )
    if not head or len(head.split("/")) < 3:
        raise InvalidInputError(
            f"expected a transport address before /p2p/ (such as /ip4/HOST/tcp/PORT), "
            f"found {head!r:.80}",
            hint=_ADDR_HINT,
        )
    return peer_id, head


def is_loopback(addr: str) -> bool:
    """True for an address only this machine can dial (127.0.0.0/8, ::1, localhost)."""
    parts = addr.split("/")
    return len(parts) > 2 and (
        (parts[1] == "ip4" and parts[2].startswith("127."))
        or (parts[1] == "ip6" and parts[2] == "::1")
        or (parts[1].startswith("dns") and parts[2] == "localhost")
    )


def _call(url: str, command: str, args: list[tuple[str, str]] | None = None) -> Any:
    """POST one RPC call to the node at ``url`` and return its JSON answer (None if empty)."""
    query = urllib.parse.urlencode(args or [])
    request = urllib.request.Request(  # noqa: S310 - url comes from multiaddr_to_url
        f"{url}/api/v0/{command}" + (f"?{query}" if query else ""), data=b"", method="POST"
    )
    try:
        with _OPENER.open(request, timeout=30) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        message = exc.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(message).get("Message", message))
        raise NodeRequestError(f"{command} on the node at {url}: {message[:300]}") from exc
    except (OSError, urllib.error.URLError) as exc:
        raise NodeUnreachableError(f"no Kubo node answered at {url} ({command})") from exc
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise NodeRequestError(f"{command} on the node at {url}: expected JSON") from exc


def peer_addresses(url: str) -> tuple[str, list[str]]:
    """(peer id, the addresses to give a peer, each ending ``/p2p/<id>``; loopback last)."""
    ident = _call(url, "id") or {}
    peer_id = str(ident.get("ID", ""))
    addrs = [str(a) for a in ident.get("Addresses") or []]
    full = [a if "/p2p/" in a else f"{a}/p2p/{peer_id}" for a in addrs]
    return peer_id, sorted(dict.fromkeys(full), key=is_loopback)


def list_peers(url: str) -> list[SwarmPeer]:
    """The peers the node at ``url`` is connected to (and its peering set's, connected or not)."""
    peering = _call(url, "swarm/peering/ls") or {}
    kept = {str(p.get("ID")): p for p in peering.get("Peers") or []}
    swarm = _call(url, "swarm/peers") or {}
    found = [
        SwarmPeer(str(p.get("Peer")), str(p.get("Addr")), str(p.get("Peer")) in kept)
        for p in swarm.get("Peers") or []
    ]
    seen = {p.peer_id for p in found}
    for peer_id, entry in kept.items():
        if peer_id not in seen:  # in the set, not connected right now
            addrs = entry.get("Addrs") or ["-"]
            found.append(SwarmPeer(peer_id, f"{addrs[0]} (not connected)", True))
    return found


def _merged(peers: list[Any], peer_id: str, address: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [dict(p) for p in peers if isinstance(p, dict)]
    for entry in out:
        if entry.get("ID") == peer_id:
            addrs = [str(a) for a in entry.get("Addrs") or []]
            entry["Addrs"] = list(dict.fromkeys([*addrs, address]))
            return out
    out.append({"ID": peer_id, "Addrs": [address]})
    return out


def add_peer(url: str | None, addr: str, *, managed: KuboDaemon | None = None) -> PeerAdded:
    """Connect the node at ``url`` (None: not running) to ``addr`` now and keep it a peer.

    With ``managed`` (the daemon of the node ipfs-share manages), the peer also goes into
    its ``Peering.Peers``: through the config API while it runs, into the config file
    when it is stopped. Another node's config is left alone."""
    peer_id, transport = split_peer_addr(addr)
    if url is None and managed is None:
        raise NodeUnreachableError("no node to connect: none is running")
    connected, kept, error = False, False, None
    if url is not None:
        try:
            _call(url, "swarm/connect", [("arg", addr.strip())])
            connected = True
        except NodeRequestError as exc:
            error = exc.message  # an offline peer: still worth keeping
        try:
            _call(url, "swarm/peering/add", [("arg", addr.strip())])
            kept = True
        except NodeRequestError as exc:
            if "already" not in exc.message:
                raise
            kept = True
    persisted = False
    if managed is not None:
        if url is not None:
            current = (_call(url, "config", [("arg", "Peering")]) or {}).get("Value") or {}
            peers = _merged(list(current.get("Peers") or []), peer_id, transport)
            _call(
                url,
                "config",
                [("arg", "Peering.Peers"), ("arg", json.dumps(peers)), ("json", "true")],
            )
        else:
            config = managed.config()
            peers = _merged(
                list((config.get("Peering") or {}).get("Peers") or []), peer_id, transport
            )
            managed.set_config("Peering.Peers", peers)
        persisted = True
    return PeerAdded(peer_id, transport, connected, kept, persisted, error)
