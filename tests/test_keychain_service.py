"""Keychains on two real Kubo nodes: owner's home on node A; bob's and carol's (and the
fourth identities') on node B. Ops travel as blocks over bitswap and member chains as IPNS
records; offers and accepts are handed over by CID (``receive``), as the mailbox does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.client import Mesh
from ipfs_share.crypto.keychain import KeychainKey, key_fingerprint
from ipfs_share.crypto.labels import LABEL_KEYCHAIN_OP
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import PermissionDeniedError, RecipientNotAuthorizedError
from ipfs_share.formats import dagcbor
from ipfs_share.formats.feed import FeedEntry
from ipfs_share.formats.ipns import ipns_name, make_record
from ipfs_share.formats.keychain import (
    KEYCHAIN_FEED,
    Op,
    Permissions,
    SetPermissions,
    Share,
    Writer,
    chain_key,
    chain_name,
    feed_entry,
)
from ipfs_share.formats.keychain_replay import Replica
from ipfs_share.local.state import StateDB
from ipfs_share.local.state.keychains import StoredOp
from ipfs_share.node.daemon import RunningNode
from ipfs_share.services.feeds import Batch, Feed, FeedWriter
from ipfs_share.services.keychains import KeychainView, KeyReceived, SyncReport
from ipfs_share.services.keychains.chains import ChainNetwork
from ipfs_share.services.record_keys import UnlockedRecordKeys
from ipfs_share.storage.kubo import KuboStorage

FAST: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}


async def person(api: str, home: Path, name: str) -> Mesh:
    mesh = Mesh(await KuboStorage.connect(api), home, **FAST)
    await mesh.identity.create(name)
    await mesh.identity.publish()
    return mesh


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Poll ``check`` until it holds: an IPNS record put on one node reaches the other
    after a moment."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.3)


def did(mesh: Mesh) -> str:
    return mesh.identity.get().did


def chain_feed(mesh: Mesh, fp: str, author: str) -> Feed:
    """``author``'s chain in keychain ``fp``, as ``mesh`` knows it (from its first op)."""
    chain = mesh.keychains._keychain(fp).replica.chains()[author]
    return Feed(KEYCHAIN_FEED, chain_name(chain), author, reader=did(mesh))


def own_head(mesh: Mesh, fp: str) -> Any:
    """The head of ``mesh``'s own chain in ``fp`` (the feed writer's state)."""
    return mesh.feeds.head(chain_feed(mesh, fp, did(mesh)))


async def synced_until(mesh: Mesh, check: Callable[[SyncReport], bool]) -> SyncReport:
    found: list[SyncReport] = []

    async def once() -> bool:
        report = await mesh.keychains.sync()
        found.append(report)
        return check(report)

    await eventually(once)
    return found[-1]


async def invite(sharer: Mesh, to: Mesh, fp: str, **options: Any) -> None:
    """Share the most recent key; the recipient accepts; the sharer releases; the
    recipient opens it. CIDs are handed over as the mailbox would."""
    offer = await sharer.keychains.share_most_recent_key(fp, did(to), **options)
    report = await to.keychains.receive(offer.offer)
    assert report.accepted == (offer.offer,), report
    (accept,) = report.wrote
    report = await sharer.keychains.receive(accept)
    assert report.released == (offer.offer,), report
    await synced_until(to, lambda r: len(r.received) >= 1)


@dataclass
class Team:
    owner: Mesh
    bob: Mesh
    carol: Mesh
    dave: Mesh
    erin: Mesh
    fp: str


@pytest.fixture(scope="module")
async def team(
    kubo_pair: tuple[RunningNode, RunningNode], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Team]:
    a, b = kubo_pair
    root = tmp_path_factory.mktemp("keychains")
    owner = await person(a.api_url, root / "owner", "owner")
    others = [await person(b.api_url, root / n, n) for n in ("bob", "carol", "dave", "erin")]
    kc = await owner.keychains.create("team secrets")
    yield Team(owner, *others, fp=kc.fingerprint)
    for mesh in (owner, *others):
        await mesh.close()


async def test_create_names_and_first_key(team: Team) -> None:
    view = await team.owner.keychains.show(team.fp)
    assert view.name == "team secrets"
    assert view.status == "member" and view.permissions.management
    assert [k.most_recent for k in view.keys] == [True]


async def test_reshare_refused_share_and_forced_op(team: Team) -> None:
    events: list[str] = []
    unsubscribe = team.bob.keychains.on("keychain_updated", lambda v: events.append("updated"))
    team.bob.keychains.on("key_received", lambda r: events.append("received"))
    await invite(team.owner, team.bob, team.fp, allow_sharing=True)
    assert events == ["updated", "received"]
    unsubscribe()
    bob_view = await team.bob.keychains.show(team.fp)
    assert bob_view.name == "team secrets" and bob_view.permissions.sharing

    await invite(team.bob, team.carol, team.fp)  # bob re-shares; carol gets no sharing
    holders = team.carol.keychains.participants(team.fp, (await team.carol.keychains.show(
        team.fp)).keys[0].fingerprint)  # fmt: skip
    carol_row = next(p for p in holders if p.did == did(team.carol))
    assert carol_row.key_added_by == did(team.bob)

    loaded = team.carol.keychains._keychain(team.fp)
    before = (len(loaded.replica.nodes), own_head(team.carol, team.fp))
    with pytest.raises(PermissionDeniedError, match="allow_sharing"):
        await team.carol.keychains.share_most_recent_key(team.fp, did(team.dave))
    after = (len(loaded.replica.nodes), own_head(team.carol, team.fp))
    assert after == before  # refused before anything was signed
    # carol's client writes it anyway: every replica ignores it
    key = next(iter(loaded.keyring.keys))
    forced = await team.carol.keychains._write(
        loaded, Share(did(team.dave), (key,), None, loaded.replica.state.members[did(
            team.carol)].perms))  # fmt: skip
    for mesh in (team.owner, team.bob, team.carol):

        async def ignored(m: Mesh = mesh) -> bool:
            await m.keychains.sync()
            view = await m.keychains.show(team.fp)
            return any(r.op == forced.cid and r.reason == "permission_denied" for r in view.ignored)

        await eventually(ignored)


async def test_cancel_before_acceptance_leaves_nothing(team: Team) -> None:
    offer = await team.owner.keychains.share_most_recent_key(team.fp, did(team.dave))
    cancelled = await team.owner.keychains.delete_outgoing_shared_key(did(team.dave))
    assert [c.offer for c in cancelled] == [offer.offer] and cancelled[0].status == "cancelled"
    assert not team.owner.keychains.outgoing_shared_keys()
    await team.dave.keychains.receive(offer.offer)
    report = await synced_until(team.dave, lambda r: True)
    assert not report.received
    view = await team.dave.keychains.show(team.fp)
    assert not any(k.held for k in view.keys) and view.status == "invited"
    with pytest.raises(RecipientNotAuthorizedError):
        await team.dave.keychains.encrypt(team.fp, b"nothing to encrypt with")


async def test_ban_with_rotation(team: Team) -> None:
    before = await team.owner.keychains.encrypt(team.fp, b"before the ban", ad=b"doc")
    await synced_until(team.owner, lambda r: True)
    result = await team.owner.keychains.ban(did(team.carol), team.fp)
    assert result.rotated_to is not None and result.delivered_to == 2  # owner and bob
    after = await team.owner.keychains.encrypt(team.fp, b"after the ban", ad=b"doc")
    await synced_until(team.bob, lambda r: any(x.fingerprint == result.rotated_to
                                               for x in r.received))  # fmt: skip
    assert await team.bob.keychains.decrypt(team.fp, after, ad=b"doc") == b"after the ban"
    await synced_until(team.carol, lambda r: True)
    carol = await team.carol.keychains.show(team.fp)
    assert carol.status == "banned"
    with pytest.raises(RecipientNotAuthorizedError):
        await team.carol.keychains.decrypt(team.fp, after, ad=b"doc")
    # a ban cannot take back keys already held
    assert await team.carol.keychains.decrypt(team.fp, before, ad=b"doc") == b"before the ban"


async def test_a_rolled_back_chain_is_refused(team: Team, kubo: RunningNode) -> None:
    fp = (await team.owner.keychains.create("rollback")).fingerprint
    await invite(team.owner, team.bob, fp)  # the owner's chain: create, share, release
    await synced_until(team.bob, lambda r: True)
    owner = team.owner.identity.get().did
    state = team.bob.follow.mark(chain_feed(team.bob, fp, owner))
    assert state is not None and state.mark is not None and state.mark.seq == 2
    loaded = team.bob.keychains._keychain(fp)
    older = next(
        n.op for n in loaded.replica.nodes.values() if n.op.author == owner and n.op.seq == 1
    )
    keys = await team.owner.identity.unlock()
    key = chain_key(keys.signing, loaded.create_body.nonce)
    record = make_record(
        key, f"/ipfs/{older.cid}", sequence=1, validity=timedelta(days=1), ttl_seconds=1
    )
    elsewhere = await KuboStorage.connect(kubo.api_url)  # a node that has the older head only
    await elsewhere.block_put(older.data, codec="dag-cbor")
    await elsewhere.ipns_put(ipns_name(key.public_key), record)
    bob_elsewhere = Mesh(elsewhere, team.bob.home, **FAST)
    try:
        report = await bob_elsewhere.keychains.sync()
    finally:
        await bob_elsewhere.close()
    assert any("rollback" in p and owner in p for p in report.problems), report.problems
    again = team.bob.follow.mark(chain_feed(team.bob, fp, owner))
    assert again is not None and again.mark == state.mark


async def test_a_fresh_replica_from_the_cids_alone_agrees(team: Team) -> None:
    owner = team.owner.keychains._keychain(team.fp)
    replica = Replica(team.fp)
    net = ChainNetwork(team.bob.storage)  # the other node
    await net.fill(replica, owner.replica.heads())
    replica.update()
    assert replica.state.digest() == owner.replica.state.digest()


async def test_forged_ops_are_ignored_by_a_fresh_replica(team: Team) -> None:
    """Ops nobody honest links to, planted on the owner's node and handed to a new replica
    on the other node by CID: a bad signature and a wrong author are refused, a share by
    someone without allow_sharing and a share of a key no add_key introduced are ignored."""
    owner = team.owner.keychains._keychain(team.fp)
    heads = owner.replica.heads()
    dave = team.dave.keychains._keychain(team.fp)  # dave: invited once, never a member
    dave_keys = await team.dave.identity.unlock()
    bob_keys = await team.bob.identity.unlock()
    held = sorted(owner.replica.state.keys)[0]
    writer = Writer(dave_keys.signing, owner.create)
    not_allowed = writer.write(
        Share(did(team.erin), (held,), None, Permissions()), time=1, parents=heads
    )
    bobs = team.bob.keychains._keychain(team.fp)
    bob_head = own_head(team.bob, team.fp)
    assert bob_head is not None
    bob_writer = Writer(bob_keys.signing, owner.create, last=bobs.replica.nodes[bob_head.head].op)
    stray = key_fingerprint(KeychainKey(bytes(range(32))))
    slipped = bob_writer.write(Share(did(team.erin), (stray,), None, Permissions()), time=2)
    tampered = bytearray(slipped.data)
    tampered[tampered.index(b"\x63sig\x58\x40") + 6] ^= 1
    wrong_author = _forge(not_allowed, bob_keys.signing)  # names dave, signed by bob
    planted = [not_allowed.data, slipped.data, bytes(tampered), wrong_author]
    cids = [await team.owner.storage.block_put(b, codec="dag-cbor") for b in planted]
    del dave

    replica = Replica(team.fp)
    net = ChainNetwork(team.bob.storage)
    await net.fill(replica, [*heads, *cids])
    replica.update()
    state = replica.state
    assert state.invalid[cids[0]].reason == "not_a_member"
    assert state.invalid[cids[1]].reason == "unknown_key"
    assert replica.rejected[cids[2]].reason == "signature_invalid"
    assert replica.rejected[cids[3]].reason == "signature_invalid"
    honest = owner.replica.state
    assert state.members == honest.members and state.holdings == honest.holdings
    assert [(k.fp, k.op) for k in state.keys_in_order()] == [
        (k.fp, k.op) for k in honest.keys_in_order()
    ]


def _forge(op: Op, key: SigningKey) -> bytes:
    body = {k: v for k, v in dagcbor.decode(op.data).items() if k != "sig"}
    body["sig"] = key.sign(LABEL_KEYCHAIN_OP + dagcbor.encode(body))
    return dagcbor.encode(body)


async def test_a_keychain_file_opens_for_a_member_added_after_the_put(team: Team) -> None:
    stored = await team.owner.files.put("plan.txt", b"the plan", keychain=team.fp)
    assert stored.keychain_file is not None
    await invite(team.owner, team.erin, team.fp)  # erin joins after the put
    data = await team.erin.storage.block_get(stored.keychain_file)
    file, file_key = await team.erin.keychains.open_file(data)
    opened = await team.erin.files.open(file.content.cid, file_key)
    assert b"".join([p async for p in opened]) == b"the plan"


async def test_a_write_that_loses_the_race_signs_again_after_the_winner(team: Team) -> None:
    """Another process of the home appends to our chain between this writer's make and its
    compare-and-set: the writer must not sign a second op at that seq (a fork), but take
    the winner's op and write after it."""
    kc = team.owner.keychains
    loaded = kc._keychain(team.fp)
    keys = await team.owner.identity.unlock()
    feed = chain_feed(team.owner, team.fp, did(team.owner))
    rival_state = StateDB(team.owner.home)  # its own connection: another process's
    rival_writer = FeedWriter(team.owner.storage, rival_state)
    made: list[Op] = []

    async def rival(prev: FeedEntry | None) -> Batch:
        assert prev is not None
        op = Writer(keys.signing, loaded.create, last=prev.value).write(
            SetPermissions(did(team.bob), deletion=True), time=int(time.time())
        )
        made.append(op)
        return Batch([feed_entry(op)])

    real_pin = team.owner.feeds._pin
    raced: list[bool] = []

    async def pin_after_the_rival(*args: Any) -> Any:
        if not raced:  # between our make and our compare-and-set
            raced.append(True)
            await rival_writer.append(feed, rival)
            rival_state.keychains.add_ops(
                team.fp, [StoredOp(made[0].cid, made[0].author, made[0].seq, made[0].data)], at=1
            )
        return await real_pin(*args)

    team.owner.feeds._pin = pin_after_the_rival  # type: ignore[method-assign]
    try:
        key = await kc.rotate(team.fp)
    finally:
        team.owner.feeds._pin = real_pin  # type: ignore[method-assign]
        rival_state.close()
    assert raced and made
    rotation = loaded.replica.nodes[key.op].op
    assert (rotation.seq, rotation.prev) == (made[0].seq + 1, made[0].cid)
    assert not [r for r in (await kc.show(team.fp)).ignored if r.reason == "fork"]


async def test_without_auto_accept_an_offer_waits_for_accept(team: Team) -> None:
    fp = (await team.owner.keychains.create("by hand")).fingerprint
    offer = await team.owner.keychains.share_most_recent_key(fp, did(team.erin))
    team.erin.keychains.auto_accept = False
    try:
        report = await team.erin.keychains.receive(offer.offer)
        assert report.accepted == ()
        accept = await team.erin.keychains.accept(offer.offer)
    finally:
        team.erin.keychains.auto_accept = True
    report = await team.owner.keychains.receive(accept)
    assert report.released == (offer.offer,)


async def test_offers_and_accepts_travel_through_the_mailbox(team: Team) -> None:
    """Contacts of each other need nothing but sync: the offer reaches bob through the
    owner's mailbox for him, the accept comes back through bob's for the owner."""
    for x, y in ((team.owner, team.bob), (team.bob, team.owner)):
        me = y.identity.get()
        x.identity.add_contact(me.name, me.did)
    fp = (await team.owner.keychains.create("through the mailbox")).fingerprint
    offer = await team.owner.keychains.share_most_recent_key(fp, did(team.bob))
    await synced_until(team.bob, lambda r: offer.offer in r.accepted)
    await synced_until(team.owner, lambda r: offer.offer in r.released)
    report = await synced_until(team.bob, lambda r: any(x.keychain == fp for x in r.received))
    assert [x.added_by for x in report.received if x.keychain == fp] == [did(team.owner)]
    assert (await team.bob.keychains.show(fp)).name == "through the mailbox"
    assert not [i for i in team.bob.inbox.list() if i.id == offer.offer]  # not a capsule


async def test_republish_puts_every_chain_record_again(team: Team, kubo: RunningNode) -> None:
    fp = (await team.owner.keychains.create("kept alive")).fingerprint
    await invite(team.owner, team.bob, fp)
    await synced_until(team.bob, lambda r: True)
    elsewhere = await KuboStorage.connect(kubo.api_url)  # a node that never had them
    bob = Mesh(elsewhere, team.bob.home, **FAST)
    try:
        report = await bob.republish(renew=False)
        chains = [chain_feed(team.bob, fp, who) for who in (did(team.bob), did(team.owner))]
        put = {r.name for r in report.records if r.kind == "keychain" and r.action == "reput"}
        assert {c.name for c in chains} <= put  # bob's own chain and the owner's, read
        for chain in chains:
            kept = bob.db.records.get(chain.name)
            assert kept is not None and await elsewhere.ipns_get(chain.name) == kept.record
    finally:
        await bob.close()


async def test_our_chain_records_can_be_re_signed_at_republish(team: Team) -> None:
    own = own_head(team.owner, team.fp)
    assert own is not None and own.kind == "keychain"
    await team.owner.identity.unlock()
    key = await UnlockedRecordKeys(team.owner.identity)(own)  # derived from the topic
    assert key is not None and ipns_name(key.public_key) == own.name


def test_views_serialize(team: Team) -> None:
    views = team.owner.keychains.list()
    assert isinstance(views[0], KeychainView) and views[0].to_json()["fingerprint"] == team.fp
    assert KeyReceived("a", "b", "c", "d", "e").to_json()["fingerprint"] == "c"
