"""Entries of a long linked feed fetched ahead of its walk (docs/spec/feeds.md section 4).

The walk (:func:`ipfs_share.formats.feed.walk`) verifies one entry after the other, each
block against the CID its successor names; how the bytes get to it is free. One block at a
time costs a round trip an entry, so for a long backlog the node is asked where the chain
is every :data:`SPAN` entries below the head (``follow_local``: one request, the node
follows the ``prev`` links on its own blockstore), and the runs between those anchors are
fetched side by side: each round one pipelined batch with the next block of every run,
each block asked for by the CID the entry above it names. An entry is decoded and its
signature checked once, as it arrives; the walk then takes it from here and checks
everything it always checks (the block against the CID it wants, seq, links, forks, the
mark, the kind's step rule). An anchor is a hint: a node that lies about one only makes
us fetch blocks the walk never asks for. What the node does not hold (a remote sender's
chain not here yet), does not decode or is not verified, the walk fetches and meets
itself, one block after the other, as without this.

At most :data:`RUNS` runs are fetched at once, from the top down, so what waits for the
walk stays under ``RUNS * SPAN`` entries; what a read fetched and did not walk (a read cut
by its deadline) stays in the reader's :class:`Held` for its next read, so no entry is
fetched or verified twice.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ipfs_share.errors import IpfsShareError
from ipfs_share.formats.feed import FeedEntry, FeedKind, Signers
from ipfs_share.storage.base import Storage

__all__ = ["HOLD", "LINES", "MAX_AHEAD", "MIN_AHEAD", "RUNS", "SPAN", "Ahead", "Held"]

log = logging.getLogger("ipfs_share.feeds")

SPAN = 64  # entries between two anchors (one dag/resolve of SPAN hops)
FAR = 16  # spans between two far anchors, learnt first: the spans between them in parallel
RUNS = 256  # runs fetched at once (one block of each a round)
LINES = 2  # connections a round is split over (the node serves them on its cores)
MIN_AHEAD = 2 * SPAN  # fewer new entries than this: the walk fetches them itself
MAX_AHEAD = 1_000_000  # entries one read fetches ahead at most (the backlog bound)
HOLD = RUNS * SPAN  # entries a reader keeps verified ahead of its walks, at most


class Held:
    """Entries verified ahead of a walk and not walked yet, by CID, with the signers they
    were verified under; the oldest go first past :data:`HOLD` (a reader's, kept across
    its reads: a walk cut by its deadline finds them at the next read)."""

    def __init__(self, cap: int = HOLD) -> None:
        self._entries: OrderedDict[str, tuple[FeedEntry, Signers]] = OrderedDict()
        self.cap = cap

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, entry: FeedEntry, signers: Signers) -> None:
        self._entries[entry.cid] = (entry, signers)
        while len(self._entries) > self.cap:
            self._entries.popitem(last=False)

    def get(self, cid: str, signers: Signers) -> FeedEntry | None:
        found = self._entries.get(cid)
        return found[0] if found is not None and found[1] == signers else None

    def pop(self, cid: str) -> None:
        self._entries.pop(cid, None)


@dataclass(order=True, slots=True)
class _Run:
    depth: int  # how far below the top of what is read it starts (the walk's order)
    next: str = field(compare=False)  # the CID of the next block to fetch
    left: int = field(compare=False)  # entries still to fetch down this run


class Ahead:
    """Fetches the entries of ``runs`` (a start CID and how many entries from it down)
    ahead of a walk of ``kind`` under ``signers``, into ``held``. Use :attr:`kind` for the
    walk (it takes the entries verified here without decoding them again) and
    :meth:`block` to get a block (None: fetch it yourself)."""

    def __init__(
        self,
        storage: Storage,
        kind: FeedKind,
        signers: Signers,
        runs: Sequence[tuple[str, int]],
        held: Held,
    ) -> None:
        assert kind.prev_field is not None
        self._storage = storage
        self._field = kind.prev_field
        self._read = kind.read
        self._signers = signers
        self._runs = list(runs)
        self._held = held
        self._active: list[_Run] = []
        self._waiting: list[_Run] = []  # anchored, not fetched yet (a heap: top first)
        self._pending: set[str] = set()  # the next CID of every run not done
        self._taken: FeedEntry | None = None  # the block the walk was given last
        self._changed = asyncio.Event()
        self._first = asyncio.Event()  # set once the tops of the runs were asked for
        self._local: set[str] = set()  # ... and those the node holds
        self._anchoring = True
        depth = 0
        for start, count in self._runs:  # the top of each run is known already
            self._add(_Run(depth, start, min(SPAN, count)))
            depth += count
        self.kind = replace(kind, read=self._take)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(
        cls,
        storage: Storage,
        kind: FeedKind,
        signers: Signers,
        runs: Sequence[tuple[str, int]],
        held: Held,
    ) -> Ahead | None:
        """An :class:`Ahead` already fetching, or None when it is not worth it (a kind
        without ``prev_field``, or fewer than :data:`MIN_AHEAD` entries)."""
        if kind.prev_field is None or not kind.linked:
            return None
        left, capped = MAX_AHEAD, []
        for start, count in runs:
            count = min(count, left)
            if count > 0:
                capped.append((start, count))
                left -= count
        if sum(c for _, c in capped) < MIN_AHEAD:
            return None
        ahead = cls(storage, kind, signers, capped, held)
        ahead._task = asyncio.ensure_future(ahead._go())
        return ahead

    async def block(self, cid: str) -> bytes | None:
        """The block ``cid`` if it was or is being fetched here (waiting for its round),
        else None."""
        while True:
            entry = self._held.get(cid, self._signers)
            if entry is not None:
                self._held.pop(cid)
                self._taken = entry
                return entry.data
            if cid not in self._pending or self._task is None or self._task.done():
                return None
            await self._changed.wait()

    def _take(self, data: bytes, signers: Signers | None) -> FeedEntry:
        taken, self._taken = self._taken, None
        if taken is not None and taken.data is data:
            return taken  # the bytes handed out by block(), verified under our signers
        return self._read(data, signers)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            (done,) = await asyncio.gather(self._task, return_exceptions=True)
            if isinstance(done, Exception):  # a defect here must not fail the read
                log.warning("fetching feed entries ahead failed: %r", done)

    async def _go(self) -> None:
        anchors = asyncio.ensure_future(self._anchors())
        try:
            await self._rounds()
        except IpfsShareError as exc:  # the walk fetches the rest itself
            log.info("feed entries not fetched ahead: %s", exc.message)
        finally:
            anchors.cancel()
            await asyncio.gather(anchors, return_exceptions=True)
            self._pending.clear()
            self._wake()

    async def _anchors(self) -> None:
        """Queue a run every :data:`SPAN` entries below the top of each run (queued
        already), as the node names them: first every ``FAR * SPAN`` entries, one after
        the other, then the anchors between two of those, all such stretches at once."""
        stretches: list[asyncio.Task[None]] = []
        try:
            await self._first.wait()  # which tops the node holds: below the others, nothing
            depth = 0
            for cid, count in self._runs:
                top, left = depth, count
                if cid not in self._local:
                    depth = top + count
                    continue
                while True:
                    stretch = min(left, FAR * SPAN)
                    stretches.append(asyncio.ensure_future(self._spans(cid, depth, stretch)))
                    left -= stretch
                    if left <= 0:
                        break
                    below = await self._storage.follow_local(cid, self._field, FAR * SPAN)
                    if below is None:  # not held here (yet): the walk goes on from there
                        break
                    cid, depth = below, depth + stretch
                    self._add(_Run(depth, cid, min(SPAN, left)))
                depth = top + count
            await asyncio.gather(*stretches)
        finally:
            for task in stretches:
                task.cancel()
            await asyncio.gather(*stretches, return_exceptions=True)
            self._anchoring = False
            self._wake()

    async def _spans(self, cid: str, depth: int, count: int) -> None:
        """Queue a run every :data:`SPAN` entries of the ``count`` from ``cid`` down
        (whose own run is queued already)."""
        end = depth + count
        while end - depth > SPAN:
            below = await self._storage.follow_local(cid, self._field, SPAN)
            if below is None:
                return
            cid, depth = below, depth + SPAN
            self._add(_Run(depth, cid, min(SPAN, end - depth)))

    def _add(self, run: _Run) -> None:
        heapq.heappush(self._waiting, run)
        self._pending.add(run.next)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _rounds(self) -> None:
        while True:
            while self._waiting and len(self._active) < RUNS:
                self._active.append(heapq.heappop(self._waiting))
            if not self._active:
                if not self._anchoring:
                    return
                await self._changed.wait()
                continue
            runs, self._active = self._active, []
            wanted = [r.next for r in runs if self._held.get(r.next, self._signers) is None]
            parts = [wanted[i::LINES] for i in range(LINES) if wanted[i::LINES]]
            got: dict[str, bytes] = {}
            for part in await asyncio.gather(*(self._storage.block_get_local(p) for p in parts)):
                got.update(part)
            for run in runs:
                self._pending.discard(run.next)
                entry = self._held.get(run.next, self._signers)
                if entry is None:
                    data = got.get(run.next)
                    if data is None:  # not held: the walk fetches it (and what is below)
                        continue
                    try:
                        entry = self._read(data, self._signers)
                    except (IpfsShareError, ValueError):  # the walk meets it and says why
                        continue
                    self._held.put(entry, self._signers)
                if not self._first.is_set():  # a top the node holds: anchors below it
                    self._local.add(run.next)
                run.left -= 1
                if run.left > 0 and entry.prev is not None:
                    run.next = entry.prev
                    self._pending.add(run.next)
                    self._active.append(run)
            self._first.set()
            self._wake()
