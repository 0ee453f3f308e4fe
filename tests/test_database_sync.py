"""A transaction made with durable=False commits under synchronous=NORMAL, and nothing
else does: the setting is left for the next such transaction (a run of logged opens
switches it once), and set back to FULL before any other statement that may write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ipfs_share.local.database import Database

FULL, NORMAL = 2, 1


def _synchronous(conn: sqlite3.Connection) -> int:
    (value,) = conn.execute("PRAGMA synchronous").fetchone()
    return int(value)


def _seen(db: Database, statement: str) -> list[int]:
    """The synchronous setting each statement given to the database committed under."""
    seen: list[int] = []
    conn = db._conn

    def trace(sql: str) -> None:
        if sql.startswith(statement):
            seen.append(_synchronous(conn))

    conn.set_trace_callback(trace)
    return seen


def test_only_a_non_durable_transaction_commits_under_normal(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    db.execute("CREATE TABLE t (x INTEGER)")
    seen = _seen(db, "INSERT")
    for _ in range(3):
        with db.transaction(durable=False):
            db.execute("INSERT INTO t VALUES (1)")
        assert db.one("SELECT count(*) FROM t") is not None  # a read keeps NORMAL
    assert _synchronous(db._conn) == NORMAL
    with db.transaction():
        db.execute("INSERT INTO t VALUES (2)")
    with db.transaction(durable=False):
        db.execute("INSERT INTO t VALUES (3)")
    db.execute("INSERT INTO t VALUES (4)")  # commits by itself: durable
    with db.transaction(durable=False):
        db.execute("INSERT INTO t VALUES (5)")
    db.executemany("INSERT INTO t VALUES (?)", [(6,)])
    with db.transaction(durable=False):
        db.execute("INSERT INTO t VALUES (7)")
    db.one("INSERT INTO t VALUES (8) RETURNING x")  # not a read: durable
    assert seen == [NORMAL, NORMAL, NORMAL, FULL, NORMAL, FULL, NORMAL, FULL, NORMAL, FULL]
    db.close()


def test_a_failed_non_durable_transaction_leaves_the_next_durable_one_full(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "state.db")
    db.execute("CREATE TABLE t (x INTEGER)")
    seen = _seen(db, "INSERT")
    try:
        with db.transaction(durable=False):
            db.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    with db.transaction():
        db.execute("INSERT INTO t VALUES (2)")
    assert seen == [NORMAL, FULL]
    assert db.all("SELECT x FROM t") == [(2,)]
    db.close()
