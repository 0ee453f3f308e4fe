"""What the mailbox service hands back: items that arrived, capsules sent and how far
they got, and the report of one sync. Frozen values with a ``to_json`` for the CLI; and
:class:`Views`, which makes them from database rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ipfs_share.errors import IpfsShareError
from ipfs_share.local.state import InboxRow, SentRow, StateDB
from ipfs_share.services.identities import IdentityService

OutgoingState = Literal["queued", "delivered", "opened", "revoked", "cancelled"]


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
    # "pending" (not fetched yet), "delivered", "withdrawn" (revoked first), "invalid",
    # "missing" (its capsule could not be fetched within the retry budget)
    state: str
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
    not be read (no record found: nothing sent yet, or the sender's node is away).

    What a sync bounds (docs/spec/mailbox.md section 8) it reports: ``partial``, senders
    whose chain was not read to the end by its deadline (the rest comes at the next sync,
    nothing verified is read again); ``deferred``, (sender, n) capsules that could not be
    fetched yet (tried again later, with a backoff); ``missing``, (sender, n) capsules
    given up on after the retry budget (filed "missing")."""

    new: tuple[InboxItem, ...] = ()
    receipts: tuple[OutgoingCapsule, ...] = ()
    failed: tuple[tuple[str, IpfsShareError], ...] = ()  # (sender did, why)
    unreachable: tuple[str, ...] = ()
    partial: tuple[str, ...] = ()
    deferred: tuple[tuple[str, int], ...] = ()
    missing: tuple[tuple[str, int], ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "new": [i.to_json() for i in self.new],
            "receipts": [r.to_json() for r in self.receipts],
            "failed": [
                {"sender": who, "code": exc.code, "message": exc.message, "hint": exc.hint}
                for who, exc in self.failed
            ],
            "unreachable": list(self.unreachable),
            "partial": list(self.partial),
            "deferred": [{"sender": who, "capsules": n} for who, n in self.deferred],
            "missing": [{"sender": who, "capsules": n} for who, n in self.missing],
        }


class Views:
    """Rows of the home's database as what callers get (names from the keystore and the
    contacts; the state of a sent capsule from its share)."""

    def __init__(self, db: StateDB, identities: IdentityService) -> None:
        self.db = db
        self.identities = identities

    def name_of(self, did: str) -> str | None:
        local = self.identities.keystore.find(did)
        if local is not None:
            return local.name
        contacts = self.db.contacts.of(did)
        return contacts[0].petname if contacts else None

    def outgoing(self, row: SentRow) -> OutgoingCapsule:
        share = self.db.shares.get(row.capsule)
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
            recipient_name=self.name_of(row.recipient),
            state=state,
            sent_at=row.sent_at,
            delivered_at=row.delivered_at,
            opened_at=row.opened_at,
            cancelled_at=row.cancelled_at,
            mailbox=row.name,
            seq=row.seq,
        )

    def item(self, row: InboxRow, *, sender_name: str | None = None) -> InboxItem:
        """``sender_name``: the sender's name, when the caller looked it up already."""
        return InboxItem(
            id=row.capsule,
            reader=row.reader,
            sender=row.sender,
            sender_name=sender_name if sender_name is not None else self.name_of(row.sender),
            issuer=row.issuer,
            expires=row.expires,
            sent=row.sent,
            received_at=row.received_at,
            state=row.state,
            mailbox=row.name,
            seq=row.seq,
        )
