"""What only the Kubo backend has: a network of nodes, a process that can die, versions."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.cli.hints import cli_hint
from ipfs_share.errors import (
    IntegrityError,
    IpfsShareError,
    NodeError,
    NodeUnreachableError,
    NodeVersionError,
    StreamTruncatedError,
)
from ipfs_share.formats.cid import RAW, cid_for
from ipfs_share.node.daemon import KuboDaemon, RunningNode
from ipfs_share.node.ports import NodePorts, free_port
from ipfs_share.storage.kubo import KuboStorage, check_kubo_version


async def test_no_node_at_the_address_is_unreachable_with_a_hint() -> None:
    with pytest.raises(NodeUnreachableError) as info:
        await KuboStorage.connect(f"/ip4/127.0.0.1/tcp/{free_port()}")
    assert "docker" in info.value.hint and "IPFS_SHARE_API" in info.value.hint
    cli = cli_hint(info.value)  # the CLI's words name its commands
    assert "docker compose" in cli and "node start" in cli


@pytest.mark.parametrize("version", ["0.39.9", "0.4.23", "nonsense", ""])
def test_too_old_or_unparseable_kubo_versions_are_refused(version: str) -> None:
    with pytest.raises(NodeVersionError) as info:
        check_kubo_version(version)
    assert "the Kubo version ipfs-share pins" in info.value.hint
    assert "ipfs-share node install" in cli_hint(info.value)


def test_supported_versions_pass() -> None:
    assert check_kubo_version("0.43.0") == (0, 43, 0)
    assert check_kubo_version("0.50.1-rc1") == (0, 50, 1)


async def test_the_fixture_node_is_the_pinned_version(kubo: Any) -> None:
    async with await KuboStorage.connect(kubo.api_url) as store:
        assert (await store.node_info()).version == "0.43.0"


# -- two nodes ----------------------------------------------------------------------------


async def test_a_block_added_on_a_is_read_on_b(kubo_pair: Any) -> None:
    a, b = kubo_pair
    data = os.urandom(5000)
    async with await KuboStorage.connect(a.api_url) as on_a:
        cid = await on_a.block_put(data, pin=True)
    async with await KuboStorage.connect(b.api_url) as on_b:
        assert not await on_b.block_has(cid)
        assert await asyncio.wait_for(on_b.block_get(cid), 30) == data
        assert await on_b.block_has(cid)


async def test_a_file_added_on_a_streams_from_b(kubo_pair: Any) -> None:
    a, b = kubo_pair
    data = os.urandom(1_300_000)
    async with await KuboStorage.connect(a.api_url) as on_a:
        cid = (await on_a.add(data)).cid
    async with await KuboStorage.connect(b.api_url) as on_b:
        got = b"".join([c async for c in on_b.cat(cid, offset=500_000, length=300_000)])
    assert got == data[500_000:800_000]


# -- a node that dies ---------------------------------------------------------------------


@pytest.fixture
def doomed_node(kubo_binary: Path, tmp_path: Path) -> Iterator[tuple[KuboDaemon, RunningNode]]:
    """A node of its own, for a test that kills it; stopped by its pid whatever happens."""
    daemon = KuboDaemon(tmp_path / "repo", kubo_binary)
    daemon.init(ports=NodePorts(api=free_port(), gateway=free_port(), swarm=free_port()))
    daemon.start()
    try:
        yield daemon, daemon.wait_ready(timeout=60)
    finally:
        daemon.stop()


async def _slow_pieces(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // (1 << 20)):
        yield os.urandom(1 << 20)
        await asyncio.sleep(0)


async def test_killing_the_node_mid_cat_is_a_truncated_stream(
    doomed_node: tuple[KuboDaemon, RunningNode],
) -> None:
    _, node = doomed_node
    async with await KuboStorage.connect(node.api_url) as store:
        cid = (await store.add(_slow_pieces(64 << 20))).cid
        received = 0
        with pytest.raises((StreamTruncatedError, NodeUnreachableError)) as info:
            async for chunk in store.cat(cid):
                received += len(chunk)
                if received >= 1 << 20 and received - len(chunk) < 1 << 20:
                    os.kill(node.pid, signal.SIGKILL)
        assert received < 64 << 20
        assert info.value.hint


@pytest.mark.parametrize("blocking", [False, True])
async def test_killing_the_node_mid_add_is_a_typed_error(
    doomed_node: tuple[KuboDaemon, RunningNode], blocking: bool
) -> None:
    _, node = doomed_node
    sent = 0

    def piece() -> bytes:
        nonlocal sent
        if sent == 8 << 20:
            os.kill(node.pid, signal.SIGKILL)
        sent += 1 << 20
        return os.urandom(1 << 20)

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(256):
            yield piece()

    async with await KuboStorage.connect(node.api_url) as store:
        with pytest.raises(NodeError) as info:
            if blocking:  # a file's put: read and sent by a worker thread
                await store.add((piece() for _ in range(256)), size=256 << 20)
            else:
                await store.add(pieces())
    assert isinstance(info.value, IpfsShareError) and info.value.hint


async def test_a_block_missing_everywhere_is_not_found_offline(kubo: Any) -> None:
    async with await KuboStorage.connect(kubo.api_url) as store:
        absent = cid_for(RAW, os.urandom(32))
        with pytest.raises(NodeError):
            await store.block_get(absent, offline=True)


# -- a node that lies in its cat -------------------------------------------------------------


@pytest.fixture
async def tampering_proxy(kubo: Any) -> AsyncIterator[dict[str, Any]]:
    """A real proxy in front of the real test node that forwards every call, but passes
    the body of each `cat` through ``proxy["tamper"]`` (bytes -> bytes) and records the
    HTTP version each `cat` came in with."""
    import aiohttp
    from aiohttp import web

    port = free_port()
    state: dict[str, Any] = {
        "url": f"http://127.0.0.1:{port}",
        "tamper": lambda body: body,
        "cat_versions": [],
    }
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        async with session.request(
            request.method,
            kubo.api_url + request.path_qs,
            data=await request.read(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        ) as upstream:
            body = await upstream.read()
            headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "trailer")
            }
        if request.path == "/api/v0/cat":
            state["cat_versions"].append(request.version)
            body = state["tamper"](body)
        return web.Response(body=body, status=upstream.status, headers=headers)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state
    finally:
        await runner.cleanup()
        await session.close()


def _flip(position: int) -> Any:
    def tamper(body: bytes) -> bytes:
        out = bytearray(body)
        out[position] ^= 1
        return bytes(out)

    return tamper


async def test_a_tampered_leaf_is_refused_before_any_byte_of_its_batch(
    kubo: Any, tampering_proxy: dict[str, Any]
) -> None:
    # 9 MiB: three batches of whole leaves (4 MiB each, hashed on a worker thread), read in
    # one long HTTP/1.0 cat. A bit flipped at 6.5 MiB is in the second batch: the first is
    # released, nothing of the second.
    data = os.urandom(9 << 20)
    async with await KuboStorage.connect(kubo.api_url) as honest:
        cid = (await honest.add(data)).cid
    tampering_proxy["tamper"] = _flip(13 << 19)
    received = bytearray()
    async with await KuboStorage.connect(tampering_proxy["url"]) as liar:
        with pytest.raises(IntegrityError, match="do not hash"):
            async for piece in liar.cat(cid):
                received += piece
    assert received == data[: 4 << 20]
    assert tampering_proxy["cat_versions"] == [(1, 0)]


@pytest.mark.parametrize(
    ("tamper", "offset"),
    [
        (lambda body: body[:-1000], 0),  # cut short (the declared length is the honest one)
        (lambda body: body + b"x" * 1000, 0),  # more than the range holds
        (lambda body: body[:-1000], 300_000),  # a short range, over pooled HTTP/1.1
    ],
)
async def test_a_cat_of_the_wrong_length_is_a_truncated_stream(
    kubo: Any, tampering_proxy: dict[str, Any], tamper: Any, offset: int
) -> None:
    data = os.urandom(3 << 20)
    async with await KuboStorage.connect(kubo.api_url) as honest:
        cid = (await honest.add(data)).cid
    tampering_proxy["tamper"] = tamper
    async with await KuboStorage.connect(tampering_proxy["url"]) as liar:
        with pytest.raises(StreamTruncatedError):
            async for _ in liar.cat(cid, offset=offset, length=None if offset == 0 else 500_000):
                pass


async def test_long_and_short_ranges_read_the_same_bytes(kubo: Any) -> None:
    # Ranges from 1 MiB on go over HTTP/1.0 (no 4 KiB chunk framing); shorter ones over
    # the pooled HTTP/1.1 session. Both are leaf-verified the same way.
    data = os.urandom((5 << 20) + 12345)
    async with await KuboStorage.connect(kubo.api_url) as store:
        cid = (await store.add(data)).cid
        for offset, length in ((0, None), (1, 1 << 20), (262_143, 2), ((4 << 20) - 7, 10**9)):
            got = b"".join([p async for p in store.cat(cid, offset=offset, length=length)])
            stop = len(data) if length is None else offset + length
            assert got == data[offset:stop]
