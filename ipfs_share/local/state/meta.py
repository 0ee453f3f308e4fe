"""Settings of the home that are not secrets (the default identity, and such)."""

from __future__ import annotations

from ipfs_share.local.database import Database

__all__ = ["MetaRepository"]


class MetaRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> str | None:
        row = self._db.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set(self, key: str, value: str | None) -> None:
        """Set ``key`` (None deletes it)."""
        with self._db.transaction():
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
