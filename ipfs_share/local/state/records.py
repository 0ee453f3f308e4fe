"""The record store: every signed IPNS record this home published or accepted, byte for
byte, so that ``republish`` can put it again without any key (docs/spec/feeds.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ipfs_share.local.database import Database

__all__ = ["RecordRepository", "RecordRow"]


@dataclass(frozen=True, slots=True)
class RecordRow:
    name: str
    kind: str
    whose: str  # the did whose feed it heads
    own: bool  # this home signs it
    seq: int
    eol: int  # end of validity, Unix seconds
    value: str
    record: bytes = field(repr=False)
    kept_at: int = 0
    put_at: int | None = None
    outcome: str | None = None
    error: str | None = None


_COLS = "name, kind, whose, own, seq, eol, value, record, kept_at, put_at, outcome, error"


def _row(row: tuple[Any, ...]) -> RecordRow:
    values = list(row)
    values[3] = bool(values[3])
    values[7] = bytes(values[7])
    return RecordRow(*values)


class RecordRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def keep(self, row: RecordRow) -> bool:
        """Keep ``row`` unless the store has a record for its name that is at least as
        new (a higher sequence, or the same sequence valid at least as long); a record
        once kept as our own stays our own. True if it was kept."""
        with self._db.transaction():
            cur = self._db.execute(
                f"INSERT INTO ipns_records ({_COLS}) VALUES ({', '.join('?' * 12)}) "
                "ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, whose = excluded.whose, "
                "own = MAX(own, excluded.own), seq = excluded.seq, eol = excluded.eol, "
                "value = excluded.value, record = excluded.record, kept_at = excluded.kept_at, "
                "put_at = COALESCE(excluded.put_at, put_at) "
                "WHERE excluded.seq > ipns_records.seq OR (excluded.seq = ipns_records.seq "
                "AND excluded.eol > ipns_records.eol)",
                (
                    row.name,
                    row.kind,
                    row.whose,
                    int(row.own),
                    row.seq,
                    row.eol,
                    row.value,
                    row.record,
                    row.kept_at,
                    row.put_at,
                    row.outcome,
                    row.error,
                ),
            )
        return cur.rowcount > 0

    def get(self, name: str) -> RecordRow | None:
        found = self._db.one(f"SELECT {_COLS} FROM ipns_records WHERE name = ?", (name,))
        return None if found is None else _row(found)

    def list(self, *, own: bool | None = None) -> list[RecordRow]:
        rows = self._db.all(
            f"SELECT {_COLS} FROM ipns_records WHERE (? IS NULL OR own = ?) "
            "ORDER BY own DESC, kind, whose, name",
            (None if own is None else int(own), None if own is None else int(own)),
        )
        return [_row(r) for r in rows]

    def note_put(
        self, name: str, record: bytes, *, at: int | None, outcome: str, error: str | None = None
    ) -> None:
        """Record what a republish did with the stored ``record`` of ``name`` (``at``: when
        it was stored on the node, None if it was not). A record replaced meanwhile by a
        newer one is left alone."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE ipns_records SET put_at = COALESCE(?, put_at), outcome = ?, error = ? "
                "WHERE name = ? AND record = ?",
                (at, outcome, error, name, record),
            )
