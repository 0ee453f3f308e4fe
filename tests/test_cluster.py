"""ipfs-share on a real 3-peer IPFS Cluster on loopback (the session's ``cluster`` fixture):
replication asked of the cluster and checked on each Kubo, a recipient on the node that
holds no copy while a holder is down, peers killed mid-put, IPNS records and blocks on
every peer with a quorum, reads that fail over.

Tests that stop a peer start it again before they end, so their order does not matter."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import TestCluster

from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import (
    IpfsShareError,
    NodeUnreachableError,
    ReplicationError,
    ShareRevokedError,
)
from ipfs_share.formats.cid import RAW, cid_for
from ipfs_share.formats.ipns import ipns_name, make_record
from ipfs_share.formats.unixfs import FileBuilder
from ipfs_share.node.ports import free_port
from ipfs_share.storage.cluster import ClusterStorage
from ipfs_share.storage.kubo import KuboStorage
from ipfs_share.storage.timed import innermost

FAST: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}


async def kubo_pins(cluster: TestCluster, cid: str) -> list[int]:
    """The peers whose own Kubo node has ``cid`` pinned (the ground truth under the
    cluster's word)."""
    holders = []
    for i, url in enumerate(cluster.kubo):
        async with await KuboStorage.connect(url) as node:
            if cid in await node.pin_ls():
                holders.append(i)
    return holders


def dead_kubo() -> str:
    """The URL of a port nothing listens on: a Kubo node that is down."""
    return f"http://127.0.0.1:{free_port()}"


def local_cid(data: bytes) -> str:
    builder = FileBuilder()
    builder.feed(data)
    return builder.finish()[0]


# -- replication --------------------------------------------------------------------------


async def test_replication_2_pins_on_two_and_the_third_node_opens_with_a_holder_down(
    cluster: TestCluster, tmp_path: Path
) -> None:
    alice = Mesh(await cluster.storage(replication=2), tmp_path / "alice", **FAST)
    bob = Mesh(await cluster.storage(), tmp_path / "bob", **FAST)
    try:
        await alice.identity.create("alice")
        await alice.identity.publish()
        me = await bob.identity.create("bob")
        await bob.identity.publish()
        await alice.identity.resolve(me.did, petname="bob")

        data = os.urandom(1_500_000)
        f = await alice.files.put("plan.bin", data)
        placements = await alice.files.placements([f.cid])
        assert placements is not None
        where = placements[f.cid]
        # Asked of the cluster: two peers pinned it, the third knows others hold it.
        assert len(where.pinned) == 2
        assert len(where.with_status("remote")) == 1
        holders = sorted(cluster.index_of(p.peer_id) for p in where.pinned)
        assert await kubo_pins(cluster, f.cid) == holders  # and so say the Kubo nodes
        (third,) = {0, 1, 2} - set(holders)
        async with await KuboStorage.connect(cluster.kubo[third]) as node:
            assert not await node.block_has(f.cid)  # the third node holds no copy

        # Capsules pin the file they link to (recursively), so they are pinned where the
        # file is, whatever the session's replication says now: covering the file must
        # not copy it to the third peer.
        backend = innermost(alice.storage)
        assert isinstance(backend, ClusterStorage)
        backend.replication = 3
        # A revoked capsule: the list exists, so the open below really checks one.
        revoked = await alice.share.file(f).with_("bob")
        await alice.share.revoke(revoked.id)
        cap = await alice.share.file(f).with_("bob")
        capsule_where = (await alice.files.placements([cap.id]) or {})[cap.id]
        assert {p.peer_id for p in capsule_where.pinned} == {p.peer_id for p in where.pinned}
        async with await KuboStorage.connect(cluster.kubo[third]) as node:
            assert not await node.block_has(f.cid)
        await bob.close()

        with cluster.stopped_peer(holders[0]):
            # Bob, on the third node alone (plain Kubo, no cluster): the capsule, the
            # revocation list and the content come from the one holder still up.
            on_third = Mesh(
                await KuboStorage.connect(cluster.kubo[third]), tmp_path / "bob", **FAST
            )
            try:
                opened = await on_third.share.open_capsule(cap.id)
                assert hashlib.sha256(await opened.read()).digest() == hashlib.sha256(data).digest()
                head = on_third.db.shares.opens(cap.id)[-1].revocation_head
                assert head is not None  # the revocation list was resolved and checked
                with pytest.raises(ShareRevokedError):
                    await on_third.share.open_capsule(revoked.id)
            finally:
                await on_third.close()
    finally:
        await alice.close()
        await bob.close()


async def test_a_file_over_174_leaves_gets_the_same_cid_as_everywhere(cluster: TestCluster) -> None:
    # 175 leaves of 256 KiB: the DAG needs a second level, where max-file-links matters.
    data = hashlib.shake_256(b"wide").digest(175 * 262_144 + 1)
    async with await cluster.storage(replication=1) as store:
        added = await store.add(data)
        assert added.cid == local_cid(data)
        async with await KuboStorage.connect(cluster.kubo[0]) as node:
            assert (await node.add(data, pin=False)).cid == added.cid
        await store.pin_rm(added.cid)


async def test_asking_for_more_copies_than_peers_fails_and_pins_nothing(
    cluster: TestCluster,
) -> None:
    async with await cluster.storage(replication=4) as store:
        before = await store.pin_ls()
        with pytest.raises(ReplicationError) as info:
            await store.add(os.urandom(10_000))
        assert info.value.hint and "--replication" in info.value.hint
        assert await store.pin_ls() == before


# -- a peer killed mid-put ----------------------------------------------------------------


async def _stream(kill: Any, at: int, pieces: int = 40) -> AsyncIterator[bytes]:
    for i in range(pieces):
        if i == at:
            kill()
            await asyncio.sleep(0.3)
        yield os.urandom(1 << 20)


@pytest.mark.parametrize("victim", ["holder", "rest"])
async def test_killing_a_peer_mid_put_leaves_nothing_half_pinned_or_recorded(
    cluster: TestCluster, tmp_path: Path, victim: str
) -> None:
    # Replication 3: every peer gets blocks, so whichever dies, the put notices. peer0's
    # REST API is the one the storage talks to first ("rest"); peer1 only stores ("holder").
    index = 0 if victim == "rest" else 1
    alice = Mesh(await cluster.storage(replication=3), tmp_path / "alice", **FAST)
    try:
        await alice.identity.create("alice")
        before = await alice.storage.pin_ls()
        pids: list[int] = []
        with cluster.restarted(index):
            try:
                f = await alice.files.put(
                    "big",
                    _stream(lambda: pids.extend(cluster.stop(index, kill=True)), at=6),
                    size=40 << 20,
                )
            except IpfsShareError as exc:
                print(f"put with {victim} killed: {exc.code}: {exc.message} (hint: {exc.hint})")
                assert exc.hint  # a clear error, with what to do
                assert alice.files.list() == []  # nothing recorded as stored
                assert await alice.storage.pin_ls() == before  # nothing left pinned
            else:
                # It completed: then it is recorded and pinned where the cluster says.
                assert alice.files.list() == [f]
                where = (await alice.files.placements([f.cid]) or {})[f.cid]
                assert len(where.pinned) >= 2
            assert pids, "the peer was not killed during the put"
    finally:
        await alice.close()


# -- blocks and IPNS records on every peer ------------------------------------------------


def _record(key: SigningKey, value: str, seq: int) -> bytes:
    from datetime import UTC, datetime, timedelta

    return make_record(
        key, value, sequence=seq, validity=datetime.now(UTC) + timedelta(hours=1), ttl_seconds=5
    )


async def test_blocks_and_records_reach_every_kubo_peer(cluster: TestCluster) -> None:
    key = SigningKey.generate()
    name = ipns_name(key.public_key)
    record = _record(key, "/ipfs/" + cid_for(RAW, b"v1"), 1)
    async with await cluster.storage() as store:
        cid = await store.block_put(os.urandom(100), codec="raw")
        await store.ipns_put(name, record)
    for url in cluster.kubo:
        async with await KuboStorage.connect(url) as node:
            assert await node.block_has(cid)
            assert await node.ipns_get(name) == record


async def test_writes_need_a_majority_of_kubo_peers(cluster: TestCluster) -> None:
    key = SigningKey.generate()
    name = ipns_name(key.public_key)
    record = _record(key, "/ipfs/" + cid_for(RAW, b"q"), 1)
    # Two of three answer: a majority, so it counts.
    two = await ClusterStorage.connect(cluster.rest, kubo=[*cluster.kubo[:2], dead_kubo()])
    async with two:
        assert two.quorum == 2
        await two.ipns_put(name, record)
        assert await two.ipns_get(name) == record
    # One of three: not a majority; refused, and said so.
    one = await ClusterStorage.connect(
        cluster.rest, kubo=[cluster.kubo[0], dead_kubo(), dead_kubo()]
    )
    async with one:
        with pytest.raises(ReplicationError) as info:
            await one.block_put(os.urandom(50))
        assert "1 of the cluster's 3" in info.value.message
        with pytest.raises(ReplicationError):
            await one.ipns_put(name, _record(key, "/ipfs/" + cid_for(RAW, b"q2"), 2))
        # A lookup that hears from one peer of three could miss the newest record.
        with pytest.raises(NodeUnreachableError):
            await one.ipns_get(name)


async def test_a_lookup_takes_the_freshest_record_of_all_answers(
    cluster: TestCluster, kubo: Any
) -> None:
    key = SigningKey.generate()
    name = ipns_name(key.public_key)
    old, new = (_record(key, "/ipfs/" + cid_for(RAW, v), s) for v, s in ((b"o", 1), (b"n", 2)))
    # The session's own node (not in the cluster's network, so it cannot find seq 2 by
    # itself) answers first with seq 1; two cluster peers have seq 2.
    async with await KuboStorage.connect(kubo.api_url) as alone:
        await alone.ipns_put(name, old)
    async with await cluster.storage() as store:
        await store.ipns_put(name, new)
    mixed = await ClusterStorage.connect(cluster.rest, kubo=[kubo.api_url, *cluster.kubo[:2]])
    async with mixed:
        assert await mixed.ipns_get(name) == new
        assert await mixed.ipns_resolve(name) == "/ipfs/" + cid_for(RAW, b"n")


async def test_reads_fail_over_to_the_next_kubo_peer(cluster: TestCluster) -> None:
    data = os.urandom(700_000)
    async with await cluster.storage(replication=1) as store:
        added = await store.add(data)
    flaky = await ClusterStorage.connect(cluster.rest, kubo=[dead_kubo(), *cluster.kubo])
    async with flaky:
        got = b"".join([piece async for piece in flaky.cat(added.cid)])
        assert got == data
        assert await flaky.file_size(added.cid) == len(data)
        await flaky.pin_rm(added.cid)


async def test_the_rest_api_fails_over_to_the_next_peer(cluster: TestCluster) -> None:
    store = await ClusterStorage.connect(
        [f"http://127.0.0.1:{free_port()}", *cluster.rest], kubo=cluster.kubo, replication=1
    )
    async with store:
        added = await store.add(b"through the second peer")
        assert added.cid in await store.pin_ls()
        await store.pin_rm(added.cid)


# -- pins are confirmed, or undone --------------------------------------------------------


async def test_a_pin_the_peers_cannot_complete_fails_and_is_removed(cluster: TestCluster) -> None:
    nobody_has = cid_for(RAW, os.urandom(32))  # no node holds these bytes
    async with await cluster.storage(replication=1, pin_wait=2.0) as store:
        with pytest.raises(ReplicationError) as info:
            await store.pin_add(nobody_has)
        assert "within 2 s" in info.value.message and info.value.hint
        assert nobody_has not in await store.pin_ls()  # not left half-pinned


async def test_a_read_whose_peer_dies_mid_stream_goes_on_from_the_next(
    cluster: TestCluster,
) -> None:
    data = os.urandom(24 << 20)
    async with await cluster.storage(replication=3) as store:
        added = await store.add(data)
    # Reads start on peer 2's Kubo; it is killed a few MiB in.
    reader = await ClusterStorage.connect(cluster.rest, kubo=[cluster.kubo[2], *cluster.kubo[:2]])
    digest = hashlib.sha256()
    got = 0
    killed: list[int] = []
    async with reader:
        with cluster.restarted(2):
            async for piece in reader.cat(added.cid):
                digest.update(piece)
                got += len(piece)
                if got >= 4 << 20 and not killed:
                    killed = cluster.stop(2, kill=True)
            assert killed and got == len(data)
            assert digest.digest() == hashlib.sha256(data).digest()
        await reader.pin_rm(added.cid)


# -- mailboxes over the cluster -----------------------------------------------------------


async def test_a_mailbox_send_syncs_and_its_receipt_flows_back_across_peers(
    cluster: TestCluster, tmp_path: Path
) -> None:
    # Alice writes through peer 0's REST API first, Bob reads through peer 2's: every block
    # and record either writes must be on the other's side.
    alice = Mesh(await cluster.storage(replication=2), tmp_path / "alice", **FAST)
    bob_store = await ClusterStorage.connect(
        cluster.rest[::-1], kubo=cluster.kubo[::-1], replication=2
    )
    bob = Mesh(bob_store, tmp_path / "bob", **FAST)
    try:
        for mesh, name in ((alice, "alice"), (bob, "bob")):
            await mesh.identity.create(name)
            await mesh.identity.publish()
        await alice.identity.resolve(bob.identity.get().did, petname="bob")
        await bob.identity.resolve(alice.identity.get().did, petname="alice")
        f = await alice.files.put("plan.txt", b"meet at noon")
        cap = await alice.share.file(f).with_("bob")
        await alice.share.send(cap)
        new = await bob.inbox.sync()
        assert [(i.id, i.sender_name) for i in new] == [(cap.id, "alice")]
        opened = await bob.share.open_capsule(cap.id)
        assert await opened.read() == b"meet at noon"
        await bob.inbox.sync()  # sends the receipts back through Bob's mailbox to Alice
        (out,) = await alice.share.outgoing()
        assert out.state in ("delivered", "opened")
    finally:
        await alice.close()
        await bob.close()
