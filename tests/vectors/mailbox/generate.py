"""Generate the mailbox vectors (docs/spec/mailbox.md).

Run from the repository root: ``.venv/bin/python tests/vectors/mailbox/generate.py``.

``kind: entry`` -- the body is one entry; ``sender`` (when present) is the signer the
reader expects; ``cid`` pins a success (and ``acks``, the number of references of an
acknowledgement entry).

``kind: chain`` -- a block store and a walk: ``block_0``, ``block_1``, ... are the blocks
(hex), each stored under its own CID unless ``block_N_cid`` names another (a lying
store); the reader verifies the chain from ``head`` for ``sender``, with ``head_seq``
(the IPNS record's sequence) and the high-water mark ``known_seq``/``known_cid`` when
present. ``new_seqs`` pins a success: the seqs of the new entries, oldest first.

``kind: name`` -- the key derivation: both ends (the X25519 and Ed25519 secrets of each
are given) must derive ``name`` for the mailbox from sender to recipient, and
``reverse_name`` for the other direction.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import vectorfile  # noqa: E402

from ipfs_share.crypto.labels import LABEL_MAILBOX_ENTRY  # noqa: E402
from ipfs_share.crypto.random import DeterministicRng  # noqa: E402
from ipfs_share.crypto.signing import SigningKey  # noqa: E402
from ipfs_share.crypto.x25519 import EncryptionKey  # noqa: E402
from ipfs_share.formats import dagcbor  # noqa: E402
from ipfs_share.formats.dagcbor import Link  # noqa: E402
from ipfs_share.formats.mailbox import (  # noqa: E402
    MAX_ACKS,
    MailboxEntry,
    ack_reference,
    mailbox_name,
    make_ack,
    make_acks,
    make_entry,
    make_keychain_entry,
)
from ipfs_share.formats.signed import block_from_bytes, block_of, did_key  # noqa: E402

SENT = 1_800_000_000


def _rng(scenario: str) -> DeterministicRng:
    return DeterministicRng(b"ipfs-share/vectors/mailbox/" + scenario.encode())


def _capsule_ids(rng: DeterministicRng, n: int) -> list[str]:
    # Capsule IDs are dag-cbor CIDs; the blocks behind them do not matter here.
    return [block_of({"capsule": rng(16)}).cid for _ in range(n)]


def _box(rng: DeterministicRng) -> SigningKey:
    """The key of the mailbox an acknowledged capsule came through (any key will do)."""
    return SigningKey.generate(rng)


def _signed(value: dict[str, Any], key: SigningKey) -> bytes:
    """Sign any map as an entry would be (for objects the encoder refuses)."""
    body = {k: v for k, v in value.items() if k != "sig"}
    body["sig"] = key.sign(LABEL_MAILBOX_ENTRY + dagcbor.encode(body))
    return dagcbor.encode(body)


def _chain(
    key: SigningKey, capsules: list[str], start: MailboxEntry | None = None
) -> list[MailboxEntry]:
    entries: list[MailboxEntry] = []
    previous = start
    for i, capsule in enumerate(capsules):
        previous = make_entry(key, previous, capsule=capsule, sent=SENT + 60 * i)
        entries.append(previous)
    return entries


def build() -> dict[str, str]:
    """Scenario name -> file text."""
    files: dict[str, str] = {}
    _entries(files)
    _chains(files)
    _names(files)
    return files


def _entries(files: dict[str, str]) -> None:
    def entry_vector(name: str, expect: str, comment: str, body: bytes, **extra: Any) -> None:
        files[name] = vectorfile.dump(
            {"expect": expect, "kind": "entry", "comment": comment, **extra}, body=body
        )

    def setup(name: str) -> tuple[SigningKey, list[str], DeterministicRng]:
        rng = _rng(name)
        return SigningKey.generate(rng), _capsule_ids(rng, 2), rng

    key, caps, _ = setup("entry_success")
    first = make_entry(key, None, capsule=caps[0], sent=SENT)
    second = make_entry(key, first, capsule=caps[1], sent=SENT + 60)
    entry_vector(
        "entry_success",
        "success",
        "a second capsule entry (seq 1)",
        second.data,
        sender=second.sender,
        cid=second.cid,
    )
    entry_vector(
        "entry_first_success",
        "success",
        "a first capsule entry (seq 0, prev null)",
        first.data,
        sender=first.sender,
        cid=first.cid,
    )

    key, caps, rng = setup("ack_success")
    first = make_entry(key, None, capsule=caps[0], sent=SENT)
    ack = make_ack(key, first, capsule=caps[1], via=_box(rng), state="opened", sent=SENT + 60)
    entry_vector(
        "ack_success",
        "success",
        "an acknowledgement (state opened) after a capsule entry",
        ack.data,
        sender=ack.sender,
        cid=ack.cid,
    )

    key, caps, _ = setup("keychain_entry_success")
    first = make_entry(key, None, capsule=caps[0], sent=SENT)
    pointer = make_keychain_entry(key, first, op=caps[1], sent=SENT + 60)
    entry_vector(
        "keychain_entry_success",
        "success",
        "a keychain entry (pointing at a keychain op) after a capsule entry",
        pointer.data,
        sender=pointer.sender,
        cid=pointer.cid,
    )

    key, caps, rng = setup("acks_success")
    first = make_entry(key, None, capsule=caps[0], sent=SENT)
    box = _box(rng)
    acks = make_acks(key, first, capsules=caps, via=box, state="delivered", sent=SENT + 60)
    entry_vector(
        "acks_success",
        "success",
        "one acknowledgement entry for two capsules (state delivered), references sorted",
        acks.data,
        sender=acks.sender,
        cid=acks.cid,
        acks=2,
    )

    key, caps, _ = setup("bad_signature")
    data = bytearray(make_entry(key, None, capsule=caps[0], sent=SENT).data)
    data[data.index(b"\x63sig\x58\x40") + 6] ^= 0x01
    entry_vector("bad_signature", "signature_invalid", "one bit of sig flipped", bytes(data))

    key, caps, rng = setup("wrong_signer")
    other = SigningKey.generate(rng)
    entry_vector(
        "wrong_signer",
        "signature_invalid",
        "a valid entry by another sender than expected",
        make_entry(other, None, capsule=caps[0], sent=SENT).data,
        sender=did_key(key.public_key),
    )

    key, caps, rng = setup("forged_sender")
    other = SigningKey.generate(rng)
    value = dagcbor.decode(make_entry(key, None, capsule=caps[0], sent=SENT).data)
    entry_vector(
        "forged_sender",
        "signature_invalid",
        "names one sender, signed by another key",
        _signed(value, other),
    )

    key, caps, rng = setup("invalid")
    base = dagcbor.decode(make_entry(key, None, capsule=caps[0], sent=SENT).data)
    ack = dagcbor.decode(
        make_ack(key, None, capsule=caps[0], via=_box(rng), state="delivered", sent=SENT).data
    )
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("unknown_version", "v is 2 (validly signed)", {**base, "v": 2}),
        ("extra_field", "an unknown key 'to' (validly signed)", {**base, "to": "bob"}),
        (
            "missing_field",
            "no 'sent' (validly signed)",
            {k: v for k, v in base.items() if k != "sent"},
        ),
        ("oversize", "over 1024 bytes: a 1100-byte key (validly signed)", {**base, "x" * 1100: 0}),
        (
            "seq0_with_prev",
            "seq 0 with a prev link (validly signed)",
            {**base, "prev": Link(caps[1])},
        ),
        ("seq1_without_prev", "seq 1 with prev null (validly signed)", {**base, "seq": 1}),
        (
            "both_kinds",
            "both 'capsule' and 'ack' (validly signed)",
            {**ack, "capsule": Link(caps[1])},
        ),
        ("ack_unknown_state", "ack state 'read' (validly signed)", {**ack, "state": "read"}),
        (
            "keychain_and_capsule",
            "both 'keychain' and 'capsule' (validly signed)",
            {**base, "keychain": Link(caps[1])},
        ),
        (
            "ack_with_link",
            "an ack naming its capsule by a link, which would tell who received it",
            {**ack, "ack": Link(caps[0])},
        ),
        (
            "capsule_not_dag_cbor",
            "the capsule link is a raw CID, not a capsule's dag-cbor CID (validly signed)",
            {
                **base,
                "capsule": Link("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"),
            },
        ),
    ]
    many = dagcbor.decode(
        make_acks(key, None, capsules=caps, via=_box(rng), state="opened", sent=SENT).data
    )
    refs = sorted(ack_reference(_box(rng), Link(c)) for c in _capsule_ids(rng, MAX_ACKS + 1))
    cases += [
        (
            "acks_unsorted",
            "acks in decreasing order (validly signed)",
            {**many, "acks": sorted(many["acks"], reverse=True)},
        ),
        (
            "acks_repeated",
            "the same reference twice (validly signed)",
            {**many, "acks": [many["acks"][0], many["acks"][0]]},
        ),
        ("acks_empty", "an empty acks list (validly signed)", {**many, "acks": []}),
        (
            "acks_too_many",
            f"{MAX_ACKS + 1} references, one over the cap (validly signed)",
            {**many, "acks": refs},
        ),
        (
            "acks_and_ack",
            "both 'acks' and 'ack' (validly signed)",
            {**many, "ack": many["acks"][0]},
        ),
    ]
    for name, comment, value in cases:
        entry_vector(name, "format_invalid", comment, _signed(value, key))


def _chains(files: dict[str, str]) -> None:
    def chain_vector(
        name: str, expect: str, comment: str, blocks: list[tuple[str | None, bytes]], **extra: Any
    ) -> None:
        fields: dict[str, Any] = {"expect": expect, "kind": "chain", "comment": comment, **extra}
        for i, (cid, data) in enumerate(blocks):
            fields[f"block_{i}"] = data
            if cid is not None:
                fields[f"block_{i}_cid"] = cid
        files[name] = vectorfile.dump(fields)

    def setup(name: str) -> tuple[SigningKey, list[str], DeterministicRng]:
        rng = _rng(name)
        return SigningKey.generate(rng), _capsule_ids(rng, 4), rng

    def own(entries: list[MailboxEntry]) -> list[tuple[str | None, bytes]]:
        return [(None, e.data) for e in entries]

    key, caps, rng = setup("chain_success")
    chain = _chain(key, caps[:3])
    box = _box(rng)
    chain.append(
        make_ack(key, chain[-1], capsule=caps[3], via=box, state="delivered", sent=SENT + 600)
    )
    chain_vector(
        "chain_success",
        "success",
        "four entries (three capsules, one ack) from seq 0",
        own(chain),
        sender=chain[0].sender,
        head=chain[-1].cid,
        head_seq=3,
        new_seqs="0,1,2,3",
    )

    key, caps, _ = setup("chain_incremental")
    chain = _chain(key, caps)
    chain_vector(
        "chain_incremental",
        "success",
        "a sync from the high-water mark at seq 1 reads 3 and 2",
        own(chain[2:]),
        sender=chain[0].sender,
        head=chain[-1].cid,
        head_seq=3,
        known_seq=1,
        known_cid=chain[1].cid,
        new_seqs="2,3",
    )

    key, caps, _ = setup("chain_up_to_date")
    chain = _chain(key, caps[:2])
    chain_vector(
        "chain_up_to_date",
        "success",
        "the head is the high-water mark: nothing to read",
        [],
        sender=chain[0].sender,
        head=chain[-1].cid,
        head_seq=1,
        known_seq=1,
        known_cid=chain[-1].cid,
        new_seqs="",
    )

    key, caps, _ = setup("chain_gap")
    chain = _chain(key, caps[:2])
    value = dagcbor.decode(make_entry(key, chain[1], capsule=caps[2], sent=SENT).data)
    value["seq"] = 3  # seq 3 whose prev is seq 1: entry 2 is missing
    gap = block_from_bytes(_signed(value, key))
    chain_vector(
        "chain_gap",
        "chain_invalid",
        "seq 3 links to seq 1 (each entry valid on its own)",
        [*own(chain), (None, gap.data)],
        sender=chain[0].sender,
        head=gap.cid,
    )

    key, caps, _ = setup("chain_loop")
    chain = _chain(key, caps[:3])
    # The store answers entry 1's CID with entry 2's bytes, which would lead back to
    # entry 1 forever if blocks were not checked against their CIDs.
    chain_vector(
        "chain_loop",
        "integrity_error",
        "the store returns the head's bytes for the head's prev: a loop, caught by the CID",
        [(None, chain[0].data), (chain[1].cid, chain[2].data), (None, chain[2].data)],
        sender=chain[0].sender,
        head=chain[2].cid,
    )

    key, caps, _ = setup("chain_fork")
    chain = _chain(key, caps[:3])
    other = _chain(key, caps[3:], start=chain[0])  # another seq 1 after the same seq 0
    more = make_entry(key, other[0], capsule=caps[0], sent=SENT + 999)
    chain_vector(
        "chain_fork",
        "feed_fork",
        "the high-water mark is seq 1, but the new head's history has another seq 1",
        own([chain[0], other[0], more]),
        sender=chain[0].sender,
        head=more.cid,
        known_seq=1,
        known_cid=chain[1].cid,
    )

    key, caps, _ = setup("chain_rollback")
    chain = _chain(key, caps[:3])
    chain_vector(
        "chain_rollback",
        "feed_rollback",
        "the head offered (seq 1) is older than the high-water mark (seq 2)",
        own(chain),
        sender=chain[0].sender,
        head=chain[1].cid,
        known_seq=2,
        known_cid=chain[2].cid,
    )

    key, caps, rng = setup("chain_same_seq")
    chain = _chain(key, caps[:3])
    other = _chain(key, caps[3:], start=chain[1])  # another seq 2 after the same seq 1
    chain_vector(
        "chain_same_seq",
        "feed_fork",
        "the high-water mark is seq 2; the head offered is another seq 2",
        own([other[0]]),
        sender=chain[0].sender,
        head=other[0].cid,
        known_seq=2,
        known_cid=chain[2].cid,
    )

    key, caps, rng = setup("chain_acks")
    chain = _chain(key, caps[:2])
    box = _box(rng)
    chain.append(
        make_acks(key, chain[-1], capsules=caps[2:], via=box, state="opened", sent=SENT + 600)
    )
    chain_vector(
        "chain_acks",
        "success",
        "two capsule entries, then one entry acknowledging two capsules",
        own(chain),
        sender=chain[0].sender,
        head=chain[-1].cid,
        head_seq=2,
        new_seqs="0,1,2",
    )

    key, caps, rng = setup("chain_wrong_signer")
    intruder = SigningKey.generate(rng)
    first = make_entry(intruder, None, capsule=caps[0], sent=SENT)
    value = dagcbor.decode(make_entry(key, None, capsule=caps[1], sent=SENT + 60).data)
    value.update(seq=1, prev=Link(first.cid))
    top = block_from_bytes(_signed(value, key))
    chain_vector(
        "chain_wrong_signer",
        "signature_invalid",
        "seq 1 by the sender links to a seq 0 validly signed by someone else",
        [(None, first.data), (None, top.data)],
        sender=did_key(key.public_key),
        head=top.cid,
    )

    key, caps, _ = setup("chain_record_seq_mismatch")
    chain = _chain(key, caps[:2])
    chain_vector(
        "chain_record_seq_mismatch",
        "chain_invalid",
        "the IPNS record says sequence 5, the head entry says seq 1",
        own(chain),
        sender=chain[0].sender,
        head=chain[-1].cid,
        head_seq=5,
    )


def _names(files: dict[str, str]) -> None:
    rng = _rng("name")
    sender, sender_enc = SigningKey.generate(rng), EncryptionKey.generate(rng)
    recipient, recipient_enc = SigningKey.generate(rng), EncryptionKey.generate(rng)
    s_did, r_did = did_key(sender.public_key), did_key(recipient.public_key)
    files["name"] = vectorfile.dump(
        {
            "expect": "success",
            "kind": "name",
            "comment": "the mailbox name from both ends, and the reverse direction's",
            "sender_seed": sender.seed_bytes(),
            "sender_x25519": sender_enc.secret_bytes(),
            "recipient_seed": recipient.seed_bytes(),
            "recipient_x25519": recipient_enc.secret_bytes(),
            "name": mailbox_name(
                sender_enc, recipient_enc.public_key, sender=s_did, recipient=r_did
            ),
            "reverse_name": mailbox_name(
                recipient_enc, sender_enc.public_key, sender=r_did, recipient=s_did
            ),
        }
    )


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
