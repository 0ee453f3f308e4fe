"""One suite, three backends: a real Kubo daemon, a real 3-peer IPFS Cluster and the real
embedded store.

Every test here runs against both, and the CIDs each backend returns are compared with
the CIDs computed locally and, for files, with what plain `ipfs add` gives.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import (
    BlockTooLargeError,
    CidInvalidError,
    IpfsShareError,
    NotFoundError,
)
from ipfs_share.formats import dagcbor
from ipfs_share.formats.cid import DAG_CBOR, RAW, cid_for
from ipfs_share.formats.ipns import ipns_name, make_record
from ipfs_share.formats.unixfs import FileBuilder
from ipfs_share.storage.base import MAX_BLOCK_SIZE, Storage
from ipfs_share.storage.embedded import EmbeddedStorage
from ipfs_share.storage.kubo import KuboStorage


@pytest.fixture(params=["kubo", "cluster", "embedded"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "kubo":
        node = request.getfixturevalue("kubo")
        async with await KuboStorage.connect(node.api_url) as kubo:
            yield kubo
    elif request.param == "cluster":
        cluster = request.getfixturevalue("cluster")
        async with await cluster.storage(replication=2) as replicated:
            yield replicated
    else:
        async with EmbeddedStorage(tmp_path / "store") as embedded:
            yield embedded


def expected_file_cid(data: bytes) -> str:
    builder = FileBuilder()
    builder.feed(data)
    return builder.finish()[0]


async def read_all(store: Storage, cid: str, **kw: Any) -> bytes:
    return b"".join([piece async for piece in store.cat(cid, **kw)])


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def reused(data: bytes, size: int) -> Iterator[memoryview]:
    """``data`` the way a file is read for a put: every piece in one buffer, overwritten
    for the next (a backend that kept a piece past the next pull would store garbage)."""
    buffer = memoryview(bytearray(size))
    for i in range(0, len(data), size):
        n = len(data[i : i + size])
        buffer[:n] = data[i : i + size]
        yield buffer[:n]
    buffer[:] = bytes(size)


# -- blocks -------------------------------------------------------------------------------


async def test_raw_block_round_trip(store: Storage) -> None:
    data = os.urandom(1000)
    cid = await store.block_put(data)
    assert cid == cid_for(RAW, data)
    assert await store.block_get(cid) == data
    assert await store.block_has(cid)


async def test_dag_cbor_block_keeps_our_bytes(store: Storage) -> None:
    obj = {"a": 1, "link": dagcbor.Link(cid_for(RAW, b"x")), "bytes": b"\x00\x01"}
    data = dagcbor.encode(obj)
    cid = await store.block_put(data, codec="dag-cbor")
    assert cid == cid_for(DAG_CBOR, data)
    assert await store.block_get(cid) == data


async def test_block_has_is_false_for_an_absent_block(store: Storage) -> None:
    assert not await store.block_has(cid_for(RAW, os.urandom(16)))


async def test_block_get_local_gives_the_blocks_held_and_leaves_out_the_rest(
    store: Storage,
) -> None:
    blocks = [os.urandom(50 + i) for i in range(70)]  # more than one pipeline on Kubo
    held = [await store.block_put(b) for b in blocks]
    absent = [cid_for(RAW, os.urandom(16)) for _ in range(5)]
    asked = held[:30] + absent[:3] + held[30:] + absent[3:]
    got = await store.block_get_local(asked)
    assert got == dict(zip(held, blocks, strict=True))
    assert await store.block_get_local([]) == {}


async def test_block_over_2_mib_is_refused_before_sending(store: Storage) -> None:
    with pytest.raises(BlockTooLargeError) as info:
        await store.block_put(b"\0" * (MAX_BLOCK_SIZE + 1))
    assert info.value.hint
    # exactly at the limit is fine
    cid = await store.block_put(b"\1" * MAX_BLOCK_SIZE)
    assert cid == cid_for(RAW, b"\1" * MAX_BLOCK_SIZE)


@pytest.mark.parametrize("bad", ["", "nope", "bafy!!", "Qm123", "b" + "a" * 300])
async def test_a_cid_that_does_not_parse_is_a_typed_error(store: Storage, bad: str) -> None:
    with pytest.raises(CidInvalidError) as info:
        await store.block_get(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.hint


# -- files --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 262143, 262144, 262145, 3 * 1024 * 1024 + 17])
async def test_add_gives_the_local_cid_and_cat_returns_the_bytes(store: Storage, size: int) -> None:
    data = os.urandom(size)
    added = await store.add(data)
    assert added.cid == expected_file_cid(data)
    assert added.size == size
    assert await read_all(store, added.cid) == data
    assert await store.file_size(added.cid) == size


async def test_add_streams_an_async_iterator_of_odd_pieces(store: Storage) -> None:
    data = os.urandom(1_500_000)
    seen: list[int] = []
    added = await store.add(pieces(data, 77_777), progress=seen.append)
    assert added.cid == expected_file_cid(data)
    assert seen[-1] == len(data)
    assert seen == sorted(seen)


async def test_add_with_a_declared_size(store: Storage) -> None:
    data = os.urandom(1_200_000)
    added = await store.add(pieces(data, 100_000), size=len(data))
    assert added.cid == expected_file_cid(data)
    unverified = await store.add(pieces(data, 100_000), size=len(data), verify=False)
    assert unverified.cid == added.cid  # the node's CID, equal to ours for honest nodes


@pytest.mark.parametrize("declared", [1_000_000, 1_300_000])
async def test_a_source_that_does_not_match_its_declared_size_fails(
    store: Storage, declared: int
) -> None:
    data = os.urandom(1_200_000)
    with pytest.raises(IpfsShareError):
        await store.add(pieces(data, 100_000), size=declared)


@pytest.mark.parametrize("declared", [True, False])
async def test_add_pulls_a_blocking_iterator_that_reuses_its_buffer(
    store: Storage, declared: bool
) -> None:
    data = os.urandom(1_300_000)
    seen: list[int] = []
    size = len(data) if declared else None
    added = await store.add(reused(data, 99_999), size=size, progress=seen.append)
    assert added.cid == expected_file_cid(data) and added.size == len(data)
    assert seen[-1] == len(data) and seen == sorted(seen)
    assert await read_all(store, added.cid) == data
    unverified = await store.add(reused(data, 262_144), size=size, verify=False)
    assert unverified.cid == added.cid


@pytest.mark.parametrize("blocking", [True, False])
@pytest.mark.parametrize("declared", [1_000_000, 1_300_000])
async def test_a_source_that_does_not_match_its_declared_size_is_not_pinned(
    store: Storage, declared: int, blocking: bool
) -> None:
    data = os.urandom(1_200_000)
    before = await store.pin_ls()
    source = reused(data, 100_000) if blocking else pieces(data, 100_000)
    with pytest.raises(IpfsShareError):
        await store.add(source, size=declared)
    assert await store.pin_ls() == before


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 10), (262_140, 10), (262_144, 262_144), (1_000_000, None), (1_999_999, 5), (5, 0)],
)
async def test_cat_reads_a_range(store: Storage, offset: int, length: int | None) -> None:
    data = hashlib.shake_256(b"range").digest(2_000_000)
    added = await store.add(data)
    end = None if length is None else offset + length
    assert await read_all(store, added.cid, offset=offset, length=length) == data[offset:end]


async def test_cat_past_the_end_is_empty(store: Storage) -> None:
    added = await store.add(b"short")
    assert await read_all(store, added.cid, offset=100) == b""


async def test_same_bytes_same_cid_on_both_backends(kubo: Any, tmp_path: Path) -> None:
    data = hashlib.shake_256(b"same").digest(600_000)
    async with await KuboStorage.connect(kubo.api_url) as k:
        a = await k.add(data)
    async with EmbeddedStorage(tmp_path / "s") as e:
        b = await e.add(pieces(data, 4096))
    assert a.cid == b.cid


# -- pins ---------------------------------------------------------------------------------


async def test_pins_add_list_remove(store: Storage) -> None:
    added = await store.add(os.urandom(300_000), pin=False)
    assert added.cid not in await store.pin_ls()
    await store.pin_add(added.cid)
    assert added.cid in await store.pin_ls()
    await store.pin_rm(added.cid)
    assert added.cid not in await store.pin_ls()
    await store.pin_rm(added.cid)  # removing twice is not an error


async def test_add_pins_by_default(store: Storage) -> None:
    added = await store.add(os.urandom(10))
    assert added.cid in await store.pin_ls()


async def test_direct_pin_of_a_block(store: Storage) -> None:
    cid = await store.block_put(os.urandom(50), pin=True)
    assert cid in await store.pin_ls()


# -- IPNS ---------------------------------------------------------------------------------


def _record(key: SigningKey, value: str, seq: int) -> bytes:
    return make_record(
        key,
        value,
        sequence=seq,
        validity=datetime.now(UTC) + timedelta(hours=1),
        ttl_seconds=5,
    )


async def test_ipns_put_get_resolve(store: Storage) -> None:
    key = SigningKey.generate()
    name = ipns_name(key.public_key)
    target = "/ipfs/" + cid_for(RAW, b"v1")
    record = _record(key, target, 1)
    await store.ipns_put(name, record)
    assert await store.ipns_get(name) == record
    assert await store.ipns_resolve(name) == target

    newer = "/ipfs/" + cid_for(RAW, b"v2")
    await store.ipns_put(name, _record(key, newer, 2))
    assert await store.ipns_resolve(name) == newer


async def test_ipns_record_signed_by_another_key_is_refused(store: Storage) -> None:
    owner, other = SigningKey.generate(), SigningKey.generate()
    forged = _record(other, "/ipfs/" + cid_for(RAW, b"x"), 1)
    with pytest.raises(IpfsShareError):
        await store.ipns_put(ipns_name(owner.public_key), forged)


async def test_ipns_unknown_name_is_not_found(store: Storage) -> None:
    name = ipns_name(SigningKey.generate().public_key)
    with pytest.raises(NotFoundError):
        await store.ipns_get(name)


# -- pubsub -------------------------------------------------------------------------------


async def test_pubsub_delivers_a_message(store: Storage) -> None:
    topic = "ipfs-share-test-" + os.urandom(4).hex()
    async with store.pubsub_subscribe(topic) as messages:
        received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def first() -> None:
            async for m in messages:
                received.set_result(m.data)
                return

        reader = asyncio.create_task(first())
        try:
            # A subscription takes a moment to register on a node; publish until it lands,
            # a bounded number of times.
            for _ in range(50):
                await store.pubsub_publish(topic, b"hello")
                done, _ = await asyncio.wait({reader}, timeout=0.2)
                if done:
                    break
            assert await asyncio.wait_for(received, 1) == b"hello"
        finally:
            reader.cancel()


# -- the node -----------------------------------------------------------------------------


async def test_node_info_and_capabilities(store: Storage) -> None:
    info = await store.node_info()
    assert info.backend == store.backend
    assert info.peer_id
    caps = await store.capabilities()
    assert caps.ipns_put
    if store.backend in ("kubo", "cluster"):
        assert caps.pubsub and caps.ipns_over_pubsub  # the test nodes enable both


async def test_follow_local_names_the_block_hops_links_below_and_none_past_the_chain(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kubo looks for a block it lacks on the network even offline: the wait is bounded
    (kubo.FOLLOW_TIMEOUT), and then the answer is None like the others'."""
    from ipfs_share.storage import kubo

    monkeypatch.setattr(kubo, "FOLLOW_TIMEOUT", 0.5)
    chain = [await store.block_put(dagcbor.encode({"prev": None, "n": 0}), codec="dag-cbor")]
    for n in range(1, 6):
        block = dagcbor.encode({"prev": dagcbor.Link(chain[-1]), "n": n})
        chain.append(await store.block_put(block, codec="dag-cbor"))
    assert await store.follow_local(chain[5], "prev", 1) == chain[4]
    assert await store.follow_local(chain[5], "prev", 5) == chain[0]
    assert await store.follow_local(chain[5], "prev", 6) is None  # seq 0 has no link
    assert await store.follow_local(chain[5], "other", 1) is None
    absent = dagcbor.encode({"prev": dagcbor.Link(chain[5]), "n": 6})
    assert await store.follow_local(cid_for(DAG_CBOR, absent), "prev", 1) is None  # not held
