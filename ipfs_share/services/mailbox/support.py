"""What the parts of the mailbox service share: the logger, the node probe, and the events
callers subscribe to."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import Any, Literal

from ipfs_share.errors import InvalidInputError, MailboxUnsupportedError
from ipfs_share.storage.base import NodeCapabilities, Storage

log = logging.getLogger("ipfs_share.mailbox")

EVENTS = ("capsule_received", "ack_received")
Event = Literal["capsule_received", "ack_received"]
Callback = Callable[[Any], object]


class Provider:
    """The node, probed once: it must store IPNS records signed here (``name/put``)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._caps: NodeCapabilities | None = None

    async def check(self) -> NodeCapabilities:
        """The node's capabilities, or :class:`~ipfs_share.errors.MailboxUnsupportedError`
        if it cannot carry mailboxes. Without pubsub, mailboxes work but nobody is
        notified in real time (a log line says so)."""
        if self._caps is None:
            caps = await self.storage.capabilities()
            if not caps.ipns_put:
                raise MailboxUnsupportedError(
                    "expected a node that stores IPNS records signed elsewhere (name/put), "
                    "found one that cannot; a mailbox head is published that way"
                )
            if not caps.pubsub:
                log.info("pubsub is off on the node: sends carry no real-time notice")
            if not caps.online:
                log.info("the node is offline: mailboxes reach only readers of this node")
            self._caps = caps
        return self._caps


class Events:
    """Subscribers to ``capsule_received`` (an InboxItem) and ``ack_received`` (an
    OutgoingCapsule), plain or async callables."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callback]] = {e: [] for e in EVENTS}

    def subscribe(self, event: Event, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` on ``event``; returns a function that unsubscribes."""
        if event not in self._subscribers:
            raise InvalidInputError(f"expected an event in {EVENTS}, found {event!r:.40}")
        self._subscribers[event].append(callback)
        return lambda: self.unsubscribe(event, callback)

    def unsubscribe(self, event: Event, callback: Callback) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._subscribers[event].remove(callback)

    async def emit(self, event: Event, payload: object) -> None:
        for callback in list(self._subscribers[event]):
            try:
                result = callback(payload)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a subscriber's bug must not stop delivery
                log.exception("a %s subscriber failed", event)
