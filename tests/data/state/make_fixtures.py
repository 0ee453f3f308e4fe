"""Make the state databases earlier versions of ipfs-share wrote, for the migration tests.

Run from the repository root: ``.venv/bin/python tests/data/state/make_fixtures.py``.

For each schema version before migrations existed (1 to 3), this takes
``ipfs_share/local/db.py`` from the commit that last wrote that version (``git show``),
runs that very code to create a home's database and fill it through its own methods with
real objects (signed identity documents, revocation heads, mailbox entries), then writes
the database as SQL (``v<N>.sql``; ``sqlite3 x.sqlite3 < v<N>.sql`` gives the file back).
For version 4 and later it extracts the whole package at the commit that last wrote the
version (``git archive``) and runs its fill (:data:`FILLS`) with it, in a process of its
own.
The tests load each dump into a file and open it with today's code.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from ipfs_share.crypto.signing import SigningKey  # noqa: E402
from ipfs_share.crypto.x25519 import EncryptionKey  # noqa: E402
from ipfs_share.formats.identity_doc import identity_ipns_name, make_identity_document  # noqa: E402
from ipfs_share.formats.mailbox import mailbox_name, make_entry  # noqa: E402
from ipfs_share.formats.revocation import revoke  # noqa: E402
from ipfs_share.formats.signed import block_of, did_key, run_walk  # noqa: E402

# The commit that last wrote each schema version (ipfs_share/local/db.py for 1-3, the
# ipfs_share package from 4 on).
COMMITS = {1: "869912c", 2: "7faeec4", 3: "d74ade2", 4: "4bec3d2", 5: "0559c3f"}
T = 1_800_000_000


def _old_module(commit: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{commit}:ipfs_share/local/db.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"db_{commit}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"old_db_{commit}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _people() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, name in enumerate(("alice", "bob", "carol"), start=1):
        key = SigningKey.from_seed(bytes([i]) * 32)
        enc = EncryptionKey(bytes([i + 10]) * 32)
        out[name] = (key, enc, did_key(key.public_key))
    return out


def fill(version: int, old: ModuleType, home: Path) -> None:
    db = old.StateDB(home)
    people = _people()
    alice_key, alice_enc, alice = people["alice"]
    bob_key, bob_enc, bob = people["bob"]
    carol_key, _, carol = people["carol"]
    db.set_meta("default_identity", alice)
    db.put_contact("bob", bob)
    db.put_contact("carol", carol)
    docs = {}
    for name, (key, enc, did) in people.items():
        doc = make_identity_document(key, enc.public_key, seq=1, created=T)
        docs[name] = doc
        db.keep_document(did, doc.seq, doc.cid, doc.data)
    db.record_published(alice, docs["alice"].seq, docs["alice"].cid)
    if version < 2:
        db.close()
        return
    store: dict[str, bytes] = {}
    content = block_of({"content": 1}).cid
    capsules = [block_of({"capsule": n}).cid for n in range(3)]
    db.add_file(old.FileRow(content, alice, "plan.txt", "text/plain", 12, b"\x01" * 80, T))
    for n, capsule in enumerate(capsules):
        db.add_share(
            old.ShareRow(capsule, content, alice, T + n, T + 86400, True, False, None, None),
            [(bob, "bob")],
        )
    db.record_open(old.OpenRow(capsules[0], bob, T + 10, None, None))
    first = run_walk(revoke(alice_key, None, [], updated=T), store.__getitem__)
    store.update((b.cid, b.data) for b in first.blocks)
    second = run_walk(revoke(alice_key, first.head, capsules[:1], updated=T + 5), store.__getitem__)
    head = second.head
    db.set_own_head(old.HeadRow(alice, head.cid, head.seq, head.data), expected_seq=None)
    db.mark_revoked(capsules[:1], at=T + 5, head=head.cid)
    carols = run_walk(revoke(carol_key, None, capsules[1:2], updated=T), store.__getitem__).head
    db.keep_seen_head(old.HeadRow(carol, carols.cid, carols.seq, carols.data, T + 20))
    if version < 3:
        db.close()
        return
    out_name = mailbox_name(alice_enc, bob_enc.public_key, sender=alice, recipient=bob)
    entry = make_entry(alice_key, None, capsule=capsules[2], sent=T + 30)
    db.advance_outbox(
        old.OutboxRow(out_name, alice, bob, entry.seq, entry.cid, entry.data),
        expected_seq=None,
        sent=[old.SentRow(alice, bob, capsules[2], out_name, 0, entry.cid, b"\x02" * 32, T + 30)],
    )
    db.mark_published(out_name, 0)
    in_name = mailbox_name(alice_enc, bob_enc.public_key, sender=bob, recipient=alice)
    theirs = make_entry(bob_key, None, capsule=capsules[1], sent=T + 40)
    db.apply_sync(
        reader=alice,
        name=in_name,
        sender=bob,
        expected_seq=None,
        head=(theirs.seq, theirs.cid),
        items=[old.InboxRow(alice, capsules[1], bob, in_name, 0, theirs.cid, T + 40, T + 41)],
        acks=[(b"\x02" * 32, "opened", T + 50)],
    )
    db.close()


# Version 4, written through its repositories: what 1-3 hold (migrated), plus the record
# store, staged progress of a feed being read, and an inbox item with failed fetches.
FILL_V4 = r"""
import sqlite3, sys
from pathlib import Path
from ipfs_share.local.migrations import LATEST
from ipfs_share.local.state import RecordRow, StagedEntry, StateDB
from ipfs_share.formats.feed import Mark, Segment

assert LATEST == 4, LATEST
home = Path(sys.argv[1])
conn = sqlite3.connect(home / "state.sqlite3")
conn.executescript(Path(sys.argv[2]).read_text())
conn.close()
state = StateDB(home)
(own,) = state.feeds.own_feeds("identity")
state.records.keep(
    RecordRow(own.name, "identity", own.owner, True, own.seq, 1_900_000_000,
              "/ipfs/" + own.head, b"\x0a\x01record", 1_800_000_100, 1_800_000_100)
)
(inbound,) = state.feeds.read_feeds("mailbox")
segment = Segment(Mark(9, "bafyreitop"), Mark(8, "bafyreibottom"), "bafyreibelow")
staged = [StagedEntry(9, "bafyreitop", b"\x01"), StagedEntry(8, "bafyreibottom", b"\x02")]
assert state.feeds.stage(inbound, staged, segment)
(item,) = state.mailboxes.inbox(inbound.reader)
state.mailboxes.defer(inbound.reader, [(item.capsule, 2, 1_800_000_500, "pending")])
state.close()
"""


FILL_V5 = r"""
import sqlite3, sys
from pathlib import Path
from ipfs_share.local.migrations import LATEST
from ipfs_share.local.state import RotationRow, StateDB

assert LATEST == 5, LATEST
home = Path(sys.argv[1])
conn = sqlite3.connect(home / "state.sqlite3")
conn.executescript(Path(sys.argv[2]).read_text())
conn.close()
state = StateDB(home)
(row,) = state.files.list()
state.shares.start_rotation(
    RotationRow(row.cid, row.owner, b"\x05" * 80, b"\x06" * 16, 1_800_000_600)
)
state.shares.note_reissue(state.shares.list()[1].capsule, "bafyreireissued")
state.close()
"""
FILLS = {4: FILL_V4, 5: FILL_V5}


def _dump_file(path: Path) -> str:
    """The database as SQL, with its user_version (which a dump leaves out)."""
    conn = sqlite3.connect(path)
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        tail = f"PRAGMA user_version = {version};\n" if version else ""
        return "\n".join(conn.iterdump()) + "\n" + tail
    finally:
        conn.close()


def dump_package_version(version: int) -> str:
    """The database version ``version`` of the package writes (FILLS), from the
    package as it was at COMMITS[version], over the previous version's dump."""
    root = Path(tempfile.mkdtemp())
    archive = subprocess.run(
        ["git", "archive", COMMITS[version], "ipfs_share"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    home = root / "home"
    home.mkdir()
    subprocess.run(
        [sys.executable, "-c", FILLS[version], str(home), str(HERE / f"v{version - 1}.sql")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return _dump_file(home / "state.sqlite3")


def dump(version: int) -> str:
    if version >= 4:
        return dump_package_version(version)
    old = _old_module(COMMITS[version])
    assert version == old.SCHEMA_VERSION, (COMMITS[version], old.SCHEMA_VERSION)
    home = Path(tempfile.mkdtemp())
    fill(version, old, home)
    return _dump_file(home / "state.sqlite3")


def expected_names() -> dict[str, str]:
    """IPNS names the v4 migration must derive (for the tests)."""
    people = _people()
    return {name: identity_ipns_name(did) for name, (_, _, did) in people.items()}


def main() -> None:
    for version in COMMITS:
        (HERE / f"v{version}.sql").write_text(dump(version), encoding="utf-8")


if __name__ == "__main__":
    main()
