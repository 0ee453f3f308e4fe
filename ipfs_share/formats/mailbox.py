"""Mailboxes: a sender's signed, append-only chain of entries for one recipient.

Each ordered pair (sender, recipient) has its own mailbox, published under an IPNS name
whose key both ends derive and nobody else can (docs/spec/mailbox.md)::

    seed = HKDF(X25519(sender enc secret, recipient enc public),
                salt = sender ed25519 public || recipient ed25519 public,
                info = LABEL_MAILBOX_KEY, 32)

so the recipient finds the mailbox from the sender's public identity alone, and an
observer cannot tell whom a mailbox is for. Entries are signed by the sender's identity
key; the mailbox key only signs the IPNS record, which points at the newest entry (the
head) with IPNS sequence = the entry's seq.

Entries of three kinds share the chain: a capsule entry (``"capsule"``: a share for the
recipient), a keychain entry (``"keychain"``: a keychain op for the recipient to look at,
docs/spec/keychain.md), and an acknowledgement (``"acks"`` + ``"state"``: the recipient telling the
sender, in the reverse mailbox, that shares were delivered or opened; one entry carries up
to :data:`MAX_ACKS` of them, so a first sync of 10,000 capsules writes 10 entries, not
10,000). An acknowledgement names its capsule by a MAC only the two ends can compute
(:func:`ack_reference`): a link would tell everyone that its writer received that capsule.
The older single form (``"ack"``: one reference) is still read.

A mailbox is a feed (:mod:`ipfs_share.formats.feed`, kind :data:`MAILBOX_FEED`): linked,
and read from seq 0 by a new reader, since its entries are its content.

>>> from ipfs_share.crypto.signing import SigningKey
>>> from ipfs_share.formats.signed import did_key, run_walk
>>> alice = SigningKey.from_seed(b"\\x01" * 32)
>>> box = SigningKey.from_seed(b"\\x09" * 32)   # the key of the mailbox cap came through
>>> cap = "bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm"
>>> first = make_entry(alice, None, capsule=cap, sent=1_800_000_000)
>>> second = make_acks(alice, first, capsules=[cap], via=box, state="opened", sent=1_800_000_060)
>>> acknowledges(second, box, cap)
True
>>> store = {e.cid: e.data for e in (first, second)}
>>> new = run_walk(verify_chain(second.cid, sender=did_key(alice.public_key)), store.__getitem__)
>>> [(e.seq, e.kind) for e in new]
[(0, 'capsule'), (1, 'ack')]
>>> run_walk(verify_chain(second.cid, sender=first.sender, known=HighWater.of(first)),
...          store.__getitem__) == [second]
True
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_ACK_KEY, LABEL_MAILBOX_ENTRY, LABEL_MAILBOX_KEY
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey, PublicEncryptionKey
from ipfs_share.errors import ChainInvalidError, FormatError, InvalidInputError
from ipfs_share.formats import feed
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.ipns import IpnsRecord, ipns_name, make_record
from ipfs_share.formats.signed import (
    Block,
    BlockWalk,
    Schema,
    block_from_bytes,
    bytes_of,
    decode_signed_any,
    did,
    did_key,
    link,
    list_of,
    nullable,
    parse_did_key,
    sign_object,
    text,
    uint,
)

__all__ = [
    "ACK_STATES",
    "MAILBOX_FEED",
    "MAX_ACKS",
    "MAX_ACKS_SIZE",
    "MAX_ENTRY_SIZE",
    "HighWater",
    "MailboxEntry",
    "ack_reference",
    "acknowledges",
    "decode_entry",
    "feed_entry",
    "head_from_record",
    "head_record",
    "mailbox_key",
    "mailbox_name",
    "make_ack",
    "make_acks",
    "make_entry",
    "make_keychain_entry",
    "verify_chain",
]

MAX_ENTRY_SIZE: Final = 1024
ACK_SIZE: Final = 32
ACK_STATES: Final = ("delivered", "opened")
# One acknowledgement entry carries at most this many references (34 bytes each in
# dag-cbor), so it stays under MAX_ACKS_SIZE.
MAX_ACKS: Final = 1000
MAX_ACKS_SIZE: Final = 36 * 1024
# How many new entries one sync may read unless the caller allows more: a bound on the
# work a hostile or broken chain can cause, far above any real backlog.
DEFAULT_MAX_ENTRIES: Final = 100_000

AckState = Literal["delivered", "opened"]


def _entry_rules(value: dict[str, Any]) -> None:
    if (value["seq"] == 0) != (value["prev"] is None):
        raise FormatError(
            f"expected prev to be null exactly when seq is 0, found seq {value['seq']} "
            f"and prev {'null' if value['prev'] is None else 'a link'}"
        )


def _acks_rules(value: dict[str, Any]) -> None:
    _entry_rules(value)
    refs = value["acks"]
    for i in range(1, len(refs)):
        if not refs[i - 1] < refs[i]:
            raise FormatError(
                f"expected acks in strictly increasing byte order, found item {i} out of "
                "order or repeated"
            )


_COMMON: Final = {"seq": uint, "prev": nullable(link()), "sender": did, "sent": uint}
CAPSULE_ENTRY: Final = Schema(
    name="mailbox entry",
    label=LABEL_MAILBOX_ENTRY,
    fields={**_COMMON, "capsule": link()},
    signer="sender",
    max_size=MAX_ENTRY_SIZE,
    rules=_entry_rules,
)
ACK_ENTRY: Final = Schema(
    name="mailbox ack",
    label=LABEL_MAILBOX_ENTRY,
    fields={**_COMMON, "ack": bytes_of(ACK_SIZE), "state": text(16, choices=ACK_STATES)},
    signer="sender",
    max_size=MAX_ENTRY_SIZE,
    rules=_entry_rules,
)
ACKS_ENTRY: Final = Schema(
    name="mailbox acks",
    label=LABEL_MAILBOX_ENTRY,
    fields={
        **_COMMON,
        "acks": list_of(bytes_of(ACK_SIZE), MAX_ACKS, min_count=1),
        "state": text(16, choices=ACK_STATES),
    },
    signer="sender",
    max_size=MAX_ACKS_SIZE,
    max_counts={"acks": MAX_ACKS},
    rules=_acks_rules,
)
# A keychain op for the recipient to look at: an offer for it, or an accept of its offer
# (docs/spec/keychain.md section 6). The op is a public block anyway; the entry only tells
# the recipient where to look, and from whom.
KEYCHAIN_ENTRY: Final = Schema(
    name="mailbox keychain entry",
    label=LABEL_MAILBOX_ENTRY,
    fields={**_COMMON, "keychain": link()},
    signer="sender",
    max_size=MAX_ENTRY_SIZE,
    rules=_entry_rules,
)
_KINDS: Final = (CAPSULE_ENTRY, ACKS_ENTRY, ACK_ENTRY, KEYCHAIN_ENTRY)


@dataclass(frozen=True, slots=True)
class MailboxEntry:
    """A verified entry: kind ``"capsule"`` shares ``capsule``; kind ``"ack"`` says the
    capsules that ``acks`` refer to (:func:`acknowledges`) were ``state``. ``ack`` is
    the first reference (the only one, in the single form)."""

    seq: int
    prev: Link | None
    sender: str
    sent: int
    capsule: Link | None
    ack: bytes | None
    state: AckState | None
    cid: str
    data: bytes = field(repr=False)
    acks: tuple[bytes, ...] = field(default=(), repr=False)
    op: Link | None = None  # kind "keychain": the keychain op it points at

    @property
    def kind(self) -> Literal["capsule", "ack", "keychain"]:
        if self.op is not None:
            return "keychain"
        return "capsule" if self.state is None else "ack"


HighWater = feed.Mark
"""The newest entry a reader has already verified: where the next sync stops."""


# --- the mailbox key and name -------------------------------------------------------------


def mailbox_key(
    own_enc: EncryptionKey,
    peer_enc: PublicEncryptionKey,
    *,
    sender: str,
    recipient: str,
) -> SigningKey:
    """The Ed25519 key of the mailbox from ``sender`` to ``recipient`` (dids).

    Either end computes it: the sender with its own X25519 secret and the recipient's
    public key, the recipient with its secret and the sender's public key. The order of
    ``sender`` and ``recipient`` in the salt makes the two directions different mailboxes.
    """
    shared = own_enc.exchange(peer_enc)
    if shared == bytes(32):
        raise InvalidInputError(
            "expected an x25519 public key of full order, found a low-order point",
            hint="the peer's encryption key is invalid; resolve its identity document again",
        )
    salt = bytes(parse_did_key(sender)) + bytes(parse_did_key(recipient))
    return SigningKey.from_seed(hkdf(shared, salt=salt, info=LABEL_MAILBOX_KEY, length=32))


def mailbox_name(
    own_enc: EncryptionKey, peer_enc: PublicEncryptionKey, *, sender: str, recipient: str
) -> str:
    """The IPNS name (``k51...``) of the mailbox from ``sender`` to ``recipient``."""
    key = mailbox_key(own_enc, peer_enc, sender=sender, recipient=recipient)
    return ipns_name(key.public_key)


def head_record(
    key: SigningKey,
    head: MailboxEntry,
    *,
    validity: datetime | timedelta,
    ttl_seconds: int,
    now: datetime | None = None,
) -> bytes:
    """The IPNS record, signed by the mailbox key, that makes ``head`` the mailbox head:
    value ``/ipfs/<entry CID>``, sequence = the entry's seq."""
    return make_record(
        key,
        f"/ipfs/{head.cid}",
        sequence=head.seq,
        validity=validity,
        ttl_seconds=ttl_seconds,
        now=now,
    )


def head_from_record(record: IpnsRecord) -> tuple[str, int]:
    """The head CID and seq a verified mailbox IPNS record names (``verify_record`` of
    :mod:`ipfs_share.formats.ipns` first); pass both to :func:`verify_chain`."""
    return feed.head_of_record(record)


# --- entries ------------------------------------------------------------------------------


def make_entry(
    key: SigningKey, previous: MailboxEntry | None, *, capsule: str | Link, sent: int
) -> MailboxEntry:
    """The entry after ``previous`` (``None``: the first) sharing ``capsule``."""
    return _make(key, previous, {"capsule": _link(capsule)}, sent)


def make_ack(
    key: SigningKey,
    previous: MailboxEntry | None,
    *,
    capsule: str | Link,
    via: SigningKey,
    state: AckState,
    sent: int,
) -> MailboxEntry:
    """The entry after ``previous`` acknowledging ``capsule`` as ``state`` in the single
    form (still read; writers use :func:`make_acks`); ``via`` is the key of the mailbox
    the capsule arrived through (from its sender to ``key``'s owner)."""
    body = {"ack": ack_reference(via, capsule), "state": state}
    return _make(key, previous, body, sent)


def make_acks(
    key: SigningKey,
    previous: MailboxEntry | None,
    *,
    capsules: Sequence[str | Link],
    via: SigningKey,
    state: AckState,
    sent: int,
) -> MailboxEntry:
    """The entry after ``previous`` acknowledging ``capsules`` (1 to :data:`MAX_ACKS`,
    all through mailbox ``via``) as ``state``; the references go in sorted order."""
    ack_key = _ack_key(via)
    refs = sorted({hmac.digest(ack_key, bytes(_link(c)), "sha256") for c in capsules})
    return _make(key, previous, {"acks": refs, "state": state}, sent)


def ack_reference(via: SigningKey, capsule: str | Link) -> bytes:
    """How an acknowledgement names ``capsule``: only the two ends of mailbox ``via``
    can compute it.

    ack key = HKDF(mailbox seed, "", LABEL_ACK_KEY, 32);
    reference = HMAC-SHA-256(ack key, binary capsule CID).
    """
    return hmac.digest(_ack_key(via), bytes(_link(capsule)), "sha256")


def _ack_key(via: SigningKey) -> bytes:
    return hkdf(via.seed_bytes(), salt=b"", info=LABEL_ACK_KEY, length=32)


def acknowledges(entry: MailboxEntry, via: SigningKey, capsule: str | Link) -> bool:
    """Is ``entry`` an acknowledgement of ``capsule``, sent through mailbox ``via``?"""
    wanted = ack_reference(via, capsule)
    return any(hmac.compare_digest(ref, wanted) for ref in entry.acks)


def _link(value: str | Link) -> Link:
    return value if isinstance(value, Link) else Link(value)


def _make(
    key: SigningKey, previous: MailboxEntry | None, body: dict[str, Any], sent: int
) -> MailboxEntry:
    sender = did_key(key.public_key)
    if previous is not None and previous.sender != sender:
        raise InvalidInputError(f"expected a previous entry by {sender}, found {previous.sender}")
    fields = {
        "seq": 0 if previous is None else previous.seq + 1,
        "prev": None if previous is None else Link(previous.cid),
        "sender": sender,
        "sent": sent,
        **body,
    }
    schema = ACKS_ENTRY if "acks" in body else ACK_ENTRY if "ack" in body else CAPSULE_ENTRY
    if "keychain" in body:
        schema = KEYCHAIN_ENTRY
    return decode_entry(sign_object(schema, fields, key).data)


def make_keychain_entry(
    key: SigningKey, previous: MailboxEntry | None, *, op: str | Link, sent: int
) -> MailboxEntry:
    """The entry after ``previous`` pointing the recipient at keychain op ``op``."""
    return _make(key, previous, {"keychain": _link(op)}, sent)


def decode_entry(
    data: bytes, *, sender: str | None = None, signers: feed.Signers | None = None
) -> MailboxEntry:
    """Decode an entry of any kind and verify its signature (``sender``, if given, must
    be the signer; ``signers`` picks the key, default the sender's did:key)."""
    return _entry(data, sender=sender, signers=signers, verify=True)


def _entry(
    data: bytes, *, sender: str | None, signers: feed.Signers | None, verify: bool
) -> MailboxEntry:
    keys = None if signers is None else signers.key_for
    schema, fields = decode_signed_any(_KINDS, data, signer=sender, keys=keys, verify=verify)
    block: Block = block_from_bytes(data)
    acks: tuple[bytes, ...] = ()
    if schema is ACKS_ENTRY:
        acks = tuple(fields["acks"])
    elif schema is ACK_ENTRY:
        acks = (fields["ack"],)
    op = fields["keychain"] if schema is KEYCHAIN_ENTRY else None
    return MailboxEntry(
        seq=fields["seq"],
        prev=fields["prev"],
        sender=fields["sender"],
        sent=fields["sent"],
        capsule=None if acks or op is not None else fields["capsule"],
        ack=acks[0] if acks else None,
        state=fields["state"] if acks else None,
        cid=block.cid,
        data=block.data,
        acks=acks,
        op=op,
    )


def _feed_entry(data: bytes, signers: feed.Signers | None) -> feed.FeedEntry:
    return feed_entry(_entry(data, sender=None, signers=signers, verify=signers is not None))


def feed_entry(entry: MailboxEntry) -> feed.FeedEntry:
    """A decoded entry as an entry of its feed (kind :data:`MAILBOX_FEED`)."""
    return feed.FeedEntry(
        kind="mailbox",
        seq=entry.seq,
        prev=None if entry.prev is None else entry.prev.cid,
        signer=entry.sender,
        cid=entry.cid,
        data=entry.data,
        value=entry,
    )


MAILBOX_FEED: Final = feed.register(
    feed.FeedKind(
        name="mailbox",
        read=_feed_entry,
        linked=True,
        history=True,
        pin="entries",
        prev_field="prev",
    )
)


# --- the chain ----------------------------------------------------------------------------


def verify_chain(
    head: str,
    *,
    sender: str,
    known: HighWater | None = None,
    head_seq: int | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> BlockWalk[list[MailboxEntry]]:
    """Walk back from ``head`` to ``known`` (or to seq 0) and return the new entries,
    oldest first (:func:`ipfs_share.formats.feed.walk` for kind :data:`MAILBOX_FEED`).
    Every entry must be signed by ``sender``; seqs must fall by exactly one per ``prev``
    link; the walk must meet ``known`` exactly (same seq, same CID). ``head_seq`` is the
    IPNS record's sequence, which must equal the head's seq.

    Raises :class:`~ipfs_share.errors.FeedRollbackError` for a head older than ``known``,
    :class:`~ipfs_share.errors.FeedForkError` for another history,
    :class:`~ipfs_share.errors.ChainInvalidError` for a gap, a head that does not match
    its record or a backlog over ``max_entries``;
    :class:`~ipfs_share.errors.SignatureInvalidError` for an entry not signed by
    ``sender``; :class:`~ipfs_share.errors.IntegrityError` (from the block source) for a
    block that is not what its CID names, which is also what makes a loop impossible.
    """
    found = yield from feed.walk(
        MAILBOX_FEED,
        head,
        signers=feed.Only(sender),
        record_seq=head_seq,
        known=known,
        budget=max_entries,
        max_backlog=max_entries,
    )
    if not found.complete:  # pragma: no cover - max_backlog refuses a longer walk first
        raise ChainInvalidError(f"expected at most {max_entries} new entries, found more")
    return [e.value for e in reversed(found.entries)]
