"""The pair of mailboxes between a local identity and a peer (one each way), named by
the IPNS name of its key, and the pubsub topic on which each announces new heads."""

from __future__ import annotations

from dataclasses import dataclass, field

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_MAILBOX_NOTICE
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.formats.ipns import ipns_name


def notice_topic(key: SigningKey) -> str:
    """The pubsub topic on which new heads of the mailbox with ``key`` are announced:
    ``hex(HKDF(mailbox seed, "", LABEL_MAILBOX_NOTICE, 32))`` (docs/spec/mailbox.md
    section 6). Only the two ends hold the seed.

    >>> notice_topic(SigningKey.from_seed(bytes(32)))[:16]
    'a1dde3a66a6cffba'
    """
    return hkdf(key.seed_bytes(), salt=b"", info=LABEL_MAILBOX_NOTICE, length=32).hex()


@dataclass(frozen=True, slots=True)
class _Pair:
    """Both mailboxes between a local identity and a peer, as the local side sees them."""

    me: str
    peer: str
    out_key: SigningKey = field(repr=False)  # me -> peer: we write it
    out_name: str
    out_topic: str = field(repr=False)
    in_key: SigningKey = field(repr=False)  # peer -> me: we read it
    in_name: str
    in_topic: str = field(repr=False)


def _name(key: SigningKey) -> str:
    return ipns_name(key.public_key)
