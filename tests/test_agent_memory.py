"""What a running agent keeps per capsule, per sender and per stranger has a bound.

A real agent (in this process, so its structures can be counted) on a real Kubo node
takes capsules from alice and introductions from strangers, each with a fresh did. The
memos of CIDs and dids (formats/memo.py) hold only what was met within their ``ttl``
(shortened here from 60 s): after a pause and one more capsule they hold a fraction of
what the run met, and none of the strangers' dids. The capsules fetched ahead are all
taken, the event ring holds no more than its size, and one identity document is kept
per did.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from agentkit import person, running_agent, wait_for

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import encode_did_key
from ipfs_share.errors import ShareRevokedError
from ipfs_share.formats import cid, signed
from ipfs_share.formats.cid import DAG_CBOR, cid_for
from ipfs_share.formats.introduction import introduction_topic, make_introduction
from ipfs_share.formats.memo import Recent
from ipfs_share.local.state import StateDB
from ipfs_share.node.daemon import RunningNode
from ipfs_share.services.feeds import Feed, FeedReader
from ipfs_share.storage.kubo import KuboStorage

TTL = 0.5
MEMOS: list[Recent[object, object]] = [cid._b32, cid._parse_base32, signed._parse_did_key]  # type: ignore[list-item]


@pytest.fixture
def met() -> Iterator[set[object]]:
    """The memos with a short ttl; what they computed (every CID and did met) is recorded."""
    seen: set[object] = set()
    kept = [(m.ttl, m.__wrapped__) for m in MEMOS]
    for m in MEMOS:
        fn = m.__wrapped__

        def spy(key: object, fn: object = fn) -> object:
            seen.add(key)
            return fn(key)  # type: ignore[operator]

        m.__wrapped__, m.ttl = spy, TTL
        m.clear()
    try:
        yield seen
    finally:
        for m, (ttl, fn) in zip(MEMOS, kept, strict=True):
            m.__wrapped__, m.ttl = fn, ttl
            m.clear()


async def test_what_the_agent_keeps_per_capsule_and_stranger_is_bounded(
    kubo: RunningNode, tmp_path: Path, met: set[object]
) -> None:
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    bob.mesh.identity.add_contact("alice", alice.did)
    enc = bob.mesh.identity.keystore.get("bob").enc
    await bob.mesh.close()
    f = await alice.mesh.files.put("note.txt", b"bounded")
    topic = introduction_topic(bob.did)
    async with (
        running_agent(bob.home, kubo.api_url, resync=60.0) as agent,
        await KuboStorage.connect(kubo.api_url) as store,
    ):
        await wait_for(lambda: agent.watched(), 20, "bob's watches")
        await asyncio.sleep(0.5)

        async def send() -> None:
            capsule = await alice.mesh.share.file(f).with_("bob")
            await alice.mesh.share.send(capsule)

        async def received(n: int) -> None:
            await wait_for(lambda: agent.counts.capsules_received >= n, 20, f"{n} capsules")

        # A burst: capsules and strangers, each bringing CIDs and dids never seen again.
        strangers: set[str] = set()
        for i in range(8):
            await send()
            stranger = SigningKey.generate()
            strangers.add(encode_did_key(bytes(stranger.public_key)))
            message = make_introduction(stranger, bob.did, enc, sent=int(time.time()))
            await store.pubsub_publish(topic, message)
            await received(i + 1)
        assert len(met) >= 8 * 3  # several CIDs a capsule, a did a stranger
        handled = agent.mesh.introductions.counters.by_outcome
        await wait_for(lambda: handled.get("pending", 0) >= 8, 20, "8 introductions")

        # A pause longer than three ttls, then one more capsule: what the burst brought is gone.
        await asyncio.sleep(3 * TTL + 0.2)
        await send()
        await received(9)
        kept = sum(len(m) for m in MEMOS)
        assert kept < len(met) / 2, (kept, len(met))  # unbounded, they would keep all
        assert strangers <= met and not strangers & set(signed._parse_did_key.keys())

        reader = agent.mesh.inbox.reader
        assert len(reader._capsules) == 0  # every capsule fetched ahead was taken
        assert len(agent.bus._ring) <= agent.bus._ring.maxlen  # type: ignore[operator]
        assert set(agent.mesh.identity._documents) <= {alice.did, bob.did}  # one per did
    await alice.mesh.close()


async def test_reads_of_one_revocation_list_at_once_all_get_its_head(
    kubo: RunningNode, tmp_path: Path
) -> None:
    """A sync checking one capsule while an open checks another read the issuer's list at
    the same moment; the one that loses the race to move the mark gets the head the other
    verified (the agent's soak met this as a failed open)."""
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    f = await alice.mesh.files.put("note.txt", b"raced")
    capsule = await alice.mesh.share.file(f).with_("bob")
    await alice.mesh.share.revoke(capsule.id)  # the list has a head with an entry
    doc = await bob.mesh.identity.document(alice.did)
    heads = await asyncio.gather(
        *(bob.mesh.revocations.fresh_head(alice.did, doc.revocations) for _ in range(4))
    )
    assert len({h.cid for h in heads}) == 1 and heads[0].seq >= 1
    for p in (alice, bob):
        await p.mesh.close()


@contextlib.contextmanager
def an_older_read_commits_first(
    reader: FeedReader, home: Path, feed: Feed, older: bytes
) -> Iterator[list[bool]]:
    """While inside: the first read of ``feed`` by ``reader``, after its walk and before it
    moves the mark, is overtaken by another read of the home (its own connection, as
    another process has) filing the ``older`` record. Yields a list that says it ran."""
    rival_state = StateDB(home)
    rival = FeedReader(reader.storage, rival_state)
    real_drive = reader._drive
    raced: list[bool] = []

    async def overtaken(*args: Any) -> Any:
        found = await real_drive(*args)
        if not raced:
            raced.append(True)
            await rival.read(feed, record=older)
        return found

    reader._drive = overtaken  # type: ignore[method-assign]
    try:
        yield raced
    finally:
        reader._drive = real_drive  # type: ignore[method-assign]
        rival_state.close()


async def test_a_read_that_loses_the_race_to_an_older_head_still_refuses_the_revocation(
    kubo: RunningNode, tmp_path: Path
) -> None:
    """An open resolves the issuer's list and walks to the head that revokes its capsule;
    meanwhile another read of the home (a sync, another process) files an older head the
    issuer published just before, and moves the mark first. The open must not take that
    older head as the list: it reads again, and refuses."""
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    f = await alice.mesh.files.put("note.txt", b"revoked later")
    capsule = await alice.mesh.share.file(f).with_("bob")
    keys = await alice.mesh.identity.unlock()
    lists = alice.mesh.revocations
    await lists.revoke(keys, [cid_for(DAG_CBOR, b"an earlier share")])
    doc = await bob.mesh.identity.document(alice.did)
    checks = bob.mesh.revocations
    await checks.check(alice.did, doc.revocations, capsule.id)  # bob's mark: that head
    await lists.revoke(keys, [cid_for(DAG_CBOR, b"another share")])
    older = await bob.mesh.storage.ipns_get(doc.revocations)
    await lists.revoke(keys, [capsule.id])  # the head the node resolves from now on
    feed = checks.feed(alice.did, doc.revocations)
    try:
        with (
            an_older_read_commits_first(checks.reader, bob.home, feed, older) as raced,
            pytest.raises(ShareRevokedError),
        ):
            await checks.check(alice.did, doc.revocations, capsule.id)
    finally:
        for p in (alice, bob):
            await p.mesh.close()
    assert raced


async def test_an_identity_read_that_loses_the_race_to_an_older_document_reads_again(
    kubo: RunningNode, tmp_path: Path
) -> None:
    """As for revocation lists: a resolve of alice's document walks to her newest; another
    read of the home files the document she published before it and moves the mark first.
    The resolve must not answer with that older document (an older encryption key, say):
    it reads again and gives the newest."""
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    ids = bob.mesh.identity
    feed = ids.feed(alice.did)
    await alice.mesh.identity.publish()
    first = await ids.resolve(alice.did)  # bob's mark: that document
    await alice.mesh.identity.publish()
    older = await bob.mesh.storage.ipns_get(feed.name)
    newest = await alice.mesh.identity.publish()  # what the node resolves from now on
    try:
        with an_older_read_commits_first(ids.reader, bob.home, feed, older) as raced:
            got = await ids.resolve(alice.did)
    finally:
        for p in (alice, bob):
            await p.mesh.close()
    assert raced
    assert (first.seq, got.seq, got.cid) == (newest.seq - 2, newest.seq, newest.cid)


async def test_a_sync_over_unchanged_revocation_lists_reads_no_delivered_item(
    kubo: RunningNode, tmp_path: Path
) -> None:
    """Every sync checks the sender's delivered items against their issuers' revocation
    lists; while no list moved, it reads only the issuers (one row each), so what a sync
    holds does not grow with the inbox (the soak's agent syncs every 2 s)."""
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    bob.mesh.identity.add_contact("alice", alice.did)
    f = await alice.mesh.files.put("note.txt", b"many")
    sent = []
    for _ in range(5):
        capsule = await alice.mesh.share.file(f).with_("bob")
        await alice.mesh.share.send(capsule)
        sent.append(capsule.id)
    assert {i.id for i in await bob.mesh.inbox.sync()} == set(sent)
    database = bob.mesh.db.database
    read: list[object] = []  # every value a query returned during the next sync
    plain_all = database.all

    def counted(sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        rows = plain_all(sql, params)
        read.extend(v for row in rows for v in row)
        return rows

    database.all = counted  # type: ignore[method-assign]
    try:
        capsule = await alice.mesh.share.file(f).with_("bob")
        await alice.mesh.share.send(capsule)
        assert [i.id for i in await bob.mesh.inbox.sync()] == [capsule.id]
    finally:
        database.all = plain_all  # type: ignore[method-assign]
    assert capsule.id in read and not set(sent) & set(read)
    for p in (alice, bob):
        await p.mesh.close()
