"""Shares made from this home (capsules and their recipients) and opens made here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ipfs_share.local.database import Database

__all__ = ["OpenRow", "ShareRepository", "ShareRow"]


@dataclass(frozen=True, slots=True)
class ShareRow:
    capsule: str
    content: str
    issuer: str
    created: int
    expires: int | None
    download: bool
    reshare: bool
    policy: str | None
    cap_issuer: str | None
    state: str = "active"
    revoked_at: int | None = None
    revocation_head: str | None = None
    replaced_by: str | None = None


@dataclass(frozen=True, slots=True)
class OpenRow:
    capsule: str
    opener: str
    opened_at: int
    revocation_head: str | None
    capability: str | None


_COLS = (
    "capsule, content, issuer, created, expires, download, reshare, policy, cap_issuer, "
    "state, revoked_at, revocation_head, replaced_by"
)


def _row(row: tuple[Any, ...]) -> ShareRow:
    values = list(row)
    values[5] = bool(values[5])
    values[6] = bool(values[6])
    return ShareRow(*values)


class ShareRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, row: ShareRow, recipients: Sequence[tuple[str, str]]) -> None:
        """Record a capsule and its recipients (did, label) in one transaction."""
        with self._db.transaction():
            self._db.execute(
                f"INSERT INTO shares ({_COLS}) VALUES ({', '.join('?' * 13)})",
                (
                    row.capsule,
                    row.content,
                    row.issuer,
                    row.created,
                    row.expires,
                    int(row.download),
                    int(row.reshare),
                    row.policy,
                    row.cap_issuer,
                    row.state,
                    row.revoked_at,
                    row.revocation_head,
                    row.replaced_by,
                ),
            )
            self._db.executemany(
                "INSERT INTO share_recipients (capsule, did, label) VALUES (?, ?, ?)",
                [(row.capsule, did, label) for did, label in recipients],
            )

    def get(self, capsule: str) -> ShareRow | None:
        found = self._db.one(f"SELECT {_COLS} FROM shares WHERE capsule = ?", (capsule,))
        return None if found is None else _row(found)

    def recipients(self, capsule: str) -> list[tuple[str, str]]:
        """(did, label) of each recipient of ``capsule``."""
        rows = self._db.all(
            "SELECT did, label FROM share_recipients WHERE capsule = ? ORDER BY label, did",
            (capsule,),
        )
        return [(str(d), str(label)) for d, label in rows]

    def mark_revoked(self, capsules: Sequence[str], *, at: int, head: str) -> None:
        with self._db.transaction():
            self._db.executemany(
                "UPDATE shares SET state = CASE state WHEN 'replaced' THEN 'replaced' "
                "ELSE 'revoked' END, revoked_at = ?, revocation_head = ? WHERE capsule = ?",
                [(at, head, c) for c in capsules],
            )

    def mark_replaced(self, capsule: str, by: str) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE shares SET state = 'replaced', replaced_by = ? WHERE capsule = ?",
                (by, capsule),
            )

    def record_open(self, row: OpenRow) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO opens (capsule, opener, opened_at, revocation_head, capability) "
                "VALUES (?, ?, ?, ?, ?)",
                (row.capsule, row.opener, row.opened_at, row.revocation_head, row.capability),
            )

    def opens(self, capsule: str | None = None) -> list[OpenRow]:
        rows = self._db.all(
            "SELECT capsule, opener, opened_at, revocation_head, capability FROM opens "
            "WHERE (? IS NULL OR capsule = ?) ORDER BY id",
            (capsule, capsule),
        )
        return [OpenRow(*r) for r in rows]

    # Last in the class: a method named list shadows the builtin in later annotations.
    def list(self, *, content: str | None = None, issuer: str | None = None) -> list[ShareRow]:
        rows = self._db.all(
            f"SELECT {_COLS} FROM shares WHERE (? IS NULL OR content = ?) "
            "AND (? IS NULL OR issuer = ?) ORDER BY created, capsule",
            (content, content, issuer, issuer),
        )
        return [_row(r) for r in rows]
