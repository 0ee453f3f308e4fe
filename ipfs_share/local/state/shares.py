"""Shares made from this home (capsules and their recipients) and opens made here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ipfs_share.local.database import Database

__all__ = ["OpenRow", "RotationRow", "ShareRepository", "ShareRow"]


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
class RotationRow:
    """A re-keying of ``content`` under way or done (``revoke --rotate``)."""

    content: str
    owner: str
    stanza: bytes = field(repr=False)  # the new file key, wrapped to the owner
    nonce: bytes = field(repr=False)
    started_at: int
    new_content: str | None = None
    done_at: int | None = None


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

    def add(
        self,
        row: ShareRow,
        recipients: Sequence[tuple[str, str]],
        *,
        reissue_of: str | None = None,
    ) -> None:
        """Record a capsule and its recipients (did, label) in one transaction, and (with
        ``reissue_of``) the capsule it re-issues."""
        with self._db.transaction():
            if reissue_of is not None:
                self.note_reissue(reissue_of, row.capsule)
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

    # -- rotations and re-issues (a revoke interrupted anywhere finishes on retry) --------
    def rotation(self, content: str) -> RotationRow | None:
        got = self._db.one(
            "SELECT content, owner, stanza, nonce, started_at, new_content, done_at "
            "FROM rotations WHERE content = ?",
            (content,),
        )
        if got is None:
            return None
        return RotationRow(got[0], got[1], bytes(got[2]), bytes(got[3]), *got[4:])

    def start_rotation(self, row: RotationRow) -> RotationRow:
        """Record a rotation about to start, unless one of ``content`` is recorded (then
        that one, to be finished)."""
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO rotations (content, owner, stanza, nonce, started_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(content) DO NOTHING",
                (row.content, row.owner, row.stanza, row.nonce, row.started_at),
            )
        found = self.rotation(row.content)
        assert found is not None
        return found

    def rotated(self, content: str, new_content: str) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE rotations SET new_content = ? WHERE content = ?", (new_content, content)
            )

    def rotation_done(self, content: str, *, at: int) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE rotations SET done_at = COALESCE(done_at, ?) WHERE content = ?",
                (at, content),
            )

    def reissued_as(self, capsule: str) -> str | None:
        got = self._db.one("SELECT reissued_as FROM reissues WHERE capsule = ?", (capsule,))
        return None if got is None else str(got[0])

    def reissue_of(self, reissued_as: str) -> str | None:
        """The capsule ``reissued_as`` re-issues, if a revoke made it."""
        got = self._db.one("SELECT capsule FROM reissues WHERE reissued_as = ?", (reissued_as,))
        return None if got is None else str(got[0])

    def note_reissue(self, capsule: str, reissued_as: str) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO reissues (capsule, reissued_as) VALUES (?, ?) "
                "ON CONFLICT(capsule) DO UPDATE SET reissued_as = excluded.reissued_as",
                (capsule, reissued_as),
            )

    def revoked_with(self, head: str) -> list[str]:
        """The capsules one revoke put on the list (those recorded with its ``head``)."""
        rows = self._db.all("SELECT capsule FROM shares WHERE revocation_head = ?", (head,))
        return [str(r[0]) for r in rows]

    def record_open(self, row: OpenRow) -> None:
        """Log an open. Not waited on to reach the disk: a power cut may lose the last
        few (the log says which head each open checked; it protects nothing)."""
        with self._db.transaction(durable=False):
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
