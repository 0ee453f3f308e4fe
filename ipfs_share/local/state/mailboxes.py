"""What went through mailboxes: capsules we sent (and what their recipients acknowledged),
and the inbox of what arrived. (The chains themselves are feeds:
:mod:`ipfs_share.local.state.feeds`.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ipfs_share.local.database import Database

__all__ = ["InboxRow", "MailboxRepository", "SentRow"]


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
    # 'pending' | 'delivered' | 'revoked' (found revoked after it was delivered) |
    # 'withdrawn' (revoked before) | 'invalid' | 'missing'
    state: str = "pending"
    issuer: str | None = None
    expires: int | None = None
    acked: str | None = None
    attempts: int = 0  # fetches of the capsule that failed
    retry_at: int | None = None  # when the next fetch is due (None: at the next sync)
    replaces: str | None = None  # the capsule this one re-issues (the capsule's "replaces")


_SENT_COLS = (
    "sender, recipient, capsule, name, seq, entry, ack_ref, sent_at, delivered_at, opened_at, "
    "cancelled_at"
)
_INBOX_COLS = (
    "reader, capsule, sender, name, seq, entry, sent, received_at, state, issuer, expires, acked, "
    "attempts, retry_at, replaces"
)
_ACK_RANK: dict[str | None, int] = {None: 0, "delivered": 1, "opened": 2}


def _inbox_row(row: tuple[Any, ...]) -> InboxRow:
    return InboxRow(*row)


def _sent(row: tuple[Any, ...]) -> SentRow:
    values = list(row)
    values[6] = bytes(values[6])
    return SentRow(*values)


class MailboxRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

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

    def already_sent(self, sender: str, recipient: str, capsules: Sequence[str]) -> set[str]:
        """Which of ``capsules`` are in our mailbox to ``recipient`` (and not cancelled)."""
        found: set[str] = set()
        for i in range(0, len(capsules), 500):
            part = list(capsules[i : i + 500])
            marks = ", ".join("?" * len(part))
            rows = self._db.all(
                f"SELECT capsule FROM mailbox_sent WHERE sender = ? AND recipient = ? "
                f"AND cancelled_at IS NULL AND capsule IN ({marks})",
                (sender, recipient, *part),
            )
            found.update(str(r[0]) for r in rows)
        return found

    def acked(self, reader: str, capsules: Sequence[str]) -> dict[str, str | None]:
        """The acknowledgement last sent for each of ``capsules`` in ``reader``'s inbox."""
        found: dict[str, str | None] = {}
        for i in range(0, len(capsules), 500):
            part = list(capsules[i : i + 500])
            marks = ", ".join("?" * len(part))
            rows = self._db.all(
                f"SELECT capsule, acked FROM inbox WHERE reader = ? AND capsule IN ({marks})",
                (reader, *part),
            )
            found.update((str(c), a) for c, a in rows)
        return found

    def sent_by_ack(self, sender: str, recipient: str, ack_ref: bytes) -> SentRow | None:
        got = self._db.one(
            f"SELECT {_SENT_COLS} FROM mailbox_sent WHERE ack_ref = ? AND sender = ? "
            "AND recipient = ?",
            (ack_ref, sender, recipient),
        )
        return None if got is None else _sent(got)

    def queued_pairs(self) -> list[tuple[str, str, int]]:
        """(sender, recipient, oldest sent_at) for every pair with capsules sent and not
        acknowledged, nor cancelled: whom the agent still introduces its senders to."""
        rows = self._db.all(
            "SELECT sender, recipient, MIN(sent_at) FROM mailbox_sent WHERE delivered_at IS NULL "
            "AND opened_at IS NULL AND cancelled_at IS NULL GROUP BY sender, recipient "
            "ORDER BY sender, recipient"
        )
        return [(str(a), str(b), int(c)) for a, b, c in rows]

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
        neither time moves once set. ``at`` is the acknowledgement's own time (when the
        recipient wrote it, by its clock; an open writes it at once), never before the
        capsule was sent. Returns the rows they touched."""
        touched: list[SentRow] = []
        with self._db.transaction():
            for ack_ref, state, at in acks:
                self._db.execute(
                    "UPDATE mailbox_sent SET delivered_at = COALESCE(delivered_at, "
                    "MAX(?, sent_at)), opened_at = CASE WHEN ? = 'opened' THEN "
                    "COALESCE(opened_at, MAX(?, sent_at)) ELSE opened_at END "
                    "WHERE ack_ref = ? AND sender = ? AND recipient = ?",
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
                    f"INSERT INTO inbox ({_INBOX_COLS}) VALUES ({', '.join('?' * 15)}) "
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
                        item.attempts,
                        item.retry_at,
                        item.replaces,
                    ),
                )
                if cur.rowcount:
                    added.append(item)
        return added

    def inbox(
        self,
        reader: str,
        *,
        states: tuple[str, ...] = ("pending", "delivered", "revoked"),
        sender: str | None = None,
    ) -> list[InboxRow]:
        marks = ", ".join("?" * len(states))
        rows = self._db.all(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND state IN ({marks}) "
            "AND (? IS NULL OR sender = ?) ORDER BY received_at, sender, seq",
            (reader, *states, sender, sender),
        )
        return [_inbox_row(r) for r in rows]

    def delivered_issuers(self, reader: str, sender: str, now: int) -> list[str]:
        """The issuers of ``reader``'s delivered items from ``sender`` not expired at
        ``now`` (one row each: a sync asks this every time, whatever the inbox's size)."""
        rows = self._db.all(
            "SELECT DISTINCT issuer FROM inbox WHERE reader = ? AND state = 'delivered' "
            "AND sender = ? AND issuer IS NOT NULL AND (expires IS NULL OR ? < expires) "
            "ORDER BY issuer",
            (reader, sender, now),
        )
        return [r[0] for r in rows]

    def delivered_by(self, reader: str, sender: str, issuer: str, now: int) -> list[str]:
        """The capsule IDs of those items issued by ``issuer``, oldest first."""
        rows = self._db.all(
            "SELECT capsule FROM inbox WHERE reader = ? AND state = 'delivered' AND sender = ? "
            "AND issuer = ? AND (expires IS NULL OR ? < expires) ORDER BY received_at, seq",
            (reader, sender, issuer, now),
        )
        return [r[0] for r in rows]

    def replacements(self, reader: str) -> dict[str, InboxRow]:
        """Capsule ID -> the item of ``reader``'s inbox that re-issues it (fetched and
        verified: its issuer is known), for every item that names one."""
        rows = self._db.all(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND replaces IS NOT NULL "
            "AND state IN ('delivered', 'revoked') ORDER BY received_at, seq",
            (reader,),
        )
        return {r.replaces: r for r in map(_inbox_row, rows) if r.replaces is not None}

    def replacement(self, reader: str, capsule: str, issuer: str) -> InboxRow | None:
        """The item of ``reader``'s inbox that re-issues ``capsule``, if one arrived from
        the same ``issuer`` (a capsule of anyone else naming it proves nothing)."""
        got = self._db.one(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND replaces = ? AND issuer = ? "
            "AND state IN ('delivered', 'revoked') ORDER BY received_at DESC, seq DESC LIMIT 1",
            (reader, capsule, issuer),
        )
        return None if got is None else _inbox_row(got)

    def mark_revoked(self, reader: str, capsules: Sequence[str]) -> int:
        """Items of ``reader`` found revoked after they were delivered (a sync's check of
        the issuer's list, or an open refused): how many changed."""
        changed = 0
        with self._db.transaction():
            for c in capsules:
                cur = self._db.execute(
                    "UPDATE inbox SET state = 'revoked' WHERE reader = ? AND capsule = ? "
                    "AND state = 'delivered'",
                    (reader, c),
                )
                changed += cur.rowcount
        return changed

    def due(self, reader: str, now: int, *, sender: str | None = None) -> list[InboxRow]:
        """Pending items (of ``sender``, or of everyone) whose capsule fetch is due (never
        tried, or its retry time has come), oldest first."""
        rows = self._db.all(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND state = 'pending' "
            "AND (retry_at IS NULL OR retry_at <= ?) AND (? IS NULL OR sender = ?) "
            "ORDER BY received_at, sender, seq",
            (reader, now, sender, sender),
        )
        return [_inbox_row(r) for r in rows]

    def item(self, reader: str, capsule: str) -> InboxRow | None:
        got = self._db.one(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND capsule = ?",
            (reader, capsule),
        )
        return None if got is None else _inbox_row(got)

    def settle(
        self,
        reader: str,
        settled: Sequence[tuple[str, str, str | None, int | None, str | None]],
    ) -> set[str]:
        """Record what fetching the capsules of pending items showed: (capsule, state,
        issuer, expires, replaces) each, in one transaction. Returns the capsules this call
        moved out of "pending": a concurrent sync (another task, another process) that
        settled one first is the one to announce it."""
        moved: set[str] = set()
        with self._db.transaction():
            for c, state, issuer, expires, replaces in settled:
                cur = self._db.execute(
                    "UPDATE inbox SET state = ?, issuer = ?, expires = ?, replaces = ?, "
                    "retry_at = NULL WHERE reader = ? AND capsule = ? AND state = 'pending'",
                    (state, issuer, expires, replaces, reader, c),
                )
                if cur.rowcount:
                    moved.add(c)
        return moved

    def defer(self, reader: str, deferred: Sequence[tuple[str, int, int | None, str]]) -> None:
        """Record failed fetches: (capsule, attempts, retry_at, state) each; ``state`` is
        "pending" (retry at ``retry_at``) or "missing" (the retry budget is spent)."""
        with self._db.transaction():
            self._db.executemany(
                "UPDATE inbox SET attempts = ?, retry_at = ?, state = ? "
                "WHERE reader = ? AND capsule = ? AND state = 'pending'",
                [(n, at, state, reader, c) for c, n, at, state in deferred],
            )

    def acks_due(self, reader: str) -> list[tuple[InboxRow, str]]:
        """Items of ``reader`` owed an acknowledgement, and which: "opened" once an open
        by ``reader`` is recorded (opens table), else "delivered" once the capsule was
        fetched and verified. Reads only rows still owed one (an index), not the inbox."""
        cols = ", ".join(f"i.{c.strip()}" for c in _INBOX_COLS.split(","))
        opened = self._db.all(
            f"SELECT DISTINCT {cols} FROM opens o JOIN inbox i ON i.reader = o.opener "
            "AND i.capsule = o.capsule WHERE o.opener = ? AND i.state IN ('delivered', "
            "'revoked') AND (i.acked IS NULL OR i.acked = 'delivered')",
            (reader,),
        )
        due = {r[1]: (_inbox_row(r), "opened") for r in opened}
        delivered = self._db.all(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND state IN ('delivered', "
            "'revoked') AND acked IS NULL",
            (reader,),
        )
        for r in delivered:
            due.setdefault(r[1], (_inbox_row(r), "delivered"))
        return sorted(due.values(), key=lambda d: (d[0].sender, d[0].seq))

    @staticmethod
    def ack_rank(state: str | None) -> int:
        """How far an acknowledgement state goes: None < "delivered" < "opened"."""
        return _ACK_RANK[state]
