"""What went through mailboxes: capsules we sent (and what their recipients acknowledged),
and the inbox of what arrived. (The chains themselves are feeds:
:mod:`ipfs_share.local.state.feeds`.)"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ipfs_share.local.database import Database

__all__ = ["InboxRow", "MailboxRepository", "OutboxRow", "SentRow"]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """The head of one of our own mailboxes (a chain we write)."""

    name: str
    sender: str
    recipient: str
    seq: int
    head: str
    head_block: bytes
    published_seq: int | None = None


@dataclass(frozen=True, slots=True)
class SentRow:
    """A capsule we sent through a mailbox, and what its recipient acknowledged."""

    sender: str
    recipient: str
    capsule: str
    name: str
    seq: int
    entry: str
    ack_ref: bytes
    sent_at: int
    delivered_at: int | None = None
    opened_at: int | None = None
    cancelled_at: int | None = None


@dataclass(frozen=True, slots=True)
class InboxRow:
    """A capsule that arrived through someone's mailbox to a local identity."""

    reader: str
    capsule: str
    sender: str
    name: str
    seq: int
    entry: str
    sent: int
    received_at: int
    state: str = "pending"  # 'pending' | 'delivered' | 'withdrawn' | 'invalid'
    issuer: str | None = None
    expires: int | None = None
    acked: str | None = None


_SENT_COLS = (
    "sender, recipient, capsule, name, seq, entry, ack_ref, sent_at, delivered_at, opened_at, "
    "cancelled_at"
)
_INBOX_COLS = (
    "reader, capsule, sender, name, seq, entry, sent, received_at, state, issuer, expires, acked"
)
_ACK_RANK: dict[str | None, int] = {None: 0, "delivered": 1, "opened": 2}


def _sent(row: tuple[Any, ...]) -> SentRow:
    values = list(row)
    values[6] = bytes(values[6])
    return SentRow(*values)


class MailboxRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- our own chains ---------------------------------------------------------------------
    def outbox(self, name: str) -> OutboxRow | None:
        got = self._db.one(
            "SELECT name, sender, recipient, seq, head, head_block, published_seq "
            "FROM mailbox_out WHERE name = ?",
            (name,),
        )
        if got is None:
            return None
        return OutboxRow(got[0], got[1], got[2], got[3], got[4], bytes(got[5]), got[6])

    def outbox_peers(self, sender: str) -> list[str]:
        """The recipients ``sender`` has a mailbox to (whose acknowledgements it reads)."""
        rows = self._db.all(
            "SELECT recipient FROM mailbox_out WHERE sender = ? ORDER BY recipient", (sender,)
        )
        return [str(r[0]) for r in rows]

    def advance_outbox(
        self,
        row: OutboxRow,
        *,
        expected_seq: int | None,
        sent: Sequence[SentRow] = (),
        acked: Sequence[tuple[str, str, str]] = (),
    ) -> bool:
        """Move a chain's head to ``row`` and record what the new entries carry, in one
        transaction; False, changing nothing, if the head is no longer at
        ``expected_seq`` (another writer appended first: the caller re-reads and retries)."""
        with self._db.transaction():
            got = self._db.one("SELECT seq FROM mailbox_out WHERE name = ?", (row.name,))
            if (None if got is None else int(got[0])) != expected_seq:
                return False
            self._db.execute(
                "INSERT INTO mailbox_out (name, sender, recipient, seq, head, head_block) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq, "
                "head = excluded.head, head_block = excluded.head_block",
                (row.name, row.sender, row.recipient, row.seq, row.head, row.head_block),
            )
            self.record_sent(sent, acked)
        return True

    def mark_published(self, name: str, seq: int) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE mailbox_out SET published_seq = ? WHERE name = ? "
                "AND (published_seq IS NULL OR published_seq < ?)",
                (seq, name, seq),
            )

    # -- others' chains ---------------------------------------------------------------------
    def high_water(self, reader: str, name: str) -> tuple[int, str] | None:
        got = self._db.one(
            "SELECT seq, head FROM mailbox_read WHERE reader = ? AND name = ?", (reader, name)
        )
        return None if got is None else (int(got[0]), str(got[1]))

    def apply_sync(
        self,
        *,
        reader: str,
        name: str,
        sender: str,
        expected_seq: int | None,
        head: tuple[int, str],
        items: Sequence[InboxRow],
        acks: Sequence[tuple[bytes, str, int]],
    ) -> list[InboxRow] | None:
        """Store what one sync of mailbox ``name`` found, and move its high-water mark to
        ``head`` (seq, CID), in one transaction. Returns the items new to this home, or
        None, changing nothing, if the mark is no longer at ``expected_seq``."""
        with self._db.transaction():
            got = self._db.one(
                "SELECT seq FROM mailbox_read WHERE reader = ? AND name = ?", (reader, name)
            )
            if (None if got is None else int(got[0])) != expected_seq:
                return None
            self._db.execute(
                "INSERT INTO mailbox_read (reader, name, sender, seq, head, synced_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(reader, name) DO UPDATE SET "
                "seq = excluded.seq, head = excluded.head, synced_at = excluded.synced_at",
                (reader, name, sender, head[0], head[1], int(time.time())),
            )
            added = self.file(items)
            self.apply_acks(reader=reader, sender=sender, acks=acks)
        return added

    # -- what we sent ---------------------------------------------------------------------
    def record_sent(
        self, sent: Sequence[SentRow], acked: Sequence[tuple[str, str, str]] = ()
    ) -> None:
        """Record capsules ``sent`` and acknowledgements sent, as (reader, capsule,
        state); part of the transaction that moves the chain's head."""
        with self._db.transaction():
            self._db.executemany(
                f"INSERT INTO mailbox_sent ({_SENT_COLS}) VALUES ({', '.join('?' * 11)}) "
                "ON CONFLICT(sender, recipient, capsule) DO UPDATE SET name = excluded.name, "
                "seq = excluded.seq, entry = excluded.entry, ack_ref = excluded.ack_ref, "
                "sent_at = excluded.sent_at, cancelled_at = NULL",
                [
                    (
                        s.sender,
                        s.recipient,
                        s.capsule,
                        s.name,
                        s.seq,
                        s.entry,
                        s.ack_ref,
                        s.sent_at,
                        s.delivered_at,
                        s.opened_at,
                        s.cancelled_at,
                    )
                    for s in sent
                ],
            )
            self._db.executemany(
                "UPDATE inbox SET acked = ? WHERE reader = ? AND capsule = ?",
                [(state, reader, capsule) for reader, capsule, state in acked],
            )

    def sent(
        self,
        *,
        sender: str | None = None,
        recipient: str | None = None,
        capsule: str | None = None,
    ) -> list[SentRow]:
        rows = self._db.all(
            f"SELECT {_SENT_COLS} FROM mailbox_sent WHERE (? IS NULL OR sender = ?) "
            "AND (? IS NULL OR recipient = ?) AND (? IS NULL OR capsule = ?) "
            "ORDER BY sent_at, seq, recipient",
            (sender, sender, recipient, recipient, capsule, capsule),
        )
        return [_sent(r) for r in rows]

    def was_sent(self, sender: str, recipient: str, capsule: str) -> bool:
        """Is ``capsule`` in our mailbox to ``recipient`` (and not cancelled)?"""
        got = self._db.one(
            "SELECT 1 FROM mailbox_sent WHERE sender = ? AND recipient = ? AND capsule = ? "
            "AND cancelled_at IS NULL",
            (sender, recipient, capsule),
        )
        return got is not None

    def sent_by_ack(self, sender: str, recipient: str, ack_ref: bytes) -> SentRow | None:
        got = self._db.one(
            f"SELECT {_SENT_COLS} FROM mailbox_sent WHERE ack_ref = ? AND sender = ? "
            "AND recipient = ?",
            (ack_ref, sender, recipient),
        )
        return None if got is None else _sent(got)

    def mark_cancelled(self, capsule: str, *, at: int) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE mailbox_sent SET cancelled_at = ? WHERE capsule = ? "
                "AND cancelled_at IS NULL",
                (at, capsule),
            )

    def apply_acks(
        self, *, reader: str, sender: str, acks: Sequence[tuple[bytes, str, int]]
    ) -> list[SentRow]:
        """Apply acknowledgements (ack_ref, state, at) that ``sender`` wrote to ``reader``
        (the capsules ``reader`` sent to ``sender``): "opened" implies "delivered" and
        neither time moves once set. Returns the rows they touched."""
        touched: list[SentRow] = []
        with self._db.transaction():
            for ack_ref, state, at in acks:
                self._db.execute(
                    "UPDATE mailbox_sent SET delivered_at = COALESCE(delivered_at, ?), "
                    "opened_at = CASE WHEN ? = 'opened' THEN COALESCE(opened_at, ?) "
                    "ELSE opened_at END WHERE ack_ref = ? AND sender = ? AND recipient = ?",
                    (at, state, at, ack_ref, reader, sender),
                )
                row = self.sent_by_ack(reader, sender, ack_ref)
                if row is not None:
                    touched.append(row)
        return touched

    # -- the inbox ------------------------------------------------------------------------
    def file(self, items: Sequence[InboxRow]) -> list[InboxRow]:
        """Add items to the inbox; a capsule already there is not added twice. Returns
        the items that are new."""
        added: list[InboxRow] = []
        with self._db.transaction():
            for item in items:
                cur = self._db.execute(
                    f"INSERT INTO inbox ({_INBOX_COLS}) VALUES ({', '.join('?' * 12)}) "
                    "ON CONFLICT(reader, capsule) DO NOTHING",
                    (
                        item.reader,
                        item.capsule,
                        item.sender,
                        item.name,
                        item.seq,
                        item.entry,
                        item.sent,
                        item.received_at,
                        item.state,
                        item.issuer,
                        item.expires,
                        item.acked,
                    ),
                )
                if cur.rowcount:
                    added.append(item)
        return added

    def inbox(
        self, reader: str, *, states: tuple[str, ...] = ("pending", "delivered")
    ) -> list[InboxRow]:
        marks = ", ".join("?" * len(states))
        rows = self._db.all(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND state IN ({marks}) "
            "ORDER BY received_at, sender, seq",
            (reader, *states),
        )
        return [InboxRow(*r) for r in rows]

    def item(self, reader: str, capsule: str) -> InboxRow | None:
        got = self._db.one(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND capsule = ?",
            (reader, capsule),
        )
        return None if got is None else InboxRow(*got)

    def settle(
        self, reader: str, settled: Sequence[tuple[str, str, str | None, int | None]]
    ) -> None:
        """Record what fetching the capsules of pending items showed: (capsule, state,
        issuer, expires) each, in one transaction."""
        with self._db.transaction():
            self._db.executemany(
                "UPDATE inbox SET state = ?, issuer = ?, expires = ? "
                "WHERE reader = ? AND capsule = ?",
                [(state, issuer, expires, reader, c) for c, state, issuer, expires in settled],
            )

    def acks_due(self, reader: str) -> list[tuple[InboxRow, str]]:
        """Items of ``reader`` owed an acknowledgement, and which: "opened" once an open
        by ``reader`` is recorded (opens table), else "delivered" once the capsule was
        fetched and verified. Reads only rows still owed one (an index), not the inbox."""
        cols = ", ".join(f"i.{c.strip()}" for c in _INBOX_COLS.split(","))
        opened = self._db.all(
            f"SELECT DISTINCT {cols} FROM opens o JOIN inbox i ON i.reader = o.opener "
            "AND i.capsule = o.capsule WHERE o.opener = ? AND i.state = 'delivered' "
            "AND (i.acked IS NULL OR i.acked = 'delivered')",
            (reader,),
        )
        due = {r[1]: (InboxRow(*r), "opened") for r in opened}
        delivered = self._db.all(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND state = 'delivered' "
            "AND acked IS NULL",
            (reader,),
        )
        for r in delivered:
            due.setdefault(r[1], (InboxRow(*r), "delivered"))
        return sorted(due.values(), key=lambda d: (d[0].sender, d[0].seq))

    @staticmethod
    def ack_rank(state: str | None) -> int:
        """How far an acknowledgement state goes: None < "delivered" < "opened"."""
        return _ACK_RANK[state]
