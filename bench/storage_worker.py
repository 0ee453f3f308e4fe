"""One measured side of the storage bench, in its own process (so its peak RSS is its own).

    python -m bench.storage_worker API_URL FILE add      -> prints "CID SECONDS"
    python -m bench.storage_worker API_URL FILE cat CID  -> prints "BYTES SECONDS"

SECONDS is the operation alone, from the first request to the last byte: the interpreter's
start-up is not the storage layer's cost (the bench subtracts the ipfs CLI's start-up from
the plain side the same way).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator

from ipfs_share.storage.kubo import KuboStorage

PIECE = 1 << 20


async def pieces(path: str) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:  # noqa: ASYNC230 - page-cache reads of 1 MiB; see the note in bench docs
        while piece := f.read(PIECE):
            yield piece


async def main(api: str, path: str, op: str, cid: str | None) -> None:
    async with await KuboStorage.connect(api) as store:
        start = time.perf_counter()
        if op == "add":
            # The size is known (a file), as it is for most callers; the CID is verified
            # locally (the storage layer's default), so this is the full cost of an add.
            size = os.stat(path).st_size
            result = (await store.add(pieces(path), size=size)).cid
        else:
            assert cid is not None
            n = 0
            async for chunk in store.cat(cid):
                n += len(chunk)
            result = str(n)
        print(result, time.perf_counter() - start)


if __name__ == "__main__":
    api, path, op, *rest = sys.argv[1:]
    asyncio.run(main(api, path, op, rest[0] if rest else None))
