"""Identity documents: the freshest verified document seen per did (a lower sequence never
replaces a higher one), and the sequence last published per own identity."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ipfs_share.local.database import Database

__all__ = ["CachedDocument", "IdentityDocRepository"]


@dataclass(frozen=True, slots=True)
class CachedDocument:
    did: str
    seq: int
    cid: str
    document: bytes = field(repr=False)
    resolved_at: int = 0


class IdentityDocRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def cached_document(self, did: str) -> CachedDocument | None:
        row = self._db.one(
            "SELECT did, seq, cid, document, resolved_at FROM identity_docs WHERE did = ?",
            (did,),
        )
        return (
            None if row is None else CachedDocument(row[0], row[1], row[2], bytes(row[3]), row[4])
        )

    def keep_document(self, did: str, seq: int, cid: str, document: bytes) -> bool:
        """Cache a verified document unless one with a higher sequence is cached; return
        False (and change nothing) when the cached one is higher."""
        with self._db.transaction():
            row = self._db.one("SELECT seq FROM identity_docs WHERE did = ?", (did,))
            if row is not None and row[0] > seq:
                return False
            self._db.execute(
                "INSERT INTO identity_docs (did, seq, cid, document, resolved_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(did) DO UPDATE SET seq = excluded.seq, "
                "cid = excluded.cid, document = excluded.document, "
                "resolved_at = excluded.resolved_at",
                (did, seq, cid, document, int(time.time())),
            )
        return True

    def published_seq(self, did: str) -> int | None:
        row = self._db.one("SELECT seq FROM published WHERE did = ?", (did,))
        return None if row is None else int(row[0])

    def record_published(self, did: str, seq: int, cid: str) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO published (did, seq, cid, published_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(did) DO UPDATE SET seq = excluded.seq, cid = excluded.cid, "
                "published_at = excluded.published_at",
                (did, seq, cid, int(time.time())),
            )

    def forget_published(self, did: str) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM published WHERE did = ?", (did,))
