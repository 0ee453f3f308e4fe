"""The local SQLite database, ``<home>/state.sqlite3``: what must persist between runs and
is not a secret (secrets live in the keystore).

Tables (schema version in ``meta``): contacts (petname -> did), identity_docs (the freshest
verified identity document seen per did, so a lower sequence never replaces a higher one),
published (the sequence last published per own identity), and meta (settings such as the
default identity); schema 2 adds files, shares, opens and revocation heads; schema 3 adds
mailboxes (our own chains, what went through them, high-water marks of the ones we read,
the inbox). WAL mode and a busy timeout let a CLI and an app share one home; an older home
gains the new tables when it is opened (every table is CREATE TABLE IF NOT EXISTS).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipfs_share.errors import StoreError

__all__ = [
    "SCHEMA_VERSION",
    "CachedDocument",
    "Contact",
    "FileRow",
    "HeadRow",
    "InboxRow",
    "OpenRow",
    "OutboxRow",
    "SentRow",
    "ShareRow",
    "StateDB",
]

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
    petname TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    added INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_docs (
    did TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    cid TEXT NOT NULL,
    document BLOB NOT NULL,
    resolved_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS published (
    did TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    cid TEXT NOT NULL,
    published_at INTEGER NOT NULL
);
-- schema 2: files, shares, opens, revocation lists
CREATE TABLE IF NOT EXISTS files (
    cid TEXT PRIMARY KEY,          -- the envelope's content CID
    owner TEXT NOT NULL,           -- did of the identity that put it
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,         -- plaintext bytes
    stanza BLOB NOT NULL,          -- the file key wrapped to the owner's own X25519 key
    created INTEGER NOT NULL,
    state TEXT NOT NULL            -- 'stored' | 'removed'
);
CREATE TABLE IF NOT EXISTS shares (
    capsule TEXT PRIMARY KEY,      -- the capsule's CID: its ID
    content TEXT NOT NULL,
    issuer TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER,
    download INTEGER NOT NULL,
    reshare INTEGER NOT NULL,
    policy TEXT,                   -- provider name, or NULL
    cap_issuer TEXT,               -- did that issues capabilities, or NULL
    state TEXT NOT NULL,           -- 'active' | 'revoked' | 'replaced'
    revoked_at INTEGER,
    revocation_head TEXT,          -- the head that records the revocation
    replaced_by TEXT               -- the capsule a rotation issued instead
);
CREATE TABLE IF NOT EXISTS share_recipients (
    capsule TEXT NOT NULL,
    did TEXT NOT NULL,
    label TEXT NOT NULL,           -- how the sharer named the recipient
    PRIMARY KEY (capsule, did)
);
CREATE TABLE IF NOT EXISTS opens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    capsule TEXT NOT NULL,
    opener TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    revocation_head TEXT,          -- the revocation head checked (NULL: none published)
    capability TEXT                -- the capability token's CID, if one was needed
);
CREATE TABLE IF NOT EXISTS revocation_lists (
    issuer TEXT PRIMARY KEY,       -- our own lists: the current head
    head TEXT NOT NULL,
    seq INTEGER NOT NULL,
    head_block BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS revocation_seen (
    issuer TEXT PRIMARY KEY,       -- others' lists: the freshest head verified
    head TEXT NOT NULL,
    seq INTEGER NOT NULL,
    head_block BLOB NOT NULL,
    checked_at INTEGER NOT NULL
);
-- schema 3: mailboxes (docs/spec/mailbox.md)
CREATE TABLE IF NOT EXISTS mailbox_out (
    name TEXT PRIMARY KEY,         -- our chain to one recipient: its IPNS name (k51...)
    sender TEXT NOT NULL,          -- did of the local identity that writes it
    recipient TEXT NOT NULL,
    seq INTEGER NOT NULL,          -- the head entry
    head TEXT NOT NULL,
    head_block BLOB NOT NULL,
    published_seq INTEGER          -- the newest head stored with name/put (NULL: none yet)
);
CREATE TABLE IF NOT EXISTS mailbox_sent (
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    capsule TEXT NOT NULL,
    name TEXT NOT NULL,            -- the mailbox it went through
    seq INTEGER NOT NULL,          -- its entry
    entry TEXT NOT NULL,
    ack_ref BLOB NOT NULL,         -- how the recipient's acknowledgements name it
    sent_at INTEGER NOT NULL,
    delivered_at INTEGER,
    opened_at INTEGER,
    cancelled_at INTEGER,
    PRIMARY KEY (sender, recipient, capsule)
);
CREATE INDEX IF NOT EXISTS mailbox_sent_ack ON mailbox_sent (ack_ref);
CREATE INDEX IF NOT EXISTS mailbox_sent_capsule ON mailbox_sent (capsule);
CREATE TABLE IF NOT EXISTS mailbox_read (
    reader TEXT NOT NULL,          -- the local identity reading
    name TEXT NOT NULL,            -- someone's mailbox to it
    sender TEXT NOT NULL,
    seq INTEGER NOT NULL,          -- the high-water mark: newest entry verified
    head TEXT NOT NULL,
    synced_at INTEGER NOT NULL,
    PRIMARY KEY (reader, name)
);
CREATE TABLE IF NOT EXISTS inbox (
    reader TEXT NOT NULL,
    capsule TEXT NOT NULL,
    sender TEXT NOT NULL,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry TEXT NOT NULL,
    sent INTEGER NOT NULL,         -- the entry's own time (the sender's clock)
    received_at INTEGER NOT NULL,
    state TEXT NOT NULL,           -- 'pending' | 'delivered' | 'withdrawn' | 'invalid'
    issuer TEXT,                   -- from the capsule, once fetched
    expires INTEGER,
    acked TEXT,                    -- the last acknowledgement sent: NULL | 'delivered' | 'opened'
    PRIMARY KEY (reader, capsule)
);
CREATE INDEX IF NOT EXISTS inbox_state ON inbox (reader, state, acked);
"""


@dataclass(frozen=True, slots=True)
class Contact:
    petname: str
    did: str
    added: int


@dataclass(frozen=True, slots=True)
class CachedDocument:
    did: str
    seq: int
    cid: str
    document: bytes
    resolved_at: int


# -- schema 2 rows ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRow:
    cid: str
    owner: str
    name: str
    media_type: str
    size: int
    stanza: bytes
    created: int
    state: str = "stored"


@dataclass(frozen=True, slots=True)
class ShareRow:
    capsule: str
    content: str
    issuer: str
    created: int
    expires: int | None
    download: bool
    reshare: bool
    policy: str | None
    cap_issuer: str | None
    state: str = "active"
    revoked_at: int | None = None
    revocation_head: str | None = None
    replaced_by: str | None = None


@dataclass(frozen=True, slots=True)
class OpenRow:
    capsule: str
    opener: str
    opened_at: int
    revocation_head: str | None
    capability: str | None


@dataclass(frozen=True, slots=True)
class HeadRow:
    issuer: str
    head: str
    seq: int
    head_block: bytes
    checked_at: int = 0


_FILE_COLS = "cid, owner, name, media_type, size, stanza, created, state"
_SHARE_COLS = (
    "capsule, content, issuer, created, expires, download, reshare, policy, cap_issuer, "
    "state, revoked_at, revocation_head, replaced_by"
)


def _file(row: tuple[Any, ...]) -> FileRow:
    cid, owner, name, media_type, size, stanza, created, state = row
    return FileRow(cid, owner, name, media_type, size, bytes(stanza), created, state)


def _share(row: tuple[Any, ...]) -> ShareRow:
    values = list(row)
    values[5] = bool(values[5])
    values[6] = bool(values[6])
    return ShareRow(*values)


class _Schema2:
    """Files, shares, opens and revocation heads (mixed into StateDB)."""

    _conn: sqlite3.Connection

    def _tx(self) -> sqlite3.Connection:  # pragma: no cover - provided by StateDB
        raise NotImplementedError

    # files
    def add_file(self, row: FileRow) -> None:
        with self._tx():
            self._conn.execute(
                f"INSERT INTO files ({_FILE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(cid) DO UPDATE SET name = excluded.name, state = excluded.state",
                (
                    row.cid,
                    row.owner,
                    row.name,
                    row.media_type,
                    row.size,
                    row.stanza,
                    row.created,
                    row.state,
                ),
            )

    def file(self, cid: str) -> FileRow | None:
        got = self._conn.execute(f"SELECT {_FILE_COLS} FROM files WHERE cid = ?", (cid,)).fetchone()
        return None if got is None else _file(got)

    def files(self, *, owner: str | None = None, include_removed: bool = False) -> list[FileRow]:
        query = f"SELECT {_FILE_COLS} FROM files WHERE (? IS NULL OR owner = ?)"
        if not include_removed:
            query += " AND state = 'stored'"
        rows = self._conn.execute(query + " ORDER BY created, cid", (owner, owner))
        return [_file(r) for r in rows]

    def set_file_state(self, cid: str, state: str) -> None:
        with self._tx():
            self._conn.execute("UPDATE files SET state = ? WHERE cid = ?", (state, cid))

    # shares
    def add_share(self, row: ShareRow, recipients: list[tuple[str, str]]) -> None:
        """Record a capsule and its recipients (did, label) in one transaction."""
        with self._tx():
            self._conn.execute(
                f"INSERT INTO shares ({_SHARE_COLS}) VALUES ({', '.join('?' * 13)})",
                (
                    row.capsule,
                    row.content,
                    row.issuer,
                    row.created,
                    row.expires,
                    int(row.download),
                    int(row.reshare),
                    row.policy,
                    row.cap_issuer,
                    row.state,
                    row.revoked_at,
                    row.revocation_head,
                    row.replaced_by,
                ),
            )
            self._conn.executemany(
                "INSERT INTO share_recipients (capsule, did, label) VALUES (?, ?, ?)",
                [(row.capsule, did, label) for did, label in recipients],
            )

    def share(self, capsule: str) -> ShareRow | None:
        got = self._conn.execute(
            f"SELECT {_SHARE_COLS} FROM shares WHERE capsule = ?", (capsule,)
        ).fetchone()
        return None if got is None else _share(got)

    def shares(self, *, content: str | None = None, issuer: str | None = None) -> list[ShareRow]:
        rows = self._conn.execute(
            f"SELECT {_SHARE_COLS} FROM shares WHERE (? IS NULL OR content = ?) "
            "AND (? IS NULL OR issuer = ?) ORDER BY created, capsule",
            (content, content, issuer, issuer),
        )
        return [_share(r) for r in rows]

    def share_recipients(self, capsule: str) -> list[tuple[str, str]]:
        rows = self._conn.execute(
            "SELECT did, label FROM share_recipients WHERE capsule = ? ORDER BY label, did",
            (capsule,),
        )
        return [(str(d), str(label)) for d, label in rows]

    def mark_revoked(self, capsules: list[str], *, at: int, head: str) -> None:
        with self._tx():
            self._conn.executemany(
                "UPDATE shares SET state = CASE state WHEN 'replaced' THEN 'replaced' "
                "ELSE 'revoked' END, revoked_at = ?, revocation_head = ? WHERE capsule = ?",
                [(at, head, c) for c in capsules],
            )

    def mark_replaced(self, capsule: str, by: str) -> None:
        with self._tx():
            self._conn.execute(
                "UPDATE shares SET state = 'replaced', replaced_by = ? WHERE capsule = ?",
                (by, capsule),
            )

    # opens
    def record_open(self, row: OpenRow) -> None:
        with self._tx():
            self._conn.execute(
                "INSERT INTO opens (capsule, opener, opened_at, revocation_head, capability) "
                "VALUES (?, ?, ?, ?, ?)",
                (row.capsule, row.opener, row.opened_at, row.revocation_head, row.capability),
            )

    def opens(self, capsule: str | None = None) -> list[OpenRow]:
        rows = self._conn.execute(
            "SELECT capsule, opener, opened_at, revocation_head, capability FROM opens "
            "WHERE (? IS NULL OR capsule = ?) ORDER BY id",
            (capsule, capsule),
        )
        return [OpenRow(*r) for r in rows]

    # revocation heads
    def own_head(self, issuer: str) -> HeadRow | None:
        got = self._conn.execute(
            "SELECT issuer, head, seq, head_block FROM revocation_lists WHERE issuer = ?",
            (issuer,),
        ).fetchone()
        return None if got is None else HeadRow(got[0], got[1], got[2], bytes(got[3]))

    def set_own_head(self, row: HeadRow, *, expected_seq: int | None) -> bool:
        """Move our list's head forward; False if another writer moved it first (the
        caller re-reads and retries), so two revokes never fork the list."""
        with self._tx():
            got = self._conn.execute(
                "SELECT seq FROM revocation_lists WHERE issuer = ?", (row.issuer,)
            ).fetchone()
            current = None if got is None else int(got[0])
            if current != expected_seq:
                return False
            self._conn.execute(
                "INSERT INTO revocation_lists (issuer, head, seq, head_block) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(issuer) DO UPDATE SET head = excluded.head, seq = excluded.seq, "
                "head_block = excluded.head_block",
                (row.issuer, row.head, row.seq, row.head_block),
            )
        return True

    def seen_head(self, issuer: str) -> HeadRow | None:
        got = self._conn.execute(
            "SELECT issuer, head, seq, head_block, checked_at FROM revocation_seen "
            "WHERE issuer = ?",
            (issuer,),
        ).fetchone()
        return None if got is None else HeadRow(got[0], got[1], got[2], bytes(got[3]), got[4])

    def keep_seen_head(self, row: HeadRow) -> None:
        """Remember the freshest head verified for an issuer (never a lower seq)."""
        with self._tx():
            self._conn.execute(
                "INSERT INTO revocation_seen (issuer, head, seq, head_block, checked_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(issuer) DO UPDATE SET head = excluded.head, "
                "seq = excluded.seq, head_block = excluded.head_block, "
                "checked_at = excluded.checked_at WHERE excluded.seq >= revocation_seen.seq",
                (row.issuer, row.head, row.seq, row.head_block, row.checked_at),
            )


# -- schema 3 rows ------------------------------------------------------------------------


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
    state: str = "pending"
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


def _sent(row: tuple[Any, ...]) -> SentRow:
    values = list(row)
    values[6] = bytes(values[6])
    return SentRow(*values)


class _Schema3:
    """Mailboxes (mixed into StateDB). Every method that moves a head compares the seq it
    read before (BEGIN IMMEDIATE), so two processes on one home never fork a chain or
    move a high-water mark backwards."""

    _conn: sqlite3.Connection

    def _tx(self) -> sqlite3.Connection:  # pragma: no cover - provided by StateDB
        raise NotImplementedError

    # our own chains
    def outbox(self, name: str) -> OutboxRow | None:
        got = self._conn.execute(
            "SELECT name, sender, recipient, seq, head, head_block, published_seq "
            "FROM mailbox_out WHERE name = ?",
            (name,),
        ).fetchone()
        if got is None:
            return None
        return OutboxRow(got[0], got[1], got[2], got[3], got[4], bytes(got[5]), got[6])

    def outbox_peers(self, sender: str) -> list[str]:
        """The recipients ``sender`` has a mailbox to (whose acknowledgements it reads)."""
        rows = self._conn.execute(
            "SELECT recipient FROM mailbox_out WHERE sender = ? ORDER BY recipient", (sender,)
        )
        return [str(r[0]) for r in rows]

    def outbox_senders(self, recipient: str) -> list[str]:
        """The identities of this home that have a mailbox to ``recipient`` (local
        identities of one home read each other's mailboxes without being contacts)."""
        rows = self._conn.execute(
            "SELECT sender FROM mailbox_out WHERE recipient = ? ORDER BY sender", (recipient,)
        )
        return [str(r[0]) for r in rows]

    def queued_pairs(self) -> list[tuple[str, str, int]]:
        """(sender, recipient, oldest sent_at) for every pair with capsules sent and not
        acknowledged, nor cancelled: whom the agent still introduces its senders to."""
        rows = self._conn.execute(
            "SELECT sender, recipient, MIN(sent_at) FROM mailbox_sent WHERE delivered_at IS NULL "
            "AND opened_at IS NULL AND cancelled_at IS NULL GROUP BY sender, recipient "
            "ORDER BY sender, recipient"
        )
        return [(str(a), str(b), int(c)) for a, b, c in rows]

    def advance_outbox(
        self,
        row: OutboxRow,
        *,
        expected_seq: int | None,
        sent: Sequence[SentRow] = (),
        acked: Sequence[tuple[str, str, str]] = (),
    ) -> bool:
        """Move a chain's head to ``row`` and record what the new entries carry (capsules
        ``sent``; acknowledgements as (reader, capsule, state) in ``acked``), in one
        transaction; False, changing nothing, if the head is no longer at ``expected_seq``
        (another writer appended first: the caller re-reads and retries)."""
        with self._tx():
            got = self._conn.execute(
                "SELECT seq FROM mailbox_out WHERE name = ?", (row.name,)
            ).fetchone()
            if (None if got is None else int(got[0])) != expected_seq:
                return False
            self._conn.execute(
                "INSERT INTO mailbox_out (name, sender, recipient, seq, head, head_block) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq, "
                "head = excluded.head, head_block = excluded.head_block",
                (row.name, row.sender, row.recipient, row.seq, row.head, row.head_block),
            )
            self._conn.executemany(
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
            self._conn.executemany(
                "UPDATE inbox SET acked = ? WHERE reader = ? AND capsule = ?",
                [(state, reader, capsule) for reader, capsule, state in acked],
            )
        return True

    def mark_published(self, name: str, seq: int) -> None:
        with self._tx():
            self._conn.execute(
                "UPDATE mailbox_out SET published_seq = ? WHERE name = ? "
                "AND (published_seq IS NULL OR published_seq < ?)",
                (seq, name, seq),
            )

    # what we sent
    def sent(
        self,
        *,
        sender: str | None = None,
        recipient: str | None = None,
        capsule: str | None = None,
    ) -> list[SentRow]:
        rows = self._conn.execute(
            f"SELECT {_SENT_COLS} FROM mailbox_sent WHERE (? IS NULL OR sender = ?) "
            "AND (? IS NULL OR recipient = ?) AND (? IS NULL OR capsule = ?) "
            "ORDER BY sent_at, seq, recipient",
            (sender, sender, recipient, recipient, capsule, capsule),
        )
        return [_sent(r) for r in rows]

    def was_sent(self, sender: str, recipient: str, capsule: str) -> bool:
        """Is ``capsule`` in our mailbox to ``recipient`` (and not cancelled)?"""
        got = self._conn.execute(
            "SELECT 1 FROM mailbox_sent WHERE sender = ? AND recipient = ? AND capsule = ? "
            "AND cancelled_at IS NULL",
            (sender, recipient, capsule),
        ).fetchone()
        return got is not None

    def sent_by_ack(self, sender: str, recipient: str, ack_ref: bytes) -> SentRow | None:
        got = self._conn.execute(
            f"SELECT {_SENT_COLS} FROM mailbox_sent WHERE ack_ref = ? AND sender = ? "
            "AND recipient = ?",
            (ack_ref, sender, recipient),
        ).fetchone()
        return None if got is None else _sent(got)

    def mark_cancelled(self, capsule: str, *, at: int) -> None:
        with self._tx():
            self._conn.execute(
                "UPDATE mailbox_sent SET cancelled_at = ? WHERE capsule = ? "
                "AND cancelled_at IS NULL",
                (at, capsule),
            )

    # others' mailboxes
    def high_water(self, reader: str, name: str) -> tuple[int, str] | None:
        got = self._conn.execute(
            "SELECT seq, head FROM mailbox_read WHERE reader = ? AND name = ?", (reader, name)
        ).fetchone()
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
        ``head`` (seq, CID), in one transaction. ``acks`` are (ack_ref, state, at) read
        from the mailbox: each marks a capsule we sent to ``sender`` delivered or opened.
        Returns the items that are new to this home (a capsule already in the inbox is
        not added twice), or None, changing nothing, if the mark is no longer at
        ``expected_seq`` (another process synced first)."""
        with self._tx():
            got = self._conn.execute(
                "SELECT seq FROM mailbox_read WHERE reader = ? AND name = ?", (reader, name)
            ).fetchone()
            if (None if got is None else int(got[0])) != expected_seq:
                return None
            self._conn.execute(
                "INSERT INTO mailbox_read (reader, name, sender, seq, head, synced_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(reader, name) DO UPDATE SET "
                "seq = excluded.seq, head = excluded.head, synced_at = excluded.synced_at",
                (reader, name, sender, head[0], head[1], int(time.time())),
            )
            added: list[InboxRow] = []
            for item in items:
                cur = self._conn.execute(
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
            for ack_ref, state, at in acks:
                # "opened" implies "delivered"; neither time ever moves once set.
                self._conn.execute(
                    "UPDATE mailbox_sent SET delivered_at = COALESCE(delivered_at, ?), "
                    "opened_at = CASE WHEN ? = 'opened' THEN COALESCE(opened_at, ?) "
                    "ELSE opened_at END WHERE ack_ref = ? AND sender = ? AND recipient = ?",
                    (at, state, at, ack_ref, reader, sender),
                )
        return added

    # the inbox
    def inbox(
        self, reader: str, *, states: tuple[str, ...] = ("pending", "delivered")
    ) -> list[InboxRow]:
        marks = ", ".join("?" * len(states))
        rows = self._conn.execute(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND state IN ({marks}) "
            "ORDER BY received_at, sender, seq",
            (reader, *states),
        )
        return [InboxRow(*r) for r in rows]

    def inbox_item(self, reader: str, capsule: str) -> InboxRow | None:
        got = self._conn.execute(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND capsule = ?",
            (reader, capsule),
        ).fetchone()
        return None if got is None else InboxRow(*got)

    def settle_inbox(
        self, reader: str, settled: Sequence[tuple[str, str, str | None, int | None]]
    ) -> set[str]:
        """Record what fetching the capsules of pending items showed: (capsule, state,
        issuer, expires) each, in one transaction. Returns the capsules this call moved
        out of "pending": a concurrent sync (another task, another process) that settled
        one first is the one to announce it."""
        moved: set[str] = set()
        with self._tx():
            for c, state, issuer, expires in settled:
                cur = self._conn.execute(
                    "UPDATE inbox SET state = ?, issuer = ?, expires = ? "
                    "WHERE reader = ? AND capsule = ? AND state = 'pending'",
                    (state, issuer, expires, reader, c),
                )
                if cur.rowcount:
                    moved.add(c)
        return moved

    def acks_due(self, reader: str) -> list[tuple[InboxRow, str]]:
        """Items of ``reader`` owed an acknowledgement, and which: "opened" once an open
        by ``reader`` is recorded (opens table), else "delivered" once the capsule was
        fetched and verified. Reads only rows still owed one (an index), not the inbox."""
        cols = ", ".join(f"i.{c.strip()}" for c in _INBOX_COLS.split(","))
        opened = self._conn.execute(
            f"SELECT DISTINCT {cols} FROM opens o JOIN inbox i ON i.reader = o.opener "
            "AND i.capsule = o.capsule WHERE o.opener = ? AND i.state = 'delivered' "
            "AND (i.acked IS NULL OR i.acked = 'delivered')",
            (reader,),
        )
        due = {r[1]: (InboxRow(*r), "opened") for r in opened}
        delivered = self._conn.execute(
            f"SELECT {_INBOX_COLS} FROM inbox WHERE reader = ? AND state = 'delivered' "
            "AND acked IS NULL",
            (reader,),
        )
        for r in delivered:
            due.setdefault(r[1], (InboxRow(*r), "delivered"))
        return sorted(due.values(), key=lambda d: (d[0].sender, d[0].seq))


class StateDB(_Schema2, _Schema3):
    """Synchronous and quick: every call is one small statement on a local file."""

    def __init__(self, home: Path) -> None:
        self.path = home / "state.sqlite3"
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # synchronous stays FULL (the default): with NORMAL a power cut could lose the
            # last revocation head or published sequence, and the next revoke would reuse a
            # sequence number and fork the list for its readers. An fsync a commit is cheap.
            self._conn.execute("PRAGMA busy_timeout=10000")
            with self._tx():
                self._conn.executescript(_SCHEMA)
                found = self.get_meta("schema_version")
                if found is None or int(found) < SCHEMA_VERSION:
                    self.set_meta("schema_version", str(SCHEMA_VERSION))
                elif int(found) > SCHEMA_VERSION:
                    raise StoreError(
                        f"expected a state database of schema {SCHEMA_VERSION} or older, "
                        f"found {found} at {self.path}",
                        hint="this home was used by a newer ipfs-share; upgrade ipfs-share",
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the state database {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"StateDB({str(self.path)!r})"

    def close(self) -> None:
        self._conn.close()

    def _tx(self) -> sqlite3.Connection:
        # `with conn:` commits or rolls back; BEGIN IMMEDIATE takes the write lock up front
        # so two processes never both read-then-write the same row.
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    # -- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- contacts -------------------------------------------------------------------------
    def contacts(self) -> list[Contact]:
        rows = self._conn.execute("SELECT petname, did, added FROM contacts ORDER BY petname")
        return [Contact(*row) for row in rows]

    def contact(self, petname: str) -> Contact | None:
        row = self._conn.execute(
            "SELECT petname, did, added FROM contacts WHERE petname = ?", (petname,)
        ).fetchone()
        return None if row is None else Contact(*row)

    def contacts_for(self, did: str) -> list[Contact]:
        rows = self._conn.execute(
            "SELECT petname, did, added FROM contacts WHERE did = ? ORDER BY petname", (did,)
        )
        return [Contact(*row) for row in rows]

    def put_contact(self, petname: str, did: str) -> Contact:
        added = int(time.time())
        with self._tx():
            self._conn.execute(
                "INSERT INTO contacts (petname, did, added) VALUES (?, ?, ?) "
                "ON CONFLICT(petname) DO UPDATE SET did = excluded.did, added = excluded.added",
                (petname, did, added),
            )
        return Contact(petname, did, added)

    def remove_contact(self, petname: str) -> bool:
        with self._tx():
            cur = self._conn.execute("DELETE FROM contacts WHERE petname = ?", (petname,))
        return cur.rowcount > 0

    # -- identity documents ---------------------------------------------------------------
    def cached_document(self, did: str) -> CachedDocument | None:
        row = self._conn.execute(
            "SELECT did, seq, cid, document, resolved_at FROM identity_docs WHERE did = ?",
            (did,),
        ).fetchone()
        return (
            None if row is None else CachedDocument(row[0], row[1], row[2], bytes(row[3]), row[4])
        )

    def keep_document(self, did: str, seq: int, cid: str, document: bytes) -> bool:
        """Cache a verified document unless one with a higher sequence is cached; return
        False (and change nothing) when the cached one is higher."""
        with self._tx():
            row = self._conn.execute(
                "SELECT seq FROM identity_docs WHERE did = ?", (did,)
            ).fetchone()
            if row is not None and row[0] > seq:
                return False
            self._conn.execute(
                "INSERT INTO identity_docs (did, seq, cid, document, resolved_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(did) DO UPDATE SET seq = excluded.seq, "
                "cid = excluded.cid, document = excluded.document, "
                "resolved_at = excluded.resolved_at",
                (did, seq, cid, document, int(time.time())),
            )
        return True

    def forget_document(self, did: str) -> None:
        with self._tx():
            self._conn.execute("DELETE FROM identity_docs WHERE did = ?", (did,))

    # -- what we published ----------------------------------------------------------------
    def published_seq(self, did: str) -> int | None:
        row = self._conn.execute("SELECT seq FROM published WHERE did = ?", (did,)).fetchone()
        return None if row is None else int(row[0])

    def record_published(self, did: str, seq: int, cid: str) -> None:
        with self._tx():
            self._conn.execute(
                "INSERT INTO published (did, seq, cid, published_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(did) DO UPDATE SET seq = excluded.seq, cid = excluded.cid, "
                "published_at = excluded.published_at",
                (did, seq, cid, int(time.time())),
            )

    def forget_published(self, did: str) -> None:
        with self._tx():
            self._conn.execute("DELETE FROM published WHERE did = ?", (did,))
