"""Revocation list heads: our own lists' current heads, and the freshest head verified of
each issuer whose list this home checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ipfs_share.local.database import Database

__all__ = ["HeadRow", "RevocationRepository"]


@dataclass(frozen=True, slots=True)
class HeadRow:
    issuer: str
    head: str
    seq: int
    head_block: bytes = field(repr=False)
    checked_at: int = 0


class RevocationRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def own_head(self, issuer: str) -> HeadRow | None:
        got = self._db.one(
            "SELECT issuer, head, seq, head_block FROM revocation_lists WHERE issuer = ?",
            (issuer,),
        )
        return None if got is None else HeadRow(got[0], got[1], got[2], bytes(got[3]))

    def set_own_head(self, row: HeadRow, *, expected_seq: int | None) -> bool:
        """Move our list's head forward; False if another writer moved it first (the
        caller re-reads and retries), so two revokes never fork the list."""
        with self._db.transaction():
            got = self._db.one("SELECT seq FROM revocation_lists WHERE issuer = ?", (row.issuer,))
            current = None if got is None else int(got[0])
            if current != expected_seq:
                return False
            self._db.execute(
                "INSERT INTO revocation_lists (issuer, head, seq, head_block) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(issuer) DO UPDATE SET head = excluded.head, seq = excluded.seq, "
                "head_block = excluded.head_block",
                (row.issuer, row.head, row.seq, row.head_block),
            )
        return True

    def seen_head(self, issuer: str) -> HeadRow | None:
        got = self._db.one(
            "SELECT issuer, head, seq, head_block, checked_at FROM revocation_seen "
            "WHERE issuer = ?",
            (issuer,),
        )
        return None if got is None else HeadRow(got[0], got[1], got[2], bytes(got[3]), got[4])

    def keep_seen_head(self, row: HeadRow) -> None:
        """Remember the freshest head verified for an issuer (never a lower seq)."""
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO revocation_seen (issuer, head, seq, head_block, checked_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(issuer) DO UPDATE SET head = excluded.head, "
                "seq = excluded.seq, head_block = excluded.head_block, "
                "checked_at = excluded.checked_at WHERE excluded.seq >= revocation_seen.seq",
                (row.issuer, row.head, row.seq, row.head_block, row.checked_at),
            )
