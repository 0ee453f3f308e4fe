"""The keys that sign the IPNS records of the feeds a home signs, for republishing: the
record key of each kind of feed, derived from the owner's identity keys.

A kind registers how its record key comes from the owner's keys and the feed's head
(:func:`register`); :class:`UnlockedRecordKeys` answers the republisher with keys already
unlocked in this process, and never asks for a passphrase unless told to.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import IpfsShareError
from ipfs_share.formats.identity_doc import revocation_key
from ipfs_share.formats.ipns import ipns_name
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.mailbox import mailbox_key
from ipfs_share.local.state import OwnHead
from ipfs_share.services.identities import IdentityService

__all__ = ["KINDS", "UnlockedRecordKeys", "register"]

log = logging.getLogger("ipfs_share.feeds")

Derive = Callable[[IdentityKeys, OwnHead, IdentityService], Awaitable[SigningKey]]
KINDS: dict[str, Derive] = {}


def register(kind: str, derive: Derive) -> None:
    """How the record key of feeds of ``kind`` comes from their owner's keys."""
    KINDS[kind] = derive


async def _identity(keys: IdentityKeys, head: OwnHead, ids: IdentityService) -> SigningKey:
    return keys.signing


async def _revocation(keys: IdentityKeys, head: OwnHead, ids: IdentityService) -> SigningKey:
    return revocation_key(keys.signing)


async def _mailbox(keys: IdentityKeys, head: OwnHead, ids: IdentityService) -> SigningKey:
    peer = (await ids.recipient(head.topic)).enc
    return mailbox_key(keys.encryption, peer, sender=keys.did, recipient=head.topic)


register("identity", _identity)
register("revocation", _revocation)
register("mailbox", _mailbox)


class UnlockedRecordKeys:
    """The record key of a feed of ours, if its owner's keys are unlocked here (with
    ``unlock``, unlocking them, which may ask for the passphrase); None otherwise, or if
    the key derived today no longer names the feed (a mailbox whose peer changed keys)."""

    def __init__(self, identities: IdentityService, *, unlock: bool = False) -> None:
        self.identities = identities
        self.unlock = unlock

    async def __call__(self, head: OwnHead) -> SigningKey | None:
        derive = KINDS.get(head.kind)
        if derive is None:
            return None
        if self.unlock and self.identities.keystore.find(head.owner) is not None:
            keys: IdentityKeys | None = await self.identities.unlock(head.owner)
        else:
            keys = self.identities.unlocked(head.owner)
        if keys is None:
            return None
        try:
            key = await derive(keys, head, self.identities)
        except IpfsShareError as exc:
            log.info("no record key for %s: %s", head.name, exc.message)
            return None
        return key if ipns_name(key.public_key) == head.name else None
