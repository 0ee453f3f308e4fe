"""The keystore keeps each key file decoded while its inode, size and modification time
stay the same: a change made by another process of the home (a rename, a delete, a new
identity) is seen by the next read all the same."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.formats.keystore import IdentityKeys, KeyFile
from ipfs_share.local.keystore import SETTLED_NS, Keystore


def _key_file(name: str) -> KeyFile:
    return KeyFile.create(
        name, IdentityKeys.generate(), created=0, passphrase=b"pw", params=KdfParams.fastest()
    )


def test_another_processs_changes_are_seen_through_the_cache(tmp_path: Path) -> None:
    mine, theirs = Keystore(tmp_path), Keystore(tmp_path)  # two processes of one home
    alice = _key_file("alice")
    mine.add(alice)
    assert [k.name for k in mine.list()] == ["alice"]  # decoded and kept
    theirs.rename("alice", "alicia")
    assert mine.get(alice.did).name == "alicia"
    assert [k.name for k in mine.list()] == ["alicia"]
    assert mine.find("alice") is None
    theirs.add(_key_file("bob"))
    assert [k.name for k in mine.list()] == ["alicia", "bob"]
    theirs.delete("alicia")
    assert mine.find(alice.did) is None
    assert [k.name for k in mine.list()] == ["bob"]


def _set_mtime(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))


def test_a_settled_listing_is_kept_and_a_recent_one_is_not(tmp_path: Path) -> None:
    mine, theirs = Keystore(tmp_path), Keystore(tmp_path)
    mine.add(_key_file("alice"))
    folder = mine.dir
    # two changes within one tick of the file system's clock leave the same time: a
    # listing taken after the first must not stand for the second
    recent = os.stat(folder).st_mtime_ns
    assert [k.name for k in mine.list()] == ["alice"]
    theirs.add(_key_file("bob"))
    _set_mtime(folder, recent)
    assert [k.name for k in mine.list()] == ["alice", "bob"]
    # a folder unchanged for a while: its listing is kept (a file slipped in while the
    # time is put back is not seen: the stamp is what it trusts)
    settled = time.time_ns() - 10 * SETTLED_NS
    _set_mtime(folder, settled)
    assert [k.name for k in mine.list()] == ["alice", "bob"]
    theirs.add(_key_file("carol"))
    _set_mtime(folder, settled)
    assert [k.name for k in mine.list()] == ["alice", "bob"]
    _set_mtime(folder, time.time_ns())  # any real change moves the time
    assert [k.name for k in mine.list()] == ["alice", "bob", "carol"]


def test_find_by_did_of_an_identity_not_here(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    alice = _key_file("alice")
    assert store.find(alice.did) is None  # no folder yet
    store.add(alice)
    assert store.find(alice.did) == alice
    assert store.find(_key_file("bob").did) is None
