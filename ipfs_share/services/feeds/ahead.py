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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ipfs_share.errors import IpfsShareError
from ipfs_share.formats.feed import FeedEntry, FeedKind, Signers
from ipfs_share.storage.base import Storage

__all__ = ["LINES", "MAX_AHEAD", "MIN_AHEAD", "SPAN", "Ahead"]

log = logging.getLogger("ipfs_share.feeds")

SPAN = 64  # entries between two anchors (one dag/resolve of SPAN hops)
LINES = 2  # connections a round is split over (the node serves them on its cores)
MIN_AHEAD = 2 * SPAN  # fewer new entries than this: the walk fetches them itself
MAX_AHEAD = 20_000  # entries fetched ahead by one read at most (the walk does the rest)


@dataclass(slots=True)
class _Run:
    next: str  # the CID of the next block to fetch
    left: int  # entries still to fetch down this run


class Ahead:
    """Fetches the entries of ``runs`` (a start CID and how many entries from it down)
    ahead of a walk of ``kind`` under ``signers``. Use :attr:`kind` for the walk (it takes
    the entries verified here without decoding them again) and :meth:`block` to get a
    block (None: fetch it yourself)."""

    def __init__(
        self,
        storage: Storage,
        kind: FeedKind,
        signers: Signers,
        runs: Sequence[tuple[str, int]],
    ) -> None:
        assert kind.prev_field is not None
        self._storage = storage
        self._field = kind.prev_field
        self._read = kind.read
        self._signers = signers
        self._runs = list(runs)
        self._active: list[_Run] = []
        self._pending: set[str] = set()  # CIDs a round will fetch
        self._held: dict[str, bytes] = {}  # fetched, not taken by the walk yet
        self._verified: dict[bytes, FeedEntry] = {}  # ... and their entries, by bytes
        self._changed = asyncio.Event()
        self._anchoring = 0
        for start, count in self._runs:  # the top of each run is known already
            self._add(_Run(start, min(SPAN, count)))
        self.kind = replace(kind, read=self._take)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(
        cls, storage: Storage, kind: FeedKind, signers: Signers, runs: Sequence[tuple[str, int]]
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
        ahead = cls(storage, kind, signers, capped)
        ahead._task = asyncio.ensure_future(ahead._go())
        return ahead

    async def block(self, cid: str) -> bytes | None:
        """The block ``cid`` if it was or is being fetched here (waiting for its round),
        else None."""
        while True:
            data = self._held.pop(cid, None)
            if data is not None:
                return data
            if self._task is None or self._task.done():
                return None
            if cid not in self._pending:
                return None
            await self._changed.wait()

    def _take(self, data: bytes, signers: Signers | None) -> FeedEntry:
        if signers == self._signers:
            entry = self._verified.pop(data, None)
            if entry is not None:
                return entry
        return self._read(data, signers)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._held.clear()
        self._verified.clear()

    async def _go(self) -> None:
        try:
            self._anchoring = len(self._runs)
            anchors = [asyncio.ensure_future(self._anchors(s, n)) for s, n in self._runs]
            try:
                await self._rounds()
            finally:
                for task in anchors:
                    task.cancel()
                await asyncio.gather(*anchors, return_exceptions=True)
        except IpfsShareError as exc:  # the walk fetches the rest itself
            log.info("feed entries not fetched ahead: %s", exc.message)
        finally:
            self._pending.clear()
            self._wake()

    async def _anchors(self, cid: str, count: int) -> None:
        """Add a run every :data:`SPAN` entries below ``cid`` (whose own run is there
        already), as the node names them."""
        try:
            while count > SPAN:
                below = await self._storage.follow_local(cid, self._field, SPAN)
                if below is None:  # not held here (yet): the walk goes on from there
                    break
                cid, count = below, count - SPAN
                self._add(_Run(cid, min(SPAN, count)))
        finally:
            self._anchoring -= 1
            self._wake()

    def _add(self, run: _Run) -> None:
        self._active.append(run)
        self._pending.add(run.next)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _rounds(self) -> None:
        while True:
            if not self._active:
                if not self._anchoring:
                    return
                await self._changed.wait()
                continue
            runs, self._active = self._active, []
            wanted = [r.next for r in runs]
            parts = [wanted[i::LINES] for i in range(LINES) if wanted[i::LINES]]
            got: dict[str, bytes] = {}
            for part in await asyncio.gather(*(self._storage.block_get_local(p) for p in parts)):
                got.update(part)
            for run in runs:
                self._pending.discard(run.next)
                data = got.get(run.next)
                if data is None:  # not held: the walk fetches it (and what is below)
                    continue
                try:
                    entry = self._read(data, self._signers)
                except (IpfsShareError, ValueError):  # the walk meets it and says why
                    continue
                self._held[run.next] = data
                self._verified[data] = entry
                run.left -= 1
                if run.left > 0 and entry.prev is not None:
                    run.next = entry.prev
                    self._pending.add(run.next)
                    self._active.append(run)
            self._wake()
