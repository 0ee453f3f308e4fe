"""Keychain replicas: the keychains local identities belong to, every verified op of each,
ops refused at decoding, and the ops pointed at this home (offers, accepts). The member
chains themselves are feeds (:mod:`ipfs_share.local.state.feeds`): the head of our own,
the marks of the others', and their records in the record store.

Ops are stored only after :func:`~ipfs_share.formats.keychain.decode_op` verified them, so
a replica's cold start reloads them with :func:`~ipfs_share.formats.keychain.load_op`
(no second verification). No key material is stored: keys travel wrapped in ops, and a
member opens them again with its identity key.

>>> import tempfile
>>> from pathlib import Path
>>> from ipfs_share.local.state import StateDB
>>> state = StateDB(Path(tempfile.mkdtemp()))
>>> state.keychains.add_keychain("bafykc", "did:key:z6Mkme", role="creator", at=1)
>>> [(k.keychain, k.member, k.role) for k in state.keychains.keychains()]
[('bafykc', 'did:key:z6Mkme', 'creator')]
>>> state.close()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ipfs_share.local.database import Database

__all__ = ["KeychainRepository", "KeychainRow", "OfferNotice", "StoredOp"]


@dataclass(frozen=True, slots=True)
class KeychainRow:
    keychain: str
    member: str
    role: str  # 'creator' | 'invited'
    joined_at: int
    name: str | None = None  # its name, once opened (as file names are kept: locally)


@dataclass(frozen=True, slots=True)
class StoredOp:
    cid: str
    author: str
    seq: int
    data: bytes
    row: int = 0  # its place in the table: reload only what is new with ops(after=)


@dataclass(frozen=True, slots=True)
class OfferNotice:
    """An op pointed at ``member`` (through a mailbox, or handed over): to look at."""

    member: str
    op: str
    sender: str
    received_at: int
    state: str  # 'new' | 'done' | 'refused'


class KeychainRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- keychains --------------------------------------------------------------------------
    def add_keychain(self, keychain: str, member: str, *, role: str, at: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO keychains (kc, member, role, joined_at) VALUES (?, ?, ?, ?)",
            (keychain, member, role, at),
        )

    def keychains(self, *, member: str | None = None) -> list[KeychainRow]:
        rows = self._db.all(
            "SELECT kc, member, role, joined_at, name FROM keychains "
            "WHERE (? IS NULL OR member = ?) ORDER BY joined_at, kc",
            (member, member),
        )
        return [KeychainRow(*r) for r in rows]

    def set_name(self, keychain: str, member: str, name: str) -> None:
        self._db.execute(
            "UPDATE keychains SET name = ? WHERE kc = ? AND member = ?", (name, keychain, member)
        )

    # -- ops --------------------------------------------------------------------------------
    def add_ops(self, keychain: str, ops: Iterable[StoredOp], *, at: int) -> None:
        """Store verified ops (idempotent)."""
        self._db.executemany(
            "INSERT OR IGNORE INTO keychain_ops (kc, cid, author, seq, data, stored_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(keychain, o.cid, o.author, o.seq, o.data, at) for o in ops],
        )

    def ops(self, keychain: str, *, after: int = 0) -> list[StoredOp]:
        """The ops of ``keychain`` stored after row ``after`` (0: all), in storing order."""
        rows = self._db.all(
            "SELECT cid, author, seq, data, rowid FROM keychain_ops WHERE kc = ? AND rowid > ? "
            "ORDER BY rowid",
            (keychain, after),
        )
        return [StoredOp(c, a, s, bytes(d), r) for c, a, s, d, r in rows]

    def refuse(self, keychain: str, cid: str, reason: str, message: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO keychain_refused (kc, cid, reason, message) "
            "VALUES (?, ?, ?, ?)",
            (keychain, cid, reason, message[:500]),
        )

    def refused(self, keychain: str) -> dict[str, tuple[str, str]]:
        rows = self._db.all(
            "SELECT cid, reason, message FROM keychain_refused WHERE kc = ?", (keychain,)
        )
        return {c: (r, m) for c, r, m in rows}

    # -- ops pointed at us ------------------------------------------------------------------
    def add_notice(self, member: str, op: str, *, sender: str, at: int) -> bool:
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO keychain_notices (member, op, sender, received_at, state) "
            "VALUES (?, ?, ?, ?, 'new')",
            (member, op, sender, at),
        )
        return cursor.rowcount > 0

    def notices(self, member: str | None = None, *, state: str = "new") -> list[OfferNotice]:
        rows = self._db.all(
            "SELECT member, op, sender, received_at, state FROM keychain_notices "
            "WHERE (? IS NULL OR member = ?) AND state = ? ORDER BY received_at, op",
            (member, member, state),
        )
        return [OfferNotice(*r) for r in rows]

    def set_notice(self, member: str, op: str, state: str) -> None:
        self._db.execute(
            "UPDATE keychain_notices SET state = ? WHERE member = ? AND op = ?",
            (state, member, op),
        )
