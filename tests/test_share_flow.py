"""The share flow on real Kubo nodes: put, share, open, expire, revoke, rotate, policies,
capabilities, tampering, two nodes, and a node that dies mid-transfer."""

from __future__ import annotations

import asyncio
import io
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import (
    CapabilityInvalidError,
    CapabilityRequiredError,
    DownloadNotAllowedError,
    InvalidInputError,
    IpfsShareError,
    NodeError,
    PolicyDeniedError,
    PolicyProviderRequiredError,
    RecipientNotAuthorizedError,
    ShareExpiredError,
    ShareRevokedError,
)
from ipfs_share.formats.capsule import Perms, Policy, build_capsule, decode_capsule
from ipfs_share.formats.envelope import encrypt
from ipfs_share.node.daemon import KuboDaemon, RunningNode
from ipfs_share.node.ports import NodePorts, free_port
from ipfs_share.services import share as share_module
from ipfs_share.services.policy import TimeWindowProvider
from ipfs_share.storage.kubo import KuboStorage


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def people(kubo: Any, tmp_path: Path, clock: Clock) -> AsyncIterator[Callable[[str], Any]]:
    """people("bob") -> a published identity with its own home, on the one test node."""
    meshes: list[Mesh] = []

    async def person(name: str, *, storage: KuboStorage | None = None) -> Mesh:
        store = storage or await KuboStorage.connect(kubo.api_url)
        mesh = Mesh(
            store, tmp_path / name, passphrase=lambda _: b"pw", kdf=KdfParams.fastest(), now=clock
        )
        meshes.append(mesh)
        await mesh.identity.create(name)
        await mesh.identity.publish()
        return mesh

    yield person  # type: ignore[misc]
    for mesh in meshes:
        await mesh.close()


async def befriend(owner: Mesh, *others: Mesh) -> None:
    for other in others:
        me = other.identity.get()
        owner.identity.add_contact(me.name, me.did)


# -- the happy paths ----------------------------------------------------------------------


async def test_share_to_one_and_to_three_each_opens(people: Any) -> None:
    alice, bob, carol, dave = [await people(n) for n in ("alice", "bob", "carol", "dave")]
    await befriend(alice, bob, carol, dave)
    data = os.urandom(700_000)
    f = await alice.files.put("plan.bin", data)
    assert f.size == len(data) and alice.files.list() == [f]

    one = await alice.share.file(f).with_("bob")
    opened = await bob.share.open_capsule(one.id)
    assert (opened.name, opened.size) == ("plan.bin", len(data))
    assert await opened.read() == data
    assert await opened.read_range(123_456, 70_000) == data[123_456:193_456]

    three = await alice.share.file(f.cid).with_(["bob", "carol", "dave"], expires_in="1d")
    assert {n for _, n in three.recipients} == {"bob", "carol", "dave"}
    for who in (bob, carol, dave):
        assert await (await who.share.open_capsule(three.id)).read() == data
    assert [r.opener for r in bob.db.shares.opens(three.id)] == [bob.identity.get().did]


class _ReadOnly:
    """A binary file with read() and no readinto(), like some wrappers."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, n: int = -1) -> bytes:
        piece = self._data[self._at : self._at + n]
        self._at += len(piece)
        return piece


class _Shrinking(io.FileIO):
    """A file that ends early, as one truncated while it is put would: its size says one
    thing, its reads another."""

    def readinto(self, buffer: Any) -> int:
        return 0 if self.tell() >= 1 << 20 else super().readinto(buffer)


async def test_put_of_a_path_and_of_file_objects_opens_to_the_same_bytes(
    people: Any, tmp_path: Path
) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    data = os.urandom(3 * (1 << 20) + 123_457)  # not a whole number of pieces or chunks
    path = tmp_path / "plan.bin"
    path.write_bytes(data)
    with open(path, "rb") as buffered:  # noqa: ASYNC230 - a local file, read by the put
        puts = [
            await alice.files.put("plan.bin", path),
            await alice.files.put("plan.bin", buffered),
            # No size to be had: sealed, spooled, then sent from the spool.
            await alice.files.put("plan.bin", _ReadOnly(data)),  # type: ignore[arg-type]
        ]
    for f in puts:
        assert f.size == len(data)
        opened = await bob.share.open_capsule((await alice.share.file(f).with_("bob")).id)
        assert await opened.read() == data
    assert len({f.cid for f in puts}) == 3  # a fresh file key and nonce each time


async def test_a_file_that_ends_early_fails_its_put_and_leaves_nothing(
    people: Any, tmp_path: Path
) -> None:
    alice = await people("alice")
    path = tmp_path / "moving.bin"
    path.write_bytes(os.urandom(3 << 20))
    pins = await alice.storage.pin_ls()
    with _Shrinking(path, "rb") as f, pytest.raises(InvalidInputError, match="plaintext bytes"):
        await alice.files.put("moving.bin", f)  # type: ignore[arg-type]
    assert alice.files.list() == []
    assert await alice.storage.pin_ls() == pins


async def test_text_streams_and_save(people: Any, tmp_path: Path) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    f = await alice.files.put("note.txt", "héllo, bob")
    cap = await alice.share.file(f).with_("bob")
    opened = await bob.share.open_capsule(cap.id)
    assert opened.media_type.startswith("text/plain")
    assert await opened.text() == "héllo, bob"
    (tmp_path / "out").mkdir()
    saved = await opened.save(tmp_path / "out" / "note.txt")
    assert saved.read_text(encoding="utf-8") == "héllo, bob"
    assert os.listdir(tmp_path / "out") == ["note.txt"]  # no temp file left behind


async def test_no_download_refuses_save_but_reads(people: Any, tmp_path: Path) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    f = await alice.files.put("view-only.txt", b"look, don't keep")
    cap = await alice.share.file(f).with_("bob", allow_download=False)
    opened = await bob.share.open_capsule(cap.id)
    assert await opened.read() == b"look, don't keep"
    with pytest.raises(DownloadNotAllowedError):
        await opened.save(tmp_path / "copy.txt")
    assert not (tmp_path / "copy.txt").exists()


# -- refusals, in the order open checks them ----------------------------------------------


async def test_wrong_identity_is_refused(people: Any) -> None:
    alice, bob, mallory = await people("alice"), await people("bob"), await people("mallory")
    await befriend(alice, bob)
    cap = await alice.share.file(await alice.files.put("x", b"secret")).with_("bob")
    with pytest.raises(RecipientNotAuthorizedError):
        await mallory.share.open_capsule(cap.id)


async def test_a_file_key_unwrapped_for_one_identity_opens_for_no_other_of_its_home(
    people: Any,
) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    await bob.identity.create("bob-work")  # a second identity of bob's home, not a recipient
    cap = await alice.share.file(await alice.files.put("x", b"secret")).with_("bob")
    for _ in range(2):  # the second open takes the key bob unwrapped at the first
        assert await (await bob.share.open_capsule(cap.id, as_="bob")).read() == b"secret"
        with pytest.raises(RecipientNotAuthorizedError):
            await bob.share.open_capsule(cap.id, as_="bob-work")
    assert bob.share._file_keys  # kept, until bob's keys are locked: then it goes with them
    bob.share.forget(bob.identity.get("bob").did)
    assert not bob.share._file_keys


async def test_expiry_with_an_injected_clock(people: Any, clock: Clock) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    cap = await alice.share.file(await alice.files.put("x", b"soon gone")).with_(
        "bob", expires_in="1h"
    )
    clock.t += 3599
    assert await (await bob.share.open_capsule(cap.id)).read() == b"soon gone"
    clock.t += 1
    with pytest.raises(ShareExpiredError):
        await bob.share.open_capsule(cap.id)


async def test_revoke_then_open_is_refused(people: Any) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    cap = await alice.share.file(await alice.files.put("x", b"for now")).with_("bob")
    assert await (await bob.share.open_capsule(cap.id)).read() == b"for now"
    result = await alice.share.revoke(cap.id)
    assert result.revoked == (cap.id,)
    assert alice.share.get(cap.id).state == "revoked"
    with pytest.raises(ShareRevokedError):
        await bob.share.open_capsule(cap.id)
    (seen,) = bob.db.feeds.read_feeds("revocation", alice.identity.get().did)
    assert seen.mark is not None and seen.mark.cid == result.head


async def test_rotate_refuses_the_revoked_and_the_others_still_open(people: Any) -> None:
    alice, bob, carol, dave = [await people(n) for n in ("alice", "bob", "carol", "dave")]
    await befriend(alice, bob, carol, dave)
    data = os.urandom(200_000)
    f = await alice.files.put("doc", data)
    to_bob = await alice.share.file(f).with_("bob")
    to_carol = await alice.share.file(f).with_("carol")
    group = await alice.share.file(f).with_(["dave", "bob"])

    result = await alice.share.revoke(to_carol.id, rotate=True)
    assert result.rotated_to is not None and result.rotated_to != f.cid
    assert set(result.revoked) == {to_carol.id, to_bob.id, group.id}
    assert f.cid not in await alice.storage.pin_ls()  # the old ciphertext is unpinned
    reissued = {frozenset(n for _, n in c.recipients): c for c in result.reissued}
    assert set(reissued) == {frozenset({"bob"}), frozenset({"dave", "bob"})}

    with pytest.raises(ShareRevokedError):
        await carol.share.open_capsule(to_carol.id)
    for names, capsule in reissued.items():
        assert capsule.content == result.rotated_to
        for who in [m for n, m in (("bob", bob), ("dave", dave)) if n in names]:
            assert await (await who.share.open_capsule(capsule.id)).read() == data
        with pytest.raises(RecipientNotAuthorizedError):
            await carol.share.open_capsule(capsule.id)


async def test_drop_one_recipient_with_rotation(people: Any) -> None:
    alice, bob, carol = await people("alice"), await people("bob"), await people("carol")
    await befriend(alice, bob, carol)
    cap = await alice.share.file(await alice.files.put("d", b"team")).with_(["bob", "carol"])
    result = await alice.share.revoke(cap.id, rotate=True, drop=["carol"])
    (new,) = result.reissued
    assert await (await bob.share.open_capsule(new.id)).read() == b"team"
    with pytest.raises(RecipientNotAuthorizedError):
        await carol.share.open_capsule(new.id)
    with pytest.raises(ShareRevokedError):
        await carol.share.open_capsule(cap.id)


async def test_policy_paths(people: Any, clock: Clock) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    f = await alice.files.put("p", b"by policy")
    unknown = await alice.share.file(f).with_("bob", policy=Policy("acme/geo-fence", {}))
    with pytest.raises(PolicyProviderRequiredError) as info:
        await bob.share.open_capsule(unknown.id)
    assert "acme/geo-fence" in info.value.message and "ipfs-share/window" in info.value.hint

    # [not_before, expires): the same half-open rule as the capsule's own expiry.
    start = int(clock.t)
    window = TimeWindowProvider.params(not_before=start + 10, expires=start + 60)
    timed = await alice.share.file(f).with_("bob", policy=("ipfs-share/window", window))
    clock.t = start + 9
    with pytest.raises(PolicyDeniedError, match="opens at"):
        await bob.share.open_capsule(timed.id)
    clock.t = start + 10  # the first second allowed
    assert await (await bob.share.open_capsule(timed.id)).read() == b"by policy"
    clock.t = start + 59  # the last second allowed
    assert await (await bob.share.open_capsule(timed.id)).read() == b"by policy"
    clock.t = start + 60  # the first second refused, as at a capsule's expires
    with pytest.raises(PolicyDeniedError, match="closed at"):
        await bob.share.open_capsule(timed.id)

    only_carol = TimeWindowProvider.params(allow=["did:key:z6MkeveryoneButBob"])
    listed = await alice.share.file(f).with_("bob", policy=("ipfs-share/window", only_carol))
    with pytest.raises(PolicyDeniedError):
        await bob.share.open_capsule(listed.id)


async def test_capability_paths(people: Any, clock: Clock) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    f = await alice.files.put("c", b"by capability")
    cap = await alice.share.file(f).with_("bob", capability="self")
    other = await alice.share.file(f).with_("bob", capability="self")
    with pytest.raises(CapabilityRequiredError):
        await bob.share.open_capsule(cap.id)
    token = await alice.share.issue_capability(cap.id, "bob", valid_for="1h")
    assert await (await bob.share.open_capsule(cap.id, capability=token)).read() == b"by capability"
    with pytest.raises(CapabilityInvalidError):
        await bob.share.open_capsule(other.id, capability=token)  # for another capsule
    with pytest.raises(CapabilityInvalidError):
        await bob.share.open_capsule(cap.id, capability=token[:-1] + bytes([token[-1] ^ 1]))
    clock.t += 3600
    with pytest.raises(CapabilityInvalidError):
        await bob.share.open_capsule(cap.id, capability=token)  # expired


# -- tampering ----------------------------------------------------------------------------


async def test_a_one_byte_change_anywhere_in_a_capsule_is_refused(people: Any) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    cap = await alice.share.file(await alice.files.put("t", b"intact")).with_("bob")
    original = await alice.storage.block_get(cap.id)
    for i in range(len(original)):
        for flip in (0x01, 0x80):
            mutated = bytearray(original)
            mutated[i] ^= flip
            with pytest.raises(IpfsShareError):
                decode_capsule(bytes(mutated))
    # and end to end, through the node, for a few positions
    for i in (0, len(original) // 2, len(original) - 1):
        mutated = bytearray(original)
        mutated[i] ^= 0x01
        forged = await alice.storage.block_put(bytes(mutated), codec="dag-cbor")
        with pytest.raises(IpfsShareError):
            await bob.share.open_capsule(forged)


async def test_a_one_byte_change_in_the_ciphertext_is_refused(people: Any) -> None:
    """A capsule honestly signed over tampered ciphertext (the worst case: the commitment
    binds the key to the CID, not the bytes to the key) still fails to decrypt."""
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    keys = await alice.identity.unlock()
    bob_key = (await alice.identity.recipient("bob")).enc
    from ipfs_share.crypto.stream import FileKey

    file_key = FileKey.generate()
    data = os.urandom(150_000)
    envelope = encrypt(file_key, data, name="t", media_type="application/octet-stream")
    await alice.revocations.ensure_list(keys)
    for pos in (0, 30, len(envelope) // 2, len(envelope) - 1):
        tampered = bytearray(envelope)
        tampered[pos] ^= 0x01
        content = (await alice.storage.add(bytes(tampered))).cid
        capsule = build_capsule(
            keys.signing,
            content=content,
            file_key=file_key,
            recipients=[bob_key],
            created=int(alice.identity._now()),
            expires=None,
            perms=Perms(),
        )
        await alice.storage.block_put(capsule.data, codec="dag-cbor")
        with pytest.raises(IpfsShareError) as info:
            opened = await bob.share.open_capsule(capsule.cid)
            await opened.read()
        assert info.value.code in {"decryption_failed", "format_invalid"}, pos


# -- two nodes ----------------------------------------------------------------------------


async def test_owner_on_a_recipient_on_b_opens_by_capsule_cid(
    kubo_pair: Any, tmp_path: Path
) -> None:
    a, b = kubo_pair
    on_a, on_b = await KuboStorage.connect(a.api_url), await KuboStorage.connect(b.api_url)
    fast: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}
    alice = Mesh(on_a, tmp_path / "alice", **fast)
    bob = Mesh(on_b, tmp_path / "bob", **fast)
    try:
        await alice.identity.create("alice")
        me = await bob.identity.create("bob")
        await bob.identity.publish()
        await alice.identity.resolve(me.did, petname="bob")  # B's document, read on A
        data = os.urandom(400_000)
        cap = await alice.share.file(await alice.files.put("far", data)).with_("bob")
        opened = await bob.share.open_capsule(cap.id)  # capsule, list, content: all from A
        assert await opened.read() == data
        await alice.share.revoke(cap.id)
        with pytest.raises(ShareRevokedError):
            await bob.share.open_capsule(cap.id)
    finally:
        await alice.close()
        await bob.close()


# -- a node that dies ---------------------------------------------------------------------


@pytest.fixture
def doomed(kubo_binary: Path, tmp_path: Path) -> Iterator[KuboDaemon]:
    daemon = KuboDaemon(tmp_path / "repo", kubo_binary)
    daemon.init(ports=NodePorts(api=free_port(), gateway=free_port(), swarm=free_port()))
    daemon.start()
    try:
        daemon.wait_ready(timeout=60)
        yield daemon
    finally:
        daemon.stop()


def _restart(daemon: KuboDaemon) -> RunningNode:
    daemon.stop()  # clears what the kill left behind (pid file, api file)
    daemon.start()
    return daemon.wait_ready(timeout=60)


async def test_killing_the_node_mid_put_and_mid_open(doomed: KuboDaemon, tmp_path: Path) -> None:
    node = doomed.wait_ready(timeout=10)
    fast: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}
    store = await KuboStorage.connect(node.api_url)
    alice = Mesh(store, tmp_path / "alice", **fast)
    await alice.identity.create("alice")
    await alice.identity.publish()

    async def stream(kill_at: int | None) -> AsyncIterator[bytes]:
        for i in range(48):
            if i == kill_at:
                os.kill(node.pid, signal.SIGKILL)
                await asyncio.sleep(0.2)
            yield os.urandom(1 << 20)

    with pytest.raises(NodeError) as info:
        await alice.files.put("big", stream(kill_at=8), size=48 << 20)
    assert info.value.hint
    assert alice.files.list() == []  # no record points at content that is not stored
    await alice.close()

    node = _restart(doomed)
    store = await KuboStorage.connect(node.api_url)
    alice = Mesh(store, tmp_path / "alice", **fast)
    f = await alice.files.put("big", stream(kill_at=None), size=48 << 20)
    assert alice.files.list() == [f]
    cap = await alice.share.file(f).with_("alice")  # to oneself: the same open path

    opened = await alice.share.open_capsule(cap.id)
    got = 0
    with pytest.raises(NodeError):
        async for piece in opened:
            got += len(piece)
            if got >= 4 << 20:
                os.kill(node.pid, signal.SIGKILL)
    assert got < 48 << 20
    await alice.close()

    node = _restart(doomed)
    store = await KuboStorage.connect(node.api_url)
    alice = Mesh(store, tmp_path / "alice", **fast)
    opened = await alice.share.open_capsule(cap.id)
    total = 0
    async for piece in opened:
        total += len(piece)
    assert total == 48 << 20
    await alice.close()


async def test_deleting_an_identity_with_live_shares_warns(
    people: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from ipfs_share.cli.main import main

    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    await alice.share.file(await alice.files.put("x", b"x")).with_("bob")
    assert alice.identity.live_shares("alice") == 1
    monkeypatch.setenv("IPFS_SHARE_HOME", str(tmp_path / "alice"))
    assert main(["identity", "delete", "alice", "--yes"]) == 0
    err = capsys.readouterr().err
    assert "still active" in err and "can never be revoked" in err


async def test_rotating_with_drop_keeps_the_new_key_from_the_dropped_everywhere(
    people: Any,
) -> None:
    alice, bob, carol = await people("alice"), await people("bob"), await people("carol")
    await befriend(alice, bob, carol)
    f = await alice.files.put("d", b"team")
    group = await alice.share.file(f).with_(["bob", "carol"])
    also_carol = await alice.share.file(f).with_(["carol", "bob"])  # another share, same content
    result = await alice.share.revoke(group.id, rotate=True, drop=["carol"])
    assert {also_carol.id, group.id} <= set(result.revoked)
    for capsule in result.reissued:
        assert {n for _, n in capsule.recipients} == {"bob"}
        with pytest.raises(RecipientNotAuthorizedError):
            await carol.share.open_capsule(capsule.id)
        assert await (await bob.share.open_capsule(capsule.id)).read() == b"team"


async def test_saved_plaintext_is_private_and_ranges_stream(people: Any, tmp_path: Path) -> None:
    import stat

    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    data = os.urandom(300_000)
    cap = await alice.share.file(await alice.files.put("d", data)).with_("bob")
    opened = await bob.share.open_capsule(cap.id)
    saved = await opened.save(tmp_path / "d.bin")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    pieces = [p async for p in opened.iter_range(1000, 250_000, step=70_000)]
    assert [len(p) for p in pieces] == [69_000, 70_000, 70_000, 41_000]  # ends on multiples
    assert b"".join(pieces) == data[1000:251_000]
    assert [o.capsule for o in bob.share.opens()] == [cap.id]


async def test_keys_are_unlocked_once_per_mesh_and_dropped_on_lock(people: Any) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    asked: list[str] = []

    def counting(prompt: str) -> bytes:
        asked.append(prompt)
        return b"pw"

    bob.identity._passphrase = counting  # the same service, a passphrase source that counts
    bob.identity.lock()
    cap = await alice.share.file(await alice.files.put("k", b"keys")).with_("bob")
    for _ in range(3):
        assert await (await bob.share.open_capsule(cap.id)).read() == b"keys"
    assert len(asked) == 1
    bob.identity.lock()
    await bob.share.open_capsule(cap.id)
    assert len(asked) == 2


async def test_an_interrupted_revoke_can_be_finished(people: Any) -> None:
    """If publishing the revocation fails after replacements were issued, the old capsules
    stay revokable and a retry completes the revoke (dropped recipients lose access)."""
    alice, bob, mallory = await people("alice"), await people("bob"), await people("mallory")
    await befriend(alice, bob, mallory)
    cap = await alice.share.file(await alice.files.put("r", b"retry")).with_(["bob", "mallory"])
    real_revoke = alice.revocations.revoke
    calls = 0

    async def failing_once(keys: Any, ids: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise NodeError("the node went away while publishing")
        return await real_revoke(keys, ids)

    alice.revocations.revoke = failing_once  # type: ignore[method-assign]
    with pytest.raises(NodeError):
        await alice.share.revoke(cap.id, rotate=True, drop=["mallory"])
    assert alice.share.get(cap.id).state == "active"  # not "replaced" before it is revoked
    result = await alice.share.revoke(cap.id, rotate=True, drop=["mallory"])
    assert cap.id in result.revoked
    with pytest.raises(ShareRevokedError):
        await mallory.share.open_capsule(cap.id)


@pytest.fixture
async def lying_provider(kubo: Any) -> AsyncIterator[dict[str, Any]]:
    """A real proxy in front of the real test node, playing a hostile provider: it forwards
    every RPC call, but answers `cat` of one CID with bytes of its choosing."""
    import aiohttp
    from aiohttp import web

    swap: dict[str, Any] = {"cid": None, "body": b""}
    # name/get of ipns["name"]: "pass" forwards; "record" forwards and keeps the answer;
    # "replay" answers with what was kept (an older record); "fail" answers an error.
    ipns: dict[str, Any] = {"name": None, "mode": "pass", "kept": None}
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        named = request.path == "/api/v0/name/get" and request.query.get("arg") == ipns["name"]
        if named and ipns["mode"] == "fail":
            error = {"Message": "the provider failed", "Code": 0, "Type": "error"}
            return web.json_response(error, status=500)
        if named and ipns["mode"] == "replay":
            return web.Response(body=ipns["kept"], content_type="application/octet-stream")
        async with session.request(
            request.method,
            kubo.api_url + request.path_qs,
            data=body,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        ) as upstream:
            data = await upstream.read()
            headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "trailer")
            }
            if named and ipns["mode"] == "record" and upstream.status == 200:
                ipns["kept"] = data
            if request.path == "/api/v0/cat" and request.query.get("arg") == swap["cid"]:
                start = int(request.query.get("offset", 0))
                data = swap["body"][start : start + int(request.query.get("length", len(data)))]
                headers["X-Content-Length"] = str(len(data))
            return web.Response(body=data, status=upstream.status, headers=headers)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield {"url": f"http://127.0.0.1:{port}", "swap": swap, "ipns": ipns}
    finally:
        await runner.cleanup()
        await session.close()


async def test_a_provider_cannot_substitute_a_valid_envelope_under_the_same_key(
    people: Any, lying_provider: dict[str, Any]
) -> None:
    """Anyone who holds the file key (a co-recipient running the node) could make a valid
    envelope of other bytes; the content CID, checked leaf by leaf, refuses it."""
    from ipfs_share.errors import IntegrityError

    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    honest = b"Pay Bob 100 EUR.".ljust(300_000, b" ")
    f = await alice.files.put("order.txt", honest)
    cap = await alice.share.file(f).with_("bob")
    keys = await alice.identity.unlock()
    file_key = alice.files.file_key(f.cid, keys.encryption)
    forged = encrypt(
        file_key,
        b"Pay Carol 100000 EUR.".ljust(300_000, b" "),
        name="order.txt",
        media_type=f.media_type,
    )
    lying_provider["swap"].update(cid=f.cid, body=forged)
    via_liar = await KuboStorage.connect(lying_provider["url"])
    bob_via_liar = Mesh(via_liar, bob.home, passphrase=lambda _: b"pw", kdf=KdfParams.fastest())
    try:
        with pytest.raises(IntegrityError):
            opened = await bob_via_liar.share.open_capsule(cap.id)
            await opened.read()
    finally:
        await bob_via_liar.close()
    assert await (await bob.share.open_capsule(cap.id)).read() == honest  # the honest node


async def test_max_head_age_refuses_a_frozen_list_until_the_issuer_refreshes(
    people: Any, clock: Clock
) -> None:
    from ipfs_share.errors import RevocationUnavailableError

    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    cap = await alice.share.file(await alice.files.put("h", b"fresh?")).with_("bob")
    bob.revocations.max_head_age = 3600
    assert await (await bob.share.open_capsule(cap.id)).read() == b"fresh?"
    clock.t += 3601  # the issuer's list was signed over an hour ago
    with pytest.raises(RevocationUnavailableError):
        await bob.share.open_capsule(cap.id)
    await alice.revocations.refresh(await alice.identity.unlock())
    assert await (await bob.share.open_capsule(cap.id)).read() == b"fresh?"


# -- the order of the open checks, and the checks that keep lists honest ------------------
# Each test here is what kills a mutant of tests/mutants.toml (scripts/mutants.py): it
# fails when the check it names is removed or moved.


@pytest.fixture
async def via_liar(
    lying_provider: dict[str, Any], clock: Clock
) -> AsyncIterator[Callable[[Mesh], Any]]:
    """via_liar(person) -> the same home, its node reached through the lying provider."""
    meshes: list[Mesh] = []

    async def through(person: Mesh, **options: Any) -> Mesh:
        store = await KuboStorage.connect(lying_provider["url"])
        mesh = Mesh(
            store, person.home, passphrase=lambda _: b"pw", kdf=KdfParams.fastest(), now=clock,
            **options,
        )  # fmt: skip
        meshes.append(mesh)
        return mesh

    yield through  # type: ignore[misc]
    for mesh in meshes:
        await mesh.close()


def _counting_passphrases(*meshes: Mesh) -> list[str]:
    """Lock each mesh's keys and count every passphrase prompt from now on."""
    asked: list[str] = []

    def counting(prompt: str) -> bytes:
        asked.append(prompt)
        return b"pw"

    for mesh in meshes:
        mesh.identity._passphrase = counting
        mesh.identity.lock()
    return asked


async def _list_name(reader: Mesh, issuer: Mesh) -> str:
    return (await reader.identity.document(issuer.identity.get().did)).revocations


async def test_refusals_need_no_key_and_treat_everyone_alike(people: Any, clock: Clock) -> None:
    """An expired, a revoked and a capability-gated share are refused before any key is
    unlocked or used: the recipient is never asked for its passphrase, and a stranger
    gets the same refusal (not recipient_not_authorized)."""
    alice, bob, mallory = await people("alice"), await people("bob"), await people("mallory")
    await befriend(alice, bob)
    f = await alice.files.put("r", b"refused")
    expiring = await alice.share.file(f).with_("bob", expires_in="1h")
    revoked = await alice.share.file(f).with_("bob")
    gated = await alice.share.file(f).with_("bob", capability="self")
    await alice.share.revoke(revoked.id)
    asked = _counting_passphrases(bob, mallory)
    clock.t += 3600
    cases = [
        (expiring.id, ShareExpiredError),
        (revoked.id, ShareRevokedError),
        (gated.id, CapabilityRequiredError),
    ]
    for capsule_id, refusal in cases:
        for who in (bob, mallory):
            with pytest.raises(refusal):
                await who.share.open_capsule(capsule_id)
    assert asked == []


async def test_each_check_wins_over_the_next(people: Any) -> None:
    """A share that fails two checks is refused by the earlier one: revocation before
    policy, policy before capability."""
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    f = await alice.files.put("o", b"ordered")
    nobody = ("ipfs-share/window", TimeWindowProvider.params(allow=["did:key:z6Mknobody"]))
    revoked = await alice.share.file(f).with_("bob", policy=nobody)
    await alice.share.revoke(revoked.id)
    with pytest.raises(ShareRevokedError):
        await bob.share.open_capsule(revoked.id)
    gated = await alice.share.file(f).with_("bob", policy=nobody, capability="self")
    with pytest.raises(PolicyDeniedError):
        await bob.share.open_capsule(gated.id)


async def test_expiry_is_checked_before_the_revocation_list(
    people: Any, clock: Clock, lying_provider: dict[str, Any], via_liar: Any
) -> None:
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    cap = await alice.share.file(await alice.files.put("e", b"gone")).with_("bob", expires_in="1h")
    lying_provider["ipns"].update(name=await _list_name(bob, alice), mode="fail")
    bob_far = await via_liar(bob)
    clock.t += 3600
    with pytest.raises(ShareExpiredError):  # not revocation_unavailable: no retry helps
        await bob_far.share.open_capsule(cap.id)


async def test_the_revocation_check_fails_closed_when_the_node_errors(
    people: Any, clock: Clock, lying_provider: dict[str, Any], via_liar: Any
) -> None:
    from ipfs_share.errors import RevocationUnavailableError

    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    cap = await alice.share.file(await alice.files.put("n", b"checked")).with_("bob")
    lying_provider["ipns"].update(name=await _list_name(bob, alice), mode="fail")
    bob_far = await via_liar(bob)
    with pytest.raises(RevocationUnavailableError):  # no head seen yet: fail closed
        await bob_far.share.open_capsule(cap.id)
    assert await (await bob.share.open_capsule(cap.id)).read() == b"checked"  # a head seen
    with pytest.raises(RevocationUnavailableError):  # the default: no staleness allowed
        await bob_far.share.open_capsule(cap.id)
    clock.t += 30
    opened = await bob_far.share.open_capsule(cap.id, max_staleness=60)
    assert await opened.read() == b"checked"  # the head seen 30 s ago stands in
    clock.t += 60
    with pytest.raises(RevocationUnavailableError):  # now 90 s old: over the bound
        await bob_far.share.open_capsule(cap.id, max_staleness=60)
    with pytest.raises(RevocationUnavailableError):  # not a number is no bound at all
        await bob_far.share.open_capsule(cap.id, max_staleness=float("nan"))


async def test_a_rolled_back_revocation_list_is_refused(
    people: Any, lying_provider: dict[str, Any], via_liar: Any
) -> None:
    """A provider that answers with an older record of the list (here: the one from
    before the revoke) cannot un-revoke a share for a reader that saw the newer head."""
    from ipfs_share.errors import ChainInvalidError

    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    cap = await alice.share.file(await alice.files.put("b", b"back")).with_("bob")
    ipns = lying_provider["ipns"]
    ipns.update(name=await _list_name(bob, alice), mode="record")
    bob_far = await via_liar(bob)
    assert await (await bob_far.share.open_capsule(cap.id)).read() == b"back"  # seq 0 kept
    await alice.share.revoke(cap.id)
    ipns["mode"] = "pass"
    with pytest.raises(ShareRevokedError):  # seq 1 seen
        await bob_far.share.open_capsule(cap.id)
    ipns["mode"] = "replay"
    with pytest.raises(ChainInvalidError, match="rollback"):
        await bob_far.share.open_capsule(cap.id)


async def test_a_forked_revocation_list_is_refused(people: Any, clock: Clock) -> None:
    """The list key's holder shows a reader a newer head that does not extend the one it
    saw (the revocation left out of history), or a record whose sequence is not its
    head's: both are chain_invalid, never a head to trust."""
    from datetime import UTC, datetime, timedelta

    from ipfs_share.errors import ChainInvalidError
    from ipfs_share.formats.identity_doc import revocation_key
    from ipfs_share.formats.ipns import ipns_name, make_record
    from ipfs_share.formats.revocation import RevocationHead, decode_head
    from ipfs_share.formats.revocation import revoke as revoke_walk
    from ipfs_share.services.feeds import drive

    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    f = await alice.files.put("k", b"forked")
    cap = await alice.share.file(f).with_("bob")
    other = await alice.share.file(f).with_("bob")
    await bob.share.open_capsule(cap.id)
    seen = bob.db.feeds.read(await _list_name(bob, alice))  # bob's mark of alice's list
    assert seen is not None and seen.head_block is not None
    first = decode_head(seen.head_block)
    await alice.share.revoke(cap.id)
    with pytest.raises(ShareRevokedError):
        await bob.share.open_capsule(cap.id)
    keys = await alice.identity.unlock()
    list_key = revocation_key(keys.signing)

    async def publish(head: RevocationHead, sequence: int) -> None:
        when = datetime.fromtimestamp(clock.t, UTC)
        record = make_record(
            list_key, f"/ipfs/{head.cid}", sequence=sequence, validity=timedelta(days=1),
            ttl_seconds=30, now=when,
        )  # fmt: skip
        await alice.storage.ipns_put(ipns_name(list_key.public_key), record)

    async def extend(head: RevocationHead, ids: list[str]) -> RevocationHead:
        done = await drive(
            revoke_walk(keys.signing, head, ids, updated=int(clock.t)), alice.storage.block_get
        )
        for block in done.blocks:
            await alice.storage.block_put(block.data, codec="dag-cbor")
        return done.head

    fork = await extend(await extend(first, [other.id]), [])  # seq 2, without cap's revoke
    await publish(fork, fork.seq)
    with pytest.raises(ChainInvalidError, match="fork"):
        await bob.share.open_capsule(cap.id)
    honest = decode_head(await alice.storage.block_get(alice.share.get(cap.id).revocation_head))
    await publish(honest, 5)  # the honest head under a sequence that is not its own
    with pytest.raises(ChainInvalidError, match="sequence 5, found seq 1"):
        await bob.share.open_capsule(cap.id)


async def test_a_resigned_copy_does_not_open(people: Any) -> None:
    """mallory copies the stanzas and commit of alice's capsule for bob into her own,
    signed by her, with no expiry, policy or capability and downloads allowed."""
    from ipfs_share.crypto.labels import LABEL_CAPSULE
    from ipfs_share.errors import KeyUnwrapFailedError
    from ipfs_share.formats import dagcbor

    alice, bob, mallory = await people("alice"), await people("bob"), await people("mallory")
    await befriend(alice, bob)
    f = await alice.files.put("t", b"on alice's terms")
    cap = await alice.share.file(f).with_(
        "bob", expires_in="1h", allow_download=False, capability="self"
    )
    keys = await mallory.identity.unlock()
    await mallory.revocations.ensure_list(keys)  # her list exists: the copy gets that far
    value = dagcbor.decode(await mallory.storage.block_get(cap.id))
    value.update(issuer=keys.did, expires=None, perms={"download": True}, policy=None, cap=None)
    del value["sig"]
    value["sig"] = keys.signing.sign(LABEL_CAPSULE + dagcbor.encode(value))
    forged = await mallory.storage.block_put(dagcbor.encode(value), codec="dag-cbor")
    assert decode_capsule(await bob.storage.block_get(forged)).issuer == keys.did
    with pytest.raises(KeyUnwrapFailedError):
        await bob.share.open_capsule(forged)
    await alice.share.revoke(cap.id)
    with pytest.raises(KeyUnwrapFailedError):
        await bob.share.open_capsule(forged)


async def test_a_key_committed_elsewhere_is_refused_before_the_content_is_read(
    people: Any,
) -> None:
    """A malicious issuer wraps one key for bob and commits to another (the content's):
    open refuses it with key_unwrap_failed at the commitment, before it fetches content
    (decrypting with the wrapped key would fail later as decryption_failed)."""
    from ipfs_share.crypto.labels import LABEL_CAPSULE
    from ipfs_share.crypto.stream import FileKey
    from ipfs_share.errors import KeyUnwrapFailedError
    from ipfs_share.formats import dagcbor
    from ipfs_share.formats.capsule import commitment, terms_digest

    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    f = await alice.files.put("w", b"the real key")
    keys = await alice.identity.unlock()
    real = alice.files.file_key(f.cid, keys.encryption)
    honest = await alice.share.file(f).with_("bob")  # publishes alice's list
    decoy = build_capsule(
        keys.signing,
        content=f.cid,
        file_key=FileKey.generate(),
        recipients=[(await alice.identity.recipient("bob")).enc],
        created=int(alice.identity._now()),
        expires=None,
    )
    value = dagcbor.decode(decoy.data)
    value["commit"] = commitment(real, terms_digest(value))
    del value["sig"]
    value["sig"] = keys.signing.sign(LABEL_CAPSULE + dagcbor.encode(value))
    forged = await alice.storage.block_put(dagcbor.encode(value), codec="dag-cbor")
    with pytest.raises(KeyUnwrapFailedError):
        await bob.share.open_capsule(forged)
    assert await (await bob.share.open_capsule(honest.id)).read() == b"the real key"


async def test_a_truncated_envelope_is_refused_at_its_end(people: Any) -> None:
    """Ciphertext cut at a chunk boundary, under an honestly signed capsule: every chunk
    left authenticates, so only the final check of the stream can tell."""
    from ipfs_share.crypto.stream import FileKey
    from ipfs_share.formats.envelope import CHUNK_SIZE

    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    keys = await alice.identity.unlock()
    await alice.revocations.ensure_list(keys)
    file_key = FileKey.generate()
    data = os.urandom(2 * CHUNK_SIZE + 1000)
    envelope = encrypt(file_key, data, name="cut", media_type="application/octet-stream")
    cut = envelope[: len(envelope) - (1000 + 16)]  # the final chunk and its tag, gone
    capsule = build_capsule(
        keys.signing,
        content=(await alice.storage.add(cut)).cid,
        file_key=file_key,
        recipients=[(await alice.identity.recipient("bob")).enc],
        created=int(alice.identity._now()),
        expires=None,
    )
    await alice.storage.block_put(capsule.data, codec="dag-cbor")
    opened = await bob.share.open_capsule(capsule.cid)
    with pytest.raises(IpfsShareError) as info:
        await opened.read()
    assert info.value.code in {"stream_truncated", "decryption_failed"}


async def test_opens_of_one_capsule_at_once_keep_the_capsule_cache_in_bounds(
    people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parallel opens of a capsule not held yet (a player asking for several ranges of a
    # video at once) each fetch and decode it: the cache must count it once, or what it
    # believes it holds grows past what it holds, and once past its byte cap every open
    # that is not held fails.
    alice, bob = await people("alice"), await people("bob")
    await befriend(alice, bob)
    ids = []
    for i in range(3):
        f = await alice.files.put(f"clip{i}.bin", os.urandom(1000))
        ids.append((await alice.share.file(f).with_("bob")).id)
    held = bob.share._capsules
    for capsule in ids[:2]:
        opened = await asyncio.gather(*(bob.share.open_capsule(capsule) for _ in range(6)))
        assert all(o.size == 1000 for o in opened)
        assert bob.share._capsule_bytes == sum(len(c.data) for c in held.values())
    monkeypatch.setattr(share_module, "CAPSULE_CACHE_BYTES", 3 * len(held[ids[0]].data))
    opened = await asyncio.gather(*(bob.share.open_capsule(ids[2]) for _ in range(6)))
    assert all(o.size == 1000 for o in opened) and ids[2] in held
