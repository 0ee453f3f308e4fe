"""Mailboxes: capsules delivered through IPNS, synced by high-water mark, watched live.

Each ordered pair (sender, recipient) has one mailbox (docs/spec/mailbox.md): a signed,
append-only chain of entries whose head is published under an IPNS name that only the two
ends can compute. Sending appends a capsule entry to our chain for the recipient and
publishes the new head; syncing walks someone's chain back to the last entry we verified
(the high-water mark), so it reads only what is new; acknowledgements ("delivered",
"opened") travel back the same way, in the recipient's chain for the sender.

Where the node has pubsub, a send also publishes the new head record on a topic only the
two ends can name (:func:`notice_topic`), and :meth:`MailboxService.watch` reacts to it;
elsewhere watch polls with a backoff and says so (``InboxWatch.mode``, and a log line).

Nothing here needs a server: the sender's node serves the entries and the record; the
recipient can be offline when a capsule is sent and sync later.

    sent = await mesh.share.send(capsule, "bob")          # alice's side
    for item in await mesh.inbox.sync(as_="bob"):         # bob's side, any time later
        opened = await mesh.share.open_capsule(item.id, as_="bob")
    [o.state for o in await mesh.share.outgoing()]        # alice: ['opened']
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_MAILBOX_NOTICE
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import PublicEncryptionKey
from ipfs_share.errors import (
    FormatError,
    IdentityNotFoundError,
    InvalidInputError,
    IpfsShareError,
    IpnsRecordInvalidError,
    MailboxUnsupportedError,
    NodeError,
    NodeRequestError,
    NodeUnreachableError,
    NotFoundError,
    SignatureInvalidError,
    StoreError,
)
from ipfs_share.formats.capsule import decode_capsule
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.formats.ipns import ipns_name, verify_record
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import (
    AckState,
    HighWater,
    MailboxEntry,
    ack_reference,
    decode_entry,
    head_from_record,
    head_record,
    mailbox_key,
    make_ack,
    make_entry,
    verify_chain,
)
from ipfs_share.formats.revocation import RevocationHead, is_revoked
from ipfs_share.local.db import InboxRow, OutboxRow, SentRow, StateDB
from ipfs_share.services.files import FileService
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.opened import OpenedFile
from ipfs_share.services.policy import PolicyRegistry
from ipfs_share.services.revocations import RevocationService, drive
from ipfs_share.services.share import ShareCapsule, ShareService
from ipfs_share.storage.base import NodeCapabilities, PubsubMessage, Storage

__all__ = [
    "EVENTS",
    "InboxItem",
    "InboxWatch",
    "MailShareService",
    "MailboxService",
    "OutgoingCapsule",
    "SyncReport",
    "notice_topic",
]

log = logging.getLogger("ipfs_share.mailbox")

# A head record is valid for a year (only the two ends hold the key, so no node can
# republish it for us; every send renews it) and cached for seconds: readers resolve
# without cache anyway, and a short TTL keeps other resolvers fresh.
HEAD_VALIDITY = timedelta(days=365)
HEAD_TTL_SECONDS = 10
RESOLVE_TIMEOUT = 20.0
FETCH_TIMEOUT = 20.0
CONCURRENCY = 16  # blocks stored or fetched at once, mailboxes synced at once
APPEND_RETRIES = 20  # another process of this home appended first: re-read and retry
STALE_RETRY_DELAY = 0.5  # a head older than the mark: resolve once more before refusing
POLL_MIN, POLL_MAX = 1.0, 60.0  # watch without pubsub: backoff between syncs
RESYNC = 30.0  # watch with pubsub: a full sync this often anyway (a notice can be lost)

EVENTS = ("capsule_received", "ack_received")
Event = Literal["capsule_received", "ack_received"]
Callback = Callable[[Any], object]

OutgoingState = Literal["queued", "delivered", "opened", "revoked", "cancelled"]
_PREFIX_SEQ = re.compile(r"(\d+)")


def notice_topic(key: SigningKey) -> str:
    """The pubsub topic on which new heads of the mailbox with ``key`` are announced:
    ``hex(HKDF(mailbox seed, "", LABEL_MAILBOX_NOTICE, 32))`` (docs/spec/mailbox.md
    section 6). Only the two ends hold the seed.

    >>> notice_topic(SigningKey.from_seed(bytes(32)))[:16]
    'a1dde3a66a6cffba'
    """
    return hkdf(key.seed_bytes(), salt=b"", info=LABEL_MAILBOX_NOTICE, length=32).hex()


# -- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A capsule that reached a local identity through a mailbox. Open it with
    ``mesh.share.open_capsule(item.id, as_=...)``."""

    id: str  # the capsule's CID
    reader: str
    sender: str
    sender_name: str | None  # a petname or local identity name for the sender, if any
    issuer: str | None  # from the capsule (None while it is still being fetched)
    expires: int | None
    sent: int  # the entry's time, by the sender's clock
    received_at: int
    state: str  # "pending" (not fetched yet), "delivered", "withdrawn" (revoked first)
    mailbox: str
    seq: int

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "reader": self.reader,
            "sender": self.sender,
            "sender_name": self.sender_name,
            "issuer": self.issuer,
            "expires": self.expires,
            "sent": self.sent,
            "received_at": self.received_at,
            "state": self.state,
            "mailbox": self.mailbox,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class OutgoingCapsule:
    """A capsule sent through a mailbox, and how far it got."""

    id: str
    sender: str
    recipient: str
    recipient_name: str | None
    state: OutgoingState
    sent_at: int
    delivered_at: int | None
    opened_at: int | None
    cancelled_at: int | None
    mailbox: str
    seq: int

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "sender": self.sender,
            "recipient": self.recipient,
            "recipient_name": self.recipient_name,
            "state": self.state,
            "sent_at": self.sent_at,
            "delivered_at": self.delivered_at,
            "opened_at": self.opened_at,
            "cancelled_at": self.cancelled_at,
            "mailbox": self.mailbox,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync found: new items, receipts, and mailboxes that failed or that could
    not be read (no record found: nothing sent yet, or the sender's node is away)."""

    new: tuple[InboxItem, ...] = ()
    receipts: tuple[OutgoingCapsule, ...] = ()
    failed: tuple[tuple[str, IpfsShareError], ...] = ()  # (sender did, why)
    unreachable: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Pair:
    """Both mailboxes between a local identity and a peer, as the local side sees them."""

    me: str
    peer: str
    out_key: SigningKey = field(repr=False)  # me -> peer: we write it
    out_name: str
    out_topic: str = field(repr=False)
    in_key: SigningKey = field(repr=False)  # peer -> me: we read it
    in_name: str
    in_topic: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Body:
    """One entry to append: a capsule (``state`` None) or an acknowledgement of one."""

    capsule: str
    state: AckState | None = None


@dataclass
class _Box:
    """One of our chains in this process: a lock, and sends waiting to be appended
    together (a group commit: 50 concurrent sends cost a few appends, not 50)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue: list[tuple[list[_Body], asyncio.Future[None]]] = field(default_factory=list)


# -- the service --------------------------------------------------------------------------


class MailboxService:
    """Sending, syncing, watching; ``mesh.inbox`` is this service, and ``mesh.share``
    carries its sending side (``send``, ``outgoing``, ``cancel``)."""

    def __init__(
        self,
        storage: Storage,
        db: StateDB,
        identities: IdentityService,
        revocations: RevocationService,
        share: ShareService,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.db = db
        self.identities = identities
        self.revocations = revocations
        self.share = share
        self._now = now
        self._caps: NodeCapabilities | None = None
        self._pairs: dict[tuple[str, str, bytes], _Pair] = {}
        self._boxes: dict[str, _Box] = {}
        self._read_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._subscribers: dict[str, list[Callback]] = {e: [] for e in EVENTS}

    def __repr__(self) -> str:
        return f"MailboxService({self.storage!r})"

    # -- the node -------------------------------------------------------------------------
    async def check_provider(self) -> NodeCapabilities:
        """Probe the node once: it must store IPNS records signed here (``name/put``), or
        :class:`~ipfs_share.errors.MailboxUnsupportedError`. Without pubsub, mailboxes
        work but nobody is notified in real time (a log line says so)."""
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

    # -- events ---------------------------------------------------------------------------
    def subscribe(self, event: Event, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` (plain or async) on ``event``: ``"capsule_received"`` with an
        :class:`InboxItem`, ``"ack_received"`` with an :class:`OutgoingCapsule`, from
        every sync and watch of this service. Returns a function that unsubscribes."""
        if event not in self._subscribers:
            raise InvalidInputError(f"expected an event in {EVENTS}, found {event!r:.40}")
        self._subscribers[event].append(callback)
        return lambda: self.unsubscribe(event, callback)

    def unsubscribe(self, event: Event, callback: Callback) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._subscribers[event].remove(callback)

    async def _emit(self, event: Event, payload: object) -> None:
        for callback in list(self._subscribers[event]):
            try:
                result = callback(payload)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a subscriber's bug must not stop delivery
                log.exception("a %s subscriber failed", event)

    # -- pairs ----------------------------------------------------------------------------
    async def _pair(self, keys: IdentityKeys, peer: str, peer_enc: PublicEncryptionKey) -> _Pair:
        cache_key = (keys.did, peer, bytes(peer_enc))
        found = self._pairs.get(cache_key)
        if found is None:
            out_key = mailbox_key(keys.encryption, peer_enc, sender=keys.did, recipient=peer)
            in_key = mailbox_key(keys.encryption, peer_enc, sender=peer, recipient=keys.did)
            found = _Pair(
                me=keys.did,
                peer=peer,
                out_key=out_key,
                out_name=_name(out_key),
                out_topic=notice_topic(out_key),
                in_key=in_key,
                in_name=_name(in_key),
                in_topic=notice_topic(in_key),
            )
            self._pairs[cache_key] = found
        return found

    async def _pair_with(self, keys: IdentityKeys, peer: str) -> _Pair:
        """The pair with ``peer`` (a did), its key from its verified document."""
        return await self._pair(keys, peer, (await self.identities.recipient(peer)).enc)

    # -- sending --------------------------------------------------------------------------
    async def send(
        self,
        capsule: ShareCapsule | str,
        recipients: str | Sequence[str] | None = None,
        *,
        as_: str | None = None,
    ) -> list[OutgoingCapsule]:
        """Append ``capsule`` to our mailbox for each recipient (names, petnames, dids;
        default: every recipient the share was made for) and publish the new heads.

        Sending one capsule twice to one recipient is a no-op, so a retry after an error
        is safe. Concurrent sends, from tasks or from processes sharing the home, all
        land, each once."""
        cid = normalize_cid(capsule.id if isinstance(capsule, ShareCapsule) else capsule)
        share = self.db.share(cid)
        decode_capsule(await _fetch(self.storage, cid))  # a capsule, signed, or refuse now
        if share is not None and share.state != "active":
            raise InvalidInputError(
                f"the share {cid} is {share.state}; there is nothing to send",
                hint="share the file again and send the new capsule",
            )
        me = self.identities.get(as_ if as_ is not None or share is None else share.issuer)
        names = _names(recipients)
        if not names:
            if share is None:
                raise InvalidInputError(
                    f"the capsule {cid} was not made here: name its recipients",
                    hint="pass --to NAME",
                )
            names = [d for d, _ in self.db.share_recipients(cid)]
        targets = [await self.identities.recipient(n) for n in names]
        if share is not None:
            wrapped = {d for d, _ in self.db.share_recipients(cid)}
            stray = [n for n, t in zip(names, targets, strict=True) if t.did not in wrapped]
            if stray:
                raise InvalidInputError(
                    f"the capsule {cid} is not wrapped for {', '.join(stray)}",
                    hint="share the file with them first, then send that capsule",
                )
        await self.check_provider()
        keys = await self.identities.unlock(me.did)
        pairs = [await self._pair(keys, t.did, t.enc) for t in targets]
        await asyncio.gather(*(self._submit(keys, p, [_Body(cid)]) for p in pairs))
        sent = {(r.recipient, r.capsule): r for r in self.db.sent(sender=me.did, capsule=cid)}
        return [self._outgoing_view(sent[(p.peer, cid)]) for p in pairs]

    async def _submit(self, keys: IdentityKeys, pair: _Pair, bodies: list[_Body]) -> None:
        """Append ``bodies`` to our chain for ``pair.peer`` and publish, together with
        whatever other tasks queued for the same chain meanwhile."""
        box = self._boxes.setdefault(pair.out_name, _Box())
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        box.queue.append((bodies, mine))
        async with box.lock:
            if not mine.done():
                batch, box.queue = box.queue, []
                try:
                    await self._append(keys, pair, [b for group, _ in batch for b in group])
                    await self._publish(pair)
                except asyncio.CancelledError:
                    # Put the others back for the next holder of the lock; _append re-checks
                    # what already landed, so nothing is appended twice.
                    box.queue[:0] = [(g, f) for g, f in batch if f is not mine]
                    raise
                except BaseException as exc:
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                else:
                    for _, f in batch:
                        if not f.done():
                            f.set_result(None)
        await mine

    async def _append(self, keys: IdentityKeys, pair: _Pair, bodies: list[_Body]) -> None:
        """Append entries for ``bodies`` that are not in the chain yet: sign them after
        the head read from the database, store and pin the blocks, then move the head
        only if no other writer moved it meanwhile (else re-read and retry)."""
        for attempt in range(APPEND_RETRIES):
            todo = self._still_to_append(pair, bodies)
            if not todo:
                return
            row = self.db.outbox(pair.out_name)
            prev = None if row is None else decode_entry(row.head_block, sender=keys.did)
            entries = self._sign(keys, pair, prev, todo)
            await _bounded(self._store_entry(e) for e in entries)
            head = entries[-1]
            moved = self.db.advance_outbox(
                OutboxRow(pair.out_name, keys.did, pair.peer, head.seq, head.cid, head.data),
                expected_seq=None if prev is None else prev.seq,
                sent=[
                    SentRow(
                        sender=keys.did,
                        recipient=pair.peer,
                        capsule=b.capsule,
                        name=pair.out_name,
                        seq=e.seq,
                        entry=e.cid,
                        ack_ref=ack_reference(pair.out_key, b.capsule),
                        sent_at=e.sent,
                    )
                    for b, e in zip(todo, entries, strict=True)
                    if b.state is None
                ],
                acked=[(keys.did, b.capsule, b.state) for b in todo if b.state is not None],
            )
            if moved:
                return
            log.debug("mailbox %s: another writer appended first; retrying", pair.out_name)
            for e in entries:  # orphans of the lost race
                with contextlib.suppress(NodeError):
                    await self.storage.pin_rm(e.cid)
            await asyncio.sleep(random.uniform(0.005, 0.05) * (attempt + 1))  # noqa: S311 - jitter
        raise StoreError(
            f"the mailbox {pair.out_name} kept moving under {APPEND_RETRIES} attempts",
            hint="another process of this home is writing the same mailbox; retry",
        )

    def _still_to_append(self, pair: _Pair, bodies: list[_Body]) -> list[_Body]:
        """``bodies`` less what the chain already carries (a retry, a race, a repeat)."""
        todo: list[_Body] = []
        for b in dict.fromkeys(bodies):
            if b.state is None and self.db.was_sent(pair.me, pair.peer, b.capsule):
                continue
            if b.state is not None:
                item = self.db.inbox_item(pair.me, b.capsule)
                if item is not None and _ACK_RANK[item.acked] >= _ACK_RANK[b.state]:
                    continue
            todo.append(b)
        return todo

    def _sign(
        self, keys: IdentityKeys, pair: _Pair, prev: MailboxEntry | None, bodies: list[_Body]
    ) -> list[MailboxEntry]:
        sent = int(self._now())
        entries: list[MailboxEntry] = []
        for b in bodies:
            if b.state is None:
                prev = make_entry(keys.signing, prev, capsule=b.capsule, sent=sent)
            else:
                prev = make_ack(
                    keys.signing, prev, capsule=b.capsule, via=pair.in_key, state=b.state, sent=sent
                )
            entries.append(prev)
        return entries

    async def _store_entry(self, entry: MailboxEntry) -> None:
        await self.storage.block_put(entry.data, codec="dag-cbor")
        # A direct pin: a recursive one would walk the whole chain (and the capsules).
        await self.storage.pin_add(entry.cid, recursive=False)

    async def _publish(self, pair: _Pair) -> None:
        """Publish the head in the database (not the one we appended: another writer may
        be further), unless a record at that seq is already out."""
        for _ in range(APPEND_RETRIES):
            row = self.db.outbox(pair.out_name)
            if row is None or (row.published_seq is not None and row.published_seq >= row.seq):
                return
            record = head_record(
                pair.out_key,
                decode_entry(row.head_block),
                validity=HEAD_VALIDITY,
                ttl_seconds=HEAD_TTL_SECONDS,
                now=datetime.fromtimestamp(self._now(), UTC),
            )
            try:
                await self.storage.ipns_put(pair.out_name, record)
            except (NodeRequestError, IpnsRecordInvalidError) as exc:
                held = _held_sequence(exc)
                if held is None:
                    raise
                if self.db.outbox(pair.out_name) != row:
                    continue  # someone appended meanwhile: publish theirs
                if held > row.seq:
                    # Only the two ends hold the key (spec section 4): the recipient wrote
                    # it, and hurts only its own view until the chain passes that seq.
                    log.warning(
                        "mailbox %s: the node holds a head record at seq %d that this home "
                        "did not publish (ours: %d)",
                        pair.out_name,
                        held,
                        row.seq,
                    )
                    return
                # held == row.seq: a record for this very head is out (a republish).
            self.db.mark_published(pair.out_name, row.seq)
            await self._notify(pair, record)
            return

    async def _notify(self, pair: _Pair, record: bytes) -> None:
        caps = await self.check_provider()
        if not caps.pubsub:
            return
        try:
            await self.storage.pubsub_publish(pair.out_topic, record)
        except NodeError as exc:  # a notice is a courtesy; the record is what counts
            log.debug("mailbox notice on %s not sent: %s", pair.out_name, exc.message)

    # -- outgoing -------------------------------------------------------------------------
    async def outgoing(
        self, *, as_: str | None = None, refresh: bool = True
    ) -> list[OutgoingCapsule]:
        """Capsules sent from this home (by ``as_``, or by any local identity) and their
        state: queued, delivered, opened (acknowledged by the recipient), revoked or
        cancelled. ``refresh`` first reads the recipients' acknowledgements."""
        senders = [self.identities.get(as_).did] if as_ is not None else None
        rows = [r for r in self.db.sent() if senders is None or r.sender in senders]
        if refresh:
            waiting: dict[str, set[str]] = defaultdict(set)
            for r in rows:
                if r.opened_at is None and r.cancelled_at is None:
                    waiting[r.sender].add(r.recipient)
            for sender, peers in waiting.items():
                report = await self.sync_report(sender, senders=sorted(peers), contacts=False)
                for who, exc in report.failed:
                    log.warning("receipts from %s: %s", who, exc.message)
            rows = [r for r in self.db.sent() if senders is None or r.sender in senders]
        return [self._outgoing_view(r) for r in rows]

    async def cancel(self, capsule_id: str) -> list[OutgoingCapsule]:
        """Withdraw a capsule no recipient has picked up: revoke it, so a recipient that
        syncs later files it as withdrawn (never as new) and cannot open it. The chain is
        append-only, so the entry stays in its history (docs/spec/mailbox.md section 7).
        A capsule already delivered cannot be taken back: revoke it instead."""
        cid = normalize_cid(capsule_id)
        share = self.db.share(cid)
        if share is None:
            raise NotFoundError(
                f"no share {cid} was made from this home",
                hint="only the home that shared and sent it can cancel it",
            )
        if not self.db.sent(capsule=cid):
            raise InvalidInputError(
                f"the capsule {cid} was never sent", hint="revoke it with 'ipfs-share revoke'"
            )
        await self.outgoing(as_=share.issuer)  # the freshest acknowledgements first
        rows = self.db.sent(capsule=cid)
        picked = [r for r in rows if r.delivered_at is not None or r.opened_at is not None]
        if picked:
            raise InvalidInputError(
                f"the capsule {cid} was already delivered to "
                f"{', '.join(self._name_of(r.recipient) or r.recipient for r in picked)}",
                hint="revoke it with 'ipfs-share revoke' to block later opens (what was "
                "delivered cannot be taken back)",
            )
        if all(r.cancelled_at is not None for r in rows):
            raise InvalidInputError(f"the capsule {cid} is already cancelled")
        if share.state == "active":
            await self.share.revoke(cid)
        self.db.mark_cancelled(cid, at=int(self._now()))
        return [self._outgoing_view(r) for r in self.db.sent(capsule=cid)]

    def _outgoing_view(self, row: SentRow) -> OutgoingCapsule:
        share = self.db.share(row.capsule)
        state: OutgoingState
        if row.cancelled_at is not None:
            state = "cancelled"
        elif share is not None and share.state != "active":
            state = "revoked"
        elif row.opened_at is not None:
            state = "opened"
        elif row.delivered_at is not None:
            state = "delivered"
        else:
            state = "queued"
        return OutgoingCapsule(
            id=row.capsule,
            sender=row.sender,
            recipient=row.recipient,
            recipient_name=self._name_of(row.recipient),
            state=state,
            sent_at=row.sent_at,
            delivered_at=row.delivered_at,
            opened_at=row.opened_at,
            cancelled_at=row.cancelled_at,
            mailbox=row.name,
            seq=row.seq,
        )

    def _name_of(self, did: str) -> str | None:
        local = self.identities.keystore.find(did)
        if local is not None:
            return local.name
        contacts = self.db.contacts_for(did)
        return contacts[0].petname if contacts else None

    # -- the inbox ------------------------------------------------------------------------
    def _item_view(self, row: InboxRow) -> InboxItem:
        return InboxItem(
            id=row.capsule,
            reader=row.reader,
            sender=row.sender,
            sender_name=self._name_of(row.sender),
            issuer=row.issuer,
            expires=row.expires,
            sent=row.sent,
            received_at=row.received_at,
            state=row.state,
            mailbox=row.name,
            seq=row.seq,
        )

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
        """:meth:`sync` with the whole story: new items, receipts, failures, and senders
        whose mailbox could not be found. ``contacts=False`` reads only ``senders``;
        ``acknowledge=False`` sends no acknowledgements now (they stay due);
        ``records`` maps a sender did to a head record already in hand (a notice)."""
        me = self.identities.get(as_).did
        peers = await self._peers(me, senders, contacts=contacts)
        keys = keys or await self.identities.unlock(me)
        receipts: list[OutgoingCapsule] = []
        failed: list[tuple[str, IpfsShareError]] = []
        unreachable: list[str] = []

        async def one(peer: str) -> None:
            try:
                pair = await self._pair_with(keys, peer)
                record = (records or {}).get(peer)
                receipts.extend(await self._sync_mailbox(pair, record))
            except (NotFoundError, IdentityNotFoundError, TimeoutError):
                unreachable.append(peer)
            except NodeUnreachableError:
                raise
            except (InvalidInputError, NodeError) as exc:  # chain, signature, record, ...
                failed.append((peer, exc))

        await _bounded(one(p) for p in peers)
        delivered = await self._settle(me)
        for item in delivered:
            await self._emit("capsule_received", item)
        for receipt in receipts:
            await self._emit("ack_received", receipt)
        if acknowledge:
            await self._acknowledge(keys)
        return SyncReport(tuple(delivered), tuple(receipts), tuple(failed), tuple(unreachable))

    async def _peers(self, me: str, senders: Iterable[str], *, contacts: bool) -> list[str]:
        peers: list[str] = [c.did for c in self.db.contacts()] if contacts else []
        for text in senders:
            peers.append(text if text.startswith("did:") else await self._did_of(text))
        if contacts:
            peers += self.db.outbox_peers(me)  # receipts from everyone we sent to
        return list(dict.fromkeys(peers))

    async def _did_of(self, text: str) -> str:
        return (await self.identities.recipient(text)).did

    async def _sync_mailbox(self, pair: _Pair, record: bytes | None) -> list[OutgoingCapsule]:
        """Sync the mailbox from ``pair.peer`` to us: resolve (no cache) unless a record
        is given, verify the record and the chain back to the high-water mark, store the
        new entries (as pending items: :meth:`_settle` fetches their capsules) and the
        new mark in one transaction. Returns the receipts it carried."""
        async with self._read_locks[(pair.me, pair.in_name)]:
            mark = self.db.high_water(pair.me, pair.in_name)
            known = None if mark is None else HighWater(*mark)
            head, head_seq = self._head(pair, record or await self._resolve(pair.in_name))
            if known is not None and head_seq < known.seq:
                if record is not None:
                    return []  # a notice that arrived after a newer one
                # Older than what we verified: a stale answer, or a rollback. Resolve once
                # more before verify_chain calls it a rollback.
                log.info("mailbox %s: head seq %d < %d", pair.in_name, head_seq, known.seq)
                await asyncio.sleep(STALE_RETRY_DELAY)
                head, head_seq = self._head(pair, await self._resolve(pair.in_name))
            entries = await drive(
                verify_chain(head, sender=pair.peer, known=known, head_seq=head_seq),
                lambda cid: _fetch(self.storage, cid),
            )
            if not entries:
                return []
            now = int(self._now())
            items = [
                InboxRow(pair.me, e.capsule.cid, pair.peer, pair.in_name, e.seq, e.cid, e.sent, now)
                for e in entries
                if e.capsule is not None
            ]
            acks = [(e.ack, e.state, now) for e in entries if e.ack is not None and e.state]
            added = self.db.apply_sync(
                reader=pair.me,
                name=pair.in_name,
                sender=pair.peer,
                expected_seq=None if known is None else known.seq,
                head=(entries[-1].seq, entries[-1].cid),
                items=items,
                acks=acks,
            )
            if added is None:  # another process of this home synced it first
                return []
            acked = [self.db.sent_by_ack(pair.me, pair.peer, ref) for ref, _, _ in acks]
            return [self._outgoing_view(r) for r in acked if r is not None]

    def _head(self, pair: _Pair, record: bytes) -> tuple[str, int]:
        """The head CID and seq of a mailbox record, verified under the mailbox name."""
        now = datetime.fromtimestamp(self._now(), UTC)
        return head_from_record(verify_record(pair.in_name, record, now=now))

    async def _resolve(self, name: str) -> bytes:
        try:
            return await asyncio.wait_for(self.storage.ipns_get(name), RESOLVE_TIMEOUT)
        except TimeoutError:
            raise NotFoundError(
                f"no record for the mailbox {name} in {RESOLVE_TIMEOUT:.0f} s"
            ) from None

    async def _settle(self, me: str) -> list[InboxItem]:
        """Fetch and check the capsules of pending items: "delivered" if it decodes and
        is not revoked, "withdrawn" if its issuer revoked it first (a cancelled send).
        A capsule that cannot be fetched now stays pending for the next sync."""
        pending = self.db.inbox(me, states=("pending",))
        heads: dict[str, asyncio.Future[RevocationHead | None]] = {}
        settled: list[tuple[str, str, str | None, int | None]] = []

        async def one(item: InboxRow) -> None:
            try:
                capsule = decode_capsule(await _fetch(self.storage, item.capsule))
            except (NodeError, TimeoutError) as exc:
                log.info("capsule %s not fetched yet: %s", item.capsule, exc)
                return
            except (FormatError, SignatureInvalidError) as exc:
                log.warning("capsule %s from %s is invalid: %s", item.capsule, item.sender, exc)
                settled.append((item.capsule, "invalid", None, None))
                return
            if capsule.issuer not in heads:  # one lookup per issuer, shared by its capsules
                heads[capsule.issuer] = asyncio.ensure_future(self._revocation_head(capsule.issuer))
            revoked = await self._is_revoked(await heads[capsule.issuer], capsule.cid)
            state = "withdrawn" if revoked else "delivered"
            settled.append((item.capsule, state, capsule.issuer, capsule.expires))

        await _bounded(one(i) for i in pending)
        self.db.settle_inbox(me, settled)
        done = {c: (state, issuer, expires) for c, state, issuer, expires in settled}
        return [
            self._item_view(
                replace(
                    r,
                    state=done[r.capsule][0],
                    issuer=done[r.capsule][1],
                    expires=done[r.capsule][2],
                )
            )
            for r in pending
            if r.capsule in done and done[r.capsule][0] == "delivered"
        ]

    async def _revocation_head(self, issuer: str) -> RevocationHead | None:
        """The issuer's freshest verified revocation head, or None if it cannot be had
        now (delivery does not wait for it: every open checks the list again)."""
        try:
            doc = await self.identities.document(issuer)
            # One head read for the whole sync (check() would resolve once per capsule).
            return await self.revocations.fresh_head(issuer, doc.revocations)
        except (IpfsShareError, TimeoutError) as exc:
            log.info("revocation list of %s not checked at sync: %s", issuer, exc)
            return None

    async def _is_revoked(self, head: RevocationHead | None, capsule: str) -> bool:
        if head is None:
            return False
        try:
            return await drive(is_revoked(head, capsule), lambda cid: _fetch(self.storage, cid))
        except (IpfsShareError, TimeoutError):
            return False

    # -- acknowledgements -----------------------------------------------------------------
    async def acknowledge(self, as_: str | None = None) -> int:
        """Send the acknowledgements that are due (delivered, or opened once
        ``share.open_capsule`` opened it here); sync does this by itself. Returns how
        many were sent."""
        return await self._acknowledge(await self.identities.unlock(self.identities.get(as_).did))

    async def _acknowledge(self, keys: IdentityKeys) -> int:
        due = self.db.acks_due(keys.did)
        if not due:
            return 0
        await self.check_provider()
        by_sender: dict[str, list[_Body]] = defaultdict(list)
        for item, state in due:
            by_sender[item.sender].append(
                _Body(item.capsule, "opened" if state == "opened" else "delivered")
            )
        sent = 0
        for sender, bodies in by_sender.items():
            try:
                await self._submit(keys, await self._pair_with(keys, sender), bodies)
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

    # -- watching -------------------------------------------------------------------------
    def watch(
        self,
        as_: str | None = None,
        *,
        senders: Iterable[str] = (),
        pubsub: bool | None = None,
        poll_min: float = POLL_MIN,
        poll_max: float = POLL_MAX,
        resync: float = RESYNC,
    ) -> InboxWatch:
        """An async iterator of new :class:`InboxItem`\\ s for ``as_``, forever::

            async with mesh.inbox.watch(as_="bob") as watch:
                async for item in watch:
                    ...

        Over pubsub where the node has it (``pubsub=None``: ask the node; False: never),
        else by polling with a backoff from ``poll_min`` to ``poll_max`` seconds;
        ``watch.mode`` says which, and a log line too."""
        return InboxWatch(
            self,
            as_,
            senders=tuple(senders),
            pubsub=pubsub,
            poll_min=poll_min,
            poll_max=poll_max,
            resync=resync,
        )

    # Last in the class: a method named list shadows the builtin in later signatures.
    def list(self, as_: str | None = None, *, include_withdrawn: bool = False) -> list[InboxItem]:
        """What has arrived for ``as_`` (default identity), oldest first."""
        me = self.identities.get(as_).did
        states = ("pending", "delivered", "withdrawn") if include_withdrawn else None
        rows = self.db.inbox(me) if states is None else self.db.inbox(me, states=states)
        return [self._item_view(r) for r in rows]


class InboxWatch:
    """See :meth:`MailboxService.watch`. ``mode`` is None until the first item is asked
    for, then ``"pubsub"`` or ``"polling"``; ``ready`` is set once the subscriptions are
    up and the first sync is done."""

    def __init__(
        self,
        service: MailboxService,
        as_: str | None,
        *,
        senders: tuple[str, ...],
        pubsub: bool | None,
        poll_min: float,
        poll_max: float,
        resync: float,
    ) -> None:
        self._service = service
        self._as = as_
        self._senders = senders
        self._want_pubsub = pubsub
        self._poll = (poll_min, poll_max)
        self._resync = resync
        self.mode: Literal["pubsub", "polling"] | None = None
        self.interval = poll_min  # the current wait between polls
        self.ready = asyncio.Event()
        self._gen: AsyncGenerator[InboxItem, None] | None = None

    def __aiter__(self) -> InboxWatch:
        return self

    async def __anext__(self) -> InboxItem:
        if self._gen is None:
            self._gen = self._run()
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            await gen.aclose()

    async def __aenter__(self) -> InboxWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[InboxItem, None]:
        svc = self._service
        me = svc.identities.get(self._as).did
        keys = await svc.identities.unlock(me)  # once for the whole watch
        caps = await svc.storage.capabilities()
        if caps.pubsub and self._want_pubsub is not False:
            self.mode = "pubsub"
            async for item in self._over_pubsub(keys):
                yield item
        else:
            self.mode = "polling"
            log.info(
                "watching by polling every %.0f-%.0f s (%s)",
                *self._poll,
                "pubsub is off on the node" if not caps.pubsub else "pubsub not wanted",
            )
            async for item in self._polling(keys):
                yield item

    async def _sync(
        self, keys: IdentityKeys, notice: tuple[str, bytes] | None = None
    ) -> tuple[InboxItem, ...]:
        """A full sync, or (``notice``: sender did, head record) the one mailbox a notice
        is about, from the record it carries."""
        svc = self._service
        try:
            if notice is None:
                report = await svc.sync_report(keys.did, senders=self._senders, keys=keys)
            else:
                peer, record = notice
                report = await svc.sync_report(
                    keys.did, senders=[peer], contacts=False, records={peer: record}, keys=keys
                )
        except NodeUnreachableError as exc:
            log.warning("watch: %s", exc.message)
            return ()
        for who, error in report.failed:
            log.warning("watch: the mailbox from %s: %s", who, error.message)
        return report.new

    async def _polling(self, keys: IdentityKeys) -> AsyncIterator[InboxItem]:
        low, high = self._poll
        while True:
            new = await self._sync(keys)
            self.ready.set()
            for item in new:
                yield item
            self.interval = low if new else min(self.interval * 2, high)
            await asyncio.sleep(self.interval)

    async def _over_pubsub(self, keys: IdentityKeys) -> AsyncIterator[InboxItem]:
        svc = self._service
        peers = await svc._peers(keys.did, self._senders, contacts=True)
        pairs = [await svc._pair_with(keys, p) for p in peers]
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        async with contextlib.AsyncExitStack() as stack:
            tasks: list[asyncio.Task[None]] = []
            stack.callback(lambda: [t.cancel() for t in tasks])
            try:
                for pair in pairs:
                    messages = await stack.enter_async_context(
                        svc.storage.pubsub_subscribe(pair.in_topic)
                    )
                    tasks.append(asyncio.create_task(_pump(pair.peer, messages, queue)))
            except NodeError as exc:  # the config says pubsub, the node says otherwise
                log.warning("pubsub subscription refused (%s): polling instead", exc.message)
                self.mode = "polling"
                await stack.aclose()
                async for item in self._polling(keys):
                    yield item
                return
            log.info("watching %d mailboxes over pubsub", len(pairs))
            new = await self._sync(keys)
            self.ready.set()
            while True:
                for item in new:
                    yield item
                try:
                    notice = await asyncio.wait_for(queue.get(), self._resync)
                except TimeoutError:
                    new = await self._sync(keys)
                else:
                    new = await self._sync(keys, notice)


async def _pump(
    peer: str, messages: AsyncIterator[PubsubMessage], queue: asyncio.Queue[tuple[str, bytes]]
) -> None:
    try:
        async for message in messages:
            queue.put_nowait((peer, bytes(message.data)))
    except IpfsShareError as exc:
        log.warning("watch: notices from %s stopped: %s", peer, exc.message)


class MailShareService(ShareService):
    """:class:`ShareService` with the sending side of mailboxes: ``send``, ``outgoing``,
    ``cancel`` (``mailbox`` is the :class:`MailboxService` behind them, ``mesh.inbox``)."""

    def __init__(
        self,
        storage: Storage,
        db: StateDB,
        identities: IdentityService,
        files: FileService,
        revocations: RevocationService,
        policies: PolicyRegistry,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(storage, db, identities, files, revocations, policies, now=now)
        self.mailbox = MailboxService(
            self.storage, self.db, self.identities, self.revocations, self, now=self._now
        )

    async def send(
        self,
        capsule: ShareCapsule | str,
        recipients: str | Sequence[str] | None = None,
        *,
        as_: str | None = None,
    ) -> list[OutgoingCapsule]:
        """See :meth:`MailboxService.send`."""
        return await self.mailbox.send(capsule, recipients, as_=as_)

    async def outgoing(
        self, *, as_: str | None = None, refresh: bool = True
    ) -> list[OutgoingCapsule]:
        """See :meth:`MailboxService.outgoing`."""
        return await self.mailbox.outgoing(as_=as_, refresh=refresh)

    async def cancel(self, capsule_id: str) -> list[OutgoingCapsule]:
        """See :meth:`MailboxService.cancel`."""
        return await self.mailbox.cancel(capsule_id)


# -- helpers ------------------------------------------------------------------------------

_ACK_RANK: dict[str | None, int] = {None: 0, "delivered": 1, "opened": 2}


def _name(key: SigningKey) -> str:
    return ipns_name(key.public_key)


def _names(recipients: str | Sequence[str] | None) -> list[str]:
    if recipients is None:
        return []
    return [recipients] if isinstance(recipients, str) else list(dict.fromkeys(recipients))


def _held_sequence(exc: IpfsShareError) -> int | None:
    """The sequence of the record a node kept when it refused ours as not newer (Kubo:
    "existing IPNS record has sequence N >= new ..."; the embedded store: "expected a
    sequence >= N ..."), or None if the refusal was for something else."""
    if "sequence" not in exc.message:
        return None
    found = _PREFIX_SEQ.search(exc.message.split("sequence", 1)[1])
    return None if found is None else int(found[1])


async def _fetch(storage: Storage, cid: str) -> bytes:
    try:
        return await asyncio.wait_for(storage.block_get(cid), FETCH_TIMEOUT)
    except TimeoutError:
        raise NotFoundError(
            f"the block {cid} could not be fetched in {FETCH_TIMEOUT:.0f} s",
            hint="check the nodes are connected and the sender's node is online",
        ) from None


async def _bounded(jobs: Iterable[Awaitable[None]], limit: int = CONCURRENCY) -> None:
    """Run ``jobs`` at most ``limit`` at a time; the first error cancels the rest and is
    raised as itself (not wrapped in an ExceptionGroup: callers match typed errors)."""
    gate = asyncio.Semaphore(limit)

    async def gated(job: Awaitable[None]) -> None:
        async with gate:
            await job

    tasks = [asyncio.ensure_future(gated(j)) for j in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
