"""Keychain replicas in the home's state database: the keychains local identities belong
to, every verified op of each, the heads of members' chains read (high-water marks), the
head of our own chain (compare-and-set across processes), offers that reached us, and the
IPNS records of chains we publish or read (so they can be re-put without keys).

Ops are stored only after :func:`~ipfs_share.formats.keychain.decode_op` verified them, so
a replica's cold start reloads them with :func:`~ipfs_share.formats.keychain.load_op`
(no second verification). No key material is stored: keys travel wrapped in ops, and a
member opens them again with its identity key.

>>> import tempfile
>>> from pathlib import Path
>>> repo = KeychainRepository(Path(tempfile.mkdtemp()) / "state.sqlite3")
>>> repo.add_keychain("bafykc", "did:key:z6Mkme", role="creator", at=1)
>>> [(k.keychain, k.member, k.role) for k in repo.keychains()]
[('bafykc', 'did:key:z6Mkme', 'creator')]
>>> repo.close()
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipfs_share.errors import StoreError

__all__ = ["ChainMark", "KeychainRepository", "KeychainRow", "OfferNotice", "StoredOp"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS keychains (
    kc TEXT NOT NULL,              -- the keychain's fingerprint (its create op's CID)
    member TEXT NOT NULL,          -- the local identity (did) in it
    role TEXT NOT NULL,            -- 'creator' | 'invited'
    joined_at INTEGER NOT NULL,
    name TEXT,                     -- its name, once opened (as file names are kept: locally)
    PRIMARY KEY (kc, member)
)""",
    """CREATE TABLE IF NOT EXISTS keychain_ops (
    kc TEXT NOT NULL,
    cid TEXT NOT NULL,
    author TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,            -- verified (decode_op) before it was stored
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (kc, cid)
)""",
    """CREATE TABLE IF NOT EXISTS keychain_refused (
    kc TEXT NOT NULL,
    cid TEXT NOT NULL,             -- a block that did not decode or verify as an op
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (kc, cid)
)""",
    """CREATE TABLE IF NOT EXISTS keychain_chains (
    kc TEXT NOT NULL,
    author TEXT NOT NULL,
    seq INTEGER NOT NULL,          -- the newest head read (or, for our own, written)
    cid TEXT NOT NULL,
    record BLOB,                   -- its signed IPNS record, as published or accepted
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kc, author)
)""",
    """CREATE TABLE IF NOT EXISTS keychain_offers (
    member TEXT NOT NULL,          -- the local identity an op was announced to
    op TEXT NOT NULL,              -- the op (an offer, or an accept of our offer)
    sender TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    state TEXT NOT NULL,           -- 'new' | 'done' | 'refused'
    PRIMARY KEY (member, op)
)""",
)


@dataclass(frozen=True, slots=True)
class KeychainRow:
    keychain: str
    member: str
    role: str
    joined_at: int
    name: str | None = None


@dataclass(frozen=True, slots=True)
class StoredOp:
    cid: str
    author: str
    seq: int
    data: bytes
    row: int = 0  # its place in the table: reload only what is new with ops(after=)


@dataclass(frozen=True, slots=True)
class ChainMark:
    """The newest head of ``author``'s chain this home has read (or written, for its own)."""

    keychain: str
    author: str
    seq: int
    cid: str
    record: bytes | None
    updated_at: int


@dataclass(frozen=True, slots=True)
class OfferNotice:
    member: str
    op: str
    sender: str
    received_at: int
    state: str


class KeychainRepository:
    """Synchronous and quick; shares the home's state file with the other repositories."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._depth = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
            self._conn = sqlite3.connect(path, timeout=10, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            with self.transaction():
                for statement in SCHEMA:
                    self._conn.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the keychain tables in {path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"KeychainRepository({str(self.path)!r})"

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE``: the write lock up front, so two
        processes never both read then write our own chain's head); nests."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self._conn.execute("COMMIT")

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(sql, params))

    # -- keychains --------------------------------------------------------------------------
    def add_keychain(self, keychain: str, member: str, *, role: str, at: int) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO keychains (kc, member, role, joined_at) VALUES (?, ?, ?, ?)",
            (keychain, member, role, at),
        )

    def keychains(self, *, member: str | None = None) -> list[KeychainRow]:
        rows = self._all(
            "SELECT kc, member, role, joined_at, name FROM keychains "
            "WHERE (? IS NULL OR member = ?) ORDER BY joined_at, kc",
            (member, member),
        )
        return [KeychainRow(*r) for r in rows]

    def set_name(self, keychain: str, member: str, name: str) -> None:
        self._conn.execute(
            "UPDATE keychains SET name = ? WHERE kc = ? AND member = ?", (name, keychain, member)
        )

    # -- ops --------------------------------------------------------------------------------
    def add_ops(self, keychain: str, ops: Iterable[StoredOp], *, at: int) -> None:
        """Store verified ops (idempotent)."""
        self._conn.executemany(
            "INSERT OR IGNORE INTO keychain_ops (kc, cid, author, seq, data, stored_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(keychain, o.cid, o.author, o.seq, o.data, at) for o in ops],
        )

    def ops(self, keychain: str, *, after: int = 0) -> list[StoredOp]:
        """The ops of ``keychain`` stored after row ``after`` (0: all), in storing order."""
        rows = self._all(
            "SELECT cid, author, seq, data, rowid FROM keychain_ops WHERE kc = ? AND rowid > ? "
            "ORDER BY rowid",
            (keychain, after),
        )
        return [StoredOp(c, a, s, bytes(d), r) for c, a, s, d, r in rows]

    def count_ops(self, keychain: str) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM keychain_ops WHERE kc = ?", (keychain,)
        ).fetchone()
        return int(row[0])

    def refuse(self, keychain: str, cid: str, reason: str, message: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO keychain_refused (kc, cid, reason, message) "
            "VALUES (?, ?, ?, ?)",
            (keychain, cid, reason, message[:500]),
        )

    def refused(self, keychain: str) -> dict[str, tuple[str, str]]:
        rows = self._all(
            "SELECT cid, reason, message FROM keychain_refused WHERE kc = ?", (keychain,)
        )
        return {c: (r, m) for c, r, m in rows}

    # -- chains -----------------------------------------------------------------------------
    def mark(self, keychain: str, author: str) -> ChainMark | None:
        row = self._conn.execute(
            "SELECT kc, author, seq, cid, record, updated_at FROM keychain_chains "
            "WHERE kc = ? AND author = ?",
            (keychain, author),
        ).fetchone()
        if row is None:
            return None
        record = None if row[4] is None else bytes(row[4])
        return ChainMark(row[0], row[1], row[2], row[3], record, row[5])

    def marks(self, keychain: str) -> list[ChainMark]:
        rows = self._all(
            "SELECT kc, author, seq, cid, record, updated_at FROM keychain_chains WHERE kc = ?",
            (keychain,),
        )
        return [ChainMark(r[0], r[1], r[2], r[3], None if r[4] is None else bytes(r[4]), r[5])
                for r in rows]  # fmt: skip

    def set_mark(
        self,
        keychain: str,
        author: str,
        *,
        seq: int,
        cid: str,
        record: bytes | None,
        at: int,
        expect: str | None = None,
    ) -> bool:
        """Move ``author``'s mark forward to ``seq``/``cid``. With ``expect`` (our own
        chain), only if the current head is ``expect`` (``""``: none yet): a
        compare-and-set, so two processes of one home never sign two ops at one seq.
        Returns whether it moved."""
        with self.transaction():
            current = self.mark(keychain, author)
            if expect is not None and (current.cid if current else "") != expect:
                return False
            if current is not None and current.seq > seq:
                return False
            self._conn.execute(
                "INSERT INTO keychain_chains (kc, author, seq, cid, record, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(kc, author) DO UPDATE SET "
                "seq = excluded.seq, cid = excluded.cid, "
                "record = coalesce(excluded.record, keychain_chains.record), "
                "updated_at = excluded.updated_at",
                (keychain, author, seq, cid, record, at),
            )
            return True

    # -- offers that reached us ---------------------------------------------------------
    def add_notice(self, member: str, op: str, *, sender: str, at: int) -> bool:
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO keychain_offers (member, op, sender, received_at, state) "
            "VALUES (?, ?, ?, ?, 'new')",
            (member, op, sender, at),
        )
        return cursor.rowcount > 0

    def notices(self, member: str | None = None, *, state: str = "new") -> list[OfferNotice]:
        rows = self._all(
            "SELECT member, op, sender, received_at, state FROM keychain_offers "
            "WHERE (? IS NULL OR member = ?) AND state = ? ORDER BY received_at, op",
            (member, member, state),
        )
        return [OfferNotice(*r) for r in rows]

    def set_notice(self, member: str, op: str, state: str) -> None:
        self._conn.execute(
            "UPDATE keychain_offers SET state = ? WHERE member = ? AND op = ?",
            (state, member, op),
        )
