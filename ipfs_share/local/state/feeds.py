"""Feed state: the heads of the feeds this home signs, and the high-water marks (with
verification progress) of the feeds it reads. docs/spec/feeds.md says what they mean.

Every method that moves a head or a mark compares what the caller read before, in one
transaction, and returns False (changing nothing) if another writer moved it first: two
processes on one home never fork a feed they sign or move a mark backwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ipfs_share.formats.feed import Mark, Segment
from ipfs_share.local.database import Database

__all__ = ["FeedRepository", "OwnHead", "ReadState", "StagedEntry"]


@dataclass(frozen=True, slots=True)
class OwnHead:
    """The head of a feed this home signs."""

    name: str
    kind: str
    owner: str
    topic: str
    seq: int
    head: str
    head_block: bytes | None = field(default=None, repr=False)
    pinned: str | None = None
    published_seq: int | None = None

    @property
    def published(self) -> bool:
        return self.published_seq is not None and self.published_seq >= self.seq


@dataclass(frozen=True, slots=True)
class ReadState:
    """Where this home is in a feed it reads: the mark (newest entry verified and connected
    to everything before it) and the verified run above it not yet connected."""

    name: str
    kind: str
    signer: str
    reader: str
    mark: Mark | None
    head_block: bytes | None = field(repr=False)
    checked_at: int
    segment: Segment | None


@dataclass(frozen=True, slots=True)
class StagedEntry:
    seq: int
    cid: str
    data: bytes = field(repr=False)


_OWN = "name, kind, owner, topic, seq, head, head_block, pinned, published_seq"
_READ = (
    "name, kind, signer, reader, seq, head, head_block, checked_at, top_seq, top, bottom_seq, "
    "bottom, below"
)


def _own(row: tuple[Any, ...]) -> OwnHead:
    values = list(row)
    if values[6] is not None:
        values[6] = bytes(values[6])
    return OwnHead(*values)


def _read(row: tuple[Any, ...]) -> ReadState:
    name, kind, signer, reader, seq, head, block, at, top_seq, top, bot_seq, bot, below = row
    segment = None
    if top is not None:
        segment = Segment(Mark(top_seq, top), Mark(bot_seq, bot), below)
    return ReadState(
        name=name,
        kind=kind,
        signer=signer,
        reader=reader,
        mark=None if head is None else Mark(seq, head),
        head_block=None if block is None else bytes(block),
        checked_at=at,
        segment=segment,
    )


class FeedRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- feeds we sign ----------------------------------------------------------------------
    def own(self, name: str) -> OwnHead | None:
        got = self._db.one(f"SELECT {_OWN} FROM feeds_own WHERE name = ?", (name,))
        return None if got is None else _own(got)

    def own_feeds(self, kind: str | None = None, owner: str | None = None) -> list[OwnHead]:
        rows = self._db.all(
            f"SELECT {_OWN} FROM feeds_own WHERE (? IS NULL OR kind = ?) "
            "AND (? IS NULL OR owner = ?) ORDER BY kind, owner, topic, name",
            (kind, kind, owner, owner),
        )
        return [_own(r) for r in rows]

    def advance_own(
        self,
        head: OwnHead,
        *,
        expected_seq: int | None,
        then: Callable[[], None] | None = None,
    ) -> bool:
        """Move a feed's head to ``head`` if it is still at ``expected_seq`` (None: no head
        yet), and run ``then`` in the same transaction (what the new entries carry)."""
        with self._db.transaction():
            got = self._db.one("SELECT seq FROM feeds_own WHERE name = ?", (head.name,))
            if (None if got is None else int(got[0])) != expected_seq:
                return False
            self._db.execute(
                f"INSERT INTO feeds_own ({_OWN}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq, head = excluded.head, "
                "head_block = excluded.head_block, pinned = excluded.pinned",
                (
                    head.name,
                    head.kind,
                    head.owner,
                    head.topic,
                    head.seq,
                    head.head,
                    head.head_block,
                    head.pinned,
                    head.published_seq,
                ),
            )
            if then is not None:
                then()
        return True

    def mark_published(self, name: str, seq: int) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE feeds_own SET published_seq = ? WHERE name = ? "
                "AND (published_seq IS NULL OR published_seq < ?)",
                (seq, name, seq),
            )

    # -- feeds we read ----------------------------------------------------------------------
    def read(self, name: str) -> ReadState | None:
        got = self._db.one(f"SELECT {_READ} FROM feeds_read WHERE name = ?", (name,))
        return None if got is None else _read(got)

    def read_head(self, name: str) -> tuple[str, int] | None:
        """The CID of the mark and when the feed was last checked, without the rest of
        :meth:`read`'s row (the head's block above all); None for a feed not read yet
        or without a mark and its block."""
        got = self._db.one(
            "SELECT head, checked_at FROM feeds_read WHERE name = ? AND head_block IS NOT NULL",
            (name,),
        )
        return None if got is None or got[0] is None else (got[0], got[1])

    def read_feeds(self, kind: str | None = None, signer: str | None = None) -> list[ReadState]:
        rows = self._db.all(
            f"SELECT {_READ} FROM feeds_read WHERE (? IS NULL OR kind = ?) "
            "AND (? IS NULL OR signer = ?) ORDER BY kind, signer, name",
            (kind, kind, signer, signer),
        )
        return [_read(r) for r in rows]

    def _ensure(self, name: str, kind: str, signer: str, reader: str, at: int) -> None:
        self._db.execute(
            "INSERT INTO feeds_read (name, kind, signer, reader, checked_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
            (name, kind, signer, reader, at),
        )

    def _mark_and_top(self, name: str) -> tuple[Mark | None, Mark | None]:
        got = self._db.one("SELECT seq, head, top_seq, top FROM feeds_read WHERE name = ?", (name,))
        if got is None:
            return None, None
        seq, head, top_seq, top = got
        return (
            None if head is None else Mark(seq, head),
            None if top is None else Mark(top_seq, top),
        )

    def stage(
        self,
        state: ReadState,
        entries: Sequence[StagedEntry],
        segment: Segment,
    ) -> bool:
        """Keep verification progress: ``entries`` verified (a run the walk has not yet
        connected to the mark) and the ``segment`` they extend, if the mark and the
        segment are still what ``state`` says (else another process moved on)."""
        with self._db.transaction():
            self._ensure(state.name, state.kind, state.signer, state.reader, state.checked_at)
            mark, top = self._mark_and_top(state.name)
            if mark != state.mark or top != (None if state.segment is None else state.segment.top):
                return False
            self._db.executemany(
                "INSERT OR REPLACE INTO feed_staged (name, seq, cid, entry) VALUES (?, ?, ?, ?)",
                [(state.name, e.seq, e.cid, e.data) for e in entries],
            )
            self._db.execute(
                "UPDATE feeds_read SET top_seq = ?, top = ?, bottom_seq = ?, bottom = ?, "
                "below = ? WHERE name = ?",
                (
                    segment.top.seq,
                    segment.top.cid,
                    segment.bottom.seq,
                    segment.bottom.cid,
                    segment.below,
                    state.name,
                ),
            )
        return True

    def staged(self, name: str) -> list[StagedEntry]:
        """The entries of the segment, oldest first."""
        rows = self._db.all(
            "SELECT seq, cid, entry FROM feed_staged WHERE name = ? ORDER BY seq", (name,)
        )
        return [StagedEntry(int(s), str(c), bytes(d)) for s, c, d in rows]

    def drop_progress(self, name: str) -> None:
        """Forget the segment (a fork or rollback showed it cannot connect)."""
        with self._db.transaction():
            self._db.execute("DELETE FROM feed_staged WHERE name = ?", (name,))
            self._db.execute(
                "UPDATE feeds_read SET top_seq = NULL, top = NULL, bottom_seq = NULL, "
                "bottom = NULL, below = NULL WHERE name = ?",
                (name,),
            )

    def advance_read(
        self,
        state: ReadState,
        mark: Mark,
        *,
        head_block: bytes | None,
        checked_at: int,
        then: Callable[[], None] | None = None,
    ) -> bool:
        """Move the mark to ``mark`` if it is still where ``state`` read it, drop the
        progress it completes, and run ``then`` in the same transaction (what the new
        entries carry). False, changing nothing, if another process moved it first."""
        with self._db.transaction():
            self._ensure(state.name, state.kind, state.signer, state.reader, checked_at)
            current, _ = self._mark_and_top(state.name)
            if current != state.mark:
                return False
            self._db.execute("DELETE FROM feed_staged WHERE name = ?", (state.name,))
            self._db.execute(
                "UPDATE feeds_read SET seq = ?, head = ?, head_block = ?, checked_at = ?, "
                "top_seq = NULL, top = NULL, bottom_seq = NULL, bottom = NULL, below = NULL "
                "WHERE name = ?",
                (mark.seq, mark.cid, head_block, checked_at, state.name),
            )
            if then is not None:
                then()
        return True

    def touch_read(self, name: str, checked_at: int) -> None:
        """The mark was verified again and nothing is new."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE feeds_read SET checked_at = MAX(checked_at, ?) WHERE name = ?",
                (checked_at, name),
            )
