"""Identities end to end: the real keystore, real SQLite, and real Kubo nodes."""

from __future__ import annotations

import base64
import os
import stat
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.wrap import unwrap, wrap
from ipfs_share.errors import (
    FeedRollbackError,
    FormatError,
    IdentityDocumentInvalidError,
    IdentityExistsError,
    IdentityNotFoundError,
    InvalidInputError,
    PassphraseInvalidError,
)
from ipfs_share.formats.identity_doc import make_identity_document
from ipfs_share.formats.ipns import ipns_name, make_record
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.services.identities import DOCUMENT_REFRESH, IdentityService
from ipfs_share.storage.embedded import EmbeddedStorage
from ipfs_share.storage.kubo import KuboStorage

FAST = KdfParams.fastest()


def service(home: Path, storage: Any, passphrase: bytes = b"pw") -> IdentityService:
    return IdentityService(home, storage, passphrase=lambda _: passphrase, kdf=FAST)


@pytest.fixture
async def on_kubo(kubo: Any) -> AsyncIterator[KuboStorage]:
    async with await KuboStorage.connect(kubo.api_url) as store:
        yield store


# -- local life cycle ---------------------------------------------------------------------


async def test_create_list_get_rename_delete(tmp_path: Path) -> None:
    ids = service(tmp_path, None)
    alice = await ids.create("alice")
    assert alice.did.startswith("did:key:z6Mk") and alice.ipns_name.startswith("k51")
    assert [i.name for i in ids.list()] == ["alice"]
    assert ids.get(alice.did).name == "alice"
    assert ids.get().did == alice.did  # the only one is the default

    with pytest.raises(IdentityExistsError):
        await ids.create("alice")
    renamed = ids.rename("alice", "alice-laptop")
    assert renamed.did == alice.did
    with pytest.raises(IdentityNotFoundError):
        ids.get("alice")

    await ids.create("bob")
    assert ids.get().name == "alice-laptop"  # a second identity keeps the first the default
    ids.use("bob")
    assert ids.get().name == "bob"
    ids.db.meta.set("default_identity", None)  # a home from before defaults were written
    with pytest.raises(IdentityNotFoundError) as info:
        ids.get()
    assert info.value.reason == "no_default_identity" and "use(NAME)" in info.value.hint
    assert "ipfs-share" not in info.value.hint  # the library's hint names no command
    ids.use("bob")

    ids.delete("alice-laptop")
    assert [i.name for i in ids.list()] == ["bob"]
    with pytest.raises(IdentityNotFoundError):
        ids.delete("alice-laptop")


@pytest.mark.parametrize("bad", ["", "did:key:x", "k51abc", "a b", "-x", "x" * 65, "é"])
async def test_bad_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        await service(tmp_path, None).create(bad)


async def test_key_files_are_0600_in_a_0700_folder(tmp_path: Path) -> None:
    ids = service(tmp_path, None)
    await ids.create("alice")
    folder = tmp_path / "identities"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (key_file,) = folder.iterdir()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_wrong_passphrase_is_typed_and_leaves_the_keystore_alone(tmp_path: Path) -> None:
    await service(tmp_path, None, b"right").create("alice")
    (key_file,) = (tmp_path / "identities").iterdir()
    before = key_file.read_bytes()
    with pytest.raises(PassphraseInvalidError):
        await service(tmp_path, None, b"wrong").unlock("alice")
    assert key_file.read_bytes() == before
    assert (await service(tmp_path, None, b"right").unlock("alice")).did.startswith("did:key")


async def test_a_truncated_key_file_is_a_typed_error_and_is_not_touched(tmp_path: Path) -> None:
    await service(tmp_path, None).create("alice")
    (key_file,) = (tmp_path / "identities").iterdir()
    key_file.write_bytes(key_file.read_bytes()[:-10])
    damaged = key_file.read_bytes()
    with pytest.raises(FormatError) as info:
        service(tmp_path, None).list()
    assert "damaged" in info.value.message and info.value.hint
    assert key_file.read_bytes() == damaged


async def test_export_then_import_on_another_home_opens_what_the_original_could(
    tmp_path: Path,
) -> None:
    here = service(tmp_path / "a", None, b"local")
    alice = await here.create("alice")
    blob = await here.export("alice", b"moving")
    assert blob.startswith("-----BEGIN IPFS-SHARE IDENTITY-----")

    there = service(tmp_path / "b", None, b"moving")
    with pytest.raises(PassphraseInvalidError):
        await there.import_(blob, b"not it")
    assert there.list() == []
    imported = await there.import_(blob, b"moving", name="alice-copy")
    assert imported.did == alice.did and imported.name == "alice-copy"

    # A file key wrapped to the original's public key opens with the imported keys.
    file_key = FileKey(os.urandom(32))
    original = await here.unlock("alice")
    stanzas = wrap(file_key, [original.enc_public])
    assert unwrap(stanzas, (await there.unlock("alice-copy")).encryption) == file_key

    with pytest.raises(IdentityExistsError):
        await there.import_(blob, b"moving")


# -- publish and resolve ------------------------------------------------------------------


async def test_publish_and_resolve_by_did_and_by_ipns_name(
    tmp_path: Path, on_kubo: KuboStorage
) -> None:
    owner = service(tmp_path / "owner", on_kubo)
    alice = await owner.create("alice")
    first = await owner.publish("alice")
    assert first.seq == 0 and first.ipns_name == alice.ipns_name

    reader = service(tmp_path / "reader", on_kubo)
    by_did = await reader.resolve(alice.did, petname="alice")
    assert by_did.did == alice.did and by_did.seq == 0
    assert by_did.enc.to_text() == alice.enc
    assert [c.petname for c in reader.db.contacts.list()] == ["alice"]

    second = await owner.publish("alice")
    assert second.seq == 1
    by_name = await reader.resolve(alice.ipns_name)
    assert by_name.seq == 1 and by_name.petnames == ("alice",)

    recipient = await reader.recipient("alice")
    assert recipient.did == alice.did and recipient.via == "contact"


async def test_a_held_document_gives_way_to_a_newer_mark_and_to_its_age(
    tmp_path: Path, on_kubo: KuboStorage
) -> None:
    owner = service(tmp_path / "owner", on_kubo)
    alice = await owner.create("alice")
    await owner.publish("alice")
    clock = [time.time()]
    reader = IdentityService(
        tmp_path / "reader", on_kubo, passphrase=lambda _: b"pw", kdf=FAST, now=lambda: clock[0]
    )
    assert (await reader.document(alice.did)).seq == 0
    await owner.publish("alice")
    assert (await reader.document(alice.did)).seq == 0  # held: checked within the hour
    other = service(tmp_path / "reader", on_kubo)  # another process of the reader's home
    assert (await other.resolve(alice.did)).seq == 1  # moves the mark
    assert (await reader.document(alice.did)).seq == 1  # the mark moved: not the held one
    await owner.publish("alice")
    clock[0] += DOCUMENT_REFRESH + 1
    assert (await reader.document(alice.did)).seq == 2  # checked over an hour ago: resolved


async def test_resolving_an_unpublished_identity_is_not_found(
    tmp_path: Path, on_kubo: KuboStorage
) -> None:
    ghost = ipns_name(SigningKey.generate().public_key)
    with pytest.raises(IdentityNotFoundError) as info:
        await service(tmp_path, on_kubo).resolve(ghost)
    assert "publish" in info.value.hint


async def test_published_on_a_resolves_on_b(tmp_path: Path, kubo_pair: Any) -> None:
    a, b = kubo_pair
    async with await KuboStorage.connect(a.api_url) as on_a:
        owner = service(tmp_path / "owner", on_a)
        alice = await owner.create("alice")
        await owner.publish("alice")
    async with await KuboStorage.connect(b.api_url) as on_b:
        found = await service(tmp_path / "reader", on_b).resolve(alice.did)
    assert found.did == alice.did and found.enc.to_text() == alice.enc


# -- forged and stale documents (a provider that lies: records written straight to disk) ---


async def _plant(store: EmbeddedStorage, name: str, record: bytes) -> None:
    """Put a record in the store bypassing its checks, as a hostile provider could."""
    (store.root / "records" / name).write_bytes(record)


async def test_a_tampered_document_is_refused(tmp_path: Path) -> None:
    async with EmbeddedStorage(tmp_path / "store") as store:
        keys = IdentityKeys.generate()
        doc = make_identity_document(keys.signing, keys.enc_public, seq=0, created=0)
        tampered = bytearray(doc.data)
        # One bit of the signature (the map's last key is "revocations": flipping the last
        # byte would change the name there, which the structure check may refuse first).
        tampered[tampered.index(b"csigX@") + 6] ^= 1
        cid = await store.block_put(bytes(tampered), codec="dag-cbor")
        name = ipns_name(keys.signing.public_key)
        await store.ipns_put(name, _record(keys.signing, cid, 0))
        with pytest.raises(IdentityDocumentInvalidError):
            await service(tmp_path, store).resolve(keys.did)


async def test_a_record_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    async with EmbeddedStorage(tmp_path / "store") as store:
        keys, mallory = IdentityKeys.generate(), SigningKey.generate()
        doc = make_identity_document(keys.signing, keys.enc_public, seq=0, created=0)
        cid = await store.block_put(doc.data, codec="dag-cbor")
        await _plant(store, ipns_name(keys.signing.public_key), _record(mallory, cid, 0))
        with pytest.raises(IdentityDocumentInvalidError):
            await service(tmp_path, store).resolve(keys.did)


async def test_a_lower_sequence_never_replaces_a_higher_one(tmp_path: Path) -> None:
    async with EmbeddedStorage(tmp_path / "store") as store:
        owner = service(tmp_path / "owner", store)
        alice = await owner.create("alice")
        await owner.publish("alice")
        old_record = await store.ipns_get(alice.ipns_name)
        await owner.publish("alice")
        reader = service(tmp_path / "reader", store)
        assert (await reader.resolve(alice.did)).seq == 1
        await _plant(store, alice.ipns_name, old_record)  # a replay of seq 0
        with pytest.raises(FeedRollbackError) as info:
            await reader.resolve(alice.did)
        assert "seq" in info.value.message and info.value.code == "feed_rollback"
        kept = reader.db.feeds.read(alice.ipns_name)
        assert kept is not None and kept.mark is not None and kept.mark.seq == 1


def _record(key: SigningKey, cid: str, seq: int) -> bytes:
    return make_record(
        key,
        f"/ipfs/{cid}",
        sequence=seq,
        validity=datetime.now(UTC) + timedelta(days=1),
        ttl_seconds=60,
    )


# -- no secret in any output --------------------------------------------------------------


def _encodings(secret: bytes) -> list[str]:
    from ipfs_share.basex import b58encode

    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        base64.b32encode(secret).decode().rstrip("=").lower(),
        b58encode(secret),
        repr(secret),
    ]


def test_no_secret_reaches_cli_output_json_or_reprs(
    tmp_path: Path,
    kubo: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ipfs_share.cli.main import main

    monkeypatch.setenv("IPFS_SHARE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IPFS_SHARE_PASSPHRASE", "correct horse")
    api = ["--api", kubo.api_url]
    assert main(["identity", "create", "alice", "--json"]) == 0
    assert main(["identity", "create", "dev", "--unencrypted"]) == 0
    for argv in (
        ["identity", "list", "--json"],
        ["identity", "show", "alice", "--json"],
        ["identity", "show", "dev"],
        ["identity", "publish", "alice", "--json", *api],
        ["identity", "export", "alice", "--json"],
    ):
        assert main(argv) == 0, argv
    did = service(tmp_path / "home", None).get("alice").did
    assert main(["identity", "resolve", did, "--name", "me", "--json", *api]) == 0
    assert main(["identity", "show", "nobody"]) != 0  # errors too
    out = capsys.readouterr()
    text = out.out + out.err + caplog.text

    ids = service(tmp_path / "home", None, b"correct horse")
    import asyncio

    for name in ("alice", "dev"):
        keys = asyncio.run(ids.unlock(name))
        text += (
            repr(keys) + repr(keys.signing) + repr(keys.encryption) + str(ids.keystore.get(name))
        )
        for secret in (keys.signing.seed_bytes(), keys.encryption.secret_bytes()):
            for form in _encodings(secret):
                assert form not in text, f"a secret leaked in the form {form[:6]}..."
    assert "correct horse" not in text
