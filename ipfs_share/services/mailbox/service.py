"""The mailbox service as callers see it (``mesh.inbox``): the writer, the reader and the
watcher composed, with what spans them (the outgoing list, cancelling, the inbox list);
and :class:`MailShareService`, the share service that sends through it (``mesh.share``).

Each part gets what it uses in its constructor; none is handed the object that owns it."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from ipfs_share.errors import InvalidInputError, IpfsShareError, NotFoundError
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.local.state import InboxRow, StateDB
from ipfs_share.services.feeds import FeedReader, FeedWriter
from ipfs_share.services.files import FileService
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.mailbox.pairs import Pairs
from ipfs_share.services.mailbox.reader import MailboxReader
from ipfs_share.services.mailbox.support import Callback, Event, Events, Provider, log
from ipfs_share.services.mailbox.views import InboxItem, OutgoingCapsule, SyncReport, Views
from ipfs_share.services.mailbox.watching import POLL_MAX, POLL_MIN, RESYNC, InboxWatch
from ipfs_share.services.mailbox.writer import MailboxWriter
from ipfs_share.services.opened import OpenedFile
from ipfs_share.services.policy import PolicyRegistry
from ipfs_share.services.revocations import RevocationService
from ipfs_share.services.share import RevokeResult, ShareCapsule, ShareService
from ipfs_share.storage.base import NodeCapabilities, Storage
from ipfs_share.storage.timed import within

# Seconds an open waits to send its "opened" receipt (else the next sync sends it).
RECEIPT_PATIENCE = 10.0


class MailboxService:
    """Sending, syncing, watching; ``mesh.inbox`` is this service, and ``mesh.share``
    carries its sending side (``send``, ``outgoing``, ``cancel``). ``share`` is what
    cancel revokes through and ``open`` opens through; ``feed_writer`` and ``feed_reader``
    are the home's (made from ``storage`` and ``db`` when not given)."""

    def __init__(
        self,
        storage: Storage,
        db: StateDB,
        identities: IdentityService,
        revocations: RevocationService,
        share: ShareService,
        *,
        now: Callable[[], float] = time.time,
        feed_writer: FeedWriter | None = None,
        feed_reader: FeedReader | None = None,
    ) -> None:
        self.storage = storage
        self.db = db
        self.identities = identities
        self.share = share
        self._now = now
        self.events = Events()
        self.provider = Provider(storage)
        self.pairs = Pairs(identities)
        self.views = Views(db, identities, now=now)
        self.writer = MailboxWriter(
            storage,
            db,
            feed_writer or FeedWriter(storage, db, now=now),
            identities,
            self.pairs,
            self.views,
            self.provider,
            now=now,
        )
        self.reader = MailboxReader(
            storage,
            db,
            feed_reader or FeedReader(storage, db, now=now),
            identities,
            revocations,
            self.pairs,
            self.views,
            self.events,
            self.provider,
            self.writer,
            share,
            now=now,
        )

    def __repr__(self) -> str:
        return f"MailboxService({self.storage!r})"

    # -- the parts, as one service ----------------------------------------------------------
    async def check_provider(self) -> NodeCapabilities:
        """Probe the node once (:class:`~ipfs_share.errors.MailboxUnsupportedError` if it
        cannot store IPNS records signed here)."""
        return await self.provider.check()

    def forget(self, did: str) -> None:
        """Drop the mailbox keys derived for ``did``'s pairs and the file keys its opens
        unwrapped (its identity was locked)."""
        self.pairs.forget(did)
        self.share.forget(did)

    def subscribe(self, event: Event, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` (plain or async) on ``event``: ``"capsule_received"`` with an
        :class:`InboxItem`, ``"ack_received"`` with an :class:`OutgoingCapsule`, from
        every sync and watch of this service. Returns a function that unsubscribes."""
        return self.events.subscribe(event, callback)

    def unsubscribe(self, event: Event, callback: Callback) -> None:
        self.events.unsubscribe(event, callback)

    async def send(
        self,
        capsule: ShareCapsule | str,
        recipients: str | Sequence[str] | None = None,
        *,
        as_: str | None = None,
    ) -> list[OutgoingCapsule]:
        """See :meth:`MailboxWriter.send`."""
        return await self.writer.send(capsule, recipients, as_=as_)

    async def send_op(self, op: str, recipient: str, *, as_: str | None = None) -> None:
        """See :meth:`MailboxWriter.send_op` (a keychain op pointed at ``recipient``)."""
        await self.writer.send_op(op, recipient, as_=as_)

    async def sync(
        self, as_: str | None = None, *, senders: Iterable[str] = (), strict: bool = True
    ) -> list[InboxItem]:
        """See :meth:`MailboxReader.sync`."""
        return await self.reader.sync(as_, senders=senders, strict=strict)

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
        """See :meth:`MailboxReader.sync_report`."""
        return await self.reader.sync_report(
            as_,
            senders=senders,
            contacts=contacts,
            acknowledge=acknowledge,
            records=records,
            keys=keys,
        )

    async def acknowledge(self, as_: str | None = None) -> int:
        """See :meth:`MailboxReader.acknowledge`."""
        return await self.reader.acknowledge(as_)

    async def open(
        self, item: InboxItem | str, *, as_: str | None = None, **options: Any
    ) -> OpenedFile:
        """See :meth:`MailboxReader.open`."""
        return await self.reader.open(item, as_=as_, **options)

    async def opened(self, capsule: str, as_: str | None = None) -> bool:
        """Tell the sender at once that ``as_`` opened ``capsule``, if it came through a
        mailbox (so its ``outgoing`` shows the time of the open, not of a later sync).
        Within :data:`RECEIPT_PATIENCE` seconds; if it cannot be sent now, it stays due
        and the next sync sends it. Returns whether it was sent now."""
        _, me = self.identities.name_and_did(as_)
        item = self.db.mailboxes.item(me, normalize_cid(capsule))
        if item is None or item.state not in ("delivered", "revoked"):
            return False
        try:
            async with within(RECEIPT_PATIENCE, f"sending the opened receipt to {item.sender}"):
                return await self.reader.acknowledge(me, senders=[item.sender]) > 0
        except IpfsShareError as exc:
            log.warning(
                "the opened receipt for %s waits for the next sync: %s", capsule, exc.message
            )
            return False

    # -- outgoing -------------------------------------------------------------------------
    async def outgoing(
        self, *, as_: str | None = None, refresh: bool = True
    ) -> list[OutgoingCapsule]:
        """Capsules sent from this home (by ``as_``, or by any local identity) and their
        state: queued, delivered, opened (acknowledged by the recipient), revoked or
        cancelled. ``refresh`` first reads the recipients' acknowledgements."""
        senders = [self.identities.get(as_).did] if as_ is not None else None
        rows = [r for r in self.db.mailboxes.sent() if senders is None or r.sender in senders]
        if refresh:
            waiting: dict[str, set[str]] = defaultdict(set)
            for r in rows:
                if r.opened_at is None and r.cancelled_at is None:
                    waiting[r.sender].add(r.recipient)
            for sender, peers in waiting.items():
                report = await self.sync_report(sender, senders=sorted(peers), contacts=False)
                for who, exc in report.failed:
                    log.warning("receipts from %s: %s", who, exc.message)
            rows = [r for r in self.db.mailboxes.sent() if senders is None or r.sender in senders]
        return [self.views.outgoing(r) for r in rows]

    async def cancel(self, capsule_id: str) -> list[OutgoingCapsule]:
        """Withdraw a capsule no recipient has picked up: revoke it, so a recipient that
        syncs later files it as withdrawn (never as new) and cannot open it. The chain is
        append-only, so the entry stays in its history (docs/spec/mailbox.md section 10).
        A capsule already delivered cannot be taken back: revoke it instead."""
        cid = normalize_cid(capsule_id)
        share = self.db.shares.get(cid)
        if share is None:
            raise NotFoundError(
                f"no share {cid} was made from this home",
                hint="only the home that shared and sent it can cancel it",
            )
        if not self.db.mailboxes.sent(capsule=cid):
            raise InvalidInputError(
                f"the capsule {cid} was never sent",
                hint="revoke it instead (share.revoke)",
                reason="never_sent",
                subject=cid,
            )
        await self.outgoing(as_=share.issuer)  # the freshest acknowledgements first
        rows = self.db.mailboxes.sent(capsule=cid)
        picked = [r for r in rows if r.delivered_at is not None or r.opened_at is not None]
        if picked:
            raise InvalidInputError(
                f"the capsule {cid} was already delivered to "
                f"{', '.join(self.views.name_of(r.recipient) or r.recipient for r in picked)}",
                hint="revoke it instead (share.revoke) to block later opens (what was "
                "delivered cannot be taken back)",
                reason="already_delivered",
                subject=cid,
            )
        if all(r.cancelled_at is not None for r in rows):
            raise InvalidInputError(f"the capsule {cid} is already cancelled")
        if share.state == "active":
            await self.share.revoke(cid)
        self.db.mailboxes.mark_cancelled(cid, at=int(self._now()))
        return [self.views.outgoing(r) for r in self.db.mailboxes.sent(capsule=cid)]

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
            self.reader,
            self.identities,
            self.pairs,
            self.storage,
            as_,
            senders=tuple(senders),
            pubsub=pubsub,
            poll_min=poll_min,
            poll_max=poll_max,
            resync=resync,
        )

    # Last in the class: a method named list shadows the builtin in later signatures.
    def list(self, as_: str | None = None, *, include_withdrawn: bool = False) -> list[InboxItem]:
        """What has arrived for ``as_`` (default identity), oldest first, each in its
        state now (pending, delivered, expired, revoked, or replaced by a capsule that
        arrived since); with ``include_withdrawn`` also what was withdrawn, invalid or
        missing."""
        me = self.identities.get(as_).did
        if include_withdrawn:
            rows = self.db.mailboxes.inbox(
                me,
                states=("pending", "delivered", "revoked", "withdrawn", "invalid", "missing"),
            )
        else:
            rows = self.db.mailboxes.inbox(me)
        newer = self.db.mailboxes.replacements(me)

        def replaced_by(row: InboxRow) -> str | None:
            found = newer.get(row.capsule)  # only a capsule of the same issuer counts
            return found.capsule if found is not None and found.issuer == row.issuer else None

        return [self.views.item(r, replaced_by=replaced_by(r)) for r in rows]


class MailShareService(ShareService):
    """:class:`ShareService` with the sending side of mailboxes: ``send``, ``outgoing``,
    ``cancel`` (``mailbox`` is the :class:`MailboxService` behind them, ``mesh.inbox``);
    an open of a capsule that came through a mailbox sends its "opened" receipt at once,
    and a revoke sends the capsules it re-issues to the inboxes the old ones went to.
    The mailbox revokes and opens through a plain :class:`ShareService` over the same
    storage and state (it is not handed this one)."""

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
        feed_writer: FeedWriter | None = None,
        feed_reader: FeedReader | None = None,
    ) -> None:
        super().__init__(storage, db, identities, files, revocations, policies, now=now)
        core = ShareService(storage, db, identities, files, revocations, policies, now=now)
        self.mailbox = MailboxService(
            storage,
            db,
            identities,
            revocations,
            core,
            now=now,
            feed_writer=feed_writer,
            feed_reader=feed_reader,
        )

    def forget(self, did: str) -> None:
        """Drop what was derived from ``did``'s secret keys, here and in the mailbox (its
        identity was locked)."""
        super().forget(did)
        self.mailbox.forget(did)

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

    async def open_capsule(
        self,
        capsule_or_id: ShareCapsule | str,
        *,
        as_: str | None = None,
        capability: bytes | None = None,
        now: float | None = None,
        max_staleness: float | None = None,
    ) -> OpenedFile:
        """:meth:`ShareService.open_capsule`, then the "opened" receipt to the sender of
        a capsule that came through a mailbox, at once (:meth:`MailboxService.opened`)."""
        _, me = self.identities.name_and_did(as_)  # looked up once, by did from here on
        opened = await super().open_capsule(
            capsule_or_id, as_=me, capability=capability, now=now, max_staleness=max_staleness
        )
        if opened.capsule is not None:
            await self.mailbox.opened(opened.capsule, me)
        return opened

    async def revoke(
        self,
        capsule_id: str,
        *,
        rotate: bool = False,
        drop: Sequence[str] = (),
        send: bool | None = None,
    ) -> RevokeResult:
        """:meth:`ShareService.revoke`, then each re-issued capsule to the inboxes the plan
        names (``send``: None, the recipients its old capsule was sent to; True, all its
        recipients; False, none). A send that fails does not undo the revoke: the result
        says what was sent and what was not, and why (send it later with :meth:`send`).
        A revoke run again after it published its list sends what it had not sent."""
        row = self.db.shares.get(normalize_cid(capsule_id))
        if row is not None and row.revoked_at is not None and row.revocation_head is not None:
            await self._send_pending(row.revocation_head)
        done = await super().revoke(capsule_id, rotate=rotate, drop=drop, send=send)
        assert done.plan is not None
        made = {c.replaces: c for c in done.reissued}
        sent: list[tuple[str, str]] = []
        not_sent: list[tuple[str, str, str]] = []
        for planned in done.plan.reissue:
            new = made.get(planned.old)
            if new is None or not planned.send_to:
                continue
            try:
                out = await self.mailbox.send(new.id, list(planned.send_to))
                sent += [(o.id, o.recipient) for o in out]
            except IpfsShareError as exc:
                not_sent += [(new.id, d, exc.message) for d in planned.send_to]
        return replace(done, sent=tuple(sent), not_sent=tuple(not_sent))

    async def _send_pending(self, head: str) -> None:
        """Send the capsules a revoke (its list ``head``) re-issued to the recipients its
        old capsules were sent to, where a first run stopped before it could."""
        for old in self.db.shares.revoked_with(head):
            new = self.db.shares.reissued_as(old)
            share = None if new is None else self.db.shares.get(new)
            if new is None or share is None or share.state != "active":
                continue
            went = {r.recipient for r in self.db.mailboxes.sent(capsule=old)}
            todo = [
                d
                for d, _ in self.db.shares.recipients(new)
                if d in went and not self.db.mailboxes.was_sent(share.issuer, d, new)
            ]
            if todo:
                try:
                    await self.mailbox.send(new, todo)
                except IpfsShareError as exc:
                    log.warning("re-issued capsule %s not sent: %s", new, exc.message)
