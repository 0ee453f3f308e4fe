"""One SQLite connection to ``<home>/state.sqlite3``, and the transactions every repository
of the home shares.

WAL mode and a busy timeout let a CLI command, an app and the agent share one home. A
write happens in :meth:`Database.transaction`, which takes the write lock up front
(``BEGIN IMMEDIATE``), so two processes never both read-then-write the same row; it nests,
so a repository method that writes can run inside a caller's larger transaction (the feed
reader moves a high-water mark and the mailbox files what it carried, atomically).

The file and its ``-wal`` and ``-shm`` companions are 0600 whatever the umask: the file is
created 0600 before SQLite opens it (SQLite gives its companions the main file's mode),
and an existing file is tightened.

>>> import tempfile
>>> from pathlib import Path
>>> db = Database(Path(tempfile.mkdtemp()) / "state.sqlite3")
>>> with db.transaction() as conn:
...     _ = conn.execute("CREATE TABLE t (x INTEGER)")
...     with db.transaction():              # nested: part of the outer one
...         _ = conn.execute("INSERT INTO t VALUES (1)")
>>> db.execute("SELECT x FROM t").fetchall()
[(1,)]
>>> db.close()
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ipfs_share.errors import StoreError
from ipfs_share.local.home import FILE_MODE, private_file

__all__ = ["Database", "Params"]

Params = Sequence[Any]


class Database:
    """Synchronous and quick: every call is a few small statements on a local file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._depth = 0
        # synchronous=NORMAL is left set after a durable=False transaction and put back
        # to FULL only before the next statement outside one: a run of opens logged
        # switches twice for the run, not twice an open (see :meth:`transaction`)
        self._normal = False
        try:
            _create_private(path)
            self._conn = sqlite3.connect(path, timeout=10, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # synchronous stays FULL (the default): with NORMAL a power cut could lose the
            # last head of a feed we sign, and the next write would reuse a sequence number
            # and fork the feed for its readers. An fsync a commit is cheap.
            self._conn.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc
        for companion in ("-wal", "-shm"):
            private_file(path.with_name(path.name + companion))

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed when the block ends and
        rolled back if it raises. Inside another one it is part of that one.

        ``durable=False`` commits without waiting for the disk (``synchronous=NORMAL``):
        the database stays whole, but a power cut may lose this
        transaction, as if it had not run. Only for records whose loss is harmless (a
        log of opens), never for a mark or a head: the next durable commit makes it
        durable too.

        The setting is a switch of the connection, not of the transaction: NORMAL stays
        set after this one, for the next ``durable=False`` one, and every other statement
        outside a transaction but a read (a durable transaction, any statement through
        :meth:`execute`) sets FULL back first, so nothing else ever commits under
        NORMAL."""
        if self._depth:
            self._depth += 1
            try:
                yield self._conn
            finally:
                self._depth -= 1
            return
        if durable:
            self._full()
        elif not self._normal:
            self._conn.execute("PRAGMA synchronous=NORMAL")  # not allowed inside a transaction
            self._normal = True
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the state database {self.path}: {exc}") from exc
        self._depth = 1
        try:
            yield self._conn
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise StoreError(f"cannot write the state database {self.path}: {exc}") from exc

    def _full(self) -> None:
        """Back to waiting for the disk at every commit (see :meth:`__init__`), if a
        ``durable=False`` transaction left the connection not waiting; outside a
        transaction only."""
        if self._normal and not self._depth:
            self._conn.execute("PRAGMA synchronous=FULL")
            self._normal = False

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """One statement; a write outside :meth:`transaction` commits by itself."""
        if self._normal:
            self._full()
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> sqlite3.Cursor:
        if self._normal:
            self._full()
        return self._conn.executemany(sql, rows)

    def one(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        """The first row of a query (a read: see :meth:`_reading`)."""
        self._reading(sql)
        row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Every row of a query (a read: see :meth:`_reading`)."""
        self._reading(sql)
        return list(self._conn.execute(sql, params))

    def _reading(self, sql: str) -> None:
        """A SELECT leaves synchronous as it is (it commits nothing); any other statement
        given to :meth:`one` or :meth:`all` sets FULL back first, as :meth:`execute`
        does."""
        if self._normal and not sql.lstrip().startswith("SELECT"):
            self._full()


def _create_private(path: Path) -> None:
    """Create an empty database file 0600 (the umask cannot widen or narrow it), or
    tighten an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        private_file(path)
        return
    except OSError as exc:
        raise StoreError(f"cannot create the state database {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
