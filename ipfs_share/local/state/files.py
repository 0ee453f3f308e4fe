"""Files put from this home: what the content CID holds and the owner-wrapped file key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipfs_share.local.database import Database

__all__ = ["FileRepository", "FileRow"]


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


_COLS = "cid, owner, name, media_type, size, stanza, created, state"


def _row(row: tuple[Any, ...]) -> FileRow:
    cid, owner, name, media_type, size, stanza, created, state = row
    return FileRow(cid, owner, name, media_type, size, bytes(stanza), created, state)


class FileRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, row: FileRow) -> None:
        with self._db.transaction():
            self._db.execute(
                f"INSERT INTO files ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
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

    def get(self, cid: str) -> FileRow | None:
        found = self._db.one(f"SELECT {_COLS} FROM files WHERE cid = ?", (cid,))
        return None if found is None else _row(found)

    def list(self, *, owner: str | None = None, include_removed: bool = False) -> list[FileRow]:
        query = f"SELECT {_COLS} FROM files WHERE (? IS NULL OR owner = ?)"
        if not include_removed:
            query += " AND state = 'stored'"
        return [_row(r) for r in self._db.all(query + " ORDER BY created, cid", (owner, owner))]

    def set_state(self, cid: str, state: str) -> None:
        with self._db.transaction():
            self._db.execute("UPDATE files SET state = ? WHERE cid = ?", (state, cid))
