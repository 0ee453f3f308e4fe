"""The keystore keeps each key file decoded while its inode, size and modification time
stay the same: a change made by another process of the home (a rename, a delete, a new
identity) is seen by the next read all the same."""

from __future__ import annotations

from pathlib import Path

from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.formats.keystore import IdentityKeys, KeyFile
from ipfs_share.local.keystore import Keystore


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
