"""The contact book: petnames for other people's dids. (Their identity documents are the
heads of feeds this home reads: :mod:`ipfs_share.local.state.feeds`.)"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ipfs_share.local.database import Database

__all__ = ["Contact", "ContactRepository"]


@dataclass(frozen=True, slots=True)
class Contact:
    petname: str
    did: str
    added: int


class ContactRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, petname: str) -> Contact | None:
        row = self._db.one("SELECT petname, did, added FROM contacts WHERE petname = ?", (petname,))
        return None if row is None else Contact(*row)

    def of(self, did: str) -> list[Contact]:
        """The petnames given to ``did``."""
        rows = self._db.all(
            "SELECT petname, did, added FROM contacts WHERE did = ? ORDER BY petname", (did,)
        )
        return [Contact(*row) for row in rows]

    def put(self, petname: str, did: str) -> Contact:
        added = int(time.time())
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO contacts (petname, did, added) VALUES (?, ?, ?) "
                "ON CONFLICT(petname) DO UPDATE SET did = excluded.did, added = excluded.added",
                (petname, did, added),
            )
        return Contact(petname, did, added)

    def remove(self, petname: str) -> bool:
        with self._db.transaction():
            cur = self._db.execute("DELETE FROM contacts WHERE petname = ?", (petname,))
        return cur.rowcount > 0

    # Last in the class: a method named list shadows the builtin in later annotations.
    def list(self) -> list[Contact]:
        rows = self._db.all("SELECT petname, did, added FROM contacts ORDER BY petname")
        return [Contact(*row) for row in rows]
