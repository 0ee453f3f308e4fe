"""Kubo on this machine: install the pinned binary, run daemons, find the node's API.

- :mod:`~ipfs_share.node.install`: :func:`find_kubo`, :func:`install_kubo`, :func:`kubo_version`
- :mod:`~ipfs_share.node.daemon`: :class:`KuboDaemon` (one repo, one daemon process)
- :mod:`~ipfs_share.node.managed`: the node ``ipfs-share node start`` runs
- :mod:`~ipfs_share.node.discovery`: :func:`resolve_api`, :func:`multiaddr_to_url`,
  :func:`probe_api`
- :mod:`~ipfs_share.node.ports`: :class:`NodePorts`, free-port helpers

>>> from ipfs_share.node import resolve_api, multiaddr_to_url
>>> multiaddr_to_url(resolve_api("/ip4/127.0.0.1/tcp/5001"))
'http://127.0.0.1:5001'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipfs_share.node.daemon import DaemonStatus, KuboDaemon, RunningNode
    from ipfs_share.node.discovery import (
        API_ENV,
        DEFAULT_API,
        multiaddr_to_url,
        probe_api,
        resolve_api,
        resolve_api_source,
        url_to_multiaddr,
    )
    from ipfs_share.node.install import cached_kubo_path, find_kubo, install_kubo, kubo_version
    from ipfs_share.node.managed import (
        StartReport,
        managed_daemon,
        managed_status,
        start_managed,
        stop_managed,
    )
    from ipfs_share.node.ports import (
        DEFAULT_PORTS,
        NodePorts,
        choose_ports,
        free_port,
        port_is_free,
    )

__all__ = [
    "API_ENV",
    "DEFAULT_API",
    "DEFAULT_PORTS",
    "DaemonStatus",
    "KuboDaemon",
    "NodePorts",
    "RunningNode",
    "StartReport",
    "cached_kubo_path",
    "choose_ports",
    "find_kubo",
    "free_port",
    "install_kubo",
    "kubo_version",
    "managed_daemon",
    "managed_status",
    "multiaddr_to_url",
    "port_is_free",
    "probe_api",
    "resolve_api",
    "resolve_api_source",
    "start_managed",
    "stop_managed",
    "url_to_multiaddr",
]

# Each name's submodule, imported when the name is first asked for: finding the node's API
# (node.discovery, on every command's path) does not load the daemon and installer code.
_WHERE = {
    "DaemonStatus": "daemon",
    "KuboDaemon": "daemon",
    "RunningNode": "daemon",
    "API_ENV": "discovery",
    "DEFAULT_API": "discovery",
    "multiaddr_to_url": "discovery",
    "probe_api": "discovery",
    "resolve_api": "discovery",
    "resolve_api_source": "discovery",
    "url_to_multiaddr": "discovery",
    "cached_kubo_path": "install",
    "find_kubo": "install",
    "install_kubo": "install",
    "kubo_version": "install",
    "StartReport": "managed",
    "managed_daemon": "managed",
    "managed_status": "managed",
    "start_managed": "managed",
    "stop_managed": "managed",
    "DEFAULT_PORTS": "ports",
    "NodePorts": "ports",
    "choose_ports": "ports",
    "free_port": "ports",
    "port_is_free": "ports",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
