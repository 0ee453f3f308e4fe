"""What the mailbox service hands back: items that arrived, capsules sent and how far
they got, and the report of one sync. Frozen values with a ``to_json`` for the CLI; and
:class:`Views`, which makes them from database rows.

States agree across views: a sent capsule's state (:class:`OutgoingCapsule`) comes from
its share's state (:func:`~ipfs_share.services.share.share_state`: expired, revoked,
replaced) before its receipts, and an item of the inbox (:class:`InboxItem`) is never
"delivered" once it expired or was found revoked. Times are Unix seconds (``to_json``
keeps them so); a person is shown :func:`ipfs_share.times.iso`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import EllipsisType
from typing import Literal

from ipfs_share.errors import IpfsShareError
from ipfs_share.local.state import InboxRow, SentRow, StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.share import share_state

OutgoingState = Literal[
    "queued", "delivered", "opened", "expired", "revoked", "replaced", "cancelled"
]
# What an inbox item can be: "pending" (not fetched yet), "delivered", "expired" (past its
# expiry), "revoked" (revoked after it arrived), "replaced" (revoked, and its issuer's
# re-issued capsule arrived: ``replaced_by``); with ``include_withdrawn`` also
# "withdrawn" (revoked before it arrived), "invalid", "missing" (its capsule could not be
# fetched within the retry budget).
InboxState = Literal[
    "pending", "delivered", "expired", "revoked", "replaced", "withdrawn", "invalid", "missing"
]


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
    state: str  # an InboxState
    mailbox: str
    seq: int
    replaces: str | None = None  # the capsule this one re-issues
    replaced_by: str | None = None  # the capsule that re-issues this one, if it arrived

    def to_json(self) -> dict[str, object]:
        return {
            "capsule": self.id,
            "reader": self.reader,
            "sender": self.sender,
            "sender_name": self.sender_name,
            "issuer": self.issuer,
            "expires": self.expires,
            "sent_at": self.sent,
            "received_at": self.received_at,
            "state": self.state,
            "replaces": self.replaces,
            "replaced_by": self.replaced_by,
            "mailbox": self.mailbox,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class OutgoingCapsule:
    """A capsule sent through a mailbox, and how far it got. ``delivered_at`` and
    ``opened_at`` are the times the recipient acknowledged them (its clock; an open is
    acknowledged as it happens)."""

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
    replaced_by: str | None = None  # the share's re-issued capsule, if it was replaced

    def to_json(self) -> dict[str, object]:
        return {
            "capsule": self.id,
            "sender": self.sender,
            "recipient": self.recipient,
            "recipient_name": self.recipient_name,
            "state": self.state,
            "sent_at": self.sent_at,
            "delivered_at": self.delivered_at,
            "opened_at": self.opened_at,
            "cancelled_at": self.cancelled_at,
            "replaced_by": self.replaced_by,
            "mailbox": self.mailbox,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync found: new items, receipts, and mailboxes that failed or that could
    not be read (no record found: nothing sent yet, or the sender's node is away).

    ``read`` are the senders whose mailboxes were asked for (contacts, ``senders``, and
    everyone we sent to, for receipts), ``reachable`` those whose mailbox answered, and
    ``revoked`` items found revoked after they were delivered. What a sync bounds
    (docs/spec/mailbox.md section 8) it reports: ``partial``, senders whose chain was not
    read to the end by its deadline (the rest comes at the next sync, nothing verified is
    read again); ``deferred``, (sender, n) capsules that could not be fetched yet (tried
    again later, with a backoff); ``missing``, (sender, n) capsules given up on after the
    retry budget (filed "missing")."""

    new: tuple[InboxItem, ...] = ()
    receipts: tuple[OutgoingCapsule, ...] = ()
    failed: tuple[tuple[str, IpfsShareError], ...] = ()  # (sender did, why)
    unreachable: tuple[str, ...] = ()
    partial: tuple[str, ...] = ()
    deferred: tuple[tuple[str, int], ...] = ()
    missing: tuple[tuple[str, int], ...] = ()
    read: tuple[str, ...] = ()
    unreachable_why: tuple[tuple[str, str], ...] = ()  # (sender did, why, in words)
    revoked: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        why = dict(self.unreachable_why)
        return {
            "new": [i.to_json() for i in self.new],
            "receipts": [r.to_json() for r in self.receipts],
            "read": list(self.read),
            "failed": [
                {"sender": who, "code": exc.code, "message": exc.message, "hint": exc.hint}
                for who, exc in self.failed
            ],
            "unreachable": [{"sender": who, "why": why.get(who, "")} for who in self.unreachable],
            "revoked": list(self.revoked),
            "partial": list(self.partial),
            "deferred": [{"sender": who, "capsules": n} for who, n in self.deferred],
            "missing": [{"sender": who, "capsules": n} for who, n in self.missing],
        }


class Views:
    """Rows of the home's database as what callers get (names from the keystore and the
    contacts; the state of a sent capsule from its share), at the clock's time."""

    def __init__(
        self, db: StateDB, identities: IdentityService, *, now: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.identities = identities
        self._now = now

    def name_of(self, did: str) -> str | None:
        local = self.identities.keystore.find(did)
        if local is not None:
            return local.name
        contacts = self.db.contacts.of(did)
        return contacts[0].petname if contacts else None

    def outgoing(self, row: SentRow) -> OutgoingCapsule:
        share = self.db.shares.get(row.capsule)
        shared = "active" if share is None else share_state(share, self._now())
        state: OutgoingState
        if row.cancelled_at is not None:
            state = "cancelled"
        elif shared in ("expired", "revoked", "replaced"):
            state = shared  # type: ignore[assignment]  # narrowed by the test above
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
            recipient_name=self.name_of(row.recipient),
            state=state,
            sent_at=row.sent_at,
            delivered_at=row.delivered_at,
            opened_at=row.opened_at,
            cancelled_at=row.cancelled_at,
            mailbox=row.name,
            seq=row.seq,
            replaced_by=None if share is None else share.replaced_by,
        )

    def item(
        self,
        row: InboxRow,
        *,
        sender_name: str | EllipsisType | None = ...,
        replaced_by: str | None = None,
    ) -> InboxItem:
        """``sender_name``: the sender's name (None: it has none), when the caller looked
        it up already;
        ``replaced_by``: a capsule in the inbox from the same issuer that re-issues this
        one, if any (its issuer revoked this one first: docs/spec/capsule.md section 1.7)."""
        state = row.state
        if replaced_by is not None and state in ("delivered", "revoked"):
            state = "replaced"
        elif state == "delivered" and row.expires is not None and self._now() >= row.expires:
            state = "expired"
        return InboxItem(
            id=row.capsule,
            reader=row.reader,
            sender=row.sender,
            sender_name=self.name_of(row.sender) if sender_name is ... else sender_name,
            issuer=row.issuer,
            expires=row.expires,
            sent=row.sent,
            received_at=row.received_at,
            state=state,
            mailbox=row.name,
            seq=row.seq,
            replaces=row.replaces,
            replaced_by=replaced_by,
        )
