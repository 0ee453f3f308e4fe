"""The writer of the feeds this home signs (docs/spec/feeds.md section 5).

Appending reads the feed's head from local state (never from the network: a resolver may
lag), asks the client for the new entries after it, stores their blocks, pins them, and
moves the head in one transaction only if no other writer moved it meanwhile (another
process of the same home: then it unpins what it pinned and starts again). Publishing
signs an IPNS record for the head now stored (which may be further than the one this
writer appended), stores it with ``name/put`` and keeps it in the record store, so the
home can put it again later without the key.

Keys stay with the caller: the writer gets the record key for each publish and never
keeps it. A feed this home signs but has no state for (a recovered home, an identity
imported from another machine) continues from the head the network has, once it is
verified (``adopt``), instead of starting again at seq 0 and forking it for its readers.

>>> import asyncio, tempfile
>>> from pathlib import Path
>>> from ipfs_share.crypto.signing import SigningKey
>>> from ipfs_share.crypto.x25519 import EncryptionKey
>>> from ipfs_share.formats.identity_doc import IDENTITY_FEED, make_identity_document
>>> from ipfs_share.formats.ipns import ipns_name
>>> from ipfs_share.formats.signed import did_key
>>> from ipfs_share.local.state import StateDB
>>> from ipfs_share.storage.embedded import EmbeddedStorage
>>> key, enc = SigningKey.from_seed(bytes(32)), EncryptionKey(b"\\x02" * 32).public_key
>>> feed = Feed(IDENTITY_FEED, ipns_name(key.public_key), did_key(key.public_key))
>>> async def next_document(prev: FeedEntry | None) -> Batch:
...     seq = 0 if prev is None else prev.seq + 1
...     doc = make_identity_document(key, enc, seq=seq, created=1_800_000_000)
...     return Batch([IDENTITY_FEED.read(doc.data, None)])
>>> async def demo() -> tuple[int, bool]:
...     home = Path(tempfile.mkdtemp())
...     async with EmbeddedStorage(home / "store") as store:
...         writer = FeedWriter(store, StateDB(home))
...         await writer.append(feed, next_document)
...         done = await writer.append(feed, next_document)
...         record = await writer.publish(feed, key)
...         return done.head.seq, record is not None
>>> asyncio.run(demo())
(1, True)
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import (
    FormatError,
    IpfsShareError,
    IpnsRecordExpiredError,
    IpnsRecordInvalidError,
    NodeError,
    NodeRequestError,
    NotFoundError,
    StoreError,
)
from ipfs_share.formats.feed import FeedEntry, head_of_record
from ipfs_share.formats.ipns import make_record, verify_record
from ipfs_share.formats.signed import check_block
from ipfs_share.local.state import OwnHead, StateDB
from ipfs_share.services.feeds.blocks import bounded, store_blocks
from ipfs_share.services.feeds.records import keep_record
from ipfs_share.services.feeds.refs import Feed, lifetime_of
from ipfs_share.storage.base import Storage

__all__ = ["APPEND_RETRIES", "Appended", "Batch", "FeedWriter", "Make", "held_sequence"]

log = logging.getLogger("ipfs_share.feeds")

APPEND_RETRIES = 20  # another process of this home appended first: re-read and retry
_HELD_SEQ = re.compile(r"(\d+)")


@dataclass(frozen=True, slots=True)
class Batch:
    """What a client appends: ``entries``, signed, oldest first (the first right after the
    head it was given, each after the one before), and ``blocks`` they link to that must
    be stored first (a revocation list's trie nodes)."""

    entries: Sequence[FeedEntry]
    blocks: Sequence[bytes] = ()


Make = Callable[[FeedEntry | None], Awaitable[Batch]]
"""``make(head)``: the entries to append after ``head`` (None: the feed is new). It may be
called more than once for one append (when another writer moved the head first)."""


@dataclass(frozen=True, slots=True)
class Appended:
    """The head after an append, and the entries it added (none: nothing was left to do)."""

    head: OwnHead | None
    entries: tuple[FeedEntry, ...] = field(default=())


class FeedWriter:
    """Moves and publishes the heads of feeds this home signs."""

    def __init__(
        self, storage: Storage, state: StateDB, *, now: Callable[[], float] = time.time
    ) -> None:
        self.storage = storage
        self._state = state
        self._now = now
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def __repr__(self) -> str:
        return f"FeedWriter({self.storage!r})"

    def head(self, feed: Feed) -> OwnHead | None:
        """The head of ``feed`` in local state (None: nothing appended here yet)."""
        return self._state.feeds.own(feed.name)

    async def head_entry(self, feed: Feed, row: OwnHead | None = None) -> FeedEntry | None:
        """The head of ``feed`` as an entry (its bytes are in local state, else fetched)."""
        row = row or self.head(feed)
        if row is None:
            return None
        if row.head_block is not None:
            return feed.kind.read(row.head_block, None)  # written by this home
        data = check_block(row.head, await self.storage.block_get(row.head))
        return feed.kind.read(data, feed.accepts)

    # -- appending ------------------------------------------------------------------------
    async def append(
        self,
        feed: Feed,
        make: Make,
        *,
        then: Callable[[Sequence[FeedEntry]], None] | None = None,
        adopt: bool = True,
    ) -> Appended:
        """Append what ``make`` returns after the current head. ``then(entries)`` runs in
        the transaction that moves the head (to record what the entries carry).
        ``adopt``: with no head in local state, continue from a verified head the network
        has under the feed's name (if any) instead of starting at seq 0."""
        async with self._locks[feed.name]:
            for attempt in range(APPEND_RETRIES):
                row = self.head(feed)
                prev = await self.head_entry(feed, row)
                if prev is None and adopt:
                    prev = await self._network_head(feed)
                batch = await make(prev)
                entries = list(batch.entries)
                if not entries:
                    return Appended(row)
                _check_batch(feed, prev, entries)
                await store_blocks(self.storage, [*batch.blocks, *(e.data for e in entries)])
                pinned = await self._pin(feed, row, entries)
                head = entries[-1]
                new = OwnHead(
                    name=feed.name,
                    kind=feed.kind.name,
                    owner=feed.signer,
                    topic=feed.topic,
                    seq=head.seq,
                    head=head.cid,
                    head_block=head.data,
                    pinned=pinned,
                    published_seq=None if row is None else row.published_seq,
                )
                moved = self._state.feeds.advance_own(
                    new,
                    expected_seq=None if row is None else row.seq,
                    then=None if then is None else _bind(then, entries),
                )
                if moved:
                    if row is not None and row.pinned not in (None, pinned):
                        await self._unpin([row.pinned])
                    return Appended(new, tuple(entries))
                log.debug("feed %s: another writer appended first; retrying", feed.name)
                await self._unpin(await self._orphans(feed, prev, entries, pinned))
                await asyncio.sleep(random.uniform(0.005, 0.05) * (attempt + 1))  # noqa: S311
        raise StoreError(
            f"the {feed.kind.name} feed {feed.name} kept moving under {APPEND_RETRIES} attempts",
            hint="another process of this home is writing the same feed; retry",
        )

    async def _pin(self, feed: Feed, row: OwnHead | None, entries: list[FeedEntry]) -> str | None:
        """Keep the new entries on the node. A kind pinned by its head moves one recursive
        pin (``pin/update`` walks only what is new; the old pin goes after the head moved);
        the others get a direct pin per entry. Returns the head pinned recursively."""
        if feed.kind.pin == "entries":

            async def pin(cid: str) -> None:
                await self.storage.pin_add(cid, recursive=False)

            await bounded(pin(e.cid) for e in entries)
            return None
        head = entries[-1].cid
        if row is not None and row.pinned is not None:
            try:
                await self.storage.pin_update(row.pinned, head, unpin=False)
                return head
            except NotFoundError:  # the old pin is gone (unpinned by hand): pin afresh
                pass
        await self.storage.pin_add(head)
        return head

    async def _orphans(
        self,
        feed: Feed,
        prev: FeedEntry | None,
        ours: list[FeedEntry],
        pinned: str | None,
    ) -> list[str]:
        """What this writer pinned that the winner of the race does not use. Two writers
        can make the very same entry (same fields, same second: same bytes, same CID);
        unpinning that one would unpin the feed's own entry."""
        winner = self.head(feed)
        if winner is None:  # pragma: no cover - someone moved it, so there is a head
            return [pinned] if pinned else [e.cid for e in ours]
        if pinned is not None:
            return [] if pinned == winner.pinned or pinned == winner.head else [pinned]
        base = -1 if prev is None else prev.seq
        theirs: set[str] = set()
        entry = await self.head_entry(feed, winner)
        while entry is not None and entry.seq > base and entry.cid not in theirs:
            theirs.add(entry.cid)
            if entry.prev is None or entry.seq - 1 <= base:
                break
            entry = feed.kind.read(await self.storage.block_get(entry.prev), None)
        return [e.cid for e in ours if e.cid not in theirs]

    async def _unpin(self, cids: Sequence[str]) -> None:
        for cid in cids:
            try:
                await self.storage.pin_rm(cid)
            except NodeError as exc:  # a pin left behind costs space, not correctness
                log.warning("could not unpin %s: %s", cid, exc.message)

    async def _network_head(self, feed: Feed) -> FeedEntry | None:
        """The head the network has under ``feed``'s name, verified; None if there is none."""
        try:
            data = await self.storage.ipns_get(feed.name)
        except NotFoundError:
            return None
        try:
            record = verify_record(feed.name, data, now=self._when())
        except IpnsRecordExpiredError:
            # Authentic (the expiry is checked after the signature) but past its end of
            # validity: its head is still the last one, and ours to continue after.
            record = verify_record(feed.name, data, now=datetime.min.replace(tzinfo=UTC))
        cid, seq = head_of_record(record)
        entry = feed.kind.read(check_block(cid, await self.storage.block_get(cid)), feed.accepts)
        if entry.seq != seq:
            raise FormatError(
                f"expected the head at the record's sequence {seq}, found {entry.seq}"
            )
        log.info("feed %s: continuing from the head the network has (seq %d)", feed.name, seq)
        return entry

    # -- publishing -----------------------------------------------------------------------
    async def publish(self, feed: Feed, key: SigningKey) -> bytes | None:
        """Publish the head in local state, unless a record of it is already out; return
        the record stored (None: nothing to publish). ``key`` signs the record."""
        for _ in range(APPEND_RETRIES):
            row = self.head(feed)
            if row is None or row.published:
                return None
            record = self._record(feed, key, row)
            try:
                await self.storage.ipns_put(feed.name, record)
            except (NodeRequestError, IpnsRecordInvalidError) as exc:
                held = held_sequence(exc)
                if held is None:
                    raise
                if self.head(feed) != row:
                    continue  # someone appended meanwhile: publish theirs
                if held > row.seq:
                    # Only the key's holders can sign it: for a mailbox the recipient, which
                    # hurts only its own view until the feed passes that seq; for a feed of
                    # our own, a home that lost its state (the writer adopts it next time).
                    log.warning(
                        "feed %s: the node holds a record at seq %d that this home did not "
                        "publish (ours: %d)",
                        feed.name,
                        held,
                        row.seq,
                    )
                    return None
                # held == row.seq: a record of this very head is out already.
            self._kept(feed, row, record, put=True)
            return record
        raise StoreError(f"the {feed.kind.name} feed {feed.name} kept moving while publishing")

    async def renew(self, feed: Feed, key: SigningKey) -> bytes:
        """Sign a new record for the head already published, valid from now for the kind's
        lifetime (same sequence, a later end of validity), and store it; return it."""
        row = self.head(feed)
        if row is None:
            raise StoreError(f"nothing to renew: no head of {feed.name} in this home")
        record = self._record(feed, key, row)
        await self.storage.ipns_put(feed.name, record, renew=True)
        self._kept(feed, row, record, put=True)
        return record

    def _record(self, feed: Feed, key: SigningKey, row: OwnHead) -> bytes:
        lifetime = lifetime_of(feed.kind.name)
        return make_record(
            key,
            f"/ipfs/{row.head}",
            sequence=row.seq,
            validity=lifetime.validity,
            ttl_seconds=lifetime.ttl,
            now=self._when(),
        )

    def _kept(self, feed: Feed, row: OwnHead, record: bytes, *, put: bool) -> None:
        parsed = verify_record(feed.name, record, now=self._when())
        with self._state.transaction():
            self._state.feeds.mark_published(feed.name, row.seq)
            keep_record(
                self._state.records,
                feed,
                record,
                parsed,
                own=True,
                at=int(self._now()),
                put=put,
            )

    def _when(self) -> datetime:
        return datetime.fromtimestamp(self._now(), UTC)


def _bind(
    then: Callable[[Sequence[FeedEntry]], None], entries: list[FeedEntry]
) -> Callable[[], None]:
    return lambda: then(entries)


def _check_batch(feed: Feed, prev: FeedEntry | None, entries: list[FeedEntry]) -> None:
    """The client's entries must continue the head they were made after."""
    before = prev
    for entry in entries:
        want_seq = 0 if before is None else before.seq + 1
        want_prev = None if before is None or not feed.kind.linked else before.cid
        if entry.seq != want_seq or (feed.kind.linked and entry.prev != want_prev):
            raise FormatError(
                f"expected a {feed.kind.name} entry at seq {want_seq} after {want_prev}, "
                f"found seq {entry.seq} after {entry.prev}"
            )
        before = entry


def held_sequence(exc: IpfsShareError) -> int | None:
    """The sequence of the record a node kept when it refused ours as not newer (Kubo:
    "existing IPNS record has sequence N >= new ..."; the embedded store: "expected a
    sequence > N ..."), or None if the refusal was for something else."""
    if "sequence" not in exc.message:
        return None
    found = _HELD_SEQ.search(exc.message.split("sequence", 1)[1])
    return None if found is None else int(found[1])
