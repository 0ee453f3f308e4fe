"""Mailboxes on real Kubo nodes: delivery to a recipient whose node was down, receipts,
live delivery over pubsub and by polling, 50 concurrent sends (tasks and processes),
cancel, forged and broken chains, the CLI."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import STARTED, rpc, start_test_node

from ipfs_share.cli.main import exit_code_for, main
from ipfs_share.client import Mesh
from ipfs_share.crypto.labels import LABEL_MAILBOX_ENTRY
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.errors import (
    ChainInvalidError,
    FeedForkError,
    InvalidInputError,
    MailboxUnsupportedError,
    ShareRevokedError,
    SignatureInvalidError,
)
from ipfs_share.formats import dagcbor
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.ipns import ipns_name, make_record
from ipfs_share.formats.mailbox import CAPSULE_ENTRY, decode_entry, mailbox_key
from ipfs_share.formats.signed import block_from_bytes, did_key, sign_object
from ipfs_share.node.daemon import KuboDaemon, RunningNode
from ipfs_share.services.mailbox import InboxItem, notice_topic
from ipfs_share.storage.kubo import KuboStorage

FAST: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}


async def person(api: str, home: Path, name: str) -> Mesh:
    mesh = Mesh(await KuboStorage.connect(api), home, **FAST)
    if not mesh.identity.list():
        await mesh.identity.create(name)
        await mesh.identity.publish()
    return mesh


def introduce(a: Mesh, b: Mesh) -> None:
    """Each takes the other as a contact (documents already cached or resolvable)."""
    for x, y in ((a, b), (b, a)):
        me = y.identity.get()
        x.identity.add_contact(me.name, me.did)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds: IPNS answers can lag a put by a moment."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.2)


@pytest.fixture
async def pair(kubo: RunningNode, tmp_path: Path) -> AsyncIterator[tuple[Mesh, Mesh]]:
    """alice and bob, on the session node, each other's contacts."""
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    introduce(alice, bob)
    yield alice, bob
    await alice.close()
    await bob.close()


async def share_to(owner: Mesh, who: str, n: int = 1) -> list[str]:
    f = await owner.files.put("note.txt", b"for " + who.encode())
    return [(await owner.share.file(f).with_(who)).id for _ in range(n)]


# -- two nodes, the recipient's down during the send ---------------------------------------


@dataclass
class Nodes:
    daemon_a: KuboDaemon
    a: RunningNode
    daemon_b: KuboDaemon
    b: RunningNode

    def connect(self) -> None:
        rpc(self.a, "swarm/connect", self.b.swarm_addrs[0])

    def stop_b(self) -> None:
        self.daemon_b.stop(timeout=10)

    def start_b(self) -> None:
        STARTED[self.daemon_b.start(die_with_parent=True)] = self.daemon_b
        self.b = self.daemon_b.wait_ready(timeout=30)
        self.connect()


@pytest.fixture
def nodes(kubo_binary: Path, tmp_path: Path) -> Iterator[Nodes]:
    """Two nodes of this test's own, connected: B can be stopped and started by its pid."""
    daemon_a, a = start_test_node(tmp_path / "node-a", kubo_binary)
    try:
        daemon_b, b = start_test_node(tmp_path / "node-b", kubo_binary)
        try:
            pair = Nodes(daemon_a, a, daemon_b, b)
            pair.connect()
            yield pair
        finally:
            daemon_b.stop(timeout=10)
    finally:
        daemon_a.stop(timeout=10)


async def test_recipient_offline_during_send_syncs_opens_and_receipts_flow_back(
    nodes: Nodes, tmp_path: Path
) -> None:
    alice = await person(nodes.a.api_url, tmp_path / "alice", "alice")
    bob = await person(nodes.b.api_url, tmp_path / "bob", "bob")
    await alice.identity.resolve(bob.identity.get().did, petname="bob")  # over the network
    await bob.identity.resolve(alice.identity.get().did, petname="alice")
    await bob.close()
    nodes.stop_b()
    assert nodes.daemon_b.running_pid() is None

    f = await alice.files.put("plan.txt", b"meet at noon")
    cap = await alice.share.file(f).with_("bob")
    sent = await alice.share.send(cap)  # B is down: the record waits on A
    assert [(o.id, o.recipient_name, o.state) for o in sent] == [(cap.id, "bob", "queued")]
    assert await alice.share.send(cap) == sent  # a second send of it is a no-op
    receipts: list[Any] = []
    alice.inbox.subscribe("ack_received", receipts.append)

    nodes.start_b()
    bob = await person(nodes.b.api_url, tmp_path / "bob", "bob")
    arrived: list[InboxItem] = []
    stop = bob.inbox.subscribe("capsule_received", arrived.append)
    new = await bob.inbox.sync()
    assert [(i.id, i.sender_name, i.state) for i in new] == [(cap.id, "alice", "delivered")]
    assert arrived == new
    stop()
    assert await bob.inbox.sync() == []  # only what is new
    opened = await bob.share.open_capsule(new[0].id)
    assert await opened.read() == b"meet at noon"

    async def state_is(state: str) -> bool:
        return [o.state for o in await alice.share.outgoing()] == [state]

    await eventually(lambda: state_is("delivered"))
    await bob.inbox.sync()  # sends the "opened" receipt (share.open_capsule recorded it)
    await eventually(lambda: state_is("opened"))
    (done,) = await alice.share.outgoing(refresh=False)
    assert done.delivered_at is not None and done.opened_at is not None
    assert {r.state for r in receipts} <= {"delivered", "opened"} and receipts
    assert arrived == [new[0]]  # unsubscribed: the later syncs told nobody
    await alice.close()
    await bob.close()


# -- real time --------------------------------------------------------------------------------


async def test_watch_over_pubsub_gets_a_send_within_5_s(
    kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    a, b = kubo_pair
    alice = await person(a.api_url, tmp_path / "alice", "alice")
    bob = await person(b.api_url, tmp_path / "bob", "bob")
    introduce(alice, bob)
    cap = (await share_to(alice, "bob"))[0]
    async with bob.inbox.watch() as watch:
        first = asyncio.ensure_future(watch.__anext__())
        await asyncio.wait_for(watch.ready.wait(), 10)
        assert watch.mode == "pubsub"
        start = time.monotonic()
        await alice.share.send(cap)
        item = await asyncio.wait_for(first, 5)
        took = time.monotonic() - start
    assert item.id == cap and took < 5
    await alice.close()
    await bob.close()


@pytest.fixture
def quiet_node(kubo_binary: Path, tmp_path: Path) -> Iterator[RunningNode]:
    """A node with pubsub off."""
    daemon = KuboDaemon(tmp_path / "quiet", kubo_binary)
    daemon.init()
    subprocess.run(
        [
            str(kubo_binary),
            f"--repo-dir={daemon.repo}",
            "config",
            "--json",
            "Pubsub.Enabled",
            "false",
        ],
        check=True,
        capture_output=True,
    )
    STARTED[daemon.start(die_with_parent=True)] = daemon
    try:
        yield daemon.wait_ready(timeout=30)
    finally:
        daemon.stop(timeout=10)


async def test_watch_without_pubsub_polls_with_backoff_and_says_so(
    quiet_node: RunningNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await person(quiet_node.api_url, tmp_path / "alice", "alice")
    bob = await person(quiet_node.api_url, tmp_path / "bob", "bob")
    introduce(alice, bob)
    cap = (await share_to(alice, "bob"))[0]
    caplog.set_level(logging.INFO, logger="ipfs_share.mailbox")
    async with bob.inbox.watch(poll_min=0.1, poll_max=0.4) as watch:
        first = asyncio.ensure_future(watch.__anext__())
        await asyncio.wait_for(watch.ready.wait(), 10)
        await asyncio.sleep(0.8)  # a few empty polls: the wait grows
        assert watch.mode == "polling" and watch.interval > 0.1
        await alice.share.send(cap)
        assert (await asyncio.wait_for(first, 5)).id == cap
    assert "pubsub is off on the node" in caplog.text
    await alice.close()
    await bob.close()


# -- concurrency ------------------------------------------------------------------------------


async def test_50_concurrent_sends_from_tasks_all_arrive_once(pair: tuple[Mesh, Mesh]) -> None:
    alice, bob = pair
    caps = await share_to(alice, "bob", 50)
    await asyncio.gather(*(alice.share.send(c) for c in caps))
    new = await bob.inbox.sync()
    assert sorted(i.id for i in new) == sorted(caps)
    assert sorted(i.seq for i in new) == list(range(50))  # one chain, no gaps, no repeats
    assert await bob.inbox.sync() == []


WORKER = """
import asyncio, sys
from pathlib import Path
from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.storage.kubo import KuboStorage

async def main(api, home, caps):
    mesh = Mesh(await KuboStorage.connect(api), Path(home), passphrase=lambda _: b"pw",
                kdf=KdfParams.fastest())
    await mesh.share.mailbox.check_provider()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(mesh.share.send(c) for c in caps))
    await mesh.close()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
"""


async def test_50_concurrent_sends_from_two_processes_all_arrive_once(
    kubo: RunningNode, pair: tuple[Mesh, Mesh]
) -> None:
    alice, bob = pair
    caps = await share_to(alice, "bob", 50)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            kubo.api_url,
            str(alice.home),
            *half,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for half in (caps[:25], caps[25:])
    ]
    for p in procs:  # both set up, then both go at once
        assert p.stdout is not None and await p.stdout.readline() == b"ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        await p.stdin.drain()
    assert [await asyncio.wait_for(p.wait(), 30) for p in procs] == [0, 0]
    new = await bob.inbox.sync()
    assert sorted(i.id for i in new) == sorted(caps)
    assert sorted(i.seq for i in new) == list(range(50))


# -- cancel -----------------------------------------------------------------------------------


async def test_cancel_withdraws_an_unread_capsule_and_refuses_a_delivered_one(
    pair: tuple[Mesh, Mesh],
) -> None:
    alice, bob = pair
    early, late = await share_to(alice, "bob", 2)
    await alice.share.send(early)
    assert [i.id for i in await bob.inbox.sync()] == [early]
    await alice.share.send(late)
    (cancelled,) = await alice.share.cancel(late)
    assert cancelled.state == "cancelled"
    assert await bob.inbox.sync() == []  # it never shows up as new
    assert [(i.id, i.state) for i in bob.inbox.list(include_withdrawn=True)] == [
        (early, "delivered"),
        (late, "withdrawn"),
    ]
    with pytest.raises(ShareRevokedError):
        await bob.share.open_capsule(late)
    with pytest.raises(InvalidInputError, match="already delivered"):
        await alice.share.cancel(early)
    assert {o.id: o.state for o in await alice.share.outgoing()} == {
        early: "delivered",
        late: "cancelled",
    }


# -- forged and broken chains -----------------------------------------------------------------


async def test_bad_chains_are_refused_and_nothing_synced_is_lost(
    kubo_pair: tuple[RunningNode, RunningNode], pair: tuple[Mesh, Mesh]
) -> None:
    alice, bob = pair
    caps = await share_to(alice, "bob", 9)
    for c in caps[:2]:
        await alice.share.send(c)
    assert len(await bob.inbox.sync()) == 2
    me, them = alice.identity.get().did, bob.identity.get().did
    keys = await alice.identity.unlock()
    box = mailbox_key(
        keys.encryption, (await alice.identity.recipient("bob")).enc, sender=me, recipient=them
    )
    name = ipns_name(box.public_key)
    row = alice.db.feeds.own(name)
    assert row is not None and row.head_block is not None
    first = decode_entry(row.head_block)
    mark = bob.db.feeds.read(name).mark  # type: ignore[union-attr]
    mallory = SigningKey.generate()

    def entry(seq: int, prev: str, signer: SigningKey = keys.signing) -> bytes:
        fields = {
            "seq": seq,
            "prev": Link(prev),
            "sender": did_key(signer.public_key),
            "sent": 1,
            "capsule": Link(caps[-1]),
        }
        return sign_object(CAPSULE_ENTRY, fields, signer).data

    def forged(seq: int, prev: str) -> bytes:  # claims alice, signed by mallory
        body = {
            "v": 1,
            "seq": seq,
            "prev": Link(prev),
            "sender": me,
            "sent": 1,
            "capsule": Link(caps[-1]),
        }
        body["sig"] = mallory.sign(LABEL_MAILBOX_ENTRY + dagcbor.encode(body))
        return dagcbor.encode(body)

    async def plant(store: KuboStorage, seq: int, *blocks: bytes) -> None:
        cids = [await store.block_put(b, codec="dag-cbor") for b in blocks]
        record = make_record(
            box, f"/ipfs/{cids[0]}", sequence=seq, validity=timedelta(days=1), ttl_seconds=1
        )
        await store.ipns_put(name, record)

    async def refused(error: type[Exception], seq: int, *blocks: bytes) -> None:
        await plant(alice.storage, seq, *blocks)  # type: ignore[arg-type]
        with pytest.raises(error):
            await bob.inbox.sync()
        assert [i.id for i in bob.inbox.list()] == caps[:2]
        assert bob.db.feeds.read(name).mark == mark  # type: ignore[union-attr]

    await refused(SignatureInvalidError, 2, entry(2, first.cid, mallory))  # foreign signer
    await refused(SignatureInvalidError, 3, forged(3, first.cid))  # alice's name, not her key
    loop_top = entry(5, first.cid)  # seq 4 whose prev is seq 5: seqs must fall by one
    top_cid = await alice.storage.block_put(loop_top, codec="dag-cbor")
    await refused(ChainInvalidError, 4, entry(4, top_cid), loop_top)
    fork = [entry(2, first.prev.cid)]  # type: ignore[union-attr]  # seq 2 after seq 0 again
    for seq in (3, 4, 5):  # ... on to seq 5: the walk reaches seq 2, which must follow the mark
        fork.append(entry(seq, block_from_bytes(fork[-1]).cid))
    await refused(FeedForkError, 5, *reversed(fork))
    await refused(ChainInvalidError, 6, entry(6, first.cid))  # a gap: 6 -> 1

    # A rollback: another node serves bob the older head (seq 0) of the same chain.
    elsewhere = await KuboStorage.connect(kubo_pair[0].api_url)
    older = decode_entry(await alice.storage.block_get(first.prev.cid))  # type: ignore[union-attr]
    await elsewhere.block_put(older.data, codec="dag-cbor")
    await plant(elsewhere, 0, older.data)
    bob_elsewhere = Mesh(elsewhere, bob.home, **FAST)
    with pytest.raises(ChainInvalidError, match="rollback"):
        await bob_elsewhere.inbox.sync(senders=[me])
    await bob_elsewhere.close()

    # The real chain moves past what was planted (seq 7 > 6), and sync picks it up.
    await asyncio.gather(*(alice.share.send(c) for c in caps[2:8]))
    await eventually(lambda: _count(bob, 8))
    assert [i.id for i in bob.inbox.list()][:2] == caps[:2]


async def _count(mesh: Mesh, n: int) -> bool:
    await mesh.inbox.sync()
    return len(mesh.inbox.list()) == n


# -- the CLI ----------------------------------------------------------------------------------


async def test_cli_send_inbox_outgoing_cancel(
    kubo: RunningNode,
    pair: tuple[Mesh, Mesh],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    alice, bob = pair
    one, two = await share_to(alice, "bob", 2)
    monkeypatch.setenv("IPFS_SHARE_API", kubo.api_url)
    monkeypatch.setenv("IPFS_SHARE_PASSPHRASE", "pw")

    async def run(home: Mesh, *argv: str) -> Any:
        monkeypatch.setenv("IPFS_SHARE_HOME", str(home.home))
        code = await asyncio.to_thread(main, [*argv, "--json"])
        out = capsys.readouterr().out
        assert code == 0, out
        return json.loads(out)

    sent = await run(alice, "send", one, "--to", "bob")
    assert [(o["id"], o["state"]) for o in sent["sent"]] == [(one, "queued")]
    await run(alice, "send", two, "--to", "bob")
    assert (await run(alice, "cancel", two))["cancelled"][0]["state"] == "cancelled"
    f = await alice.files.put("more.txt", b"and this")
    shared = await run(alice, "share", f.cid, "--to", "bob", "--send")  # share ... --send
    three = shared["id"]
    assert [(o["id"], o["recipient_name"]) for o in shared["sent"]] == [(three, "bob")]
    got = await run(bob, "inbox", "--as", "bob")
    assert [i["id"] for i in got["new"]] == [one, three]
    assert got["failed"] == [] and len(got["inbox"]) == 2
    states = {o["id"]: o["state"] for o in (await run(alice, "outgoing"))["outgoing"]}
    assert states == {one: "delivered", two: "cancelled", three: "delivered"}


# -- small things -----------------------------------------------------------------------------


def test_mailbox_unsupported_is_a_node_error_with_a_hint() -> None:
    exc = MailboxUnsupportedError("no name/put")
    assert exc.code == "mailbox_unsupported" and "name/put" in exc.hint
    assert exit_code_for(exc) == 5


def test_notice_topics_match_the_spec_example() -> None:
    """docs/spec/mailbox.md section 7, for the mailbox of section 5."""
    alice, bob = SigningKey.from_seed(b"\x01" * 32), SigningKey.from_seed(b"\x03" * 32)
    a, b = did_key(alice.public_key), did_key(bob.public_key)
    a_enc, b_enc = EncryptionKey(b"\x02" * 32), EncryptionKey(b"\x04" * 32)
    forward = mailbox_key(a_enc, b_enc.public_key, sender=a, recipient=b)
    assert forward.seed_bytes().hex().startswith("2124556f")
    assert notice_topic(forward) == (
        "a115e7ca9847cbb039df09b08539cc16edcbebce70f863f879b3f20488dd38c7"
    )
    backward = mailbox_key(b_enc, a_enc.public_key, sender=b, recipient=a)
    assert notice_topic(backward) == (
        "c58667221d1940839653e9f01f8ba290e247941b65f52eec25aefaf591b42686"
    )
