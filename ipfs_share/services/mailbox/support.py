"""What every side of the mailbox service shares: its logger, a block fetch with a
deadline, and running jobs a bounded number at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable

from ipfs_share.errors import NotFoundError
from ipfs_share.storage.base import Storage

log = logging.getLogger("ipfs_share.mailbox")

FETCH_TIMEOUT = 20.0
CONCURRENCY = 16  # blocks stored or fetched at once, mailboxes synced at once


async def _fetch(storage: Storage, cid: str) -> bytes:
    try:
        return await asyncio.wait_for(storage.block_get(cid), FETCH_TIMEOUT)
    except TimeoutError:
        raise NotFoundError(
            f"the block {cid} could not be fetched in {FETCH_TIMEOUT:.0f} s",
            hint="check the nodes are connected and the sender's node is online",
        ) from None


async def _bounded(jobs: Iterable[Awaitable[None]], limit: int = CONCURRENCY) -> None:
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
