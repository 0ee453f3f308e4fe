"""Inbox sync: 10,000 capsules from one sender, then a sync after one more.

A fresh local Kubo node holds both ends. The sender's chain is built with the formats
API and stored directly (this measures sync, not send): 10,000 real capsules (signed,
wrapped for the recipient) and 10,000 signed entries, the head published with an IPNS
record signed by the mailbox key. The recipient then runs ``mesh.inbox.sync()`` as an
application would, acknowledgements included, with the storage's ``block_get`` wrapped
to count every block it reads.

Measured: the first sync (everything is new: 10,000 entries walked, 10,000 capsules
fetched and checked, 10,000 acknowledgements sent back in 10 entries); if a sender's
chain takes longer than its per-sync deadline (docs/spec/mailbox.md section 8) the first
sync reads part of it and the next ones go on from there: ``first_sync.syncs`` says how
many it took and ``seconds`` is the time until everything was delivered. Then a sync over
the verified chain (nothing new: no entry is read), three rounds of "append one entry,
sync" (the best time is kept, the block counts must all be equal), and the same "+1" sync
against a sender whose chain has 10 entries: a sync that reads O(new) blocks reads as
many blocks behind 10 entries as behind 10,000.

Targets (issues 6 and 14): the first sync of 10,000 entries under 5 s; the "+1" sync reads
a constant number of blocks and takes < 5% of the first. The machine this runs on may be
shared: ``cpu_seconds`` is this process's CPU time for the first sync,
``kubo_cpu_seconds`` the node's (from /proc), and ``load_average`` the machine's load when
it ran. Set MAILBOX_BENCH_ENTRIES for another size (100000: the chain of issue 9; building
it takes minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.stream import FileKey
from ipfs_share.formats.capsule import build_capsule
from ipfs_share.formats.ipns import ipns_name
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import MailboxEntry, head_record, mailbox_key, make_entry
from ipfs_share.node.daemon import KuboDaemon
from ipfs_share.node.install import find_kubo, install_kubo
from ipfs_share.storage.kubo import KuboStorage

ENTRIES = int(os.environ.get("MAILBOX_BENCH_ENTRIES", "10000"))
SMALL = 10
PLUS_ONE_ROUNDS = 3
FAST: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}


class Counting:
    """Wraps a storage's block_get and block_get_local and counts the blocks asked for
    (``n``), and its follow_local calls (``resolves``: each one request, the node
    following up to 1,024 links on its own)."""

    def __init__(self, store: KuboStorage) -> None:
        self.n = 0
        self.resolves = 0
        inner: Callable[..., Awaitable[bytes]] = store.block_get
        inner_local: Callable[..., Awaitable[dict[str, bytes]]] = store.block_get_local
        inner_follow: Callable[..., Awaitable[str | None]] = store.follow_local

        async def follow_local(cid: str, field: str, hops: int) -> str | None:
            self.resolves += 1
            return await inner_follow(cid, field, hops)

        async def block_get(cid: str, **kw: Any) -> bytes:
            self.n += 1
            return await inner(cid, **kw)

        async def block_get_local(cids: Sequence[str]) -> dict[str, bytes]:
            self.n += len(cids)
            return await inner_local(cids)

        store.block_get = block_get  # type: ignore[method-assign]
        store.block_get_local = block_get_local  # type: ignore[method-assign]
        store.follow_local = follow_local  # type: ignore[method-assign]


class Chain:
    """A sender's chain to one recipient, made with the formats API and stored directly."""

    def __init__(self, store: KuboStorage, sender: IdentityKeys, recipient: IdentityKeys) -> None:
        self.store = store
        self.sender = sender
        self.recipient = recipient
        self.box = mailbox_key(
            sender.encryption, recipient.enc_public, sender=sender.did, recipient=recipient.did
        )
        self.name = ipns_name(self.box.public_key)
        self.head: MailboxEntry | None = None
        self.content = ""

    async def extend(self, n: int) -> None:
        if not self.content:
            self.content = (await self.store.add(b"bench content")).cid
        now = int(time.time())
        blocks: list[bytes] = []
        for _ in range(n):
            capsule = build_capsule(
                self.sender.signing,
                content=self.content,
                file_key=FileKey.generate(),
                recipients=[self.recipient.enc_public],
                created=now,
                expires=None,
            )
            self.head = make_entry(self.sender.signing, self.head, capsule=capsule.cid, sent=now)
            blocks += [capsule.data, self.head.data]
        gate = asyncio.Semaphore(32)

        async def put(data: bytes) -> None:
            async with gate:
                await self.store.block_put(data, codec="dag-cbor")

        await asyncio.gather(*(put(b) for b in blocks))
        assert self.head is not None
        record = head_record(
            self.box,
            self.head,
            validity=timedelta(days=1),
            ttl_seconds=10,
            now=datetime.now(UTC),
        )
        await self.store.ipns_put(self.name, record)


async def _person(api: str, home: Path, name: str) -> tuple[Mesh, IdentityKeys]:
    mesh = Mesh(await KuboStorage.connect(api), home, **FAST)
    await mesh.identity.create(name)
    await mesh.identity.publish()
    keys = await mesh.identity.unlock()
    await mesh.revocations.ensure_list(keys)  # an open (and a sync) checks the list
    return mesh, keys


async def _timed_sync(mesh: Mesh, counter: Counting, sender: str) -> tuple[float, int, int]:
    counter.n = 0
    start = time.perf_counter()
    new = await mesh.inbox.sync(senders=[sender])
    return time.perf_counter() - start, counter.n, len(new)


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _first_sync(mesh: Mesh, counter: Counting, sender: str, kubo: int) -> dict[str, Any]:
    """Sync until every entry is delivered (a long chain may take more than one sync)."""
    counter.n = counter.resolves = 0
    start, cpu, kubo_cpu = time.perf_counter(), time.process_time(), _cpu_of(kubo)
    load = os.getloadavg()[0]
    syncs = delivered = 0
    while delivered < ENTRIES and syncs < 100:
        delivered += len(await mesh.inbox.sync(senders=[sender]))
        syncs += 1
    seconds = time.perf_counter() - start
    assert delivered == ENTRIES, delivered
    return {
        "seconds": round(seconds, 3),
        "syncs": syncs,
        "blocks": counter.n,
        "resolves": counter.resolves,
        "per_entry_ms": round(seconds / ENTRIES * 1000, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "kubo_cpu_seconds": round(_cpu_of(kubo) - kubo_cpu, 3),
        "load_average": round(load, 2),
    }


async def _measure(api: str, tmp: Path, kubo: int) -> dict[str, Any]:
    alice, alice_keys = await _person(api, tmp / "alice", "alice")
    carol, carol_keys = await _person(api, tmp / "carol", "carol")
    bob, bob_keys = await _person(api, tmp / "bob", "bob")
    counter = Counting(bob.storage)  # type: ignore[arg-type]
    try:
        build = time.perf_counter()
        big = Chain(alice.storage, alice_keys, bob_keys)  # type: ignore[arg-type]
        await big.extend(ENTRIES)
        build = time.perf_counter() - build
        first = await _first_sync(bob, counter, alice_keys.did, kubo)
        first_s = first["seconds"]
        _, verified_blocks, none_new = await _timed_sync(bob, counter, alice_keys.did)
        assert none_new == 0
        plus: list[tuple[float, int]] = []
        for _ in range(PLUS_ONE_ROUNDS):
            await big.extend(1)
            s, blocks, new = await _timed_sync(bob, counter, alice_keys.did)
            assert new == 1
            plus.append((s, blocks))

        small = Chain(carol.storage, carol_keys, bob_keys)  # type: ignore[arg-type]
        await small.extend(SMALL)
        await _timed_sync(bob, counter, carol_keys.did)
        await small.extend(1)
        small_s, small_blocks, _ = await _timed_sync(bob, counter, carol_keys.did)
    finally:
        for mesh in (alice, carol, bob):
            await mesh.close()
    best = min(s for s, _ in plus)
    counts = sorted({b for _, b in plus} | {small_blocks})
    met = {  # each target on its own: a pass says all of them were
        "first_sync_under_5s": first_s < 5.0,  # the target is stated for 10,000 entries
        "plus_one_under_5_percent": best / first_s < 0.05,
        "plus_one_blocks_constant": len(counts) == 1 and verified_blocks <= 2,
    }
    return {
        "entries": ENTRIES,
        "build_and_store_seconds": round(build, 2),
        "first_sync": first,
        "sync_over_the_verified_chain": {"blocks": verified_blocks},
        "plus_one_sync": {
            "seconds_best": round(best, 4),
            "seconds_all": [round(s, 4) for s, _ in plus],
            "blocks": [b for _, b in plus],
        },
        "plus_one_behind_10_entries": {"seconds": round(small_s, 4), "blocks": small_blocks},
        "ratio": round(best / first_s, 5),
        "targets": {
            "first_sync_seconds": "< 5 (10,000 entries)",
            "ratio": "< 0.05",
            "blocks": "constant (same behind 10 and 10,000)",
        },
        "met": met,
        "pass": all(met.values()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    binary = find_kubo() or install_kubo()
    with tempfile.TemporaryDirectory(prefix="ipfs-share-bench-") as tmp:
        daemon = KuboDaemon(Path(tmp) / "repo", binary)
        daemon.init()
        daemon.start()
        try:
            node = daemon.wait_ready(timeout=60)
            result = asyncio.run(_measure(node.api_url, Path(tmp), node.pid))
        finally:
            daemon.stop()
    return {"bench": "mailbox", **result}


if __name__ == "__main__":
    import json

    print(json.dumps(run(argparse.Namespace()), indent=2))
