"""What the mailbox service hands back: items that arrived, capsules sent and how far
they got, and the report of one sync. Frozen values with a ``to_json`` for the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ipfs_share.errors import IpfsShareError

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
