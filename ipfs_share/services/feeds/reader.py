"""The reader of feeds this home follows (docs/spec/feeds.md section 6).

A read resolves the feed's name (``name/get``: the record itself, not a cached path) or
takes a record already in hand (a pubsub notice), verifies it under the name, walks the
feed back to the high-water mark (:func:`ipfs_share.formats.feed.walk`), and moves the
mark in one transaction with whatever the client files from the new entries (``apply``).
A rollback, a fork, a gap or a bad signature changes nothing and raises its typed error.

Long walks stop at a ``deadline`` or after every :data:`BATCH` entries and keep their
progress (the entries verified and the segment they form); the next read continues below
it, so no entry is verified twice. Every record accepted goes into the record store, so
the home can put it again later without any key (``republish``).

>>> import asyncio, tempfile
>>> from pathlib import Path
>>> from ipfs_share.crypto.signing import SigningKey
>>> from ipfs_share.crypto.x25519 import EncryptionKey
>>> from ipfs_share.formats.identity_doc import IDENTITY_FEED, make_identity_document
>>> from ipfs_share.formats.ipns import ipns_name
>>> from ipfs_share.formats.signed import did_key
>>> from ipfs_share.local.state import StateDB
>>> from ipfs_share.services.feeds.writer import Batch, FeedWriter
>>> from ipfs_share.storage.embedded import EmbeddedStorage
>>> key, enc = SigningKey.from_seed(bytes(32)), EncryptionKey(b"\\x02" * 32).public_key
>>> feed = Feed(IDENTITY_FEED, ipns_name(key.public_key), did_key(key.public_key))
>>> async def first(prev: FeedEntry | None) -> Batch:
...     doc = make_identity_document(key, enc, seq=0, created=1_800_000_000)
...     return Batch([IDENTITY_FEED.read(doc.data, None)])
>>> async def demo() -> tuple[int, bool]:
...     root = Path(tempfile.mkdtemp())
...     async with EmbeddedStorage(root / "store") as store:
...         writer = FeedWriter(store, StateDB(root / "owner"))
...         await writer.append(feed, first)
...         await writer.publish(feed, key)
...         reader = FeedReader(store, StateDB(root / "reader"))
...         seen = await reader.read(feed)
...         again = await reader.read(feed)
...         return seen.head.seq, again.new == ()
>>> asyncio.run(demo())
(0, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ipfs_share.errors import ChainInvalidError, FormatError, SignatureInvalidError
from ipfs_share.formats import feed as feeds
from ipfs_share.formats.feed import FeedEntry, FeedWalk, Mark, Resume, head_of_record
from ipfs_share.formats.ipns import IpnsRecord, verify_record
from ipfs_share.formats.signed import BlockWalk, check_block
from ipfs_share.local.state import ReadState, StagedEntry, StateDB
from ipfs_share.services.feeds.ahead import Ahead, Held
from ipfs_share.services.feeds.records import keep_record
from ipfs_share.services.feeds.refs import Feed
from ipfs_share.storage.base import Storage

__all__ = ["BATCH", "STALE_RETRY_DELAY", "Apply", "FeedReader", "FeedUpdate"]

log = logging.getLogger("ipfs_share.feeds")

BATCH = 1_000  # entries verified between two saves of progress
STALE_RETRY_DELAY = 0.5  # a head older than the mark: resolve once more before refusing

Apply = Callable[[Sequence[FeedEntry]], None]
"""``apply(new)``: file what the new entries (oldest first) carry; it runs in the
transaction that moves the mark, so both happen or neither."""


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """What one read found. ``head``: the head this home now holds verified (None only
    for a mark kept without its bytes); ``new``: the entries new to this home, oldest
    first; ``complete``: False when the read stopped at its deadline with its progress
    kept (``new`` is then empty); ``stale``: the record given was older than the mark and
    was ignored; ``raced``: another process of this home moved the mark first."""

    feed: Feed
    head: FeedEntry | None
    new: tuple[FeedEntry, ...] = ()
    complete: bool = True
    record: bytes | None = field(default=None, repr=False)
    stale: bool = False
    raced: bool = False


class FeedReader:
    """Follows feeds of others (and of this home's other identities)."""

    def __init__(
        self,
        storage: Storage,
        state: StateDB,
        *,
        now: Callable[[], float] = time.time,
        batch: int = BATCH,
        stale_retry: float = STALE_RETRY_DELAY,
    ) -> None:
        self.storage = storage
        self._state = state
        self._now = now
        self.batch = batch
        self.stale_retry = stale_retry
        self._held = Held()  # entries verified ahead of a walk, kept for the next read

    def __repr__(self) -> str:
        return f"FeedReader({self.storage!r})"

    def mark(self, feed: Feed) -> ReadState | None:
        """Where this home is in ``feed`` (None: never read)."""
        return self._state.feeds.read(feed.name)

    def held(self, feed: Feed, state: ReadState | None = None) -> FeedEntry | None:
        """The head this home verified last, from its kept bytes (None: none kept)."""
        state = state or self.mark(feed)
        if state is None or state.head_block is None:
            return None
        return feed.kind.read(state.head_block, None)  # verified when it was kept

    async def read(
        self,
        feed: Feed,
        *,
        record: bytes | None = None,
        apply: Apply | None = None,
        deadline: float | None = None,
        max_backlog: int | None = None,
        verified: Callable[[Sequence[FeedEntry]], None] | None = None,
    ) -> FeedUpdate:
        """Bring this home's mark of ``feed`` up to its newest head.

        ``record``: a head record already in hand (else the name is resolved). ``apply``:
        files the new entries, atomically with the mark. ``deadline`` (the event loop's
        clock): stop there, keeping the progress. ``max_backlog``: refuse a head more
        than that many entries past the mark. ``verified``: told of the entries verified,
        batch by batch, while the walk goes on (to start work on them early; nothing is
        filed until the walk connects)."""
        state = self.mark(feed) or ReadState(
            name=feed.name,
            kind=feed.kind.name,
            signer=feed.signer,
            reader=feed.reader,
            mark=None,
            head_block=None,
            checked_at=int(self._now()),
            segment=None,
        )
        data = record if record is not None else await self.storage.ipns_get(feed.name)
        parsed = verify_record(feed.name, data, now=self._when())
        head, seq = head_of_record(parsed)
        if state.mark is not None and seq < state.mark.seq:
            if record is not None:  # a notice that arrived after a newer one
                return FeedUpdate(feed, self.held(feed, state), record=data, stale=True)
            # Older than what we verified: a stale answer, or a rollback. Resolve once
            # more before the walk calls it a rollback.
            log.info("feed %s: head seq %d < mark %d", feed.name, seq, state.mark.seq)
            await asyncio.sleep(self.stale_retry)
            data = await self.storage.ipns_get(feed.name)
            parsed = verify_record(feed.name, data, now=self._when())
            head, seq = head_of_record(parsed)
        try:
            return await self._walk(
                feed, state, head, seq, data, parsed, apply, deadline, max_backlog, verified
            )
        except (ChainInvalidError, SignatureInvalidError, FormatError):
            now = self.mark(feed)  # progress kept before this read, or by it (a batch)
            if now is not None and now.segment is not None:  # it can never connect
                self._state.feeds.drop_progress(feed.name)
            raise

    async def _walk(
        self,
        feed: Feed,
        state: ReadState,
        head: str,
        seq: int,
        data: bytes,
        parsed: IpnsRecord,
        apply: Apply | None,
        deadline: float | None,
        max_backlog: int | None,
        verified: Callable[[Sequence[FeedEntry]], None] | None,
    ) -> FeedUpdate:
        resume = self._resume(feed, state)
        runs = _runs(head, seq, state)
        ahead = Ahead.of(self.storage, feed.kind, feed.accepts, runs, self._held)
        try:
            return await self._walk_from(
                feed,
                state,
                head,
                seq,
                data,
                parsed,
                apply,
                deadline,
                max_backlog,
                verified,
                resume,
                ahead,
            )
        finally:
            if ahead is not None:
                await ahead.close()

    async def _walk_from(
        self,
        feed: Feed,
        state: ReadState,
        head: str,
        seq: int,
        data: bytes,
        parsed: IpnsRecord,
        apply: Apply | None,
        deadline: float | None,
        max_backlog: int | None,
        verified: Callable[[Sequence[FeedEntry]], None] | None,
        resume: Resume | None,
        ahead: Ahead | None,
    ) -> FeedUpdate:
        here: dict[int, FeedEntry] = {}  # verified by this read
        while True:
            walk = feeds.walk(
                feed.kind if ahead is None else ahead.kind,
                head,
                signers=feed.accepts,
                record_seq=seq,
                known=state.mark,
                resume=resume,
                budget=self.batch,
                max_backlog=max_backlog,
            )
            found, stopped = await self._drive(walk, deadline, ahead)
            here.update((e.seq, e) for e in found.entries)
            if verified is not None and found.entries:
                verified(found.entries)
            if found.complete:
                return self._commit(feed, state, found, here, data, parsed, apply)
            if found.segment is not None and found.entries:
                staged = [StagedEntry(e.seq, e.cid, e.data) for e in found.entries]
                if not self._state.feeds.stage(state, staged, found.segment):
                    return FeedUpdate(feed, None, complete=False, record=data, raced=True)
                state = replace(state, segment=found.segment)
                resume = found.resume
            if stopped:
                log.info("feed %s: deadline reached; progress kept", feed.name)
                return FeedUpdate(feed, self.held(feed, state), complete=False, record=data)

    async def _drive(
        self, walk: BlockWalk[FeedWalk], deadline: float | None, ahead: Ahead | None
    ) -> tuple[FeedWalk, bool]:
        """Run the walk against the node (taking the blocks ``ahead`` fetched); at
        ``deadline`` stop it where it is (it reports what it verified). Returns the walk's
        result and whether the deadline stopped it. One timer for the whole walk, not one
        a block."""
        try:
            cid = next(walk)
            try:
                async with _until(deadline):
                    while True:
                        block = None if ahead is None else await ahead.block(cid)
                        if block is None:
                            block = await self.storage.block_get(cid)
                        cid = walk.send(check_block(cid, block))
            except TimeoutError:
                pass
            walk.send(feeds.STOP)
        except StopIteration as done:
            result: FeedWalk = done.value
            return result, not result.complete and deadline is not None and _past(deadline)
        raise AssertionError("the walk did not stop when told to")  # pragma: no cover

    def _resume(self, feed: Feed, state: ReadState) -> Resume | None:
        if state.segment is None:
            return None
        bottom = next(
            (e for e in self._state.feeds.staged(feed.name) if e.seq == state.segment.bottom.seq),
            None,
        )
        if bottom is None:  # progress without its entries: start again
            self._state.feeds.drop_progress(feed.name)
            return None
        return Resume(state.segment, feed.kind.read(bottom.data, None))

    def _commit(
        self,
        feed: Feed,
        state: ReadState,
        found: FeedWalk,
        here: dict[int, FeedEntry],
        data: bytes,
        parsed: IpnsRecord,
        apply: Apply | None,
    ) -> FeedUpdate:
        now = int(self._now())
        if found.up_to_date:
            with self._state.transaction():
                self._state.feeds.touch_read(feed.name, now)
                self._keep(feed, data, parsed, now)
            return FeedUpdate(feed, self.held(feed, state), record=data)
        new = dict(here)
        if state.segment is not None:  # entries staged by earlier reads
            for row in self._state.feeds.staged(feed.name):
                if row.seq not in new:
                    new[row.seq] = feed.kind.read(row.data, None)
        ordered = tuple(new[s] for s in sorted(new))
        top = new[found.head.seq]

        def then() -> None:
            if apply is not None:
                apply(ordered)
            self._keep(feed, data, parsed, now)

        moved = self._state.feeds.advance_read(
            state, Mark.of(top), head_block=top.data, checked_at=now, then=then
        )
        if not moved:
            return FeedUpdate(feed, None, record=data, raced=True)
        return FeedUpdate(feed, top, ordered, record=data)

    def _keep(self, feed: Feed, data: bytes, parsed: IpnsRecord, now: int) -> None:
        keep_record(self._state.records, feed, data, parsed, own=False, at=now, put=False)

    def _when(self) -> datetime:
        return datetime.fromtimestamp(self._now(), UTC)


def _runs(head: str, seq: int, state: ReadState) -> list[tuple[str, int]]:
    """What a read will walk, as runs of entries (a start CID, how many from it down):
    from the head down to the mark, or to a segment kept from an earlier read and on
    below it."""
    floor = -1 if state.mark is None else state.mark.seq
    segment = state.segment
    if segment is None:
        return [(head, seq - floor)]
    runs = [] if head == segment.top.cid else [(head, seq - segment.top.seq)]
    if segment.below is not None:
        runs.append((segment.below, segment.bottom.seq - 1 - floor))
    return runs


def _past(deadline: float) -> bool:
    return asyncio.get_running_loop().time() >= deadline


def _until(deadline: float | None) -> contextlib.AbstractAsyncContextManager[object]:
    if deadline is None:
        return contextlib.nullcontext()
    return asyncio.timeout_at(deadline)
