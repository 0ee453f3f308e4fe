"""Mailboxes: the pair key both ends derive, entries of both kinds, the chain verifier."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ipfs_share.crypto.labels import LABEL_MAILBOX_ENTRY
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey, PublicEncryptionKey
from ipfs_share.errors import (
    ChainInvalidError,
    FormatError,
    IntegrityError,
    InvalidInputError,
    SignatureInvalidError,
)
from ipfs_share.formats import dagcbor
from ipfs_share.formats import mailbox as mailbox_module
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.ipns import ipns_name, verify_record
from ipfs_share.formats.mailbox import (
    HighWater,
    MailboxEntry,
    acknowledges,
    decode_entry,
    head_from_record,
    head_record,
    mailbox_key,
    mailbox_name,
    make_ack,
    make_entry,
    verify_chain,
)
from ipfs_share.formats.signed import block_of, did_key, run_walk

ALICE, ALICE_ENC = SigningKey.from_seed(b"\x01" * 32), EncryptionKey(b"\x02" * 32)
BOB, BOB_ENC = SigningKey.from_seed(b"\x03" * 32), EncryptionKey(b"\x04" * 32)
EVE, EVE_ENC = SigningKey.from_seed(b"\x05" * 32), EncryptionKey(b"\x06" * 32)
A, B, E = (did_key(k.public_key) for k in (ALICE, BOB, EVE))
CAPSULES = [block_of({"capsule": n}).cid for n in range(10)]
BOX = mailbox_key(ALICE_ENC, BOB_ENC.public_key, sender=A, recipient=B)
T0 = 1_800_000_000


def _chain(n: int, key: SigningKey = ALICE) -> list[MailboxEntry]:
    entries: list[MailboxEntry] = []
    for i in range(n):
        prev = entries[-1] if entries else None
        entries.append(make_entry(key, prev, capsule=CAPSULES[i], sent=T0 + i))
    return entries


def _store(*groups: list[MailboxEntry]) -> dict[str, bytes]:
    return {e.cid: e.data for group in groups for e in group}


def _resigned(value: dict[str, Any], key: SigningKey = ALICE) -> bytes:
    body = {k: v for k, v in value.items() if k != "sig"}
    body["sig"] = key.sign(LABEL_MAILBOX_ENTRY + dagcbor.encode(body))
    return dagcbor.encode(body)


def test_docstring_examples() -> None:
    assert doctest.testmod(mailbox_module).failed == 0


def test_both_ends_derive_the_same_name_and_directions_differ() -> None:
    by_sender = mailbox_name(ALICE_ENC, BOB_ENC.public_key, sender=A, recipient=B)
    by_recipient = mailbox_name(BOB_ENC, ALICE_ENC.public_key, sender=A, recipient=B)
    reverse = mailbox_name(BOB_ENC, ALICE_ENC.public_key, sender=B, recipient=A)
    outsider = mailbox_name(EVE_ENC, BOB_ENC.public_key, sender=A, recipient=B)
    assert by_sender == by_recipient
    assert len({by_sender, reverse, outsider}) == 3
    assert by_sender.startswith("k51")
    # The name is not one of the parties' own names.
    assert by_sender not in {ipns_name(ALICE.public_key), ipns_name(BOB.public_key)}
    with pytest.raises(InvalidInputError, match="low-order"):
        mailbox_key(ALICE_ENC, PublicEncryptionKey(bytes(32)), sender=A, recipient=B)


def test_entries_round_trip_both_kinds() -> None:
    first = make_entry(ALICE, None, capsule=CAPSULES[0], sent=T0)
    ack = make_ack(ALICE, first, capsule=CAPSULES[0], via=BOX, state="delivered", sent=T0 + 1)
    assert decode_entry(first.data, sender=A) == first
    assert (ack.kind, ack.state, ack.seq, ack.prev) == ("ack", "delivered", 1, Link(first.cid))
    assert first.kind == "capsule" and first.prev is None and first.ack is None
    assert ack.capsule is None and len(ack.ack or b"") == 32
    with pytest.raises(InvalidInputError):
        make_entry(BOB, first, capsule=CAPSULES[1], sent=T0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": 1}, "prev to be null exactly when seq is 0"),
        ({"prev": Link(CAPSULES[0])}, "prev to be null exactly when seq is 0"),
        ({"v": 2}, "version 1"),
        ({"extra": 1}, "unknown 'extra'"),
        ({"state": "opened"}, "unknown 'state'"),
        ({"capsule": Link("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")}, "0x71"),
        ({"sent": "now"}, "2\\^63-1"),
    ],
)
def test_entry_refusals(change: dict[str, Any], message: str) -> None:
    value = {**dagcbor.decode(_chain(1)[0].data), **change}
    with pytest.raises(FormatError, match=message):
        decode_entry(_resigned(value))


def test_ack_state_must_be_known() -> None:
    ack = make_ack(ALICE, None, capsule=CAPSULES[0], via=BOX, state="opened", sent=T0)
    value = {**dagcbor.decode(ack.data), "state": "read"}
    with pytest.raises(FormatError, match="one of"):
        decode_entry(_resigned(value))


def test_ack_names_its_capsule_only_for_the_two_ends() -> None:
    # Bob acknowledges, in his mailbox to Alice, a capsule that came through Alice's to him.
    box_for_bob = mailbox_key(BOB_ENC, ALICE_ENC.public_key, sender=A, recipient=B)
    ack = make_ack(BOB, None, capsule=CAPSULES[3], via=box_for_bob, state="opened", sent=T0)
    assert acknowledges(ack, BOX, CAPSULES[3])  # Alice, with her own view of the mailbox
    assert not acknowledges(ack, BOX, CAPSULES[4])
    other_box = mailbox_key(EVE_ENC, BOB_ENC.public_key, sender=E, recipient=B)
    assert not acknowledges(ack, other_box, CAPSULES[3])
    assert bytes(Link(CAPSULES[3])) not in ack.data  # no link to the capsule in the clear
    assert not acknowledges(make_entry(BOB, None, capsule=CAPSULES[3], sent=T0), BOX, CAPSULES[3])


def test_chain_full_and_incremental() -> None:
    chain = _chain(5)
    store = _store(chain)
    assert run_walk(verify_chain(chain[-1].cid, sender=A, head_seq=4), store.__getitem__) == chain
    known = HighWater.of(chain[2])
    new = run_walk(verify_chain(chain[-1].cid, sender=A, known=known), store.__getitem__)
    assert new == chain[3:]
    reads: list[str] = []

    def get(cid: str) -> bytes:
        reads.append(cid)
        return store[cid]

    assert run_walk(verify_chain(chain[2].cid, sender=A, known=known), get) == []
    run_walk(verify_chain(chain[-1].cid, sender=A, known=known), get)
    assert reads == [chain[4].cid, chain[3].cid]  # only what is new


def test_chain_refusals() -> None:
    chain = _chain(4)
    store = _store(chain)
    get = store.__getitem__
    with pytest.raises(SignatureInvalidError):
        run_walk(verify_chain(chain[-1].cid, sender=B), get)
    with pytest.raises(ChainInvalidError, match="record's sequence"):
        run_walk(verify_chain(chain[-1].cid, sender=A, head_seq=7), get)
    with pytest.raises(ChainInvalidError, match="rollback"):
        run_walk(verify_chain(chain[1].cid, sender=A, known=HighWater.of(chain[2])), get)
    # A fork: another history with the same length.
    other = [make_entry(ALICE, None, capsule=CAPSULES[9], sent=T0)]
    other.append(make_entry(ALICE, other[0], capsule=CAPSULES[8], sent=T0))
    other.append(make_entry(ALICE, other[1], capsule=CAPSULES[7], sent=T0))
    both = {**store, **_store(other)}
    with pytest.raises(ChainInvalidError, match="fork"):
        run_walk(
            verify_chain(other[2].cid, sender=A, known=HighWater.of(chain[1])), both.__getitem__
        )
    # A gap: seq 2 whose prev is seq 0.
    value = dagcbor.decode(chain[2].data)
    value["prev"] = Link(chain[0].cid)
    gap = decode_entry(_resigned(value))
    gapped = {**store, gap.cid: gap.data}
    with pytest.raises(ChainInvalidError, match="gap"):
        run_walk(verify_chain(gap.cid, sender=A), gapped.__getitem__)
    # A store that answers a CID with another block (the only way to make a loop).
    lying = {**store, chain[2].cid: chain[3].data}
    with pytest.raises(IntegrityError):
        run_walk(verify_chain(chain[3].cid, sender=A), lying.__getitem__)
    # A chain that mixes senders.
    value = dagcbor.decode(chain[0].data)
    foreign = make_entry(BOB, None, capsule=CAPSULES[0], sent=T0)
    mixed = make_entry(ALICE, None, capsule=CAPSULES[1], sent=T0)
    value = dagcbor.decode(mixed.data)
    value.update(seq=1, prev=Link(foreign.cid))
    top = decode_entry(_resigned(value))
    store2 = {foreign.cid: foreign.data, top.cid: top.data}
    with pytest.raises(SignatureInvalidError):
        run_walk(verify_chain(top.cid, sender=A), store2.__getitem__)
    with pytest.raises(ChainInvalidError, match="at most 2"):
        run_walk(verify_chain(chain[-1].cid, sender=A, max_entries=2), get)


def test_head_record_round_trip() -> None:
    chain = _chain(3)
    key = mailbox_key(ALICE_ENC, BOB_ENC.public_key, sender=A, recipient=B)
    now = datetime(2027, 1, 1, tzinfo=UTC)
    record = head_record(key, chain[-1], validity=timedelta(hours=1), ttl_seconds=30, now=now)
    name = mailbox_name(BOB_ENC, ALICE_ENC.public_key, sender=A, recipient=B)
    head, seq = head_from_record(verify_record(name, record, now=now))
    assert (head, seq) == (chain[-1].cid, 2)
    store = _store(chain)
    assert run_walk(verify_chain(head, sender=A, head_seq=seq), store.__getitem__) == chain
