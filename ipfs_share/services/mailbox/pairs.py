"""The pair of mailboxes between a local identity and a peer (one each way), named by
the IPNS name of its key, the pubsub topic on which each announces new heads, and the
feeds they are."""

from __future__ import annotations

from dataclasses import dataclass, field

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_MAILBOX_NOTICE
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import PublicEncryptionKey
from ipfs_share.formats.ipns import ipns_name
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import MAILBOX_FEED, mailbox_key
from ipfs_share.services.feeds import Feed
from ipfs_share.services.identities import IdentityService


def notice_topic(key: SigningKey) -> str:
    """The pubsub topic on which new heads of the mailbox with ``key`` are announced:
    ``hex(HKDF(mailbox seed, "", LABEL_MAILBOX_NOTICE, 32))`` (docs/spec/mailbox.md
    section 7). Only the two ends hold the seed.

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

    @property
    def outbox(self) -> Feed:
        """Our chain to the peer, as a feed we sign."""
        return Feed(MAILBOX_FEED, self.out_name, self.me, topic=self.peer)

    @property
    def inbox(self) -> Feed:
        """The peer's chain to us, as a feed we read."""
        return Feed(MAILBOX_FEED, self.in_name, self.peer, reader=self.me)


def _name(key: SigningKey) -> str:
    return ipns_name(key.public_key)


class Pairs:
    """Derives (and keeps, per process) the pairs of a local identity with its peers."""

    def __init__(self, identities: IdentityService) -> None:
        self.identities = identities
        self._pairs: dict[tuple[str, str, bytes], _Pair] = {}

    def of(self, keys: IdentityKeys, peer: str, peer_enc: PublicEncryptionKey) -> _Pair:
        """The pair with ``peer`` whose X25519 key is ``peer_enc``."""
        cache_key = (keys.did, peer, bytes(peer_enc))
        found = self._pairs.get(cache_key)
        if found is None:
            out_key = mailbox_key(keys.encryption, peer_enc, sender=keys.did, recipient=peer)
            in_key = mailbox_key(keys.encryption, peer_enc, sender=peer, recipient=keys.did)
            found = _Pair(
                me=keys.did,
                peer=peer,
                out_key=out_key,
                out_name=_name(out_key),
                out_topic=notice_topic(out_key),
                in_key=in_key,
                in_name=_name(in_key),
                in_topic=notice_topic(in_key),
            )
            self._pairs[cache_key] = found
        return found

    def forget(self, did: str) -> None:
        """Drop the pairs derived for ``did`` (its identity was locked: what was derived
        from its secret key goes with it)."""
        for key in [k for k in self._pairs if k[0] == did]:
            del self._pairs[key]

    async def with_(self, keys: IdentityKeys, peer: str) -> _Pair:
        """The pair with ``peer`` (a did), its key from its verified document."""
        return self.of(keys, peer, (await self.identities.recipient(peer)).enc)
