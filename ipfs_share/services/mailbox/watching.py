"""Watching: an async iterator of new inbox items, over pubsub notices where the node
has pubsub (with a full sync now and then, a notice can be lost), else by polling with a
backoff. Notices wait in a queue that holds at most one per sender (the newest), so a
sender that floods its topic costs memory for one record."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Literal

from ipfs_share.errors import IpfsShareError, NodeError, NodeUnreachableError
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.mailbox.pairs import Pairs
from ipfs_share.services.mailbox.reader import MailboxReader
from ipfs_share.services.mailbox.support import log
from ipfs_share.services.mailbox.views import InboxItem
from ipfs_share.storage.base import PubsubMessage, Storage

POLL_MIN, POLL_MAX = 1.0, 60.0  # watch without pubsub: backoff between syncs
RESYNC = 30.0  # watch with pubsub: a full sync this often anyway (a notice can be lost)


class Notices:
    """Pending notices, at most one per sender: a newer one replaces the one waiting."""

    def __init__(self) -> None:
        self._pending: dict[str, bytes] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, peer: str, record: bytes) -> None:
        self._pending.pop(peer, None)  # re-insert: the oldest waiting comes out first
        self._pending[peer] = record
        self._ready.set()

    async def get(self) -> tuple[str, bytes]:
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        peer = next(iter(self._pending))
        return peer, self._pending.pop(peer)


class InboxWatch:
    """See :meth:`MailboxService.watch`. ``mode`` is None until the first item is asked
    for, then ``"pubsub"`` or ``"polling"``; ``ready`` is set once the subscriptions are
    up and the first sync is done."""

    def __init__(
        self,
        reader: MailboxReader,
        identities: IdentityService,
        pairs: Pairs,
        storage: Storage,
        as_: str | None,
        *,
        senders: tuple[str, ...],
        pubsub: bool | None,
        poll_min: float,
        poll_max: float,
        resync: float,
    ) -> None:
        self._reader = reader
        self._identities = identities
        self._pairs = pairs
        self._storage = storage
        self._as = as_
        self._senders = senders
        self._want_pubsub = pubsub
        self._poll = (poll_min, poll_max)
        self._resync = resync
        self.mode: Literal["pubsub", "polling"] | None = None
        self.interval = poll_min  # the current wait between polls
        self.ready = asyncio.Event()
        self.notices = Notices()
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
        me = self._identities.get(self._as).did
        keys = await self._identities.unlock(me)  # once for the whole watch
        caps = await self._storage.capabilities()
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
        reader = self._reader
        try:
            if notice is None:
                report = await reader.sync_report(keys.did, senders=self._senders, keys=keys)
            else:
                peer, record = notice
                report = await reader.sync_report(
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
        peers = await self._reader.peers(keys.did, self._senders, contacts=True)
        pairs = [await self._pairs.with_(keys, p) for p in peers]
        async with contextlib.AsyncExitStack() as stack:
            tasks: list[asyncio.Task[None]] = []
            stack.callback(lambda: [t.cancel() for t in tasks])
            try:
                for pair in pairs:
                    messages = await stack.enter_async_context(
                        self._storage.pubsub_subscribe(pair.in_topic)
                    )
                    tasks.append(asyncio.create_task(_pump(pair.peer, messages, self.notices)))
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
                    notice = await asyncio.wait_for(self.notices.get(), self._resync)
                except TimeoutError:  # nothing for a while: a full sync anyway
                    new = await self._sync(keys)
                else:
                    new = await self._sync(keys, notice)


async def _pump(peer: str, messages: AsyncIterator[PubsubMessage], notices: Notices) -> None:
    try:
        async for message in messages:
            notices.put(peer, bytes(message.data))
    except IpfsShareError as exc:
        log.warning("watch: notices from %s stopped: %s", peer, exc.message)
