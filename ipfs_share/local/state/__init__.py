"""The home's state database, ``<home>/state.sqlite3``: what must persist between runs and
is not a secret (secrets live in the keystore), as one repository per aggregate over one
connection (:class:`~ipfs_share.local.database.Database`):

- ``meta``: settings (the default identity);
- ``contacts``: petnames for dids;
- ``files``: files put from this home;
- ``shares``: capsules made here, their recipients, and opens made here;
- ``mailboxes``: capsules sent through mailboxes, and the inbox;
- ``feeds``: the heads of feeds this home signs and the marks of those it reads
  (identity documents, revocation lists, mailbox chains), with verification progress;
- ``records``: every signed IPNS record published or accepted;
- ``keychains``: the keychains local identities belong to and their verified ops.

Opening migrates the database to the latest version (:mod:`ipfs_share.local.migrations`).
A home that has key files but no database (deleted, or emptied) is refused with
``state_missing``: a new database would restart every feed this home signs at seq 0 (its
readers would see rollbacks) and forget every mark that protects it from them. ``recover``
makes a new one on purpose; the feeds it signs then continue from the heads the network
has (the feed writer adopts a verified head when it has none of its own).

>>> import tempfile
>>> from pathlib import Path
>>> state = StateDB(Path(tempfile.mkdtemp()))
>>> state.contacts.put("bob", "did:key:z6Mk...").petname
'bob'
>>> state.close()
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ipfs_share.errors import StateMissingError, StoreError
from ipfs_share.local.database import Database
from ipfs_share.local.home import prepare_home
from ipfs_share.local.migrations import LATEST, current_version, migrate
from ipfs_share.local.state.contacts import Contact, ContactRepository
from ipfs_share.local.state.feeds import FeedRepository, OwnHead, ReadState, StagedEntry
from ipfs_share.local.state.files import FileRepository, FileRow
from ipfs_share.local.state.keychains import KeychainRepository
from ipfs_share.local.state.mailboxes import InboxRow, MailboxRepository, SentRow
from ipfs_share.local.state.meta import MetaRepository
from ipfs_share.local.state.records import RecordRepository, RecordRow
from ipfs_share.local.state.shares import OpenRow, RotationRow, ShareRepository, ShareRow

__all__ = [
    "DB_FILE",
    "SCHEMA_VERSION",
    "Contact",
    "FileRow",
    "InboxRow",
    "OpenRow",
    "OwnHead",
    "ReadState",
    "RecordRow",
    "RotationRow",
    "SentRow",
    "ShareRow",
    "StagedEntry",
    "StateDB",
]

DB_FILE = "state.sqlite3"
SCHEMA_VERSION = LATEST
KEYS_DIR = "identities"


class StateDB:
    """The repositories of one home. ``recover=True`` accepts a new database where key
    files already exist (see the module docstring)."""

    def __init__(self, home: Path, *, recover: bool = False) -> None:
        self.home = prepare_home(home)
        self.path = home / DB_FILE
        _check_present(home, self.path, recover=recover)
        self.database = Database(self.path)
        try:
            migrate(self.database._conn, path=self.path)
        except sqlite3.Error as exc:
            self.database.close()
            raise StoreError(f"cannot migrate the state database {self.path}: {exc}") from exc
        except BaseException:
            self.database.close()
            raise
        self.meta = MetaRepository(self.database)
        self.contacts = ContactRepository(self.database)
        self.files = FileRepository(self.database)
        self.shares = ShareRepository(self.database)
        self.mailboxes = MailboxRepository(self.database)
        self.feeds = FeedRepository(self.database)
        self.records = RecordRepository(self.database)
        self.keychains = KeychainRepository(self.database)
        if recover and self.meta.get("recovered_at") is None:
            self.meta.set("recovered_at", str(int(time.time())))

    def __repr__(self) -> str:
        return f"StateDB({str(self.path)!r})"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes of several repositories as one transaction."""
        with self.database.transaction():
            yield

    @property
    def recovered(self) -> bool:
        """Was this database started by ``recover`` (after the old one was lost)?"""
        return self.meta.get("recovered_at") is not None

    def close(self) -> None:
        self.database.close()


def _check_present(home: Path, path: Path, *, recover: bool) -> None:
    if recover or not any((home / KEYS_DIR).glob("*.key")):
        return
    if path.exists() and path.stat().st_size > 0:
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                if current_version(conn) > 0:
                    return
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the state database {path}: {exc}") from exc
        found = "is empty"
    else:
        found = "is missing" if not path.exists() else "is an empty file"
    raise StateMissingError(
        f"expected the state database {path} next to the keys in {home / KEYS_DIR}, "
        f"found it {found}",
        hint=f"restore {DB_FILE} from a backup; or, to start a new one (every feed you sign "
        "then continues from the head the network has, and marks of feeds you read start "
        "again), run 'ipfs-share state recover'",
    )
