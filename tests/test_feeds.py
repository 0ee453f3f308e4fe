"""The feed writer and reader (services/feeds) on a real Kubo node: compare-and-set across
processes, progress kept across deadlines (every entry fetched once, counted through a real
storage wrapper), rollbacks and forks served by a node refused for every kind, a home that
lost its state continuing its feeds from the network, and the timeout policy."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import (
    FeedForkError,
    FeedRollbackError,
    FormatError,
    NodeTimeoutError,
    ShareRevokedError,
)
from ipfs_share.formats.feed import Mark
from ipfs_share.formats.identity_doc import IDENTITY_FEED, make_identity_document, revocation_key
from ipfs_share.formats.ipns import ipns_name, make_record, verify_record
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import MAILBOX_FEED, MailboxEntry, make_entry
from ipfs_share.formats.signed import block_of, did_key
from ipfs_share.local.state import DB_FILE, StateDB
from ipfs_share.node.daemon import RunningNode
from ipfs_share.services.feeds import Batch, Feed, FeedReader, FeedWriter, ahead
from ipfs_share.storage.kubo import KuboStorage
from ipfs_share.storage.timed import Deadlines, TimedStorage

FAST: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}


class Counting(TimedStorage):
    """A real storage with a counter on the blocks read through it (one by one, and many
    at once: ``ahead`` of them)."""

    def __init__(self, storage: Any) -> None:
        super().__init__(storage)
        self.reads = 0
        self.ahead = 0

    async def block_get(self, cid: str) -> bytes:
        self.reads += 1
        return await super().block_get(cid)

    async def block_get_local(self, cids: Sequence[str]) -> dict[str, bytes]:
        self.reads += len(cids)
        self.ahead += len(cids)
        return await super().block_get_local(cids)


@pytest.fixture
async def store(kubo: RunningNode) -> AsyncIterator[KuboStorage]:
    async with await KuboStorage.connect(kubo.api_url) as kubo_store:
        yield kubo_store


async def publish_chain(
    store: KuboStorage, key: SigningKey, n: int, start: MailboxEntry | None = None
) -> list[MailboxEntry]:
    """A mailbox-kind chain of ``n`` entries stored as blocks, its head under the key's name."""
    capsule = block_of({"capsule": 1}).cid
    entries: list[MailboxEntry] = []
    previous = start
    for i in range(n):
        previous = make_entry(key, previous, capsule=capsule, sent=1_800_000_000 + i)
        entries.append(previous)
    gate = asyncio.Semaphore(32)

    async def put(data: bytes) -> None:
        async with gate:
            await store.block_put(data, codec="dag-cbor")

    await asyncio.gather(*(put(e.data) for e in entries))
    head = entries[-1]
    record = make_record(
        key, f"/ipfs/{head.cid}", sequence=head.seq, validity=timedelta(days=1), ttl_seconds=1
    )
    await store.ipns_put(ipns_name(key.public_key), record)
    return entries


def chain_feed(key: SigningKey) -> Feed:
    return Feed(MAILBOX_FEED, ipns_name(key.public_key), did_key(key.public_key))


async def test_a_long_read_cut_by_deadlines_fetches_every_entry_once(
    store: KuboStorage, tmp_path: Path
) -> None:
    key = SigningKey.generate()
    entries = await publish_chain(store, key, 1200)
    counted = Counting(store)
    reader = FeedReader(counted, StateDB(tmp_path), batch=150)
    feed = chain_feed(key)
    loop = asyncio.get_running_loop()
    cut = 0
    while True:
        update = await reader.read(feed, deadline=loop.time() + 0.2)
        if update.complete:
            break
        cut += 1
        assert cut < 500
    assert cut >= 1  # the deadline did cut it, and it went on from there
    assert [e.seq for e in update.new] == list(range(1200))
    # Each entry once, fetched ahead (what a cut read fetched and did not walk is kept
    # for the next), plus at most what was in flight at each cut: one round of the
    # fetch ahead and the walk's own block.
    assert counted.ahead >= 1000
    assert counted.reads <= 1200 + cut * (ahead.RUNS + 1)
    counted.reads = 0
    again = await reader.read(feed)  # over the verified chain: nothing read
    assert again.new == () and counted.reads == 0
    await publish_chain(store, key, 1, start=entries[-1])
    plus = await reader.read(feed)
    assert [e.seq for e in plus.new] == [1200] and counted.reads == 1


async def test_rollback_and_fork_served_by_a_node_are_refused_and_change_nothing(
    store: KuboStorage, kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    key = SigningKey.generate()
    entries = await publish_chain(store, key, 6)
    feed = chain_feed(key)
    state = StateDB(tmp_path)
    reader = FeedReader(store, state, stale_retry=0.01)
    assert len((await reader.read(feed)).new) == 6
    mark = state.feeds.read(feed.name).mark  # type: ignore[union-attr]
    # Another node, which only ever saw seq 3, answers this home: a rollback.
    async with await KuboStorage.connect(kubo_pair[0].api_url) as liar:
        for e in entries[:4]:
            await liar.block_put(e.data, codec="dag-cbor")
        old = make_record(
            key, f"/ipfs/{entries[3].cid}", sequence=3, validity=timedelta(days=1), ttl_seconds=1
        )
        await liar.ipns_put(feed.name, old)
        with pytest.raises(FeedRollbackError):
            await FeedReader(liar, state, stale_retry=0.01).read(feed)
    # The owner signs another seq 5 after the same seq 4 (two devices, or a lie): a fork.
    twin = make_entry(key, entries[4], capsule=block_of({"x": 2}).cid, sent=9)
    await store.block_put(twin.data, codec="dag-cbor")
    later = make_record(
        key, f"/ipfs/{twin.cid}", sequence=5, validity=timedelta(days=2), ttl_seconds=1
    )
    await store.ipns_put(feed.name, later, renew=True)
    with pytest.raises(FeedForkError):
        await reader.read(feed)
    assert state.feeds.read(feed.name).mark == mark  # type: ignore[union-attr]
    kept = state.records.get(feed.name)
    assert kept is not None and kept.seq == 5 and kept.record != later  # the honest one


async def test_entries_the_feeds_signer_did_not_sign_are_refused_and_change_nothing(
    store: KuboStorage, tmp_path: Path
) -> None:
    """Whoever holds the name's key (both ends hold a mailbox's) points the feed at an
    entry that names the sender but carries another key's signature: as the head, then
    below a head the sender did sign. The reader verifies every block it fetches with the
    feed's signer; the mark stays, nothing is staged."""
    from ipfs_share.crypto.labels import LABEL_MAILBOX_ENTRY
    from ipfs_share.errors import SignatureInvalidError
    from ipfs_share.formats import dagcbor
    from ipfs_share.formats.dagcbor import Link

    alice, mallory, box = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    feed = Feed(MAILBOX_FEED, ipns_name(box.public_key), did_key(alice.public_key))
    capsule = block_of({"capsule": 1}).cid

    def forged(previous: MailboxEntry) -> MailboxEntry:  # claims alice, signed by mallory
        body = {
            "v": 1,
            "seq": previous.seq + 1,
            "prev": Link(previous.cid),
            "sender": feed.signer,
            "sent": 1,
            "capsule": Link(capsule),
        }
        body["sig"] = mallory.sign(LABEL_MAILBOX_ENTRY + dagcbor.encode(body))
        entry: MailboxEntry = MAILBOX_FEED.read(dagcbor.encode(body), None).value
        return entry

    async def point_at(*entries: MailboxEntry) -> None:
        for e in entries:
            await store.block_put(e.data, codec="dag-cbor")
        head = entries[-1]
        record = make_record(
            box, f"/ipfs/{head.cid}", sequence=head.seq, validity=timedelta(days=1), ttl_seconds=1
        )
        await store.ipns_put(feed.name, record)

    state = StateDB(tmp_path)
    reader = FeedReader(store, state)
    good = [make_entry(alice, None, capsule=capsule, sent=1)]
    good.append(make_entry(alice, good[0], capsule=capsule, sent=1))
    await point_at(*good)
    assert len((await reader.read(feed)).new) == 2
    bad = forged(good[-1])
    await point_at(bad)  # the head
    with pytest.raises(SignatureInvalidError):
        await reader.read(feed)
    await point_at(bad, make_entry(alice, bad, capsule=capsule, sent=1))  # below the head
    with pytest.raises(SignatureInvalidError):
        await reader.read(feed)
    after = state.feeds.read(feed.name)
    assert after is not None and after.mark == Mark.of(good[-1]) and after.segment is None
    assert state.feeds.staged(feed.name) == []


@pytest.mark.parametrize("bad", ["another_signer", "gap", None])
async def test_a_long_chain_fetched_ahead_is_verified_entry_by_entry(
    store: KuboStorage, tmp_path: Path, bad: str | None
) -> None:
    """A long backlog is fetched ahead of the walk, many entries at once: an entry deep
    below the head signed by another key, or a gap there, is refused all the same, and
    nothing is kept; the honest chain reads whole, every entry once."""
    from ipfs_share.crypto.labels import LABEL_MAILBOX_ENTRY
    from ipfs_share.errors import ChainInvalidError, SignatureInvalidError
    from ipfs_share.formats import dagcbor
    from ipfs_share.formats.dagcbor import Link

    alice, mallory = SigningKey.generate(), SigningKey.generate()
    feed = chain_feed(alice)
    n = 3 * ahead.SPAN + 40
    base = await publish_chain(store, alice, 90)
    if bad is None:
        middle = make_entry(alice, base[-1], capsule=block_of({"capsule": 1}).cid, sent=1)
    else:
        body = {
            "v": 1,
            "seq": base[-1].seq + (2 if bad == "gap" else 1),
            "prev": Link(base[-1].cid),
            "sender": feed.signer,
            "sent": 1,
            "capsule": Link(block_of({"capsule": 1}).cid),
        }
        key = mallory if bad == "another_signer" else alice
        body["sig"] = key.sign(LABEL_MAILBOX_ENTRY + dagcbor.encode(body))
        middle = MAILBOX_FEED.read(dagcbor.encode(body), None).value
    await store.block_put(middle.data, codec="dag-cbor")
    top = await publish_chain(store, alice, n - 91, start=middle)  # honest above it
    counted = Counting(store)
    state = StateDB(tmp_path)
    reader = FeedReader(counted, state, batch=50)
    if bad is None:
        update = await reader.read(feed)
        assert [e.cid for e in update.new] == [e.cid for e in [*base, middle, *top]]
        assert counted.ahead >= n - 2 * ahead.SPAN and counted.reads == n  # each once
        return
    expected = SignatureInvalidError if bad == "another_signer" else ChainInvalidError
    with pytest.raises(expected):
        await reader.read(feed)
    assert counted.ahead >= n - 91  # the path under test: blocks fetched ahead
    kept = state.feeds.read(feed.name)  # no mark, no progress kept
    assert kept is None or (kept.mark is None and kept.segment is None)
    assert state.feeds.staged(feed.name) == []


def test_entries_held_ahead_for_one_feed_are_verified_again_for_another() -> None:
    """A reader keeps the entries it verified ahead (for its next read) by CID, with the
    signers they were verified under: the walk of a feed with other signers that reaches
    the same block does not take them (it fetches and verifies the block itself)."""
    from ipfs_share.formats.feed import Only

    alice = SigningKey.generate()
    entry = make_entry(alice, None, capsule=block_of({"capsule": 1}).cid, sent=1)
    verified = MAILBOX_FEED.read(entry.data, Only(did_key(alice.public_key)))
    held = ahead.Held()
    held.put(verified, Only(did_key(alice.public_key)))
    assert held.get(entry.cid, Only(did_key(SigningKey.generate().public_key))) is None
    assert held.get(entry.cid, Only(did_key(alice.public_key))) is verified


async def test_a_chain_not_on_the_readers_node_is_walked_one_entry_after_the_other(
    kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    """The sender's chain is only on the other node: the reader's node holds none of it,
    so nothing is fetched ahead, and the walk fetches every entry over the network."""
    key = SigningKey.generate()
    async with await KuboStorage.connect(kubo_pair[0].api_url) as theirs:
        entries = await publish_chain(theirs, key, 2 * ahead.SPAN + 10)
        record = await theirs.ipns_get(chain_feed(key).name)
    async with await KuboStorage.connect(kubo_pair[1].api_url) as ours:
        counted = Counting(ours)
        update = await FeedReader(counted, StateDB(tmp_path)).read(chain_feed(key), record=record)
        assert [e.cid for e in update.new] == [e.cid for e in entries]
        assert counted.reads - counted.ahead == len(entries)  # each one by one


WRITER = """
import asyncio, sys
from pathlib import Path
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.formats.identity_doc import IDENTITY_FEED, make_identity_document
from ipfs_share.formats.ipns import ipns_name
from ipfs_share.formats.signed import did_key
from ipfs_share.local.state import StateDB
from ipfs_share.services.feeds import Batch, Feed, FeedWriter
from ipfs_share.storage.kubo import KuboStorage

async def main(api, home, seed):
    key = SigningKey.from_seed(bytes.fromhex(seed))
    enc = EncryptionKey(b"\\x02" * 32).public_key
    feed = Feed(IDENTITY_FEED, ipns_name(key.public_key), did_key(key.public_key))

    async def next_doc(prev):
        doc = make_identity_document(key, enc, seq=0 if prev is None else prev.seq + 1, created=1)
        return Batch([IDENTITY_FEED.read(doc.data, None)])

    async with await KuboStorage.connect(api) as store:
        writer = FeedWriter(store, StateDB(Path(home)))
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for _ in range(10):
            await writer.append(feed, next_doc, adopt=False)

asyncio.run(main(*sys.argv[1:]))
"""


def test_two_processes_appending_to_one_feed_never_fork_it(
    kubo: RunningNode, tmp_path: Path
) -> None:
    key = SigningKey.generate()
    StateDB(tmp_path).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, kubo.api_url, str(tmp_path), key.seed_bytes().hex()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    head = StateDB(tmp_path).feeds.own(ipns_name(key.public_key))
    assert head is not None and head.seq == 19  # 20 appends, one history


def lose_state(home: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{home / DB_FILE}{suffix}").unlink(missing_ok=True)


async def test_a_recovered_home_continues_its_feeds_from_the_network(
    kubo: RunningNode, tmp_path: Path
) -> None:
    home = tmp_path / "alice"
    alice = Mesh(await KuboStorage.connect(kubo.api_url), home, **FAST)
    await alice.identity.create("alice")
    await alice.identity.publish()
    await alice.identity.publish()
    keys = await alice.identity.unlock()
    first = block_of({"capsule": "revoked before the loss"}).cid
    await alice.revocations.revoke(keys, [first])
    await alice.close()
    lose_state(home)
    StateDB(home, recover=True).close()
    alice = Mesh(await KuboStorage.connect(kubo.api_url), home, **FAST)
    assert (await alice.identity.publish()).seq == 2  # not 0: readers would see a rollback
    keys = await alice.identity.unlock()
    later = block_of({"capsule": "revoked after"}).cid
    head = await alice.revocations.revoke(keys, [later])
    assert (head.seq, head.count) == (1, 2)  # the old list goes on: nothing is un-revoked
    await alice.close()
    reader = Mesh(await KuboStorage.connect(kubo.api_url), tmp_path / "reader", **FAST)
    doc = await reader.identity.document(keys.did)
    for capsule in (first, later):
        with pytest.raises(ShareRevokedError):
            await reader.revocations.check(keys.did, doc.revocations, capsule)
    await reader.close()


async def test_an_older_identity_document_is_a_rollback_and_a_twin_a_fork(
    store: KuboStorage, tmp_path: Path
) -> None:
    keys = IdentityKeys.generate()
    feed = Feed(IDENTITY_FEED, ipns_name(keys.signing.public_key), keys.did)
    reader = FeedReader(store, StateDB(tmp_path), stale_retry=0.01)

    async def serve(seq: int, created: int, *, renew: bool = False) -> None:
        doc = make_identity_document(keys.signing, keys.enc_public, seq=seq, created=created)
        await store.block_put(doc.data, codec="dag-cbor")
        days = timedelta(days=1 + created)
        record = make_record(
            keys.signing, f"/ipfs/{doc.cid}", sequence=seq, validity=days, ttl_seconds=1
        )
        await store.ipns_put(feed.name, record, renew=renew)

    await serve(1, 0)
    assert (await reader.read(feed)).head.seq == 1  # type: ignore[union-attr]
    await serve(1, 5, renew=True)  # another document at seq 1, signed by the owner
    with pytest.raises(FeedForkError):
        await reader.read(feed)


async def test_the_revocation_list_refuses_a_rollback_on_open(
    kubo: RunningNode, kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    """A node that kept the issuer's older list (nothing revoked yet) answers a recipient
    who saw the newer one: the open fails closed, it never opens the revoked capsule. The
    node holds all the open needs, so nothing but the mark stands in the way."""
    alice = Mesh(await KuboStorage.connect(kubo.api_url), tmp_path / "alice", **FAST)
    bob = Mesh(await KuboStorage.connect(kubo.api_url), tmp_path / "bob", **FAST)
    for mesh, name in ((alice, "alice"), (bob, "bob")):
        await mesh.identity.create(name)
        await mesh.identity.publish()
    alice.identity.add_contact("bob", bob.identity.get().did)
    put = await alice.files.put("x", b"secret")
    assert put.cid.startswith("bafkrei")  # one raw block
    cap = await alice.share.file(put).with_("bob")
    keys = await alice.identity.unlock()
    list_name = ipns_name(revocation_key(keys.signing).public_key)
    before = await alice.storage.ipns_get(list_name)
    old_head = verify_record(list_name, before, now=datetime.now(UTC)).value[len("/ipfs/") :]
    assert await (await bob.share.open_capsule(cap.id)).read() == b"secret"
    await alice.share.revoke(cap.id)
    with pytest.raises(ShareRevokedError):
        await bob.share.open_capsule(cap.id)
    await bob.close()
    async with await KuboStorage.connect(kubo_pair[0].api_url) as liar:
        for cid in (cap.id, old_head):
            await liar.block_put(await alice.storage.block_get(cid), codec="dag-cbor")
        await liar.block_put(await alice.storage.block_get(put.cid), codec="raw")
        await liar.ipns_put(list_name, before)
        bob = Mesh(liar, tmp_path / "bob", **FAST)
        bob.revocations.reader.stale_retry = 0.01
        with pytest.raises(FeedRollbackError):
            await bob.share.open_capsule(cap.id)
    await alice.close()


# -- the timeout policy -------------------------------------------------------------------------


async def test_a_node_that_never_answers_is_a_typed_timeout_naming_the_call() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        store = TimedStorage(KuboStorage(f"http://127.0.0.1:{port}"), Deadlines(block=0.3))
        start = time.monotonic()
        with pytest.raises(NodeTimeoutError) as caught:
            await store.block_get(block_of(1).cid)
        assert time.monotonic() - start < 5
        assert caught.value.code == "node_timeout" and "block/get" in caught.value.message
        assert f"127.0.0.1:{port}" in caught.value.message and caught.value.hint
        await store.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_the_writer_refuses_entries_that_do_not_continue_the_head(
    store: KuboStorage, tmp_path: Path
) -> None:
    keys = IdentityKeys.generate()
    feed = Feed(IDENTITY_FEED, ipns_name(keys.signing.public_key), keys.did)
    writer = FeedWriter(store, StateDB(tmp_path))

    async def wrong(prev: Any) -> Batch:
        doc = make_identity_document(keys.signing, keys.enc_public, seq=5, created=1)
        return Batch([IDENTITY_FEED.read(doc.data, None)])

    with pytest.raises(FormatError, match="at seq 0"):
        await writer.append(feed, wrong, adopt=False)
    assert writer.head(feed) is None


async def test_a_head_found_only_in_an_expired_record_is_still_continued(
    tmp_path: Path,
) -> None:
    """The writer adopts what the network holds even past its end of validity: the record
    is authentic, and starting over at seq 0 would fork the feed for its readers."""
    from ipfs_share.storage.embedded import EmbeddedStorage

    keys = IdentityKeys.generate()
    feed = Feed(IDENTITY_FEED, ipns_name(keys.signing.public_key), keys.did)
    async with EmbeddedStorage(tmp_path / "store") as store:
        old = make_identity_document(keys.signing, keys.enc_public, seq=6, created=1)
        await store.block_put(old.data, codec="dag-cbor")
        record = make_record(
            keys.signing,
            f"/ipfs/{old.cid}",
            sequence=6,
            validity=datetime(2020, 1, 1, tzinfo=UTC),
            ttl_seconds=1,
            now=datetime(2019, 1, 1, tzinfo=UTC),
        )
        (store.root / "records" / feed.name).write_bytes(record)  # a node that kept it

        async def next_doc(prev: Any) -> Batch:
            assert prev is not None and prev.seq == 6
            doc = make_identity_document(keys.signing, keys.enc_public, seq=7, created=2)
            return Batch([IDENTITY_FEED.read(doc.data, None)])

        done = await FeedWriter(store, StateDB(tmp_path / "home")).append(feed, next_doc)
        assert done.head is not None and done.head.seq == 7
