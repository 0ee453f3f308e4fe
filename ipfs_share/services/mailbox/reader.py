"""The reading side: read the peers' chains (feeds we read, through the feed reader) back
to the high-water mark, file what is new, fetch and check the capsules that arrived, and
send the acknowledgements that are due back through our own chains (the writer).

Every sender is read and settled on its own, all at once, each within its own deadlines
(docs/spec/mailbox.md section 8): a sender whose chain is long, slow or hostile costs the
others nothing. A chain not read to the end by its deadline continues at the next sync
from where it stopped; a capsule that cannot be fetched is tried again later with a
backoff, and after a budget of attempts is filed "missing". The report says all of it."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ipfs_share.errors import (
    FormatError,
    IdentityNotFoundError,
    InvalidInputError,
    IpfsShareError,
    NodeError,
    NodeTimeoutError,
    NodeUnreachableError,
    NotFoundError,
    SignatureInvalidError,
)
from ipfs_share.formats.capsule import Capsule, decode_capsule
from ipfs_share.formats.cid import cid_bytes
from ipfs_share.formats.feed import FeedEntry
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import MailboxEntry
from ipfs_share.formats.revocation import RevocationHead, revoked_among
from ipfs_share.local.state import InboxRow, SentRow, StateDB
from ipfs_share.services.feeds import FeedReader, bounded, drive
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.mailbox.pairs import Pairs, _Pair
from ipfs_share.services.mailbox.support import Events, Provider, log
from ipfs_share.services.mailbox.views import InboxItem, OutgoingCapsule, SyncReport, Views
from ipfs_share.services.mailbox.writer import Body, MailboxWriter
from ipfs_share.services.opened import OpenedFile
from ipfs_share.services.revocations import RevocationService
from ipfs_share.services.share import ShareService
from ipfs_share.storage.base import Storage
from ipfs_share.storage.timed import until, within

__all__ = [
    "CAPSULE_CONCURRENCY",
    "CAPSULE_DEADLINE",
    "CAPSULE_PATIENCE",
    "CHAIN_DEADLINE",
    "MAX_BACKLOG",
    "RETRY_BUDGET",
    "SENDER_CONCURRENCY",
    "MailboxReader",
    "retry_delay",
]

# Per sender and sync (docs/spec/mailbox.md section 8):
CHAIN_DEADLINE = 15.0  # seconds to read the sender's chain (the rest waits for next time)
CAPSULE_PATIENCE = 3.0  # seconds one capsule fetch may wait: longer is a failed fetch
CAPSULE_DEADLINE = 30.0  # seconds to fetch the sender's new capsules, all together
CAPSULE_CONCURRENCY = 64  # capsule fetches in flight per sender
MAX_BACKLOG = 1_000_000  # entries past the mark: more is refused (chain_invalid)
SENDER_CONCURRENCY = 64  # senders read at once
PREFETCH_CAP = 20_000  # capsules fetched ahead while one sender's chain is read ...
PREFETCH_BYTES = 32 << 20  # ... and their bytes at most (a capsule may be 1 MiB)
PREFETCH_BATCH = 128  # capsules asked for together (pipelined) from what the node holds
PREFETCH_LINES = 2  # such batches in flight per sender (the node serves them on its other core)
# A capsule that could not be fetched is tried again after RETRY_FIRST seconds, then
# twice as long each time up to RETRY_MAX; after RETRY_BUDGET failed fetches it is missing.
RETRY_FIRST = 60
RETRY_MAX = 86_400
RETRY_BUDGET = 10


def retry_delay(attempts: int) -> int:
    """Seconds before the next fetch of a capsule that failed ``attempts`` times.

    >>> [retry_delay(n) for n in (1, 2, 3, 20)]
    [60, 120, 240, 86400]
    """
    return int(min(RETRY_MAX, RETRY_FIRST * 2 ** (attempts - 1)))


class _Fetched:
    """Capsule blocks fetched ahead, oldest first: at most :data:`PREFETCH_CAP` of them
    and :data:`PREFETCH_BYTES` bytes (the oldest go first).

    >>> got = _Fetched()
    >>> for i in range(40):
    ...     got.put(f"c{i}", bytes(1 << 20))
    >>> len(got), got.size == PREFETCH_BYTES, "c7" in got, "c8" in got
    (32, True, False, True)
    >>> len(got.pop("c8") or b""), got.pop("c8"), got.size == PREFETCH_BYTES - (1 << 20)
    (1048576, None, True)
    """

    def __init__(self) -> None:
        self._blocks: OrderedDict[str, bytes] = OrderedDict()
        self.size = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, cid: str) -> bool:
        return cid in self._blocks

    def put(self, cid: str, data: bytes) -> None:
        if cid in self._blocks:
            return
        self._blocks[cid] = data
        self.size += len(data)
        while len(self._blocks) > PREFETCH_CAP or self.size > PREFETCH_BYTES:
            _, old = self._blocks.popitem(last=False)
            self.size -= len(old)

    def pop(self, cid: str) -> bytes | None:
        data = self._blocks.pop(cid, None)
        if data is not None:
            self.size -= len(data)
        return data


class _Prefetch:
    """Capsules fetched while a sender's chain is still being read: the walk waits on one
    block at a time, and the node serves the capsules of what it verified meanwhile, in
    batches of :data:`PREFETCH_BATCH` asked for together from what the node holds
    (``block_get_local``: one write for a batch, not a round trip a capsule), on
    :data:`PREFETCH_LINES` connections at once; a capsule the node does not hold yet is
    fetched on its own and waits :data:`CAPSULE_PATIENCE` at most, like any capsule
    fetch. ``got`` is the reader's cache of capsule blocks (immutable, named by their
    CID), kept across syncs (a walk cut by its deadline files its entries at a later
    sync) and capped at :data:`PREFETCH_CAP` blocks and :data:`PREFETCH_BYTES` bytes."""

    def __init__(self, storage: Storage, sender: str, got: _Fetched) -> None:
        self.storage = storage
        self.sender = sender
        self.got = got
        self.failed: set[str] = set()
        self.pending: dict[str, asyncio.Task[None]] = {}
        self._gate = asyncio.Semaphore(CAPSULE_CONCURRENCY)
        self._lines = asyncio.Semaphore(PREFETCH_LINES)

    def add(self, entries: Sequence[FeedEntry]) -> None:
        wanted: list[str] = []
        for e in entries:
            capsule = e.value.capsule
            if capsule is None or capsule.cid in self.pending or capsule.cid in self.got:
                continue
            if len(self.got) + len(self.pending) + len(wanted) >= PREFETCH_CAP:
                break
            wanted.append(capsule.cid)
        for start in range(0, len(wanted), PREFETCH_BATCH):
            batch = wanted[start : start + PREFETCH_BATCH]
            task = asyncio.ensure_future(self._batch(batch))
            self.pending.update((cid, task) for cid in batch)

    async def _batch(self, cids: list[str]) -> None:
        async with self._lines:
            try:
                held = await self.storage.block_get_local(cids)
            except IpfsShareError as exc:  # each is tried on its own below
                log.info("capsules of %s not fetched in a batch: %s", self.sender, exc.message)
                held = {}
        self._keep(held)
        missing = [cid for cid in cids if cid not in held]
        if missing:
            await asyncio.gather(*(self._one(cid) for cid in missing))

    async def _one(self, cid: str) -> None:
        async with self._gate:
            try:
                async with within(CAPSULE_PATIENCE, f"fetching the capsules of {self.sender}"):
                    data = await self.storage.block_get(cid)
            except IpfsShareError:
                self.failed.add(cid)
                return
            self._keep({cid: data})

    def _keep(self, blocks: dict[str, bytes]) -> None:
        for cid, data in blocks.items():
            self.got.put(cid, data)

    def take(self, cid: str) -> bytes | None:
        return self.got.pop(cid)

    async def close(self) -> None:
        for task in self.pending.values():
            task.cancel()
        await asyncio.gather(*self.pending.values(), return_exceptions=True)


@dataclass
class _Sender:
    """What one sender's part of a sync found."""

    receipts: list[OutgoingCapsule] = field(default_factory=list)
    delivered: list[InboxItem] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)  # delivered before, revoked since
    partial: bool = False
    deferred: int = 0
    missing: int = 0


class MailboxReader:
    def __init__(
        self,
        storage: Storage,
        db: StateDB,
        feeds: FeedReader,
        identities: IdentityService,
        revocations: RevocationService,
        pairs: Pairs,
        views: Views,
        events: Events,
        provider: Provider,
        writer: MailboxWriter,
        share: ShareService,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.db = db
        self.feeds = feeds
        self.identities = identities
        self.revocations = revocations
        self.pairs = pairs
        self.views = views
        self.events = events
        self.provider = provider
        self.writer = writer
        self.share = share
        self._now = now
        self._read_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._capsules = _Fetched()  # fetched ahead (_Prefetch)

    async def sync(
        self, as_: str | None = None, *, senders: Iterable[str] = (), strict: bool = True
    ) -> list[InboxItem]:
        """Read the mailboxes of ``as_``'s contacts (and of ``senders``, and of everyone
        ``as_`` has sent to, for receipts), verify every new entry, and return the
        capsules delivered since the last sync, oldest first.

        A mailbox whose chain does not verify raises its typed error
        (:class:`~ipfs_share.errors.ChainInvalidError`,
        :class:`~ipfs_share.errors.SignatureInvalidError`, ...) after every other
        mailbox was synced and stored, and nothing already synced is lost; with
        ``strict=False`` such mailboxes are logged and skipped instead."""
        report = await self.sync_report(as_, senders=senders)
        if strict and report.failed:
            who, exc = report.failed[0]
            raise type(exc)(f"the mailbox from {who}: {exc.message}", hint=exc.hint) from exc
        for who, exc in report.failed:
            log.warning("the mailbox from %s: %s", who, exc.message)
        return list(report.new)

    async def sync_report(
        self,
        as_: str | None = None,
        *,
        senders: Iterable[str] = (),
        contacts: bool = True,
        acknowledge: bool = True,
        records: dict[str, bytes] | None = None,
        keys: IdentityKeys | None = None,
    ) -> SyncReport:
        """:meth:`sync` with the whole story: new items, receipts, failures, senders
        whose mailbox could not be found, and what the per-sender bounds held back.
        ``contacts=False`` reads only ``senders``; ``acknowledge=False`` sends no
        acknowledgements now (they stay due); ``records`` maps a sender did to a head
        record already in hand (a notice)."""
        me = self.identities.get(as_).did
        peers = await self.peers(me, senders, contacts=contacts)
        keys = keys or await self.identities.unlock(me)
        done: dict[str, _Sender] = {}
        failed: list[tuple[str, IpfsShareError]] = []
        unreachable: list[str] = []
        why: dict[str, str] = {}
        heads: dict[str, asyncio.Future[RevocationHead | None]] = {}  # one per issuer

        async def one(peer: str) -> None:
            try:
                pair = await self.pairs.with_(keys, peer)
                record = (records or {}).get(peer)
                done[peer] = await self._sync_sender(pair, record, heads)
            except IdentityNotFoundError:
                unreachable.append(peer)
                why[peer] = (
                    "its identity document could not be found (not published, or its node is away)"
                )
            except NotFoundError:
                unreachable.append(peer)
                why[peer] = "no mailbox from it was found (nothing sent yet, or its node is away)"
            except NodeTimeoutError:
                unreachable.append(peer)
                why[peer] = "its node did not answer in time"
            except NodeUnreachableError:
                raise
            except (InvalidInputError, NodeError) as exc:  # chain, signature, record, ...
                failed.append((peer, exc))

        await bounded((one(p) for p in peers), limit=SENDER_CONCURRENCY)
        delivered = [i for p in peers if p in done for i in done[p].delivered]
        receipts = [r for p in peers if p in done for r in done[p].receipts]
        for item in delivered:
            await self.events.emit("capsule_received", item)
        for receipt in receipts:
            await self.events.emit("ack_received", receipt)
        if acknowledge:
            await self._acknowledge(keys)
        return SyncReport(
            new=tuple(delivered),
            receipts=tuple(receipts),
            failed=tuple(failed),
            unreachable=tuple(p for p in peers if p in unreachable),
            read=tuple(peers),
            unreachable_why=tuple((p, why[p]) for p in peers if p in why),
            revoked=tuple(c for p in peers if p in done for c in done[p].revoked),
            partial=tuple(p for p in peers if p in done and done[p].partial),
            deferred=tuple((p, done[p].deferred) for p in peers if p in done and done[p].deferred),
            missing=tuple((p, done[p].missing) for p in peers if p in done and done[p].missing),
        )

    async def peers(self, me: str, senders: Iterable[str], *, contacts: bool) -> list[str]:
        """Whose mailboxes to ``me`` a sync reads: contacts (``contacts``), ``senders``,
        everyone ``me`` has a mailbox to (their mailboxes carry the receipts), and the
        identities of this home that wrote to ``me`` (local identities read each other's
        mailboxes without being contacts)."""
        peers: list[str] = [c.did for c in self.db.contacts.list()] if contacts else []
        for text in senders:
            peers.append(text if text.startswith("did:") else await self._did_of(text))
        if contacts:
            own = self.db.feeds.own_feeds("mailbox")
            peers += [f.topic for f in own if f.owner == me]  # receipts from whom we sent to
            peers += [f.owner for f in own if f.topic == me]  # identities of this home
        return list(dict.fromkeys(peers))

    async def _did_of(self, text: str) -> str:
        return (await self.identities.recipient(text)).did

    # -- one sender ---------------------------------------------------------------------------
    async def _sync_sender(
        self,
        pair: _Pair,
        record: bytes | None,
        heads: dict[str, asyncio.Future[RevocationHead | None]],
    ) -> _Sender:
        result = _Sender()
        prefetch = _Prefetch(self.storage, pair.peer, self._capsules)
        try:
            async with self._read_locks[(pair.me, pair.in_name)]:
                await self._read_chain(pair, record, result, prefetch)
            await self._settle(pair, heads, result, prefetch)
            await self._recheck(pair, heads, result)
        finally:
            await prefetch.close()
        return result

    async def _read_chain(
        self, pair: _Pair, record: bytes | None, result: _Sender, prefetch: _Prefetch
    ) -> None:
        """Read the peer's chain to us (resolved without cache unless a record is given)
        and file its new entries (pending items, receipts) with the new mark, atomically."""
        now = int(self._now())

        def file(entries: Sequence[FeedEntry]) -> None:
            mail: list[MailboxEntry] = [e.value for e in entries]
            items = [
                InboxRow(pair.me, e.capsule.cid, pair.peer, pair.in_name, e.seq, e.cid, e.sent, now)
                for e in mail
                if e.capsule is not None
            ]
            self.db.mailboxes.file(items)
            for e in mail:  # pointers to keychain ops: the keychain service takes them up
                if e.op is not None:
                    self.db.keychains.add_notice(pair.me, e.op.cid, sender=pair.peer, at=now)
            # Each acknowledgement at its own time (when the recipient wrote it: an open
            # writes one at once), not at the time this sync happened to read it.
            acks = [(ref, e.state, e.sent) for e in mail if e.state for ref in e.acks]
            touched = self.db.mailboxes.apply_acks(reader=pair.me, sender=pair.peer, acks=acks)
            result.receipts = [self.views.outgoing(r) for r in _unique(touched)]

        deadline = asyncio.get_running_loop().time() + CHAIN_DEADLINE
        update = await self.feeds.read(
            pair.inbox,
            record=record,
            apply=file,
            deadline=deadline,
            max_backlog=MAX_BACKLOG,
            verified=prefetch.add,
        )
        result.partial = not update.complete

    async def _settle(
        self,
        pair: _Pair,
        heads: dict[str, asyncio.Future[RevocationHead | None]],
        result: _Sender,
        prefetch: _Prefetch,
    ) -> None:
        """Fetch and check the capsules of the sender's pending items that are due:
        "delivered" if it decodes and is not revoked, "withdrawn" if its issuer revoked it
        first (a cancelled send), "invalid" if it does not decode. A fetch that waits
        longer than :data:`CAPSULE_PATIENCE` (or fails) is tried again later with a
        backoff, and filed "missing" after the retry budget. The sender's fetches stop at
        :data:`CAPSULE_DEADLINE`, or as soon as a whole round of them failed with none
        fetched (a sender whose capsules nobody has): what was not tried waits for the
        next sync, without counting as a failure."""
        now = int(self._now())
        due = self.db.mailboxes.due(pair.me, now, sender=pair.peer)
        if not due:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CAPSULE_DEADLINE
        settled: list[tuple[str, str, str | None, int | None, str | None]] = []
        failed: list[InboxRow] = []
        decoded: defaultdict[str, list[tuple[str, Capsule]]] = defaultdict(list)  # by issuer

        async def one(item: InboxRow) -> None:
            ahead = prefetch.pending.get(item.capsule)
            if ahead is not None:  # fetched while the chain was read (or still being)
                await asyncio.shield(ahead)
                if item.capsule in prefetch.failed:
                    failed.append(item)
                    return
            start = loop.time()
            if item.capsule not in prefetch.got and (
                start >= deadline or (len(failed) >= CAPSULE_CONCURRENCY and not settled)
            ):
                return  # not tried this time: no attempt counted
            try:
                data = prefetch.take(item.capsule)
                if data is None:
                    cut = min(start + CAPSULE_PATIENCE, deadline)
                    async with until(cut, f"fetching the capsules of {pair.peer}"):
                        data = await self.storage.block_get(item.capsule)
                capsule = decode_capsule(data)
            except NodeError as exc:
                if loop.time() - start < CAPSULE_PATIENCE and loop.time() >= deadline:
                    return  # cut by the sender's deadline, not slow itself: next time
                log.info("capsule %s not fetched yet: %s", item.capsule, exc.message)
                failed.append(item)
                return
            except (FormatError, SignatureInvalidError) as exc:
                log.warning("capsule %s from %s is invalid: %s", item.capsule, item.sender, exc)
                settled.append((item.capsule, "invalid", None, None, None))
                return
            if capsule.issuer not in heads:  # one lookup per issuer, shared by the whole sync
                heads[capsule.issuer] = asyncio.ensure_future(self._revocation_head(capsule.issuer))
            decoded[capsule.issuer].append((item.capsule, capsule))

        await bounded((one(i) for i in due), limit=CAPSULE_CONCURRENCY)
        for issuer, capsules in decoded.items():  # one walk of each issuer's list for all
            head = await heads[issuer]
            if head is None:  # not checked now: the next recheck reads the whole list
                self.db.meta.set(_checked_key(pair.me, pair.peer, issuer), None)
            revoked = await self._revoked_among(head, [cid for cid, _ in capsules])
            for cid, c in capsules:
                state = "withdrawn" if revoked and cid_bytes(cid) in revoked else "delivered"
                settled.append((cid, state, issuer, c.expires, c.replaces))
        deferred: list[tuple[str, int, int | None, str]] = []
        for item in failed:
            attempts = item.attempts + 1
            if attempts >= RETRY_BUDGET:
                deferred.append((item.capsule, attempts, None, "missing"))
                result.missing += 1
            else:
                deferred.append((item.capsule, attempts, now + retry_delay(attempts), "pending"))
                result.deferred += 1
        with self.db.transaction():
            moved = self.db.mailboxes.settle(pair.me, settled)  # a concurrent sync may be first
            self.db.mailboxes.defer(pair.me, deferred)
        done = {c: (st, issuer, exp, rep) for c, st, issuer, exp, rep in settled if c in moved}
        name = self.views.name_of(pair.peer)  # once for all of this sender's items
        result.delivered = [
            self.views.item(
                replace(r, state=state, issuer=issuer, expires=expires, replaces=rep),
                sender_name=name,
            )
            for r in due
            if r.capsule in done
            for state, issuer, expires, rep in [done[r.capsule]]
            if state == "delivered"
        ]

    async def _recheck(
        self,
        pair: _Pair,
        heads: dict[str, asyncio.Future[RevocationHead | None]],
        result: _Sender,
    ) -> None:
        """Mark the sender's delivered items that their issuers revoked since: an inbox
        never calls a revoked capsule "delivered". Read only when an issuer's list moved
        since this reader last checked these items against it (its head is remembered),
        and then in one walk of the list for all of them
        (:func:`~ipfs_share.formats.revocation.revoked_among`). Until then only the
        issuers are read, not the items: what a sync holds does not grow with the inbox."""
        now = int(self._now())
        for issuer in self.db.mailboxes.delivered_issuers(pair.me, pair.peer, now):
            if issuer not in heads:
                heads[issuer] = asyncio.ensure_future(self._revocation_head(issuer))
            head = await heads[issuer]
            key = _checked_key(pair.me, pair.peer, issuer)
            if head is None or self.db.meta.get(key) == head.cid:
                continue
            capsules = self.db.mailboxes.delivered_by(pair.me, pair.peer, issuer, now)
            try:
                found = await drive(revoked_among(head, capsules), self.storage.block_get)
            except IpfsShareError as exc:
                log.info("revocation list of %s not checked at sync: %s", issuer, exc.message)
                continue
            revoked = [c for c in capsules if cid_bytes(c) in found]
            with self.db.transaction():
                self.db.mailboxes.mark_revoked(pair.me, revoked)
                self.db.meta.set(key, head.cid)
            result.revoked += revoked

    async def _revocation_head(self, issuer: str) -> RevocationHead | None:
        """The issuer's freshest verified revocation head, or None if it cannot be had
        now (delivery does not wait for it: every open checks the list again)."""
        try:
            async with within(CAPSULE_DEADLINE, f"checking the revocation list of {issuer}"):
                doc = await self.identities.document(issuer)
                return await self.revocations.fresh_head(issuer, doc.revocations)
        except IpfsShareError as exc:
            log.info("revocation list of %s not checked at sync: %s", issuer, exc.message)
            return None

    async def _revoked_among(self, head: RevocationHead | None, capsules: list[str]) -> set[bytes]:
        """Which of ``capsules`` (binary CIDs) the list at ``head`` holds, in one walk; none
        when the list cannot be read now (every open checks it again)."""
        if head is None:
            return set()
        try:
            return await drive(revoked_among(head, capsules), self.storage.block_get)
        except IpfsShareError as exc:
            log.info("revocation list not checked at sync: %s", exc.message)
            return set()

    # -- acknowledgements -----------------------------------------------------------------
    async def acknowledge(
        self, as_: str | None = None, *, senders: Iterable[str] | None = None
    ) -> int:
        """Send the acknowledgements that are due (delivered, or opened once
        ``share.open_capsule`` opened it here), to every sender or to ``senders`` (dids);
        sync does this by itself. Returns how many were sent."""
        keys = await self.identities.unlock(self.identities.get(as_).did)
        return await self._acknowledge(keys, senders=senders)

    async def _acknowledge(
        self, keys: IdentityKeys, *, senders: Iterable[str] | None = None
    ) -> int:
        due = self.db.mailboxes.acks_due(keys.did)
        if senders is not None:
            only = set(senders)
            due = [(item, state) for item, state in due if item.sender in only]
        if not due:
            return 0
        await self.provider.check()
        by_sender: dict[str, list[Body]] = defaultdict(list)
        for item, state in due:
            by_sender[item.sender].append(
                Body(item.capsule, "opened" if state == "opened" else "delivered")
            )
        sent = 0
        for sender, bodies in by_sender.items():
            try:
                await self.writer.submit(keys, await self.pairs.with_(keys, sender), bodies)
                sent += len(bodies)
            except (NodeError, IdentityNotFoundError) as exc:  # due again at the next sync
                log.warning("acknowledgements to %s not sent: %s", sender, exc.message)
        return sent

    async def open(
        self, item: InboxItem | str, *, as_: str | None = None, **options: Any
    ) -> OpenedFile:
        """``share.open_capsule`` for an inbox item, then acknowledge it as opened at once
        (an open made with ``share.open_capsule`` directly is acknowledged at the next
        sync)."""
        capsule = item.id if isinstance(item, InboxItem) else item
        opened = await self.share.open_capsule(capsule, as_=as_, **options)
        try:
            await self.acknowledge(as_)
        except IpfsShareError as exc:
            log.warning("the opened receipt for %s was not sent: %s", capsule, exc.message)
        return opened


def _checked_key(reader: str, sender: str, issuer: str) -> str:
    """The meta key under which a reader keeps the head of ``issuer``'s revocation list
    that ``sender``'s delivered items were last checked against."""
    return f"inbox_revocations_checked:{reader}:{sender}:{issuer}"


def _unique(rows: Sequence[SentRow]) -> list[SentRow]:
    return list({(r.sender, r.recipient, r.capsule): r for r in rows}.values())
