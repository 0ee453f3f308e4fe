"""Member chains on the network: publishing our own head, reading others', fetching ops.

Every member publishes its ops in a keychain as a chain whose head is an IPNS record,
signed in Python by a key derived from the member's identity and the keychain
(docs/spec/keychain.md section 5); records are stored with ``name/put``, never through
Kubo's keystore. Reading a chain resolves the record without cache, refuses a head older
than one already read (a rollback), and walks back along ``prev`` only to the first op the
replica already holds, so a sync reads only what is new.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import (
    ChainInvalidError,
    FormatError,
    IntegrityError,
    IpfsShareError,
    NotFoundError,
)
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.ipns import IpnsRecord, ipns_name, make_record, verify_record
from ipfs_share.formats.keychain import Op, chain_name
from ipfs_share.formats.keychain_replay import Replica
from ipfs_share.formats.signed import link
from ipfs_share.storage.base import Storage

__all__ = ["CHAIN_TTL_SECONDS", "CHAIN_VALIDITY", "ChainHead", "ChainNetwork"]

log = logging.getLogger("ipfs_share.keychains")

# A year of validity: readers resolve without cache anyway, and the agent's republish
# re-puts the same bytes long before the DHT forgets them; a short TTL keeps resolvers fresh.
CHAIN_VALIDITY: Final = timedelta(days=365)
CHAIN_TTL_SECONDS: Final = 10
FETCH_TIMEOUT: Final = 20.0
RESOLVE_TIMEOUT: Final = 20.0
# The most ops one sync fetches for one keychain (a bound on what a hostile chain costs).
MAX_FETCH: Final = 200_000
CONCURRENCY: Final = 16  # blocks fetched at once


@dataclass(frozen=True, slots=True)
class ChainHead:
    author: str
    name: str  # the chain's IPNS name
    cid: str
    seq: int
    record: bytes


class ChainNetwork:
    def __init__(self, storage: Storage, *, now: Callable[[], float]) -> None:
        self.storage = storage
        self._now = now

    async def put(self, op: Op) -> None:
        """Store an op's block, pinned (a recursive pin keeps its whole causal past)."""
        cid = await self.storage.block_put(op.data, codec="dag-cbor", pin=True)
        if cid != op.cid:
            raise FormatError(f"expected the node to store {op.cid}, found {cid}")

    async def publish(self, key: SigningKey, op: Op) -> bytes:
        """Make ``op`` the head of the chain ``key`` signs; returns the record."""
        record = make_record(
            key,
            f"/ipfs/{op.cid}",
            sequence=op.seq,
            validity=CHAIN_VALIDITY,
            ttl_seconds=CHAIN_TTL_SECONDS,
            now=datetime.fromtimestamp(self._now(), UTC),
        )
        await self.storage.ipns_put(ipns_name(key.public_key), record)
        return record

    async def repost(self, name: str, record: bytes) -> None:
        """Put a record again, byte for byte (no key needed)."""
        await self.storage.ipns_put(name, record)

    async def head(self, author: str, chain: bytes) -> ChainHead:
        """The verified head record of ``author``'s chain (its public key ``chain``)."""
        name = chain_name(chain)
        try:
            data = await asyncio.wait_for(self.storage.ipns_get(name), RESOLVE_TIMEOUT)
        except TimeoutError:
            raise NotFoundError(
                f"no record for the chain of {author} in {RESOLVE_TIMEOUT:.0f} s",
                hint="check the nodes are connected; the member's node must be reachable",
            ) from None
        record = verify_record(name, data, now=datetime.fromtimestamp(self._now(), UTC))
        cid = _head_cid(record)
        return ChainHead(author, name, cid, record.sequence, data)

    async def fetch(self, cid: str) -> bytes:
        try:
            return await asyncio.wait_for(self.storage.block_get(cid), FETCH_TIMEOUT)
        except TimeoutError:
            raise NotFoundError(
                f"the op {cid} could not be fetched in {FETCH_TIMEOUT:.0f} s",
                hint="check the nodes are connected and the member's node is online",
            ) from None

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


def _head_cid(record: IpnsRecord) -> str:
    value = record.value
    if not value.startswith("/ipfs/"):
        raise FormatError(f"expected a chain record value /ipfs/<cid>, found {value[:80]!r}")
    head = Link(value.removeprefix("/ipfs/"))
    link()(head, "record.value")
    return head.cid
