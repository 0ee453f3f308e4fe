"""Syncing: read the peers' chains back to the high-water mark, verify and store what
is new, settle the capsules that arrived (fetched, checked against the issuer's
revocations), and send the acknowledgements that are due back through our own chains."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ipfs_share.errors import (
    FormatError,
    IdentityNotFoundError,
    InvalidInputError,
    IpfsShareError,
    NodeError,
    NodeUnreachableError,
    NotFoundError,
    SignatureInvalidError,
)
from ipfs_share.formats.capsule import decode_capsule
from ipfs_share.formats.ipns import verify_record
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import HighWater, head_from_record, verify_chain
from ipfs_share.formats.revocation import RevocationHead, is_revoked
from ipfs_share.local.db import InboxRow
from ipfs_share.services.mailbox.pairs import _Pair
from ipfs_share.services.mailbox.sending import MailboxSender, _Body
from ipfs_share.services.mailbox.support import _bounded, _fetch, log
from ipfs_share.services.mailbox.views import InboxItem, OutgoingCapsule, SyncReport
from ipfs_share.services.opened import OpenedFile
from ipfs_share.services.revocations import drive

RESOLVE_TIMEOUT = 20.0
STALE_RETRY_DELAY = 0.5  # a head older than the mark: resolve once more before refusing


class MailboxReader(MailboxSender):
    """The reading side of :class:`~ipfs_share.services.mailbox.MailboxService`:
    acknowledgements go out through the sending side."""

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
            peers += self.db.outbox_senders(me)  # identities of this home that wrote to us
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
        moved = self.db.settle_inbox(me, settled)  # a concurrent sync may have been first
        done = {c: (st, issuer, exp) for c, st, issuer, exp in settled if c in moved}
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
