"""The one timeout policy: every call to the node has a deadline, and a missed deadline is
:class:`~ipfs_share.errors.NodeTimeoutError` (``node_timeout``, a NodeError) naming the
operation and the node, never a bare ``TimeoutError``.

:class:`TimedStorage` wraps any storage with per-operation deadlines (:class:`Deadlines`);
:func:`within` gives a whole piece of work one deadline (refreshing a document, one
sender's share of a sync) and turns its expiry into the same error. Services use these two
and nothing else: no ``asyncio.wait_for`` of their own.

Streams (``add``, ``cat``, ``pubsub_subscribe``) pass through: a long transfer is not a
slow answer, and the backends time out a stalled read themselves.

>>> import asyncio, tempfile
>>> from ipfs_share.storage.embedded import EmbeddedStorage
>>> async def demo() -> str:
...     async with TimedStorage(EmbeddedStorage(tempfile.mkdtemp())) as store:
...         try:
...             async with within(0.01, "waiting for nothing", store):
...                 await asyncio.sleep(1)
...         except NodeTimeoutError as exc:
...             return exc.code
>>> asyncio.run(demo())
'node_timeout'
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

from ipfs_share.errors import NodeTimeoutError
from ipfs_share.storage.base import (
    AddResult,
    Backend,
    BlockCodec,
    ByteSource,
    NodeCapabilities,
    NodeInfo,
    ProgressCallback,
    PubsubMessage,
    Storage,
)

__all__ = ["Deadlines", "TimedStorage", "innermost", "until", "within"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds each kind of call may take. A block or a record that a node must find on
    the network takes the longest of the small calls; pins walk whole DAGs."""

    block: float = 20.0  # block_get, block_put, block_has, file_size
    record_get: float = 20.0  # ipns_get, ipns_resolve
    record_put: float = 60.0  # ipns_put (online, Kubo also puts the record to its peers)
    pin: float = 300.0  # pin_add, pin_update, pin_rm, pin_ls
    small: float = 30.0  # pubsub_publish, node_info, capabilities

    def searching(self, seconds: float) -> Deadlines:
        """These deadlines with ``seconds`` for the calls a node may answer by searching
        the network (a block, a record): how long to wait for what may not exist.

        >>> Deadlines().searching(5)
        Deadlines(block=5, record_get=5, record_put=60.0, pin=300.0, small=30.0)
        """
        return replace(self, block=seconds, record_get=seconds)


@asynccontextmanager
async def within(seconds: float, what: str, node: object = None) -> AsyncIterator[None]:
    """Give the block one deadline; past it, :class:`NodeTimeoutError` saying ``what``."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        on = f" on {node!r}" if node is not None else ""
        raise NodeTimeoutError(f"{what}{on}: no answer in {seconds:g} s") from None


@asynccontextmanager
async def until(deadline: float, what: str, node: object = None) -> AsyncIterator[None]:
    """Like :func:`within`, to an instant of the event loop's clock (a deadline shared by
    several pieces of work)."""
    try:
        async with asyncio.timeout_at(deadline):
            yield
    except TimeoutError:
        on = f" on {node!r}" if node is not None else ""
        raise NodeTimeoutError(f"{what}{on}: past its deadline") from None


class TimedStorage:
    """``storage`` with :class:`Deadlines` on every call that is not a stream."""

    def __init__(self, storage: Storage, deadlines: Deadlines | None = None) -> None:
        self.inner: Storage = storage.inner if isinstance(storage, TimedStorage) else storage
        self.deadlines = deadlines or Deadlines()

    def __repr__(self) -> str:
        return repr(self.inner)

    @property
    def backend(self) -> Backend:
        return self.inner.backend

    async def _timed(self, seconds: float, what: str, call: Awaitable[_T]) -> _T:
        # asyncio.timeout directly (not within(): a generator per call costs, at one call
        # a block, a share of a sync's CPU).
        try:
            async with asyncio.timeout(seconds):
                return await call
        except TimeoutError:
            raise NodeTimeoutError(
                f"{what} on {self.inner!r}: no answer in {seconds:g} s"
            ) from None

    async def close(self) -> None:
        await self.inner.close()

    async def __aenter__(self) -> TimedStorage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- blocks ---------------------------------------------------------------------------
    async def block_put(self, data: bytes, *, codec: BlockCodec = "raw", pin: bool = False) -> str:
        d = self.deadlines.block
        return await self._timed(d, "block/put", self.inner.block_put(data, codec=codec, pin=pin))

    async def block_get(self, cid: str) -> bytes:
        return await self._timed(
            self.deadlines.block, f"block/get {cid}", self.inner.block_get(cid)
        )

    async def block_get_local(self, cids: Sequence[str]) -> dict[str, bytes]:
        return await self._timed(
            self.deadlines.block,
            f"block/get of {len(cids)} blocks",
            self.inner.block_get_local(cids),
        )

    async def follow_local(self, cid: str, field: str, hops: int) -> str | None:
        return await self._timed(
            self.deadlines.block,
            f"dag/resolve {cid} ({hops} x {field})",
            self.inner.follow_local(cid, field, hops),
        )

    async def block_has(self, cid: str) -> bool:
        return await self._timed(
            self.deadlines.block, f"block/stat {cid}", self.inner.block_has(cid)
        )

    # -- files ----------------------------------------------------------------------------
    async def add(
        self,
        source: ByteSource,
        *,
        pin: bool = True,
        progress: ProgressCallback | None = None,
        size: int | None = None,
        verify: bool = True,
    ) -> AddResult:
        return await self.inner.add(source, pin=pin, progress=progress, size=size, verify=verify)

    def cat(
        self, cid: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes | memoryview]:
        return self.inner.cat(cid, offset=offset, length=length)

    async def file_size(self, cid: str) -> int:
        return await self._timed(self.deadlines.block, f"size of {cid}", self.inner.file_size(cid))

    # -- pins -----------------------------------------------------------------------------
    async def pin_add(self, cid: str, *, recursive: bool = True) -> None:
        call = self.inner.pin_add(cid, recursive=recursive)
        await self._timed(self.deadlines.pin, f"pin/add {cid}", call)

    async def pin_update(self, old: str, new: str, *, unpin: bool = True) -> None:
        call = self.inner.pin_update(old, new, unpin=unpin)
        await self._timed(self.deadlines.pin, f"pin/update {old} {new}", call)

    async def pin_rm(self, cid: str) -> None:
        await self._timed(self.deadlines.pin, f"pin/rm {cid}", self.inner.pin_rm(cid))

    async def pin_ls(self) -> frozenset[str]:
        return await self._timed(self.deadlines.pin, "pin/ls", self.inner.pin_ls())

    # -- IPNS -----------------------------------------------------------------------------
    async def ipns_put(self, name: str, record: bytes, *, renew: bool = False) -> None:
        call = self.inner.ipns_put(name, record, renew=renew)
        await self._timed(self.deadlines.record_put, f"name/put {name}", call)

    async def ipns_get(self, name: str) -> bytes:
        call = self.inner.ipns_get(name)
        return await self._timed(self.deadlines.record_get, f"name/get {name}", call)

    async def ipns_resolve(self, name: str, *, nocache: bool = True) -> str:
        call = self.inner.ipns_resolve(name, nocache=nocache)
        return await self._timed(self.deadlines.record_get, f"name/resolve {name}", call)

    # -- pubsub ---------------------------------------------------------------------------
    async def pubsub_publish(self, topic: str, data: bytes) -> None:
        call = self.inner.pubsub_publish(topic, data)
        await self._timed(self.deadlines.small, "pubsub/pub", call)

    def pubsub_subscribe(
        self, topic: str
    ) -> AbstractAsyncContextManager[AsyncIterator[PubsubMessage]]:
        return self.inner.pubsub_subscribe(topic)

    # -- the node -------------------------------------------------------------------------
    async def node_info(self) -> NodeInfo:
        return await self._timed(self.deadlines.small, "id", self.inner.node_info())

    async def capabilities(self) -> NodeCapabilities:
        return await self._timed(self.deadlines.small, "capabilities", self.inner.capabilities())


def innermost(storage: Storage) -> Storage:
    """The storage a :class:`TimedStorage` wraps (or ``storage`` itself): for asking what
    a backend can do beyond the protocol, such as a cluster's placements."""
    return storage.inner if isinstance(storage, TimedStorage) else storage
