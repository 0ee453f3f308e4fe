"""The identity document: an identity's signed, public description of itself.

An identity is an Ed25519 key (its id is the key's did:key) and an X25519 key (for
receiving shares). The document binds the two with the Ed25519 key's signature and names
the IPNS name of the identity's revocation list. It lives at the IPNS name of the
identity's own key, so anyone who knows a did can resolve it (docs/spec/identity.md).

>>> from ipfs_share.crypto.signing import SigningKey
>>> from ipfs_share.crypto.x25519 import EncryptionKey
>>> key = SigningKey.from_seed(bytes(32))
>>> enc = EncryptionKey(b"\\x02" * 32)
>>> doc = make_identity_document(key, enc.public_key, seq=0, created=1_800_000_000)
>>> doc.did
'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'
>>> decode_identity_document(doc.data, did=doc.did) == doc
True
>>> doc.revocations == ipns_name(revocation_key(key).public_key)
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Final

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_IDENTITY, LABEL_REVOCATION_KEY
from ipfs_share.crypto.signing import SigningKey, VerifyKey
from ipfs_share.crypto.x25519 import PublicEncryptionKey
from ipfs_share.errors import FormatError
from ipfs_share.formats import feed
from ipfs_share.formats.ipns import ipns_name, parse_ipns_name
from ipfs_share.formats.signed import (
    Block,
    Schema,
    block_from_bytes,
    bytes_of,
    decode_signed_any,
    did,
    did_key,
    parse_did_key,
    sign_object,
    uint,
)

__all__ = [
    "ENC_KEY_SIZE",
    "IDENTITY_FEED",
    "MAX_IDENTITY_SIZE",
    "IdentityDocument",
    "decode_identity_document",
    "identity_ipns_name",
    "make_identity_document",
    "revocation_key",
]

ENC_KEY_SIZE: Final = 32
# A document is about 240 bytes; the limit leaves room and nothing more.
MAX_IDENTITY_SIZE: Final = 1024
# Text form of an IPNS name: "k51" + 59 base36 digits for an inlined Ed25519 key.
_MAX_NAME_LENGTH: Final = 100


def _ipns_name_field(value: Any, path: str) -> None:
    if type(value) is not str or len(value) > _MAX_NAME_LENGTH:
        raise FormatError(f"expected an IPNS name (k51...) at {path}, found {value!r:.80}")
    # Only the canonical k51... spelling: the one ipns_name() writes for the key inside.
    if ipns_name(parse_ipns_name(value)) != value:
        raise FormatError(f"expected the canonical k51... form at {path}, found {value[:80]!r}")


SCHEMA: Final = Schema(
    name="identity",
    label=LABEL_IDENTITY,
    fields={
        "did": did,
        "enc": bytes_of(ENC_KEY_SIZE),
        "seq": uint,
        "created": uint,
        "revocations": _ipns_name_field,
    },
    signer="did",
    max_size=MAX_IDENTITY_SIZE,
)


@dataclass(frozen=True, slots=True)
class IdentityDocument:
    """A verified identity document: ``enc`` is the key shares for ``did`` are wrapped to."""

    did: str
    enc: PublicEncryptionKey
    seq: int
    created: int
    revocations: str
    cid: str
    data: bytes = field(repr=False)

    @property
    def verify_key(self) -> VerifyKey:
        return parse_did_key(self.did)


def revocation_key(identity: SigningKey) -> SigningKey:
    """The Ed25519 key that signs the IPNS records of ``identity``'s revocation list.

    seed = HKDF(identity seed, salt = "", info = LABEL_REVOCATION_KEY, 32). It only signs
    IPNS records; the list's heads are signed by the identity key itself.
    """
    seed = hkdf(identity.seed_bytes(), salt=b"", info=LABEL_REVOCATION_KEY, length=32)
    return SigningKey.from_seed(seed)


@functools.lru_cache(maxsize=1024)  # a pure function of a string, asked for at every open
def identity_ipns_name(identity_did: str) -> str:
    """The IPNS name that holds the document of ``identity_did`` (its key's name).

    >>> identity_ipns_name("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp")
    'k51qzi5uqu5dhnwe629wdlncpql6frppdpwnz4wtlcw816aysd5wwlk63g4wmh'
    """
    return ipns_name(parse_did_key(identity_did))


def make_identity_document(
    identity: SigningKey, enc_public: PublicEncryptionKey, *, seq: int, created: int
) -> IdentityDocument:
    """Sign a document for ``identity`` with X25519 public key ``enc_public``.

    ``seq`` starts at 0 and grows by one with each new document (it is also the IPNS
    sequence of the record that publishes it); ``created`` is when it was signed.
    """
    fields = {
        "did": did_key(identity.public_key),
        "enc": bytes(enc_public),
        "seq": seq,
        "created": created,
        "revocations": ipns_name(revocation_key(identity).public_key),
    }
    return _document(sign_object(SCHEMA, fields, identity))


def decode_identity_document(data: bytes, *, did: str | None = None) -> IdentityDocument:
    """Decode and verify a document; ``did`` (if given) must be the identity it describes.

    Raises :class:`~ipfs_share.errors.FormatError` for malformed input and
    :class:`~ipfs_share.errors.SignatureInvalidError` for a bad or unexpected signer.
    """
    return _decode(data, did=did, signers=None, verify=True)


def _decode(
    data: bytes, *, did: str | None, signers: feed.Signers | None, verify: bool
) -> IdentityDocument:
    keys = None if signers is None else signers.key_for
    fields = decode_signed_any((SCHEMA,), data, signer=did, keys=keys, verify=verify)[1]
    return _from_fields(fields, block_from_bytes(data))


def _document(block: Block) -> IdentityDocument:
    # What we signed goes through the reader once: a document we write always decodes.
    return decode_identity_document(block.data)


def _from_fields(fields: dict[str, Any], block: Block) -> IdentityDocument:
    return IdentityDocument(
        did=fields["did"],
        enc=PublicEncryptionKey(fields["enc"]),
        seq=fields["seq"],
        created=fields["created"],
        revocations=fields["revocations"],
        cid=block.cid,
        data=block.data,
    )


def _feed_entry(data: bytes, signers: feed.Signers | None) -> feed.FeedEntry:
    doc = _decode(data, did=None, signers=signers, verify=signers is not None)
    return feed.FeedEntry(
        kind="identity",
        seq=doc.seq,
        prev=None,
        signer=doc.did,
        cid=doc.cid,
        data=doc.data,
        value=doc,
    )


# An identity's documents form an unlinked feed: each new one only has a higher seq (a
# document names no predecessor), so a reader refuses an older or a second document at a
# seq it has seen, and takes any newer one. One recursive pin of the newest keeps it.
IDENTITY_FEED: Final = feed.register(
    feed.FeedKind(name="identity", read=_feed_entry, linked=False, history=False, pin="head")
)
