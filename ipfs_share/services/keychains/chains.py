"""Member chains on the network: what the feed primitive does not (docs/spec/keychain.md 5).

Each member's ops in a keychain are a feed of kind ``keychain``
(:data:`~ipfs_share.formats.keychain.KEYCHAIN_FEED`): the home's feed writer appends and
publishes our own chain (compare-and-set on its head, records signed here and kept for
republishing), its feed reader follows the others' (high-water marks, rollbacks and forks
refused). This module adds what a keychain needs besides: fetching the ops other members'
ops depend on (their parents, the offer an accept answers) by CID, and the two things a
feed kind registers with the feed services (its record lifetime and how its record key
comes from the owner's identity, for re-signing at republish time).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import ChainInvalidError, IntegrityError, IpfsShareError
from ipfs_share.formats.keychain import chain_key
from ipfs_share.formats.keychain_replay import Replica
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.local.state import OwnHead
from ipfs_share.services import record_keys
from ipfs_share.services.feeds.refs import LIFETIMES
from ipfs_share.services.identities import IdentityService
from ipfs_share.storage.base import Storage

__all__ = ["CONCURRENCY", "MAX_FETCH", "ChainNetwork"]

log = logging.getLogger("ipfs_share.keychains")

# The most ops one sync fetches for one keychain (a bound on what a hostile chain costs).
MAX_FETCH: Final = 200_000
CONCURRENCY: Final = 16  # blocks fetched at once

# Records of member chains: as mailboxes' (a short TTL: a member's next op should be seen
# at once), re-signed by their owner when a third of their validity is left.
LIFETIMES.setdefault("keychain", LIFETIMES["mailbox"])


async def _record_key(keys: IdentityKeys, head: OwnHead, ids: IdentityService) -> SigningKey:
    """A member chain's record key: the chain key of the owner in the keychain whose create
    op has the nonce the feed's topic holds (hex)."""
    return chain_key(keys.signing, bytes.fromhex(head.topic))


record_keys.register("keychain", _record_key)


class ChainNetwork:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def fetch(self, cid: str) -> bytes:
        """One op's block (the storage's own deadline applies: a timeout is typed)."""
        return await self.storage.block_get(cid)

    async def fill(self, replica: Replica, start: list[str], *, budget: int = MAX_FETCH) -> int:
        """Fetch ``start`` and every dependency the replica lacks, transitively, until it
        misses nothing the node can find; return the number of blocks fetched. Blocks that
        do not decode or verify are refused by the replica (never fetched again); a block
        the node cannot find stops the walk for its dependants only."""
        fetched = 0
        unavailable: set[str] = set()
        todo = [c for c in start if c not in replica.nodes and c not in replica.rejected]
        while todo:
            if fetched + len(todo) > budget:
                raise ChainInvalidError(
                    f"expected at most {budget} ops to fetch in one sync, found more",
                    hint="a member's chain is unreasonably long; sync again to continue",
                )
            for i in range(0, len(todo), CONCURRENCY):
                batch = todo[i : i + CONCURRENCY]
                results = await asyncio.gather(
                    *(self.fetch(c) for c in batch), return_exceptions=True
                )
                for cid, result in zip(batch, results, strict=True):
                    if isinstance(result, BaseException):
                        if not isinstance(result, IpfsShareError):
                            raise result
                        log.info("keychain %s: %s", replica.keychain, result.message)
                        unavailable.add(cid)
                        continue
                    try:
                        replica.add(result, cid=cid)
                    except IntegrityError as exc:  # the node answered other bytes
                        log.warning("keychain %s: %s", replica.keychain, exc.message)
                        unavailable.add(cid)
                        continue
                    fetched += 1
            todo = sorted(replica.missing() - unavailable)
        return fetched
