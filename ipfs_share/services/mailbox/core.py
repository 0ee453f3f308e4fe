"""The state the sides of the mailbox service share: the node (probed once), event
subscribers, the pairs of mailboxes by peer, and the views of database rows."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ipfs_share.crypto.x25519 import PublicEncryptionKey
from ipfs_share.errors import InvalidInputError, MailboxUnsupportedError
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import mailbox_key
from ipfs_share.local.db import InboxRow, SentRow, StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.mailbox.pairs import _name, _Pair, notice_topic
from ipfs_share.services.mailbox.support import log
from ipfs_share.services.mailbox.views import InboxItem, OutgoingCapsule, OutgoingState
from ipfs_share.services.revocations import RevocationService
from ipfs_share.services.share import ShareService
from ipfs_share.storage.base import NodeCapabilities, Storage

if TYPE_CHECKING:
    from ipfs_share.services.mailbox.sending import _Box

EVENTS = ("capsule_received", "ack_received")
Event = Literal["capsule_received", "ack_received"]
Callback = Callable[[Any], object]


class MailboxCore:
    """The shared state of :class:`~ipfs_share.services.mailbox.MailboxService`; the
    sending and syncing sides build on it."""

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

    def forget(self, did: str) -> None:
        """Drop the mailbox keys derived for ``did``'s pairs (its identity was locked: what
        was derived from its secret key goes with it)."""
        for key in [k for k in self._pairs if k[0] == did]:
            del self._pairs[key]

    async def _pair_with(self, keys: IdentityKeys, peer: str) -> _Pair:
        """The pair with ``peer`` (a did), its key from its verified document."""
        return await self._pair(keys, peer, (await self.identities.recipient(peer)).enc)

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
