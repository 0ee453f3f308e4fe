"""Watching: an async iterator of new inbox items, over pubsub notices where the node
has pubsub (with a full sync now and then, a notice can be lost), else by polling with a
backoff."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Literal

from ipfs_share.errors import IpfsShareError, NodeError, NodeUnreachableError
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.services.mailbox.support import log
from ipfs_share.services.mailbox.views import InboxItem
from ipfs_share.storage.base import PubsubMessage

if TYPE_CHECKING:
    from ipfs_share.services.mailbox.service import MailboxService

POLL_MIN, POLL_MAX = 1.0, 60.0  # watch without pubsub: backoff between syncs
RESYNC = 30.0  # watch with pubsub: a full sync this often anyway (a notice can be lost)


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
