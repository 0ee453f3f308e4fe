"""The home's state database on real SQLite files: numbered migrations from every earlier
version (the files those versions wrote, tests/data/state/), a home whose database went
missing refused, and file modes whatever the umask and whichever command runs first."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipfs_share.cli.main import exit_code_for, main
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import StateMissingError, StoreError
from ipfs_share.formats.identity_doc import decode_identity_document, identity_ipns_name
from ipfs_share.formats.signed import did_key
from ipfs_share.local.migrations import LATEST, MIGRATIONS, current_version
from ipfs_share.local.state import DB_FILE, StateDB
from ipfs_share.services.identities import IdentityService

DATA = Path(__file__).parent / "data" / "state"
# The identities tests/data/state/make_fixtures.py used: seeds 01, 02, 03 x 32.
ALICE = did_key(SigningKey.from_seed(b"\x01" * 32).public_key)
BOB = did_key(SigningKey.from_seed(b"\x02" * 32).public_key)
CAROL = did_key(SigningKey.from_seed(b"\x03" * 32).public_key)


def old_home(tmp_path: Path, version: int) -> Path:
    """A home whose database is the file version ``version`` wrote."""
    home = tmp_path / f"home-v{version}"
    home.mkdir()
    conn = sqlite3.connect(home / DB_FILE)
    conn.executescript((DATA / f"v{version}.sql").read_text())
    conn.close()
    return home


def _schema(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    finally:
        conn.close()

    def normal(sql: str) -> str:
        sql = re.sub(r"--[^\n]*", "", sql)
        sql = sql.replace("IF NOT EXISTS ", "")
        return " ".join(sql.split())

    return {name: normal(sql) for name, sql in rows}


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return current_version(conn)
    finally:
        conn.close()


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_each_earlier_version_migrates_to_the_schema_of_a_new_home(
    tmp_path: Path, version: int
) -> None:
    home = old_home(tmp_path, version)
    assert _version(home / DB_FILE) == version  # read from meta.schema_version
    state = StateDB(home)
    state.close()
    fresh = StateDB(tmp_path / "fresh")
    fresh.close()
    assert _version(home / DB_FILE) == LATEST
    assert _schema(home / DB_FILE) == _schema(fresh.path)
    conn = sqlite3.connect(home / DB_FILE)
    (user_version,) = conn.execute("PRAGMA user_version").fetchone()
    (legacy,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    assert user_version == LATEST and legacy == str(LATEST)


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_what_each_version_stored_survives_the_migrations(tmp_path: Path, version: int) -> None:
    state = StateDB(old_home(tmp_path, version))
    try:
        assert state.meta.get("default_identity") == ALICE
        assert [c.petname for c in state.contacts.list()] == ["bob", "carol"]
        own = state.feeds.own(identity_ipns_name(ALICE))
        assert own is not None and (own.kind, own.seq, own.published) == ("identity", 1, True)
        assert own.pinned == own.head and own.head_block is not None
        doc = state.feeds.read(identity_ipns_name(BOB))
        assert doc is not None and doc.mark is not None and doc.mark.seq == 1
        assert decode_identity_document(doc.head_block or b"", did=BOB).seq == 1
        if version >= 2:
            (row,) = state.files.list()
            assert (row.name, row.owner, len(row.stanza)) == ("plan.txt", ALICE, 80)
            shares = state.shares.list()
            assert [s.state for s in shares] == ["revoked", "active", "active"]
            assert state.shares.recipients(shares[0].capsule) == [(BOB, "bob")]
            assert [o.opener for o in state.shares.opens()] == [BOB]
            (mine,) = state.feeds.own_feeds("revocation", ALICE)
            assert (mine.seq, mine.pinned, mine.published_seq) == (1, mine.head, None)
            alices = decode_identity_document(own.head_block or b"", did=ALICE)
            assert mine.name == alices.revocations  # the name, from the document
            (carols,) = state.feeds.read_feeds("revocation", CAROL)
            assert carols.mark is not None and carols.mark.seq == 0 and carols.head_block
        if version >= 3:
            (sent,) = state.mailboxes.sent(sender=ALICE)
            assert sent.opened_at is not None and sent.delivered_at is not None
            (item,) = state.mailboxes.inbox(ALICE)
            assert item.sender == BOB and item.state == "pending"
            assert item.attempts == (2 if version >= 4 else 0)
            (out,) = state.feeds.own_feeds("mailbox", ALICE)
            assert (out.topic, out.seq, out.published) == (BOB, 0, True)
            assert out.name == sent.name
            (inbound,) = state.feeds.read_feeds("mailbox", BOB)
            assert inbound.reader == ALICE and inbound.mark is not None
            assert inbound.name == item.name and inbound.mark.seq == 0
        if version < 4:
            assert state.records.list() == []  # no signed record was kept before version 4
        else:
            (kept,) = state.records.list()
            assert kept.own and kept.kind == "identity" and kept.record == b"\x0a\x01record"
            assert [e.seq for e in state.feeds.staged(inbound.name)] == [8, 9]
            assert inbound.segment is not None and inbound.segment.below == "bafyreibelow"
        assert state.shares.rotation("bafy-anything") is None
        if version >= 5:
            (row,) = state.files.list()
            rotation = state.shares.rotation(row.cid)
            assert rotation is not None and rotation.nonce == b"\x06" * 16
            assert state.shares.reissued_as(state.shares.list()[1].capsule) == "bafyreireissued"
        assert state.keychains.keychains() == []  # version 6: keychains, empty at first
    finally:
        state.close()


def test_migrations_are_numbered_one_by_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


def test_a_database_from_a_newer_ipfs_share_is_refused_untouched(tmp_path: Path) -> None:
    state = StateDB(tmp_path)
    state.close()
    conn = sqlite3.connect(state.path)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(StoreError, match="or older, found") as caught:
        StateDB(tmp_path)
    assert "newer ipfs-share" in caught.value.hint
    assert _version(state.path) == LATEST + 1


def test_a_file_that_is_not_ipfs_shares_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute("CREATE TABLE photos (x)")
    conn.close()
    with pytest.raises(StoreError, match="expected a state database of ipfs-share"):
        StateDB(tmp_path)


MIGRATE_AT_ONCE = """
import sys
from pathlib import Path
from ipfs_share.local.state import StateDB
StateDB(Path(sys.argv[1])).close()
"""


def test_two_processes_migrating_one_home_at_once_both_succeed(tmp_path: Path) -> None:
    home = old_home(tmp_path, 1)
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_AT_ONCE, str(home)]) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert _version(home / DB_FILE) == LATEST


# -- a home whose database went missing -----------------------------------------------------


@pytest.fixture
def home_with_keys(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    ids = IdentityService(home, None, passphrase=lambda _: b"pw", kdf=KdfParams.fastest())
    import asyncio

    asyncio.run(ids.create("alice"))
    ids.db.close()
    yield home


@pytest.mark.parametrize("how", ["deleted", "truncated", "no tables"])
def test_a_home_with_keys_and_no_database_is_refused_with_a_hint(
    home_with_keys: Path, how: str
) -> None:
    path = home_with_keys / DB_FILE
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "truncated":
        path.write_bytes(b"")
    elif how == "no tables":  # a database file, emptied of its tables
        conn = sqlite3.connect(path)
        conn.executescript("CREATE TABLE t (x); DROP TABLE t;")
        conn.close()
        assert path.stat().st_size > 0
    with pytest.raises(StateMissingError) as caught:
        StateDB(home_with_keys)
    assert caught.value.code == "state_missing" and exit_code_for(caught.value) == 9
    assert "state recover" in caught.value.hint and "backup" in caught.value.hint


def test_state_recover_starts_a_new_database_on_purpose(
    home_with_keys: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (home_with_keys / DB_FILE).unlink()
    monkeypatch.setenv("IPFS_SHARE_HOME", str(home_with_keys))
    assert main(["contacts", "list"]) == 9
    assert "state_missing" not in capsys.readouterr().err  # the message, not the code
    assert main(["state", "recover"]) == 3  # needs --yes
    assert main(["state", "recover", "--yes"]) == 0
    assert main(["contacts", "list"]) == 0
    state = StateDB(home_with_keys)
    assert state.meta.get("recovered_at") is not None
    state.close()


# -- file modes -------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o077, 0o277])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.mark.parametrize("first", ["contacts list", "identity list", "state show"])
def test_home_0700_and_database_files_0600_whatever_the_umask_and_first_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int, first: str
) -> None:
    home = tmp_path / "new" / "home"
    monkeypatch.setenv("IPFS_SHARE_HOME", str(home))
    assert main(first.split()) == 0
    state = StateDB(home)  # WAL companions exist while a connection is open
    try:
        state.contacts.put("bob", BOB)
        assert _mode(home) == 0o700
        for suffix in ("", "-wal", "-shm"):
            assert _mode(Path(f"{state.path}{suffix}")) == 0o600, suffix
    finally:
        state.close()


def test_an_existing_home_and_database_are_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    (home / DB_FILE).touch()
    os.chmod(home / DB_FILE, 0o644)
    StateDB(home).close()
    assert _mode(home) == 0o700 and _mode(home / DB_FILE) == 0o600


def test_the_keystore_makes_the_home_private_too(tmp_path: Path, umask: int) -> None:
    home = tmp_path / "home"
    from ipfs_share.local.keystore import Keystore

    Keystore(home)._ensure_dir()
    assert _mode(home) == 0o700 and _mode(home / "identities") == 0o700
