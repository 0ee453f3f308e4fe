"""The measured side of the cluster bench, in its own process (its peak RSS is its own).

    python -m bench.cluster_worker REST KUBO HOME COPIES FILE  -> prints "CID SECONDS PEAK CPU"

``mesh.files.put`` of FILE (streamed, encrypted, added through the cluster with COPIES
copies, confirmed pinned, recorded) as the home's default identity, on the cluster whose
REST APIs are REST and whose peers' Kubo RPC APIs are KUBO (comma-separated each).
SECONDS is the put alone (connecting and start-up are not counted, as the bench takes
ipfs-cluster-ctl's start-up off the other side); PEAK is VmHWM; CPU is this process's CPU
seconds during the put.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from bench.share_worker import KDF, PASSPHRASE, peak_rss
from ipfs_share.client import connect


async def main(rest: str, kubo: str, home: str, copies: int, path: str) -> None:
    async with await connect(
        cluster=rest,
        cluster_kubo=kubo,
        replication=copies,
        home=home,
        passphrase=lambda _: PASSPHRASE,
        kdf=KDF,
    ) as mesh:
        start, cpu = time.perf_counter(), time.process_time()
        file = await mesh.files.put(Path(path).name, Path(path))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(file.cid, seconds, peak_rss(), cpu)


if __name__ == "__main__":
    rest, kubo, home, copies, path = sys.argv[1:]
    asyncio.run(main(rest, kubo, home, int(copies), path))
