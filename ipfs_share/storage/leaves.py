"""A stream of a file's raw leaves, checked against their CIDs before any byte is released.

A node's ``cat`` is fast but only as honest as the node. The reader knows the CID of every
raw leaf in the range it wants (from the DAG's inner nodes, each fetched and hashed), so it
can take the leaves' bytes in one fast stream and hash each leaf against its CID itself:
:func:`verified_leaves` does that in batches of about 4 MiB, hashing one batch on a worker
thread (hashlib drops the GIL) while the caller works on the batch before (an open
decrypts it). A batch is released only once every digest in it matched, so no unverified
byte ever leaves; the bytes are released as views of the stream's own buffers (no copy).

>>> import asyncio, hashlib
>>> from ipfs_share.formats.cid import RAW, cid_for
>>> blocks = [b"a" * 5, b"b" * 3]
>>> leaves = [Leaf.of(cid_for(RAW, b), i * 5, len(b)) for i, b in enumerate(blocks)]
>>> async def stream():
...     yield b"aaaa"
...     yield b"abbb"
>>> async def demo() -> bytes:
...     return b"".join([p async for p in verified_leaves(stream(), leaves, 2, 7)])
>>> asyncio.run(demo())
b'aaabb'
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from ipfs_share.errors import IntegrityError, StreamTruncatedError
from ipfs_share.formats.cid import parse_cid

__all__ = ["BATCH", "Leaf", "verified_leaves"]

BATCH = 4 * 1024 * 1024  # leaf bytes hashed per worker-thread call


@dataclass(frozen=True, slots=True)
class Leaf:
    """A raw leaf of the file: its CID (and the SHA-256 digest in it), where it starts in
    the file, its size."""

    cid: str
    digest: bytes
    start: int
    size: int

    @classmethod
    def of(cls, cid: str, start: int, size: int) -> Leaf:
        parsed = parse_cid(cid)
        if parsed.hash_code != 0x12:
            raise IntegrityError(f"cat: expected a sha2-256 leaf CID, found {cid}")
        return cls(cid, parsed.digest, start, size)


class _Batch:
    """Consecutive whole leaves and the stream's views that hold them, in order."""

    __slots__ = ("leaves", "nbytes", "views")

    def __init__(self) -> None:
        self.views: list[memoryview] = []
        self.leaves: list[Leaf] = []
        self.nbytes = 0

    def digests(self) -> list[bytes]:
        """SHA-256 of each leaf, fed from the views it spans (no joining copy)."""
        out = []
        views = iter(self.views)
        view = memoryview(b"")
        for leaf in self.leaves:
            h, need = hashlib.sha256(), leaf.size
            while need:
                if not view:
                    view = next(views)
                part, view = view[:need], view[need:]
                h.update(part)
                need -= len(part)
            out.append(h.digest())
        return out


async def verified_leaves(
    stream: AsyncIterable[bytes | memoryview], leaves: list[Leaf], start: int, end: int
) -> AsyncIterator[memoryview]:
    """The bytes ``start:end`` of the file, from ``stream``: the concatenated bytes of
    ``leaves`` (contiguous, in order, covering ``start:end``), each leaf hashed against its
    CID before any of its bytes are yielded. :class:`IntegrityError` if one does not match;
    :class:`StreamTruncatedError` if the stream holds more or fewer bytes than the leaves."""
    batch, pending = _Batch(), _Batch()
    hashing: asyncio.Future[list[bytes]] | None = None
    pos = leaves[0].start if leaves else start  # file offset of the next byte in the stream
    index, left = 0, leaves[0].size if leaves else 0  # the leaf being filled, bytes it lacks
    async for chunk in stream:
        view = memoryview(chunk)
        while view:
            if index == len(leaves):
                raise StreamTruncatedError("cat: the node sent more bytes than the range holds")
            part = view[:left]
            view = view[left:]
            batch.views.append(part)
            left -= len(part)
            pos += len(part)
            if left:
                continue
            batch.leaves.append(leaves[index])
            batch.nbytes += leaves[index].size
            index += 1
            left = leaves[index].size if index < len(leaves) else 0
            if batch.nbytes >= BATCH:
                started = asyncio.ensure_future(asyncio.to_thread(batch.digests))
                if hashing is not None:
                    for piece in _released(await hashing, pending, start, end):
                        yield piece
                hashing, pending, batch = started, batch, _Batch()
    if index < len(leaves):
        raise StreamTruncatedError(f"cat: the stream ended at byte {pos} of the file, before {end}")
    if hashing is not None:
        for piece in _released(await hashing, pending, start, end):
            yield piece
    if batch.leaves:
        for piece in _released(await asyncio.to_thread(batch.digests), batch, start, end):
            yield piece


def _released(digests: list[bytes], batch: _Batch, start: int, end: int) -> list[memoryview]:
    """The batch's views, trimmed to ``start:end``, once every leaf's digest matched."""
    for got, leaf in zip(digests, batch.leaves, strict=True):
        if got != leaf.digest:
            raise IntegrityError(f"cat: the node's bytes for {leaf.cid} do not hash to it")
    out = []
    pos = batch.leaves[0].start
    for view in batch.views:
        lo, hi = max(start - pos, 0), min(end - pos, len(view))
        if lo < hi:
            out.append(view[lo:hi])
        pos += len(view)
    return out
