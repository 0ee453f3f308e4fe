"""The sending side: append capsules (and acknowledgements) to our chain for a peer (a
feed we sign, through the feed writer), publish the new head under the mailbox name, and
announce it on the mailbox's pubsub topic.

Concurrent appends to one chain in this process are grouped (:class:`_Box`: 50
concurrent sends cost a few appends); appends from other processes of the same home are
serialized by the feed writer (the head moves only from the seq it was read at)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ipfs_share.errors import InvalidInputError, NodeError
from ipfs_share.formats.capsule import decode_capsule
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.formats.feed import FeedEntry
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import (
    MAX_ACKS,
    AckState,
    MailboxEntry,
    ack_reference,
    feed_entry,
    make_acks,
    make_entry,
    make_keychain_entry,
)
from ipfs_share.local.state import SentRow, StateDB
from ipfs_share.services.feeds import Batch, FeedWriter
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.mailbox.pairs import Pairs, _Pair
from ipfs_share.services.mailbox.support import Provider, log
from ipfs_share.services.mailbox.views import OutgoingCapsule, Views
from ipfs_share.services.share import ShareCapsule
from ipfs_share.storage.base import Storage

__all__ = ["Body", "MailboxWriter"]


@dataclass(frozen=True, slots=True)
class Body:
    """One thing to append: a capsule (``state`` None) or an acknowledgement of one, or
    (``op``) a keychain op for the recipient to look at (``capsule`` is then its CID)."""

    capsule: str
    state: AckState | None = None
    op: bool = False


@dataclass
class _Box:
    """One of our chains in this process: a lock, and submissions waiting to be appended
    together (a group commit)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue: list[tuple[list[Body], asyncio.Future[None]]] = field(default_factory=list)


class MailboxWriter:
    def __init__(
        self,
        storage: Storage,
        db: StateDB,
        feeds: FeedWriter,
        identities: IdentityService,
        pairs: Pairs,
        views: Views,
        provider: Provider,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.db = db
        self.feeds = feeds
        self.identities = identities
        self.pairs = pairs
        self.views = views
        self.provider = provider
        self._now = now
        self._boxes: dict[str, _Box] = {}

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
        share = self.db.shares.get(cid)
        decode_capsule(await self.storage.block_get(cid))  # a capsule, signed, or refuse now
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
            names = [d for d, _ in self.db.shares.recipients(cid)]
        targets = [await self.identities.recipient(n) for n in names]
        if share is not None:
            wrapped = {d for d, _ in self.db.shares.recipients(cid)}
            stray = [n for n, t in zip(names, targets, strict=True) if t.did not in wrapped]
            if stray:
                raise InvalidInputError(
                    f"the capsule {cid} is not wrapped for {', '.join(stray)}",
                    hint="share the file with them first, then send that capsule",
                )
        await self.provider.check()
        keys = await self.identities.unlock(me.did)
        pairs = [self.pairs.of(keys, t.did, t.enc) for t in targets]
        await asyncio.gather(*(self.submit(keys, p, [Body(cid)]) for p in pairs))
        sent = {
            (r.recipient, r.capsule): r for r in self.db.mailboxes.sent(sender=me.did, capsule=cid)
        }
        return [self.views.outgoing(sent[(p.peer, cid)]) for p in pairs]

    async def send_op(self, op: str, recipient: str, *, as_: str | None = None) -> None:
        """Point ``recipient`` (a name, petname or did) at keychain op ``op`` (an offer for
        it, or an accept of its offer) through our mailbox for it
        (docs/spec/keychain.md section 6)."""
        target = await self.identities.recipient(recipient)
        await self.provider.check()
        keys = await self.identities.unlock(self.identities.get(as_).did)
        pair = self.pairs.of(keys, target.did, target.enc)
        await self.submit(keys, pair, [Body(normalize_cid(op), op=True)])

    async def submit(self, keys: IdentityKeys, pair: _Pair, bodies: list[Body]) -> None:
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

    async def _append(self, keys: IdentityKeys, pair: _Pair, bodies: list[Body]) -> None:
        """Append entries for ``bodies`` that are not in the chain yet, and record what
        they carry in the transaction that moves the head."""
        made: list[tuple[MailboxEntry, list[Body]]] = []

        async def entries_after(prev: FeedEntry | None) -> Batch:
            todo = self._still_to_append(pair, bodies)
            made[:] = self._sign(keys, pair, None if prev is None else prev.value, todo)
            return Batch([feed_entry(e) for e, _ in made])

        def record(_: Sequence[FeedEntry]) -> None:
            sent = [
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
                for e, group in made
                for b in group
                if b.state is None and not b.op
            ]
            acked = [
                (keys.did, b.capsule, b.state)
                for _, group in made
                for b in group
                if b.state is not None
            ]
            self.db.mailboxes.record_sent(sent, acked)

        # A mailbox has one writer (docs/spec/mailbox.md section 2.3): a chain found only on
        # the network is continued only when this home lost its state and was recovered.
        await self.feeds.append(pair.outbox, entries_after, then=record, adopt=self.db.recovered)

    def _still_to_append(self, pair: _Pair, bodies: list[Body]) -> list[Body]:
        """``bodies`` less what the chain already carries (a retry, a race, a repeat)."""
        unique = list(dict.fromkeys(bodies))
        rank = self.db.mailboxes.ack_rank
        capsules = [b.capsule for b in unique if b.state is None and not b.op]
        sent = self.db.mailboxes.already_sent(pair.me, pair.peer, capsules)
        acked = self.db.mailboxes.acked(pair.me, [b.capsule for b in unique if b.state])
        todo: list[Body] = []
        for b in unique:
            if b.op:  # the recipient files an op once, however often it is pointed at it
                todo.append(b)
                continue
            if b.state is None and b.capsule in sent:
                continue
            if b.state is not None and rank(acked.get(b.capsule)) >= rank(b.state):
                continue
            todo.append(b)
        return todo

    def _sign(
        self, keys: IdentityKeys, pair: _Pair, prev: MailboxEntry | None, bodies: list[Body]
    ) -> list[tuple[MailboxEntry, list[Body]]]:
        """One entry per capsule; acknowledgements of one state together, up to
        :data:`~ipfs_share.formats.mailbox.MAX_ACKS` an entry."""
        sent = int(self._now())
        out: list[tuple[MailboxEntry, list[Body]]] = []
        for b in bodies:
            if b.op:
                prev = make_keychain_entry(keys.signing, prev, op=b.capsule, sent=sent)
                out.append((prev, [b]))
            elif b.state is None:
                prev = make_entry(keys.signing, prev, capsule=b.capsule, sent=sent)
                out.append((prev, [b]))
        for state in ("delivered", "opened"):
            acks = [b for b in bodies if b.state == state]
            for i in range(0, len(acks), MAX_ACKS):
                group = acks[i : i + MAX_ACKS]
                prev = make_acks(
                    keys.signing,
                    prev,
                    capsules=[b.capsule for b in group],
                    via=pair.in_key,
                    state=group[0].state or "delivered",
                    sent=sent,
                )
                out.append((prev, group))
        return out

    async def _publish(self, pair: _Pair) -> None:
        """Publish the head now stored (another writer may be further), then announce it."""
        record = await self.feeds.publish(pair.outbox, pair.out_key)
        if record is not None:
            await self._notify(pair, record)

    async def _notify(self, pair: _Pair, record: bytes) -> None:
        caps = await self.provider.check()
        if not caps.pubsub:
            return
        try:
            await self.storage.pubsub_publish(pair.out_topic, record)
        except NodeError as exc:  # a notice is a courtesy; the record is what counts
            log.debug("mailbox notice on %s not sent: %s", pair.out_name, exc.message)


def _names(recipients: str | Sequence[str] | None) -> list[str]:
    if recipients is None:
        return []
    return [recipients] if isinstance(recipients, str) else list(dict.fromkeys(recipients))
