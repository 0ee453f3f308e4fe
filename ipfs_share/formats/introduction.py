"""Introductions: how a sender the recipient has not added yet makes itself known.

A recipient reads the mailboxes of the senders it knows; a stranger's capsules would sit
in a mailbox nobody reads. So the stranger publishes a sealed, signed introduction on a
pubsub topic anyone can derive from the recipient's did (docs/spec/introductions.md)::

    topic  = hex(HKDF(recipient ed25519 public key, "", LABEL_INTRODUCTION_TOPIC, 32))
    inner  = {"v": 1, "from": S, "to": T, "sent": t, "nonce": 16 bytes, "sig": ...}
    sealed = E || ChaCha20-Poly1305(HKDF(X25519(e, R_T), E || R_T, LABEL_INTRODUCTION_SEAL))

Only the recipient can open it and learn who it is from; the signature inside says the
sender holds the key of its did, and binds the recipient, the time and a nonce, so a
copy is refused outside the clock window and recognised as a replay inside it.

The same module holds the out-of-band form: a link ``ipfs-share:<capsule>?from=<did>``
that carries a capsule ID and its sender's did in one string (section 6 of the spec).

>>> from ipfs_share.crypto.x25519 import EncryptionKey
>>> from ipfs_share.crypto.signing import SigningKey
>>> alice = SigningKey.from_seed(b"\\x01" * 32)
>>> bob, bob_enc = SigningKey.from_seed(b"\\x03" * 32), EncryptionKey(b"\\x04" * 32)
>>> bob_did = did_key(bob.public_key)
>>> sealed = make_introduction(alice, bob_did, bob_enc.public_key, sent=1_800_000_000)
>>> intro = open_introduction(sealed, bob_did, bob_enc, now=1_800_000_010)
>>> intro.sender == did_key(alice.public_key), intro.sent
(True, 1800000000)
>>> introduction_topic(bob_did)[:16]
'3def550e7b7bea38'
>>> parse_link(format_link("bafyreihcskf4rgwbdmlbt33cj45zo2chhugqsaplmhx3tw3oubz4ewgo54",
...                        intro.sender)).sender == intro.sender
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import (
    LABEL_INTRODUCTION,
    LABEL_INTRODUCTION_SEAL,
    LABEL_INTRODUCTION_TOPIC,
)
from ipfs_share.crypto.random import Rng, random_bytes
from ipfs_share.crypto.seal import OVERHEAD, seal, unseal
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey, PublicEncryptionKey
from ipfs_share.errors import CidInvalidError, FormatError, IntroductionRejectedError
from ipfs_share.formats.cid import DAG_CBOR, parse_cid
from ipfs_share.formats.signed import (
    Schema,
    block_from_bytes,
    bytes_of,
    decode_signed,
    did,
    did_key,
    parse_did_key,
    sign_object,
    uint,
)

__all__ = [
    "CLOCK_WINDOW",
    "INTRODUCTION",
    "LINK_SCHEME",
    "MAX_INTRODUCTION_SIZE",
    "MAX_SEALED_SIZE",
    "NONCE_SIZE",
    "Introduction",
    "ShareLink",
    "format_link",
    "introduction_topic",
    "is_link",
    "make_introduction",
    "open_introduction",
    "parse_link",
]

NONCE_SIZE: Final = 16
MAX_INTRODUCTION_SIZE: Final = 512  # the signed object (about 230 bytes)
MAX_SEALED_SIZE: Final = MAX_INTRODUCTION_SIZE + OVERHEAD  # 560: anything longer is dropped
# An introduction is accepted if its `sent` is within this many seconds of the reader's
# clock, either way: a copy replayed later is refused, and two clocks may disagree a bit.
CLOCK_WINDOW: Final = 300

INTRODUCTION: Final = Schema(
    name="introduction",
    label=LABEL_INTRODUCTION,
    fields={"from": did, "to": did, "sent": uint, "nonce": bytes_of(NONCE_SIZE)},
    signer="from",
    max_size=MAX_INTRODUCTION_SIZE,
)

LINK_SCHEME: Final = "ipfs-share:"
MAX_LINK_SIZE: Final = 256


@dataclass(frozen=True, slots=True)
class Introduction:
    """A verified introduction: ``sender`` (a did) wants ``recipient`` to read its mailbox.
    ``cid`` names the signed object: a second copy of it is a replay."""

    sender: str
    recipient: str
    sent: int
    nonce: bytes
    cid: str


def introduction_topic(recipient: str) -> str:
    """The pubsub topic of introductions to ``recipient`` (a did:key): anyone can derive it,
    which is what lets a stranger reach the recipient.

    ``hex(HKDF(ed25519 public key, "", LABEL_INTRODUCTION_TOPIC, 32))``
    """
    key = bytes(parse_did_key(recipient))
    return hkdf(key, salt=b"", info=LABEL_INTRODUCTION_TOPIC, length=32).hex()


def make_introduction(
    key: SigningKey,
    recipient: str,
    recipient_enc: PublicEncryptionKey,
    *,
    sent: int,
    rng: Rng | None = None,
) -> bytes:
    """The sealed introduction from ``key``'s identity to ``recipient`` (its did and its
    X25519 key, from its verified identity document), made at ``sent``."""
    fields = {
        "from": did_key(key.public_key),
        "to": recipient,
        "sent": sent,
        "nonce": random_bytes(NONCE_SIZE, rng),
    }
    inner = sign_object(INTRODUCTION, fields, key)
    return seal(inner.data, recipient_enc, label=LABEL_INTRODUCTION_SEAL, rng=rng)


def open_introduction(
    sealed: bytes,
    recipient: str,
    key: EncryptionKey,
    *,
    now: int,
    window: int = CLOCK_WINDOW,
) -> Introduction:
    """Open and verify an introduction for ``recipient`` (its did and X25519 secret), in
    the order of the spec (section 4): size, seal, signed object, recipient, clock.

    Raises :class:`FormatError` (size, structure), :class:`DecryptionError` (not sealed to
    this key), :class:`SignatureInvalidError`, or :class:`IntroductionRejectedError` (for
    another identity, or outside ``window`` seconds of ``now``). Replays are the caller's
    to catch (it keeps what it has seen, by ``cid``)."""
    if not OVERHEAD < len(sealed) <= MAX_SEALED_SIZE:
        raise FormatError(
            f"expected a sealed introduction of {OVERHEAD + 1}-{MAX_SEALED_SIZE} bytes, "
            f"found {len(sealed)}"
        )
    inner = unseal(sealed, key, label=LABEL_INTRODUCTION_SEAL)
    fields = decode_signed(INTRODUCTION, inner)
    if fields["to"] != recipient:
        raise IntroductionRejectedError(
            f"expected an introduction to {recipient}, found one to {fields['to']}"
        )
    if abs(fields["sent"] - now) > window:
        raise IntroductionRejectedError(
            f"expected an introduction made within {window} s of {now}, found one made at "
            f"{fields['sent']}"
        )
    return Introduction(
        sender=fields["from"],
        recipient=fields["to"],
        sent=fields["sent"],
        nonce=fields["nonce"],
        cid=block_from_bytes(inner).cid,
    )


# --- the out-of-band link (spec section 6) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ShareLink:
    """A capsule ID and the did of the sender who handed it over."""

    capsule: str
    sender: str

    def __str__(self) -> str:
        return format_link(self.capsule, self.sender)


def format_link(capsule: str, sender: str) -> str:
    """``ipfs-share:<capsule CID>?from=<sender did>``."""
    capsule, sender = _checked(capsule, sender)
    return f"{LINK_SCHEME}{capsule}?from={sender}"


def is_link(text: str) -> bool:
    """Does ``text`` claim to be a link (it may still be malformed)?"""
    return text.strip().startswith(LINK_SCHEME)


def parse_link(text: str) -> ShareLink:
    """The capsule and sender of a link, strictly: the scheme, a dag-cbor CID, one
    ``from`` parameter holding a canonical did:key, nothing else.

    >>> parse_link("ipfs-share:bafy?from=did:key:z6Mk")    # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ipfs_share.errors.FormatError: expected a link ipfs-share:<capsule>?from=<did>, ...
    """
    value = text.strip()
    problem = _link_problem(value)
    if problem is not None:
        raise FormatError(
            f"expected a link ipfs-share:<capsule>?from=<did>, found {value[:80]!r} ({problem})"
        )
    capsule, _, query = value.removeprefix(LINK_SCHEME).partition("?")
    return ShareLink(*_checked(capsule, query.removeprefix("from=")))


def _link_problem(value: str) -> str | None:
    if len(value) > MAX_LINK_SIZE:
        return f"longer than {MAX_LINK_SIZE} characters"
    if not value.startswith(LINK_SCHEME):
        return f"no {LINK_SCHEME} scheme"
    capsule, question, query = value.removeprefix(LINK_SCHEME).partition("?")
    if not question or not query.startswith("from=") or "&" in query or "#" in query:
        return "expected exactly one from= parameter"
    try:
        _checked(capsule, query.removeprefix("from="))
    except (FormatError, CidInvalidError) as exc:
        return exc.message
    return None


def _checked(capsule: str, sender: str) -> tuple[str, str]:
    parsed = parse_cid(capsule)
    if parsed.codec != DAG_CBOR or str(parsed) != capsule:
        raise FormatError(f"expected a capsule ID (CIDv1 dag-cbor, base32), found {capsule[:80]!r}")
    parse_did_key(sender)
    return capsule, sender
