"""Blocks for feeds: a pure walk driven against async storage, and many blocks stored
a bounded number at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from ipfs_share.formats.signed import BlockWalk, check_block
from ipfs_share.storage.base import Storage

__all__ = ["CONCURRENCY", "bounded", "drive", "store_blocks"]

CONCURRENCY = 16  # blocks stored or fetched at once
_T = TypeVar("_T")


async def drive(walk: BlockWalk[_T], get_block: Callable[[str], Awaitable[bytes]]) -> _T:
    """Run a pure DAG walk against async storage, checking every block against its CID."""
    try:
        cid = next(walk)
        while True:
            cid = walk.send(check_block(cid, await get_block(cid)))
    except StopIteration as done:
        result: _T = done.value
        return result


async def bounded(jobs: Iterable[Awaitable[None]], limit: int = CONCURRENCY) -> None:
    """Run ``jobs`` at most ``limit`` at a time; the first error cancels the rest and is
    raised as itself (not wrapped in an ExceptionGroup: callers match typed errors)."""
    gate = asyncio.Semaphore(limit)

    async def gated(job: Awaitable[None]) -> None:
        async with gate:
            await job

    tasks = [asyncio.ensure_future(gated(j)) for j in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def store_blocks(storage: Storage, blocks: Iterable[bytes]) -> None:
    """Store dag-cbor blocks (the node's CID is checked against ours by the storage)."""

    async def put(data: bytes) -> None:
        await storage.block_put(data, codec="dag-cbor")

    await bounded(put(b) for b in blocks)
