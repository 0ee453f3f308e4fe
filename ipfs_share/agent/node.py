"""The node under the agent: probed, and waited for with a backoff when it goes away.

A Kubo node restarts (an upgrade, a crash, a container recreated); the agent must not. The
supervisor probes the node (``id``) every :attr:`NodeSupervisor.probe_every` seconds
while it answers, and, once it does not, every 0.5 s doubling to 30 s until it answers
again, saying so in the log both ways. Whoever depends on the node registers ``on_up``
and ``on_down``: the agent stops its watches when the node goes (their pubsub
subscriptions died with it) and starts them again when it is back. ``suspect()`` asks for
a probe now (a watch saw its stream end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ipfs_share.errors import IpfsShareError, NodeVersionError
from ipfs_share.storage.base import NodeInfo, Storage
from ipfs_share.storage.kubo import check_kubo_version

__all__ = ["NodeState", "NodeSupervisor"]

log = logging.getLogger("ipfs_share.agent")

PROBE_TIMEOUT = 10.0


@dataclass
class NodeState:
    url: str
    up: bool | None = None  # None: not probed yet
    since: float | None = None  # when ``up`` last changed
    peer_id: str | None = None
    version: str | None = None
    reconnects: int = 0  # how many times it came back after being down
    error: str | None = None  # why the last probe failed

    def to_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "up": self.up,
            "since": None if self.since is None else int(self.since),
            "peer_id": self.peer_id,
            "version": self.version,
            "reconnects": self.reconnects,
            "error": self.error,
        }


class NodeSupervisor:
    def __init__(
        self,
        storage: Storage,
        url: str,
        *,
        on_up: Callable[[], None],
        on_down: Callable[[], None],
        probe_every: float = 5.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.state = NodeState(url)
        self._on_up = on_up
        self._on_down = on_down
        self.probe_every = probe_every
        self._backoff = (backoff_min, backoff_max)
        self._now = now
        self._poke = asyncio.Event()
        self.up = asyncio.Event()

    def suspect(self) -> None:
        """Probe now rather than at the next tick."""
        self._poke.set()

    async def run(self) -> None:
        low, high = self._backoff
        delay = low
        while True:
            try:
                info = await asyncio.wait_for(self.storage.node_info(), PROBE_TIMEOUT)
                check_kubo_version(info.version)
            except NodeVersionError:
                raise  # not a node we can work with: no amount of waiting helps
            except (IpfsShareError, TimeoutError) as exc:
                message = getattr(exc, "message", None) or "no answer in time"
                self._went_down(message, delay)
                wait, delay = delay, min(delay * 2, high)
            else:
                self._came_up(info)
                wait, delay = self.probe_every, low
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), wait)

    def _came_up(self, info: NodeInfo) -> None:
        state = self.state
        state.peer_id, state.version, state.error = info.peer_id, info.version, None
        if state.up:
            return
        if state.up is False:
            state.reconnects += 1
            log.warning(
                "the node at %s is back (down %.0f s); resuming",
                state.url,
                self._now() - (state.since or self._now()),
            )
        else:
            log.info(
                "the node at %s answers (Kubo %s, peer %s)", state.url, info.version, info.peer_id
            )
        state.up, state.since = True, self._now()
        self.up.set()
        self._on_up()

    def _went_down(self, message: str, retry_in: float) -> None:
        state = self.state
        state.error = message
        if state.up is not False:
            log.warning("the node at %s is unreachable (%s); reconnecting", state.url, message)
            state.up, state.since = False, self._now()
            self.up.clear()
            self._on_down()
        log.info("node: next attempt in %.1f s", retry_in)
