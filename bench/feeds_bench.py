"""The feed reader over a long chain: a first read of N entries (100,000 by default: the
chain of issue 9), cut by deadlines as a sync is, then a read over the verified chain and
one after a single new entry, with every block read counted through a real storage
wrapper.

The chain is a mailbox-kind chain (signed entries linked by prev) stored as blocks on a
fresh local node whose block store does not fsync each block (Datastore ``sync: false``:
the build is not what is measured, the reads are). Measured: the first read's time, its
reads and how many deadlines cut it (every entry must be read about once, however often
it is cut); the reads of a read over the verified chain (target: 0) and after one more
entry (target: 1), the same behind 10 entries as behind N.

Set FEEDS_BENCH_ENTRIES for another N, FEEDS_BENCH_DEADLINE for the per-read deadline
(default 15 s, a sync's chain deadline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.formats.ipns import ipns_name, make_record
from ipfs_share.formats.mailbox import MAILBOX_FEED, MailboxEntry, make_entry
from ipfs_share.formats.signed import block_of, did_key
from ipfs_share.local.state import StateDB
from ipfs_share.node.daemon import KuboDaemon
from ipfs_share.node.install import find_kubo, install_kubo
from ipfs_share.services.feeds import Feed, FeedReader
from ipfs_share.storage.kubo import KuboStorage
from ipfs_share.storage.timed import TimedStorage

ENTRIES = int(os.environ.get("FEEDS_BENCH_ENTRIES", "100000"))
DEADLINE = float(os.environ.get("FEEDS_BENCH_DEADLINE", "15"))


class Counting(TimedStorage):
    def __init__(self, storage: Any) -> None:
        super().__init__(storage)
        self.reads = 0

    async def block_get(self, cid: str) -> bytes:
        self.reads += 1
        return await super().block_get(cid)


async def _extend(
    store: KuboStorage, key: SigningKey, head: MailboxEntry | None, n: int
) -> MailboxEntry:
    capsule = block_of({"capsule": "bench"}).cid
    gate = asyncio.Semaphore(32)
    pending: list[asyncio.Task[str]] = []

    async def put(data: bytes) -> str:
        async with gate:
            return await store.block_put(data, codec="dag-cbor")

    for i in range(n):
        head = make_entry(key, head, capsule=capsule, sent=1_800_000_000 + i)
        pending.append(asyncio.ensure_future(put(head.data)))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    assert head is not None
    record = make_record(
        key, f"/ipfs/{head.cid}", sequence=head.seq, validity=timedelta(days=1), ttl_seconds=1
    )
    await store.ipns_put(ipns_name(key.public_key), record)
    return head


async def _read_all(reader: FeedReader, feed: Feed) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    start, cuts = time.perf_counter(), 0
    while not (await reader.read(feed, deadline=loop.time() + DEADLINE)).complete:
        cuts += 1
    return time.perf_counter() - start, cuts


async def _measure(api: str, tmp: Path) -> dict[str, Any]:
    store = await KuboStorage.connect(api)
    out: dict[str, Any] = {"entries": ENTRIES, "deadline_seconds": DEADLINE}
    try:
        for label, n in (("long", ENTRIES), ("short", 10)):
            key = SigningKey.generate()
            build = time.perf_counter()
            head = await _extend(store, key, None, n)
            build = time.perf_counter() - build
            counted = Counting(store)
            reader = FeedReader(counted, StateDB(tmp / label))
            feed = Feed(MAILBOX_FEED, ipns_name(key.public_key), did_key(key.public_key))
            seconds, cuts = await _read_all(reader, feed)
            first = counted.reads
            counted.reads = 0
            await reader.read(feed)
            verified = counted.reads
            await _extend(store, key, head, 1)
            counted.reads = 0
            await reader.read(feed)
            out[label] = {
                "build_seconds": round(build, 1),
                "first_read": {
                    "seconds": round(seconds, 2),
                    "per_entry_ms": round(seconds / n * 1000, 3),
                    "reads": first,
                    "deadline_cuts": cuts,
                },
                "read_over_the_verified_chain": {"reads": verified},
                "read_after_one_more": {"reads": counted.reads},
            }
    finally:
        await store.close()
    long, short = out["long"], out["short"]
    out["load_average"] = round(os.getloadavg()[0], 2)
    out["targets"] = {
        "first_read_reads": f"about {ENTRIES} (at most one more per deadline cut)",
        "read_over_the_verified_chain": 0,
        "read_after_one_more": "1, the same behind 10 entries",
    }
    out["pass"] = (
        long["first_read"]["reads"] <= ENTRIES + long["first_read"]["deadline_cuts"] + 1
        and long["read_over_the_verified_chain"]["reads"] == 0
        and long["read_after_one_more"]["reads"] == short["read_after_one_more"]["reads"] == 1
    )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    binary = find_kubo() or install_kubo()
    with tempfile.TemporaryDirectory(prefix="ipfs-share-bench-") as tmp:
        daemon = KuboDaemon(Path(tmp) / "repo", binary)
        daemon.init()
        _no_block_fsync(Path(tmp) / "repo")
        daemon.start()
        try:
            node = daemon.wait_ready(timeout=60)
            result = asyncio.run(_measure(node.api_url, Path(tmp)))
        finally:
            daemon.stop()
    return {"bench": "feeds", **result}


def _no_block_fsync(repo: Path) -> None:
    """Turn off the flatfs fsync of each block in a bench node's config (the build of the
    chain is not measured; it would take minutes on a disk that syncs every block)."""
    path = repo / "config"
    config = json.loads(path.read_text())

    def walk(spec: Any) -> None:
        if isinstance(spec, dict):
            if spec.get("type") == "flatfs":
                spec["sync"] = False
            for value in spec.values():
                walk(value)
        elif isinstance(spec, list):
            for value in spec:
                walk(value)

    walk(config.get("Datastore", {}).get("Spec", {}))
    path.write_text(json.dumps(config, indent=2))


if __name__ == "__main__":
    print(json.dumps(run(argparse.Namespace()), indent=2))
