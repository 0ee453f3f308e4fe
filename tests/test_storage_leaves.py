"""verified_leaves on its own: any chunking of the stream, any range, every leaf checked."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_share.errors import IntegrityError, StreamTruncatedError
from ipfs_share.formats.cid import RAW, cid_for
from ipfs_share.storage import leaves as leaves_module
from ipfs_share.storage.leaves import Leaf, verified_leaves

LEAF = 1000
DATA = os.urandom(7 * LEAF + 123)
LEAVES = [
    Leaf.of(cid_for(RAW, DATA[i : i + LEAF]), i, len(DATA[i : i + LEAF]))
    for i in range(0, len(DATA), LEAF)
]


def _read(stream: bytes, cuts: list[int], start: int, end: int, leaves: list[Leaf]) -> bytes:
    async def pieces() -> AsyncIterator[bytes]:
        pos = 0
        for cut in sorted(cuts):
            yield stream[pos:cut]
            pos = cut
        yield stream[pos:]

    async def go() -> bytes:
        return b"".join([p async for p in verified_leaves(pieces(), leaves, start, end)])

    return asyncio.run(go())


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(0, len(DATA)), max_size=12),
    first=st.integers(0, len(LEAVES) - 1),
    data=st.data(),
)
def test_any_chunking_any_range(cuts: list[int], first: int, data: st.DataObject) -> None:
    leaves = LEAVES[first : first + data.draw(st.integers(1, len(LEAVES) - first))]
    lo, hi = leaves[0].start, leaves[-1].start + leaves[-1].size
    start = data.draw(st.integers(lo, hi - 1))
    end = data.draw(st.integers(start + 1, hi))
    stream = DATA[lo:hi]
    cuts = [c for c in cuts if c <= len(stream)]
    assert _read(stream, cuts, start, end, leaves) == DATA[start:end]


def test_small_batches_still_check_every_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of one leaf each: a bit flipped in leaf 5 stops the stream after leaves 0-3
    # (leaf 4 is released only once leaf 5's batch has been hashed and checked).
    monkeypatch.setattr(leaves_module, "BATCH", 1)
    tampered = bytearray(DATA)
    tampered[5 * LEAF + 10] ^= 1
    got = bytearray()

    async def go() -> None:
        async def pieces() -> AsyncIterator[bytes]:
            yield bytes(tampered)

        async for p in verified_leaves(pieces(), LEAVES, 0, len(DATA)):
            got.extend(p)

    with pytest.raises(IntegrityError):
        asyncio.run(go())
    assert len(got) <= 5 * LEAF and DATA.startswith(bytes(got))


@pytest.mark.parametrize("stream", [DATA[:-1], DATA + b"!"])
def test_a_stream_of_the_wrong_length_fails(stream: bytes) -> None:
    with pytest.raises(StreamTruncatedError):
        _read(stream, [], 0, len(DATA), LEAVES)


def test_pieces_are_views_of_the_streams_buffers() -> None:
    async def go() -> list[memoryview]:
        async def pieces() -> AsyncIterator[bytes]:
            yield DATA

        return [p async for p in verified_leaves(pieces(), LEAVES, 0, len(DATA))]

    views = asyncio.run(go())
    assert all(isinstance(v, memoryview) and v.obj is DATA for v in views)
