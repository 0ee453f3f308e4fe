"""The rules a replica applies (docs/spec/keychain.md section 4), on pure replicas.

Each scenario is written by people with their own replicas (tests/keychain_world.py), so
"concurrent" means written before the two authors synced. Convergence is checked by
replaying the same ops in every order Hypothesis tries, with incremental updates at
random points, against one full replay.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_share.crypto.keychain import KeychainKey, key_fingerprint
from ipfs_share.errors import KeyUnwrapFailedError
from ipfs_share.formats import dagcbor
from ipfs_share.formats.keychain import SCHEMAS, Op, Permissions, decode_op, open_delivery
from ipfs_share.formats.keychain_replay import REASONS, Replica
from ipfs_share.formats.signed import sign_object

sys.path.insert(0, str(Path(__file__).parent))

from keychain_world import World, first_key

SHARING = Permissions(sharing=True)


def reason(replica: Replica, cid: str) -> str | None:
    rejected = replica.state.invalid.get(cid) or replica.rejected.get(cid)
    return None if rejected is None else rejected.reason


def reason_after(w: World, op: Op) -> str | None:
    """The reason a fresh replica of everything written (``op`` included) gives ``op``."""
    return reason(w.fresh(), op.cid)


def three() -> World:
    """owner creates; bob joins with allowSharing; carol joins through bob."""
    w = World(b"three")
    w.create("owner")
    w.invite("owner", "bob", SHARING)
    w.invite("bob", "carol")
    return w


# --- the done-when flow -------------------------------------------------------------------


def test_reshare_then_forced_share_is_permission_denied_everywhere() -> None:
    w = three()
    fresh = w.fresh()
    carol = w.person("carol").did
    assert [m.did for m in fresh.state.current_members()][-1] == carol
    holding = fresh.state.holdings[carol][first_key(w)]
    assert holding.added_by == w.person("bob").did  # carol holds it since bob's release
    assert not fresh.state.invalid
    forced = w.share("carol", "dave")  # carol lacks allowSharing
    w.sync_all()
    for replica in [p.replica for p in w.people.values() if p.replica] + [w.fresh()]:
        assert reason(replica, forced.cid) == "permission_denied"
        assert not replica.state.open_offers(to=w.person("dave").did)


def test_ban_with_rotation_leaves_the_banned_member_the_old_key_only() -> None:
    w = three()
    w.sync("owner")
    w.ban("owner", "carol")
    rotation = w.rotate("owner", to=["bob"])
    w.sync_all()
    state = w.fresh().state
    bob, carol = w.person("bob"), w.person("carol")
    new = state.most_recent_key(bob.did, w.clock)
    assert new is not None and new.op == rotation.cid
    old = state.most_recent_key(carol.did, w.clock)
    assert old is not None and old.fp == first_key(w)  # a ban cannot take back keys held
    assert state.members[carol.did].status == "banned"
    assert new.fp in bob.keys and new.fp not in carol.keys
    # carol cannot open the rotation's delivery even though the op is public
    assert isinstance(rotation.body, type(rotation.body))
    with pytest.raises(Exception, match="among the 2 recipients"):
        open_delivery(rotation.body.delivery, carol.did, carol.enc, (new.fp,))  # type: ignore[union-attr]


# --- forged and unauthorized ops ----------------------------------------------------------


def test_forged_signature_and_author_are_refused_at_decoding() -> None:
    w = three()
    good = w.ops[-1]
    tampered = bytearray(good.data)
    tampered[tampered.index(b"\x63sig\x58\x40") + 6] ^= 1
    replica = Replica(w.keychain)
    assert replica.add(bytes(tampered)) is None
    assert next(iter(replica.rejected.values())).reason == "signature_invalid"


def test_a_key_introduced_by_a_share_is_unknown_key() -> None:
    w = three()
    stray = key_fingerprint(KeychainKey(b"\x05" * 32))
    offer = w.share("bob", "dave", keys=[stray])
    assert reason(w.fresh(), offer.cid) == "unknown_key"


def test_a_key_introduced_by_a_release_is_refused_by_the_recipient() -> None:
    w = three()
    offer = w.share("bob", "dave")
    w.sync("dave", "bob")
    w.accept("dave", offer)
    w.sync("bob", "dave")
    impostor = KeychainKey(b"\x06" * 32)
    w.release("bob", offer, keys=[impostor])  # the op names the real fingerprint
    with pytest.raises(KeyUnwrapFailedError, match="another key"):
        w.sync("dave", "bob")


def test_a_permission_granted_concurrently_does_not_count() -> None:
    w = three()
    w.sync_all()
    grant = w.set_perms("owner", "carol", sharing=True)
    forced = w.share("carol", "dave")  # written before carol saw the grant
    w.sync_all()
    fresh = w.fresh()
    assert reason(fresh, grant.cid) is None
    assert reason(fresh, forced.cid) == "permission_denied"
    later = w.share("carol", "dave")  # now carol has seen it
    assert reason(w.fresh(), later.cid) is None


def test_ops_written_before_the_release_arrived_do_not_count() -> None:
    w = three()
    offer = w.share("bob", "dave", perms=SHARING)
    w.sync("dave", "bob")
    w.accept("dave", offer)
    w.sync("bob", "dave")
    early = w.share("dave", "erin", keys=[first_key(w)])  # concurrent with the release
    w.release("bob", offer)
    w.sync_all()
    fresh = w.fresh()
    assert fresh.state.is_member(w.person("dave").did)
    assert reason(fresh, early.cid) == "not_a_member"


def test_release_needs_the_acceptance_in_its_past() -> None:
    w = three()
    offer = w.share("bob", "dave")
    early = w.release("bob", offer)
    assert reason(w.fresh(), early.cid) == "not_accepted"


def test_only_the_recipient_accepts_and_only_the_sharer_cancels() -> None:
    w = three()
    offer = w.share("bob", "dave")
    w.sync("carol", "bob")
    assert reason_after(w, w.accept("carol", offer)) == "not_offer_recipient"
    assert reason_after(w, w.cancel("carol", offer)) == "not_offer_author"


def test_the_creator_is_protected() -> None:
    w = World(b"creator")
    w.create("owner")
    w.invite("owner", "bob", Permissions.all())
    ban = w.ban("bob", "owner")
    strip = w.set_perms("bob", "owner", sharing=False)
    fresh = w.fresh()
    assert reason(fresh, ban.cid) == "creator_protected"
    assert reason(fresh, strip.cid) == "creator_protected"
    w.sync("owner")
    assert reason_after(w, w.ban("owner", "owner")) is None  # banning yourself


def test_grants_cannot_exceed_the_sharers_permissions() -> None:
    w = three()
    offer = w.share("bob", "dave", perms=Permissions(sharing=True, management=True))
    assert reason(w.fresh(), offer.cid) == "permission_denied"


def test_a_rotation_needs_allow_rotation() -> None:
    w = three()
    rotation = w.rotate("bob")
    assert reason(w.fresh(), rotation.cid) == "permission_denied"


def test_deny_wins_on_concurrent_permission_changes() -> None:
    w = World(b"deny")
    w.create("owner")
    w.invite("owner", "mgr", Permissions(management=True))
    w.invite("owner", "bob")
    w.sync_all()
    deny = w.set_perms("owner", "bob", sharing=False)
    grant = w.set_perms("mgr", "bob", sharing=True, rotation=True)
    w.sync_all()
    state = w.fresh().state
    bob = state.members[w.person("bob").did]
    assert (bob.perms.sharing, bob.perms.rotation) == (False, True)  # only the flag denied
    assert reason(w.fresh(), deny.cid) is None and reason(w.fresh(), grant.cid) is None
    # after seeing the deny, a grant does take effect
    w.set_perms("mgr", "bob", sharing=True)
    assert w.fresh().state.members[bob.did].perms.sharing


# --- cancel -------------------------------------------------------------------------------


def test_cancel_before_acceptance_leaves_the_recipient_nothing() -> None:
    w = three()
    offer = w.share("bob", "dave")
    w.cancel("bob", offer)
    w.sync("dave", "bob")
    accept = w.accept("dave", offer)
    w.sync("bob", "dave")
    fresh = w.fresh()
    assert reason(fresh, accept.cid) == "offer_cancelled"
    assert fresh.state.offers[offer.cid].status == "cancelled"
    assert w.person("dave").did not in fresh.state.holdings
    assert not w.person("dave").keys


def test_cancel_concurrent_with_acceptance_wins_and_no_release_follows() -> None:
    w = three()
    offer = w.share("bob", "dave")
    w.sync("dave", "bob")
    accept = w.accept("dave", offer)  # concurrent with the cancel below
    cancel = w.cancel("bob", offer)
    w.sync_all()
    fresh = w.fresh()
    assert fresh.state.offers[offer.cid].status == "cancelled"
    assert reason(fresh, cancel.cid) is None and reason(fresh, accept.cid) == "offer_cancelled"
    late = w.release("bob", offer)  # a sharer that releases anyway is ignored
    assert reason(w.fresh(), late.cid) == "offer_cancelled"


def test_cancel_after_release_is_too_late() -> None:
    w = three()
    offer = w.share("bob", "dave")
    w.sync("dave", "bob")
    w.accept("dave", offer)
    w.sync("bob", "dave")
    w.release("bob", offer)
    assert reason_after(w, w.cancel("bob", offer)) == "already_released"


# --- races --------------------------------------------------------------------------------


def ban_race() -> tuple[World, dict[str, str]]:
    """owner bans bob while bob, concurrently, shares to dave, who accepts; bob releases."""
    w = World(b"ban-race")
    w.create("owner")
    w.invite("owner", "bob", SHARING)
    w.sync("owner")
    ban = w.ban("owner", "bob")
    offer = w.share("bob", "dave")
    w.sync("dave", "bob")
    accept = w.accept("dave", offer)
    w.sync("bob", "dave")
    release = w.release("bob", offer)
    w.sync_all()
    return w, {"ban": ban.cid, "offer": offer.cid, "accept": accept.cid, "release": release.cid}


def test_a_ban_voids_the_banned_members_concurrent_share_and_what_depends_on_it() -> None:
    w, ops = ban_race()
    fresh = w.fresh()
    assert reason(fresh, ops["ban"]) is None
    assert reason(fresh, ops["offer"]) == "banned"
    assert reason(fresh, ops["accept"]) == "offer_invalid"
    assert reason(fresh, ops["release"]) == "banned"
    assert w.person("dave").did not in fresh.state.members


def test_a_ban_voids_concurrent_ops_even_when_it_is_ready_later() -> None:
    # The ban follows an op by a junior member that bob's concurrent share would be
    # ordered before (bob is more senior): the share still waits for the ban.
    w = World(b"late-ban")
    w.create("owner")
    w.invite("owner", "bob", SHARING)
    w.invite("owner", "zed", SHARING)
    w.sync_all()
    junior = w.share("zed", "erin")
    w.sync("owner", "zed")
    ban = w.ban("owner", "bob")
    offer = w.share("bob", "dave")
    w.sync_all()
    fresh = w.fresh()
    assert fresh.index[junior.cid] < fresh.index[ban.cid] < fresh.index[offer.cid]
    assert reason(fresh, offer.cid) == "banned"


def test_mutual_bans_resolve_by_seniority() -> None:
    w = World(b"mutual")
    w.create("owner")
    w.invite("owner", "a", Permissions(deletion=True))
    w.invite("owner", "b", Permissions(deletion=True))
    w.sync_all()
    a_bans_b = w.ban("a", "b")
    b_bans_a = w.ban("b", "a")
    w.sync_all()
    fresh = w.fresh()
    assert reason(fresh, a_bans_b.cid) is None  # a joined first: more senior
    assert reason(fresh, b_bans_a.cid) == "banned"


def concurrent_rotations() -> tuple[World, str, str]:
    w = World(b"rotations")
    w.create("owner")
    w.invite("owner", "bob", Permissions(rotation=True, sharing=True))
    w.sync_all()
    one = w.rotate("owner", to=["bob"])
    two = w.rotate("bob", to=["owner"])
    w.sync_all()
    return w, one.cid, two.cid


def test_concurrent_rotations_keep_both_keys_and_agree_on_the_most_recent() -> None:
    w, _, two = concurrent_rotations()
    state = w.fresh().state
    assert len(state.keys) == 3
    recent = {p.name: p.replica.state.most_recent_key(p.did, w.clock) for p in w.people.values()}
    assert len({r.fp for r in recent.values() if r is not None}) == 1
    # the owner's rotation is replayed first (more senior), so bob's is the most recent
    assert recent["owner"] is not None and recent["owner"].op == two


def test_a_fork_voids_its_author_from_the_fork_on() -> None:
    w = three()
    bob = w.person("bob")
    assert bob.writer is not None
    before = bob.writer.last
    one = w.share("bob", "dave")
    bob.writer.last = before
    two = w.share("bob", "erin", apply=False)
    w.sync("owner")
    fresh = w.fresh()
    assert reason(fresh, one.cid) == reason(fresh, two.cid) == "fork"


def test_a_gap_in_a_chain_is_refused() -> None:
    w = three()
    honest = w.share("bob", "dave", apply=False)
    fields = {k: v for k, v in dagcbor.decode(honest.data).items() if k not in ("v", "sig")}
    fields["seq"] += 1  # prev stays the op at seq - 2
    gap = decode_op(sign_object(SCHEMAS["share"], fields, w.person("bob").signing).data)
    fresh = w.fresh([*w.ops[:-1], gap])
    assert reason(fresh, gap.cid) == "chain_invalid"
    assert gap.cid not in fresh.state.invalid  # refused: never part of the DAG


def test_every_reason_is_documented() -> None:
    assert {"permission_denied", "banned", "offer_cancelled", "unknown_key"} <= set(REASONS)


# --- convergence --------------------------------------------------------------------------


def busy_world() -> World:
    """Rotations, a ban race, a cancel, permission races and a leave, all concurrent."""
    w = World(b"busy")
    w.create("owner")
    w.invite("owner", "bob", Permissions(sharing=True, rotation=True))
    w.invite("owner", "mgr", Permissions(management=True, deletion=True))
    w.invite("bob", "carol")
    w.sync_all()
    w.rotate("owner", to=["bob", "mgr", "carol"])
    w.rotate("bob", to=["owner"])
    w.set_perms("mgr", "carol", sharing=True)
    w.set_perms("owner", "carol", sharing=False)
    offer = w.share("bob", "dave")
    w.ban("mgr", "bob")
    w.sync("dave", "bob")
    w.accept("dave", offer)
    w.sync("bob", "dave")
    w.release("bob", offer)
    w.leave("carol")
    other = w.share("owner", "erin")
    w.cancel("owner", other)
    w.sync_all()
    return w


@pytest.fixture(scope="module")
def busy() -> World:
    return busy_world()


def test_every_replica_of_the_busy_world_agrees(busy: World) -> None:
    digest = busy.fresh().state.digest()
    assert all(p.replica.state.digest() == digest for p in busy.people.values() if p.replica)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_replay_converges_for_every_merge_order(busy: World, data: st.DataObject) -> None:
    expected = busy.fresh()
    ops = data.draw(st.permutations(busy.ops))
    cuts = data.draw(st.sets(st.integers(0, len(ops)), max_size=6))
    replica = Replica(busy.keychain)
    for i, op in enumerate(ops):
        replica.add(op.data)
        if i in cuts:
            replica.update()
    replica.update()
    assert replica.order == expected.order
    assert replica.state.digest() == expected.state.digest()


@pytest.mark.parametrize("scenario", ["ban_race", "rotations"])
def test_both_merge_orders_converge(scenario: str) -> None:
    w = ban_race()[0] if scenario == "ban_race" else concurrent_rotations()[0]
    halves = {p.name: [op for op in p.replica.ops()] for p in w.people.values() if p.replica}
    expected = w.fresh().state.digest()
    for first, second in [("owner", "bob"), ("bob", "owner")]:
        replica = Replica(w.keychain)
        for op in halves[first]:
            replica.add(op.data)
        replica.update()
        for op in w.ops:
            replica.add(op.data)
        replica.update()
        assert replica.state.digest() == expected, (first, second)


# --- random worlds ------------------------------------------------------------------------

PEOPLE = ("owner", "bob", "carol", "dave")
ACTIONS = ("share", "rotate", "perms", "ban", "leave", "cancel", "sync", "sync")


def _act(w: World, who: str, action: str, other: str, flag: bool) -> None:
    """One step of a random world: ops that may well be invalid (that is the point)."""
    p = w.person(who)
    if p.replica is None or not p.secret:
        return
    state = p.replica.state
    if action == "share" and other != who:
        held = list(p.keys)
        if held:
            perms = Permissions(sharing=flag, rotation=not flag)
            offer = w.share(who, other, keys=held[:1], perms=perms)
            w.sync(other, who)
            w.accept(other, offer)
            w.sync(who, other)
            if (
                state.offers.get(offer.cid) is not None
                and state.offers[offer.cid].status == "accepted"
            ):
                w.release(who, offer)
    elif action == "rotate":
        w.rotate(who, to=[m for m in PEOPLE if m != who and state.is_member(w.person(m).did)])
    elif action == "perms" and state.is_member(w.person(other).did):
        w.set_perms(who, other, sharing=flag)
    elif action == "ban" and state.is_member(w.person(other).did):
        w.ban(who, other)
    elif action == "leave" and who != "owner":
        w.leave(who)
    elif action == "cancel":
        offers = state.open_offers(sharer=p.did)
        if offers:
            w.cancel(who, p.replica.nodes[offers[0].cid].op)
    else:
        w.sync(who, other)


@settings(max_examples=12, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(PEOPLE),
            st.sampled_from(ACTIONS),
            st.sampled_from(PEOPLE),
            st.booleans(),
        ),
        min_size=4,
        max_size=12,
    ),
    data=st.data(),
)
def test_random_worlds_converge(
    steps: list[tuple[str, str, str, bool]], data: st.DataObject
) -> None:
    w = World(b"random")
    for name in PEOPLE:
        w.person(name)
    w.create("owner")
    w.invite("owner", "bob", Permissions.all())
    for who, action, other, flag in steps:
        _act(w, who, action, other, flag)
    w.sync_all()
    expected = w.fresh()
    for p in w.people.values():
        if p.replica is not None:
            assert p.replica.state.digest() == expected.state.digest(), p.name
    order = data.draw(st.permutations(w.ops))
    cuts = data.draw(st.sets(st.integers(0, len(order)), max_size=5))
    replica = Replica(w.keychain)
    for i, op in enumerate(order):
        replica.add(op.data)
        if i in cuts:
            replica.update()
    replica.update()
    assert replica.state.digest() == expected.state.digest()


def test_ops_are_frozen_however_they_were_built() -> None:
    import dataclasses

    w = three()
    share = next(op for op in w.ops if op.kind == "share")
    for op in (share, w.fresh().nodes[share.cid].op):  # made, and decoded
        with pytest.raises(dataclasses.FrozenInstanceError):
            op.seq = 99  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            op.body.to = "did:key:z6Mk..."  # type: ignore[misc,union-attr]
