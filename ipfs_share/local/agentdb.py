"""``<home>/agent.sqlite3``: what the agent and the introductions keep between runs.

Two repositories over one small database of their own (so they migrate on their own,
keyed on ``PRAGMA user_version``):

- :class:`IntroductionRepository` -- introductions from senders the home had not added:
  pending until accepted or rejected, capped per recipient identity;
- :class:`RepublishLog` -- every republish run of the agent, so a restarted agent knows
  when the last one ran and how it went.

>>> import tempfile
>>> from pathlib import Path
>>> intros = IntroductionRepository(Path(tempfile.mkdtemp()))
>>> intros.offer("did:key:z6MkBob", "did:key:z6MkAlice", at=100, max_pending=16)
'pending'
>>> intros.offer("did:key:z6MkBob", "did:key:z6MkAlice", at=200, max_pending=16)
'refreshed'
>>> [(i.sender, i.count, i.last_seen) for i in intros.pending("did:key:z6MkBob")]
[('did:key:z6MkAlice', 2, 200)]
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ipfs_share.errors import StoreError

__all__ = [
    "AGENT_DB_VERSION",
    "IntroductionRepository",
    "Offer",
    "PendingIntroduction",
    "RepublishLog",
    "RepublishRun",
]

# Each migration takes the database from version i to i + 1; a home that is newer than
# this code is refused (it would otherwise be written with a schema it does not know).
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE introductions (
        recipient TEXT NOT NULL,       -- the local identity introduced to
        sender TEXT NOT NULL,          -- who introduced itself (a did)
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        count INTEGER NOT NULL,        -- how many verified introductions arrived
        state TEXT NOT NULL,           -- 'pending' | 'accepted' | 'rejected'
        PRIMARY KEY (recipient, sender)
    );
    CREATE INDEX introductions_state ON introductions (recipient, state);
    CREATE TABLE republish_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started INTEGER NOT NULL,
        finished INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        report TEXT NOT NULL           -- the run's report, JSON
    );
    """,
)
AGENT_DB_VERSION = len(_MIGRATIONS)
RUNS_KEPT = 100  # the republish log keeps this many runs

Offer = Literal["pending", "refreshed", "capped", "accepted", "rejected"]


def _connect(home: Path) -> sqlite3.Connection:
    path = home / "agent.sqlite3"
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        path.chmod(0o600)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if found > AGENT_DB_VERSION:
                raise StoreError(
                    f"expected an agent database of version {AGENT_DB_VERSION} or older, "
                    f"found {found} at {path}",
                    hint="this home was used by a newer ipfs-share; upgrade ipfs-share",
                )
            for version in range(found, AGENT_DB_VERSION):
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the agent database {path}: {exc}") from exc
    return conn


@dataclass(frozen=True, slots=True)
class PendingIntroduction:
    recipient: str
    sender: str
    first_seen: int
    last_seen: int
    count: int
    state: str = "pending"

    def to_json(self) -> dict[str, object]:
        return {
            "recipient": self.recipient,
            "sender": self.sender,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "count": self.count,
            "state": self.state,
        }


class IntroductionRepository:
    """Introductions by (recipient, sender). Every write is one short transaction."""

    def __init__(self, home: Path) -> None:
        self._conn = _connect(home)

    def close(self) -> None:
        self._conn.close()

    def offer(self, recipient: str, sender: str, *, at: int, max_pending: int) -> Offer:
        """Record a verified introduction: a new pending row (unless ``recipient`` already
        has ``max_pending`` of them: "capped", nothing stored), a refreshed one, or
        nothing for a sender already accepted or rejected (its state is returned)."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            got = self._conn.execute(
                "SELECT state FROM introductions WHERE recipient = ? AND sender = ?",
                (recipient, sender),
            ).fetchone()
            if got is not None:
                state = str(got[0])
                if state != "pending":
                    return "accepted" if state == "accepted" else "rejected"
                self._conn.execute(
                    "UPDATE introductions SET last_seen = ?, count = count + 1 "
                    "WHERE recipient = ? AND sender = ?",
                    (at, recipient, sender),
                )
                return "refreshed"
            (pending,) = self._conn.execute(
                "SELECT COUNT(*) FROM introductions WHERE recipient = ? AND state = 'pending'",
                (recipient,),
            ).fetchone()
            if pending >= max_pending:
                return "capped"
            self._conn.execute(
                "INSERT INTO introductions (recipient, sender, first_seen, last_seen, count, "
                "state) VALUES (?, ?, ?, ?, 1, 'pending')",
                (recipient, sender, at, at),
            )
            return "pending"

    def pending(self, recipient: str | None = None) -> list[PendingIntroduction]:
        """Pending introductions (to ``recipient``, or to anyone here), oldest first."""
        rows = self._conn.execute(
            "SELECT recipient, sender, first_seen, last_seen, count, state FROM introductions "
            "WHERE state = 'pending' AND (? IS NULL OR recipient = ?) "
            "ORDER BY first_seen, sender",
            (recipient, recipient),
        )
        return [PendingIntroduction(*r) for r in rows]

    def find(self, sender: str) -> list[PendingIntroduction]:
        """Every introduction from ``sender``, to any identity here, in any state."""
        rows = self._conn.execute(
            "SELECT recipient, sender, first_seen, last_seen, count, state FROM introductions "
            "WHERE sender = ? ORDER BY recipient",
            (sender,),
        )
        return [PendingIntroduction(*r) for r in rows]

    def settle(
        self, sender: str, state: Literal["accepted", "rejected"], *, recipient: str | None
    ) -> int:
        """Mark the introductions from ``sender`` (to ``recipient``, or to all) ``state``;
        returns how many changed."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            cur = self._conn.execute(
                "UPDATE introductions SET state = ? WHERE sender = ? "
                "AND (? IS NULL OR recipient = ?)",
                (state, sender, recipient, recipient),
            )
        return int(cur.rowcount)


@dataclass(frozen=True, slots=True)
class RepublishRun:
    started: int
    finished: int
    ok: bool
    report: dict[str, Any]

    def to_json(self) -> dict[str, object]:
        return {
            "started": self.started,
            "finished": self.finished,
            "ok": self.ok,
            "report": self.report,
        }


class RepublishLog:
    """The agent's republish runs, newest kept (:data:`RUNS_KEPT`)."""

    def __init__(self, home: Path) -> None:
        self._conn = _connect(home)

    def close(self) -> None:
        self._conn.close()

    def record(self, run: RepublishRun) -> None:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "INSERT INTO republish_runs (started, finished, ok, report) VALUES (?, ?, ?, ?)",
                (run.started, run.finished, int(run.ok), json.dumps(run.report, sort_keys=True)),
            )
            self._conn.execute(
                "DELETE FROM republish_runs WHERE id <= (SELECT MAX(id) FROM republish_runs) - ?",
                (RUNS_KEPT,),
            )

    def last(self, *, ok: bool | None = None) -> RepublishRun | None:
        """The newest run (``ok=True``: the newest that succeeded)."""
        got = self._conn.execute(
            "SELECT started, finished, ok, report FROM republish_runs "
            "WHERE (? IS NULL OR ok = ?) ORDER BY id DESC LIMIT 1",
            (None if ok is None else int(ok), None if ok is None else int(ok)),
        ).fetchone()
        if got is None:
            return None
        return RepublishRun(int(got[0]), int(got[1]), bool(got[2]), json.loads(got[3]))
