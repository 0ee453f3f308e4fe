"""What only the Kubo backend has: a network of nodes, a process that can die, versions."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.errors import (
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
    assert "docker compose" in info.value.hint and "node start" in info.value.hint


@pytest.mark.parametrize("version", ["0.39.9", "0.4.23", "nonsense", ""])
def test_too_old_or_unparseable_kubo_versions_are_refused(version: str) -> None:
    with pytest.raises(NodeVersionError) as info:
        check_kubo_version(version)
    assert "ipfs-share node install" in info.value.hint


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


async def test_killing_the_node_mid_add_is_a_typed_error(
    doomed_node: tuple[KuboDaemon, RunningNode],
) -> None:
    _, node = doomed_node
    sent = 0

    async def pieces() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(256):
            if sent == 8 << 20:
                os.kill(node.pid, signal.SIGKILL)
            sent += 1 << 20
            yield os.urandom(1 << 20)

    async with await KuboStorage.connect(node.api_url) as store:
        with pytest.raises(NodeError) as info:
            await store.add(pieces())
    assert isinstance(info.value, IpfsShareError) and info.value.hint


async def test_a_block_missing_everywhere_is_not_found_offline(kubo: Any) -> None:
    async with await KuboStorage.connect(kubo.api_url) as store:
        absent = cid_for(RAW, os.urandom(32))
        with pytest.raises(NodeError):
            await store.block_get(absent, offline=True)
