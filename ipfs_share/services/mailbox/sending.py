"""Sending: append capsules (and acknowledgements) to our chain for a peer, publish the
new head under the mailbox name, and announce it on the mailbox's pubsub topic.

Concurrent appends to one chain in this process are grouped (:class:`_Box`); appends
from other processes of the same home are serialized by the database (the head moves only
from the seq it was read at)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ipfs_share.errors import (
    InvalidInputError,
    IpfsShareError,
    IpnsRecordInvalidError,
    NodeError,
    NodeRequestError,
    StoreError,
)
from ipfs_share.formats.capsule import decode_capsule
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import (
    AckState,
    MailboxEntry,
    ack_reference,
    decode_entry,
    head_record,
    make_ack,
    make_entry,
    make_keychain_entry,
)
from ipfs_share.local.db import OutboxRow, SentRow
from ipfs_share.services.mailbox.core import MailboxCore
from ipfs_share.services.mailbox.pairs import _Pair
from ipfs_share.services.mailbox.support import _bounded, _fetch, log
from ipfs_share.services.mailbox.views import OutgoingCapsule
from ipfs_share.services.share import ShareCapsule

# A head record is valid for a year (only the two ends hold the key, so no node can
# republish it for us; every send renews it) and cached for seconds: readers resolve
# without cache anyway, and a short TTL keeps other resolvers fresh.
HEAD_VALIDITY = timedelta(days=365)
HEAD_TTL_SECONDS = 10
APPEND_RETRIES = 20  # another process of this home appended first: re-read and retry

_PREFIX_SEQ = re.compile(r"(\d+)")
_ACK_RANK: dict[str | None, int] = {None: 0, "delivered": 1, "opened": 2}


@dataclass(frozen=True, slots=True)
class _Body:
    """One entry to append: a capsule (``state`` None) or an acknowledgement of one, or
    (``op``) a keychain op for the recipient to look at (``capsule`` is then its CID)."""

    capsule: str
    state: AckState | None = None
    op: bool = False


@dataclass
class _Box:
    """One of our chains in this process: a lock, and sends waiting to be appended
    together (a group commit: 50 concurrent sends cost a few appends, not 50)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue: list[tuple[list[_Body], asyncio.Future[None]]] = field(default_factory=list)


class MailboxSender(MailboxCore):
    """The sending side of :class:`~ipfs_share.services.mailbox.MailboxService`."""

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

    async def send_op(self, op: str, recipient: str, *, as_: str | None = None) -> None:
        """Point ``recipient`` (a name, petname or did) at keychain op ``op`` (an offer for
        it, or an accept of its offer) through our mailbox for it
        (docs/spec/keychain.md section 6)."""
        target = await self.identities.recipient(recipient)
        await self.check_provider()
        keys = await self.identities.unlock(self.identities.get(as_).did)
        pair = await self._pair(keys, target.did, target.enc)
        await self._submit(keys, pair, [_Body(normalize_cid(op), op=True)])

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
                    if b.state is None and not b.op
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
            if b.op:  # the recipient files an op once, however often it is pointed at it
                todo.append(b)
                continue
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
            if b.op:
                prev = make_keychain_entry(keys.signing, prev, op=b.capsule, sent=sent)
            elif b.state is None:
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
