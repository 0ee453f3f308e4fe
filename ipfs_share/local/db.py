"""The local SQLite database, ``<home>/state.sqlite3``: what must persist between runs and
is not a secret (secrets live in the keystore).

Tables (schema version in ``meta``): contacts (petname -> did), identity_docs (the freshest
verified identity document seen per did, so a lower sequence never replaces a higher one),
published (the sequence last published per own identity), and meta (settings such as the
default identity). WAL mode and a busy timeout let a CLI and an app share one home.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ipfs_share.errors import StoreError

__all__ = ["SCHEMA_VERSION", "CachedDocument", "Contact", "StateDB"]

SCHEMA_VERSION = 1

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


class StateDB:
    """Synchronous and quick: every call is one small statement on a local file."""

    def __init__(self, home: Path) -> None:
        self.path = home / "state.sqlite3"
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            with self._tx():
                self._conn.executescript(_SCHEMA)
                found = self.get_meta("schema_version")
                if found is None:
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
