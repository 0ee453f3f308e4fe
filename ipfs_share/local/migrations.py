"""Numbered migrations of the state database, keyed on ``PRAGMA user_version``.

Each migration moves a database from version ``n - 1`` to ``n`` inside one transaction
that also sets ``user_version = n``: a crash leaves the database at one version or the
next, never between. A fresh database runs them all, so a new home and an upgraded one
have the same schema (a test compares them table by table).

Homes written before migrations existed carry ``user_version`` 0 and their version in the
``meta`` table (``schema_version`` 1 to 3); :func:`current_version` reads that as their
version. Every migration also writes ``meta.schema_version``, so an older ipfs-share
refuses a newer home ("this home was used by a newer ipfs-share") instead of using it.

=======  ==========================================================================
version  what it adds
=======  ==========================================================================
1        contacts, identity documents seen, what we published
2        files, shares and their recipients, opens, revocation heads
3        mailboxes: our chains, what went through them, marks of the ones we read,
         the inbox
=======  ==========================================================================
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from ipfs_share.errors import StoreError

__all__ = ["LATEST", "MIGRATIONS", "Migration", "current_version", "migrate"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    summary: str
    apply: Callable[[sqlite3.Connection], None]


def _run(*statements: str) -> Callable[[sqlite3.Connection], None]:
    def apply(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return apply


# -- 1 to 3: the schemas homes were created with before migrations (byte for byte) -------

_V1 = _run(
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS contacts (
    petname TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    added INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS identity_docs (
    did TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    cid TEXT NOT NULL,
    document BLOB NOT NULL,
    resolved_at INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS published (
    did TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    cid TEXT NOT NULL,
    published_at INTEGER NOT NULL
)""",
)

_V2 = _run(
    """CREATE TABLE IF NOT EXISTS files (
    cid TEXT PRIMARY KEY,          -- the envelope's content CID
    owner TEXT NOT NULL,           -- did of the identity that put it
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,         -- plaintext bytes
    stanza BLOB NOT NULL,          -- the file key wrapped to the owner's own X25519 key
    created INTEGER NOT NULL,
    state TEXT NOT NULL            -- 'stored' | 'removed'
)""",
    """CREATE TABLE IF NOT EXISTS shares (
    capsule TEXT PRIMARY KEY,      -- the capsule's CID: its ID
    content TEXT NOT NULL,
    issuer TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER,
    download INTEGER NOT NULL,
    reshare INTEGER NOT NULL,
    policy TEXT,                   -- provider name, or NULL
    cap_issuer TEXT,               -- did that issues capabilities, or NULL
    state TEXT NOT NULL,           -- 'active' | 'revoked' | 'replaced'
    revoked_at INTEGER,
    revocation_head TEXT,          -- the head that records the revocation
    replaced_by TEXT               -- the capsule a rotation issued instead
)""",
    """CREATE TABLE IF NOT EXISTS share_recipients (
    capsule TEXT NOT NULL,
    did TEXT NOT NULL,
    label TEXT NOT NULL,           -- how the sharer named the recipient
    PRIMARY KEY (capsule, did)
)""",
    """CREATE TABLE IF NOT EXISTS opens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    capsule TEXT NOT NULL,
    opener TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    revocation_head TEXT,          -- the revocation head checked (NULL: none published)
    capability TEXT                -- the capability token's CID, if one was needed
)""",
    """CREATE TABLE IF NOT EXISTS revocation_lists (
    issuer TEXT PRIMARY KEY,       -- our own lists: the current head
    head TEXT NOT NULL,
    seq INTEGER NOT NULL,
    head_block BLOB NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS revocation_seen (
    issuer TEXT PRIMARY KEY,       -- others' lists: the freshest head verified
    head TEXT NOT NULL,
    seq INTEGER NOT NULL,
    head_block BLOB NOT NULL,
    checked_at INTEGER NOT NULL
)""",
)

_V3 = _run(
    """CREATE TABLE IF NOT EXISTS mailbox_out (
    name TEXT PRIMARY KEY,         -- our chain to one recipient: its IPNS name (k51...)
    sender TEXT NOT NULL,          -- did of the local identity that writes it
    recipient TEXT NOT NULL,
    seq INTEGER NOT NULL,          -- the head entry
    head TEXT NOT NULL,
    head_block BLOB NOT NULL,
    published_seq INTEGER          -- the newest head stored with name/put (NULL: none yet)
)""",
    """CREATE TABLE IF NOT EXISTS mailbox_sent (
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    capsule TEXT NOT NULL,
    name TEXT NOT NULL,            -- the mailbox it went through
    seq INTEGER NOT NULL,          -- its entry
    entry TEXT NOT NULL,
    ack_ref BLOB NOT NULL,         -- how the recipient's acknowledgements name it
    sent_at INTEGER NOT NULL,
    delivered_at INTEGER,
    opened_at INTEGER,
    cancelled_at INTEGER,
    PRIMARY KEY (sender, recipient, capsule)
)""",
    "CREATE INDEX IF NOT EXISTS mailbox_sent_ack ON mailbox_sent (ack_ref)",
    "CREATE INDEX IF NOT EXISTS mailbox_sent_capsule ON mailbox_sent (capsule)",
    """CREATE TABLE IF NOT EXISTS mailbox_read (
    reader TEXT NOT NULL,          -- the local identity reading
    name TEXT NOT NULL,            -- someone's mailbox to it
    sender TEXT NOT NULL,
    seq INTEGER NOT NULL,          -- the high-water mark: newest entry verified
    head TEXT NOT NULL,
    synced_at INTEGER NOT NULL,
    PRIMARY KEY (reader, name)
)""",
    """CREATE TABLE IF NOT EXISTS inbox (
    reader TEXT NOT NULL,
    capsule TEXT NOT NULL,
    sender TEXT NOT NULL,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry TEXT NOT NULL,
    sent INTEGER NOT NULL,         -- the entry's own time (the sender's clock)
    received_at INTEGER NOT NULL,
    state TEXT NOT NULL,           -- 'pending' | 'delivered' | 'withdrawn' | 'invalid'
    issuer TEXT,                   -- from the capsule, once fetched
    expires INTEGER,
    acked TEXT,                    -- the last acknowledgement sent: NULL | 'delivered' | 'opened'
    PRIMARY KEY (reader, capsule)
)""",
    "CREATE INDEX IF NOT EXISTS inbox_state ON inbox (reader, state, acked)",
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "contacts, identity documents, what we published", _V1),
    Migration(2, "files, shares, opens, revocation heads", _V2),
    Migration(3, "mailboxes and the inbox", _V3),
)
LATEST = MIGRATIONS[-1].version


def current_version(conn: sqlite3.Connection) -> int:
    """The database's version: ``user_version``, or for a home from before migrations
    (``user_version`` 0) its ``meta.schema_version``; 0 for an empty database."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version:
        return int(version)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return 0
    legacy = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        legacy = None if row is None else str(row[0])
    if legacy is None or not legacy.isdigit() or not 1 <= int(legacy) <= 3:
        raise StoreError(
            f"expected a state database of ipfs-share, found tables {sorted(tables)[:8]} "
            f"and schema_version {legacy!r:.20}",
            hint="move the file away if it is not ipfs-share's, or restore it from a backup",
        )
    return int(legacy)


def migrate(conn: sqlite3.Connection, *, path: object = "the state database") -> int:
    """Bring the database to :data:`LATEST`, one transaction per migration; return the
    version it was at. A database newer than this code is refused, untouched."""
    conn.execute("BEGIN IMMEDIATE")  # read the version under the write lock
    try:
        found = current_version(conn)
        (numbered,) = conn.execute("PRAGMA user_version").fetchone()
        if found and not numbered and found <= LATEST:  # a home from before migrations
            conn.execute(f"PRAGMA user_version = {found:d}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    if found > LATEST:
        raise StoreError(
            f"expected a state database of version {LATEST} or older, found {found} at {path}",
            hint="this home was used by a newer ipfs-share; upgrade ipfs-share",
        )
    for migration in MIGRATIONS:
        if migration.version <= found:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if current_version(conn) >= migration.version:  # another process got here first
                conn.execute("ROLLBACK")
                continue
            migration.apply(conn)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(migration.version),),
            )
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return found
