"""A memo of a pure function's recent results: bounded in entries and in time.

A bulk read (an inbox sync of thousands of entries) meets each CID two or three times
within seconds, and each did on every entry it signed: remembered, the repeats cost a
dict lookup. A long-running process (the agent) meets new CIDs for as long as it runs,
each in one short burst, so a plain LRU of a few thousand entries fills with CIDs that
never come back and only stops growing once full. :class:`Recent` forgets those after
``ttl`` seconds instead.

Two generations: results go into the current one; when it holds ``size`` entries, or at
the first call ``ttl`` seconds after it began, it becomes the previous one and the
previous one is dropped (both are, if the current one is more than ``2 * ttl`` old: a
pause). A result found in the previous one moves back into the current one. So there are
never more than ``2 * size`` entries, and one not used again is gone by the first call
``3 * ttl`` seconds after it was made (an idle process keeps what it had, within the same
bound in entries). A call that raises is not remembered.

>>> t = [0.0]
>>> calls = []
>>> double = Recent(lambda x: calls.append(x) or 2 * x, size=2, ttl=10, clock=lambda: t[0])
>>> [double(x) for x in (1, 1, 2, 3)], calls  # the 3 begins a new generation
([2, 2, 4, 6], [1, 2, 3])
>>> len(double), double(1), calls  # 1 was in the previous one: it moves back
(3, 2, [1, 2, 3])
>>> t[0] = 12.0  # a ttl later: a new generation; 2, unused for a whole one, is dropped
>>> double(1), sorted(double.keys())
(2, [1, 3])
>>> t[0] = 40.0  # a pause: everything from before it is dropped
>>> double(1), sorted(double.keys()), calls
(2, [1], [1, 2, 3, 1])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Recent"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class Recent(Generic[K, V]):
    def __init__(
        self,
        fn: Callable[[K], V],
        *,
        size: int,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.__wrapped__ = fn
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._current: dict[K, V] = {}
        self._previous: dict[K, V] = {}
        self._turn_at = clock() + ttl

    def __call__(self, key: K) -> V:
        if self._clock() >= self._turn_at:
            self._turn()
        try:
            return self._current[key]
        except KeyError:
            pass
        found = self._previous.pop(key, _MISSING)
        value: V = self.__wrapped__(key) if found is _MISSING else found  # type: ignore[assignment]
        if len(self._current) >= self.size:
            self._turn()
        self._current[key] = value
        return value

    def _turn(self) -> None:
        now = self._clock()
        stale = now >= self._turn_at + self.ttl  # the current one began over 2 * ttl ago
        self._previous, self._current = ({} if stale else self._current), {}
        self._turn_at = now + self.ttl

    def remember(self, key: K, value: V) -> None:
        """Keep ``value`` as the result for ``key`` (known by other means: the inverse of
        another memo's function)."""
        if len(self._current) >= self.size:
            self._turn()
        self._current[key] = value

    def keys(self) -> list[K]:
        """What is remembered now."""
        return [*self._previous, *self._current]

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def clear(self) -> None:
        """Forget everything; the current generation begins now."""
        self._current, self._previous = {}, {}
        self._turn_at = self._clock() + self.ttl
