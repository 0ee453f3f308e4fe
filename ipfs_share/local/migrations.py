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
4        feeds: the heads we sign, the marks (and verification progress) of the feeds
         we read, every signed IPNS record published or accepted; inbox items retry
         missing capsules with a backoff. The per-feed tables of 1-3 move into these.
5        rotations and re-issued capsules, so a revoke --rotate interrupted at any point
         finishes on retry without a second copy of anything
6        keychains: the ones local identities belong to, their verified ops, ops refused
         at decoding, ops pointed at this home (the member chains are feeds)
=======  ==========================================================================
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipfs_share.errors import FormatError, StoreError
from ipfs_share.formats import dagcbor
from ipfs_share.formats.identity_doc import identity_ipns_name

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


# -- 4: feeds and records -------------------------------------------------------------

_V4_TABLES = (
    """CREATE TABLE feeds_own (
    name TEXT PRIMARY KEY,         -- a feed this home signs: its IPNS name (k51...)
    kind TEXT NOT NULL,            -- 'identity' | 'revocation' | 'mailbox' | ...
    owner TEXT NOT NULL,           -- the local identity (did) that signs its entries
    topic TEXT NOT NULL,           -- which of the owner's feeds of that kind ('' or a peer)
    seq INTEGER NOT NULL,          -- the head entry
    head TEXT NOT NULL,
    head_block BLOB,               -- the head entry's bytes
    pinned TEXT,                   -- the head pinned recursively (kinds pinned by head)
    published_seq INTEGER          -- the newest head whose record went out (NULL: none yet)
)""",
    "CREATE INDEX feeds_own_owner ON feeds_own (kind, owner)",
    """CREATE TABLE feeds_read (
    name TEXT PRIMARY KEY,         -- a feed this home reads: its IPNS name
    kind TEXT NOT NULL,
    signer TEXT NOT NULL,          -- whose entries it holds
    reader TEXT NOT NULL,          -- the local identity it is read for ('' for the home)
    seq INTEGER,                   -- the high-water mark: newest entry verified and
    head TEXT,                     --   connected (NULL: none yet)
    head_block BLOB,               -- the mark's bytes (NULL: not kept)
    checked_at INTEGER NOT NULL,   -- when the mark was last verified against the node
    top_seq INTEGER,               -- verification progress: entries from top down to
    top TEXT,                      --   bottom are verified but not yet connected to
    bottom_seq INTEGER,            --   the mark; they wait in feed_staged
    bottom TEXT,
    below TEXT                     -- the bottom's prev: where the walk resumes
)""",
    "CREATE INDEX feeds_read_signer ON feeds_read (kind, signer)",
    """CREATE TABLE feed_staged (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    cid TEXT NOT NULL,
    entry BLOB NOT NULL,
    PRIMARY KEY (name, seq)
)""",
    """CREATE TABLE ipns_records (
    name TEXT PRIMARY KEY,         -- the IPNS name (k51...)
    kind TEXT NOT NULL,            -- the kind of feed it heads
    whose TEXT NOT NULL,           -- the did whose feed it is
    own INTEGER NOT NULL,          -- 1: this home signs it; 0: a record this home depends on
    seq INTEGER NOT NULL,
    eol INTEGER NOT NULL,          -- end of validity (Unix seconds)
    value TEXT NOT NULL,           -- /ipfs/<head CID>
    record BLOB NOT NULL,          -- the signed record, byte for byte
    kept_at INTEGER NOT NULL,      -- when it was published or accepted
    put_at INTEGER,                -- when it was last stored on the node
    outcome TEXT,                  -- the last republish: reput | resigned | skipped | failed
    error TEXT
)""",
    "ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE inbox ADD COLUMN retry_at INTEGER",  # NULL: fetch at the next sync
)
_V4_DROPS = (
    "DROP TABLE published",
    "DROP TABLE identity_docs",
    "DROP TABLE revocation_lists",
    "DROP TABLE revocation_seen",
    "DROP TABLE mailbox_out",
    "DROP TABLE mailbox_read",
)


def _v4(conn: sqlite3.Connection) -> None:
    """The tables of 1-3 that each held one feed's state move into ``feeds_own`` and
    ``feeds_read``. A revocation list's IPNS name is not in its old tables: it is read
    from the issuer's identity document (always cached before a list is written or
    checked); a row whose name cannot be found is left out, and that list continues
    from the network at its next write or check (the feed writer adopts a verified
    head it finds, the reader keeps the first it verifies)."""
    for statement in _V4_TABLES:
        conn.execute(statement)
    docs = {
        str(did): (int(seq), str(cid), bytes(doc), int(at))
        for did, seq, cid, doc, at in conn.execute(
            "SELECT did, seq, cid, document, resolved_at FROM identity_docs"
        )
    }
    own: list[tuple[Any, ...]] = [
        (identity_ipns_name(did), "identity", did, "", seq, cid, _doc_if(docs, did, cid), cid, seq)
        for did, seq, cid in conn.execute("SELECT did, seq, cid FROM published")
    ]
    for issuer, head, seq, block in conn.execute(
        "SELECT issuer, head, seq, head_block FROM revocation_lists"
    ):
        name = _list_name(docs, issuer)
        if name is not None:
            own.append((name, "revocation", issuer, "", seq, head, bytes(block), head, None))
    own += [
        (name, "mailbox", sender, recipient, seq, head, bytes(block), None, published)
        for name, sender, recipient, seq, head, block, published in conn.execute(
            "SELECT name, sender, recipient, seq, head, head_block, published_seq FROM mailbox_out"
        )
    ]
    conn.executemany(
        "INSERT INTO feeds_own (name, kind, owner, topic, seq, head, head_block, pinned, "
        "published_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        own,
    )
    read: list[tuple[Any, ...]] = [
        (identity_ipns_name(did), "identity", did, "", seq, cid, doc, at)
        for did, (seq, cid, doc, at) in docs.items()
    ]
    for issuer, head, seq, block, at in conn.execute(
        "SELECT issuer, head, seq, head_block, checked_at FROM revocation_seen"
    ):
        name = _list_name(docs, issuer)
        if name is not None:
            read.append((name, "revocation", issuer, "", seq, head, bytes(block), at))
    read += [
        (name, "mailbox", sender, reader, seq, head, None, at)
        for reader, name, sender, seq, head, at in conn.execute(
            "SELECT reader, name, sender, seq, head, synced_at FROM mailbox_read"
        )
    ]
    conn.executemany(
        "INSERT OR IGNORE INTO feeds_read (name, kind, signer, reader, seq, head, head_block, "
        "checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        read,
    )
    for statement in _V4_DROPS:
        conn.execute(statement)


def _doc_if(docs: dict[str, tuple[int, str, bytes, int]], did: str, cid: str) -> bytes | None:
    found = docs.get(did)
    return found[2] if found is not None and found[1] == cid else None


def _list_name(docs: dict[str, tuple[int, str, bytes, int]], issuer: str) -> str | None:
    """The revocation list name an identity document names (decoded without its
    signature: it was verified when it was cached)."""
    found = docs.get(issuer)
    if found is None:
        return None
    try:
        fields: Any = dagcbor.decode(found[2])
    except FormatError:
        return None
    name = fields.get("revocations") if isinstance(fields, dict) else None
    return name if isinstance(name, str) else None


# -- 5: rotations that survive a crash ---------------------------------------------------

_V5 = _run(
    """CREATE TABLE rotations (
    content TEXT PRIMARY KEY,      -- content being re-keyed by revoke --rotate
    owner TEXT NOT NULL,
    stanza BLOB NOT NULL,          -- its new file key, wrapped to the owner (as files.stanza)
    nonce BLOB NOT NULL,           -- the new envelope's payload nonce: a retry makes the same CID
    started_at INTEGER NOT NULL,
    new_content TEXT,              -- the re-encrypted content, once stored
    done_at INTEGER                -- when the old content was unpinned
)""",
    """CREATE TABLE reissues (
    capsule TEXT PRIMARY KEY,      -- a capsule a revoke re-issues (rotation or drop)
    reissued_as TEXT NOT NULL      -- the capsule made instead (before the old one is revoked)
)""",
)


# -- 6: keychains (docs/spec/keychain.md) ------------------------------------------------

_V6 = _run(
    """CREATE TABLE keychains (
    kc TEXT NOT NULL,              -- the keychain's fingerprint (its create op's CID)
    member TEXT NOT NULL,          -- the local identity (did) in it
    role TEXT NOT NULL,            -- 'creator' | 'invited'
    joined_at INTEGER NOT NULL,
    name TEXT,                     -- its name, once opened (kept as file names are)
    PRIMARY KEY (kc, member)
)""",
    """CREATE TABLE keychain_ops (
    kc TEXT NOT NULL,
    cid TEXT NOT NULL,
    author TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,            -- verified (decode_op) before it was stored
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (kc, cid)
)""",
    """CREATE TABLE keychain_refused (
    kc TEXT NOT NULL,
    cid TEXT NOT NULL,             -- a block that did not decode or verify as an op
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (kc, cid)
)""",
    """CREATE TABLE keychain_notices (
    member TEXT NOT NULL,          -- the local identity an op was pointed at
    op TEXT NOT NULL,              -- the op (an offer for it, or an accept of its offer)
    sender TEXT NOT NULL,          -- who pointed at it ('' if handed over by hand)
    received_at INTEGER NOT NULL,
    state TEXT NOT NULL,           -- 'new' | 'done' | 'refused'
    PRIMARY KEY (member, op)
)""",
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "contacts, identity documents, what we published", _V1),
    Migration(2, "files, shares, opens, revocation heads", _V2),
    Migration(3, "mailboxes and the inbox", _V3),
    Migration(4, "feeds, their progress, and the record store", _v4),
    Migration(5, "rotations and re-issues a retried revoke finishes", _V5),
    Migration(6, "keychains: their ops, refusals and the ops pointed at this home", _V6),
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
