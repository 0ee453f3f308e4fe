"""The agent's event bus: everything that happens, in order, with ids that only grow.

Each event gets the next id (1, 2, 3, ...) and goes to every subscriber and into a ring
of the last :data:`RING_SIZE` events. A subscriber that reconnects names the last id it
saw and gets what it missed from the ring (Server-Sent Events' ``Last-Event-ID``); if the
ring no longer reaches back that far it is told so (``missed`` is True). Memory stays
bounded: the ring has a fixed size, and a subscriber that falls :data:`QUEUE_SIZE`
events behind is cut off (it reconnects and resumes from the ring).

>>> import asyncio
>>> async def demo() -> list[tuple[int, str]]:
...     bus = EventBus()
...     bus.publish("capsule_received", {"id": "bafy..."})
...     async with bus.subscribe(last_id=0) as events:
...         bus.publish("ack_received", {"id": "bafy..."})
...         return [(e.id, e.type) for e in [await anext(events), await anext(events)]]
>>> asyncio.run(demo())
[(1, 'capsule_received'), (2, 'ack_received')]
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["QUEUE_SIZE", "RING_SIZE", "Event", "EventBus", "Subscription", "SubscriptionOverflow"]

RING_SIZE = 1024
QUEUE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "type": self.type, "data": self.data, "at": self.at}


class SubscriptionOverflow(Exception):
    """The subscriber fell too far behind and was cut off (resume with its last id)."""


class Subscription:
    """An async iterator of events; ``missed`` says the ring could not replay everything
    since the id asked for."""

    def __init__(self, bus: EventBus, backlog: list[Event], missed: bool, size: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(max(size, len(backlog) + 1))
        for event in backlog:
            self._queue.put_nowait(event)
        self.missed = missed
        self.overflowed = False

    def _offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._bus._drop(self)
            while not self._queue.empty():  # free the backlog now; a None ends iteration
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise SubscriptionOverflow("the subscriber fell behind; resume from its last id")
        return event

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._bus._drop(self)


class EventBus:
    def __init__(
        self,
        *,
        ring_size: int = RING_SIZE,
        queue_size: int = QUEUE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ring: deque[Event] = deque(maxlen=ring_size)
        self._queue_size = queue_size
        self._subscribers: list[Subscription] = []
        self._last = 0
        self._clock = clock

    @property
    def last_id(self) -> int:
        return self._last

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, type: str, data: dict[str, Any] | None = None) -> Event:
        self._last += 1
        event = Event(self._last, type, dict(data or {}), round(self._clock(), 3))
        self._ring.append(event)
        for sub in list(self._subscribers):
            sub._offer(event)
        return event

    def since(self, last_id: int) -> tuple[list[Event], bool]:
        """The events after ``last_id`` still in the ring, and whether some were lost
        (also when ``last_id`` is beyond the last one: an id from before a restart)."""
        if last_id > self._last:
            return list(self._ring), True
        backlog = [e for e in self._ring if e.id > last_id]
        first = backlog[0].id if backlog else self._last + 1
        return backlog, first > last_id + 1

    def subscribe(self, last_id: int | None = None) -> Subscription:
        """New events from now on; with ``last_id``, first those after it from the ring."""
        backlog, missed = ([], False) if last_id is None else self.since(last_id)
        sub = Subscription(self, backlog, missed, self._queue_size)
        self._subscribers.append(sub)
        return sub

    def _drop(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
