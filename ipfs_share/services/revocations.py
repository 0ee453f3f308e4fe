"""Revocation lists on IPFS: publish our own, check the issuer's before every open.

Each issuer has one append-only list (docs/spec/revocation.md): a trie of revoked capsule
IDs under a head signed by the issuer's identity key, published under the IPNS name of a
key derived from the identity's seed (the name is in the identity document). A list is
made, empty, at the first share, so a name that does not resolve means "cannot check",
never "nothing revoked".

What revocation cannot do (docs/spec/threat-model.md section 5): it blocks future opens
by clients that check; it cannot take back plaintext a recipient already has. ``revoke
--rotate`` is the cryptographic answer for what is stored from now on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from ipfs_share.errors import (
    ChainInvalidError,
    FormatError,
    IpfsShareError,
    NodeError,
    RevocationUnavailableError,
    ShareRevokedError,
    SignatureInvalidError,
)
from ipfs_share.formats.identity_doc import revocation_key
from ipfs_share.formats.ipns import ipns_name, make_record, verify_record
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.revocation import (
    RevocationHead,
    decode_head,
    is_revoked,
    revoke,
    verify_history,
)
from ipfs_share.formats.signed import BlockWalk, check_block
from ipfs_share.local.db import HeadRow, StateDB
from ipfs_share.storage.base import Storage

__all__ = ["CheckedList", "RevocationService", "drive"]

# The list's IPNS record is valid for a year (the node cannot republish it: the key stays
# here); a short TTL so resolvers come back for news.
LIST_VALIDITY = timedelta(days=365)
LIST_TTL_SECONDS = 30
FETCH_TIMEOUT = 20.0

_T = TypeVar("_T")


async def drive(walk: BlockWalk[_T], get_block: Callable[[str], Awaitable[bytes]]) -> _T:
    """Run a pure DAG walk against async storage, checking every block against its CID."""
    try:
        cid = next(walk)
        while True:
            cid = walk.send(check_block(cid, await get_block(cid)))
    except StopIteration as done:
        result: _T = done.value
        return result


@dataclass(frozen=True, slots=True)
class CheckedList:
    """Which head an open was checked against, and how."""

    head: str  # the head's CID
    seq: int
    fresh: bool  # False: the network was unreachable and a recent cached head was used


class RevocationService:
    def __init__(
        self,
        storage: Storage,
        db: StateDB,
        *,
        max_staleness: float | None = None,
        max_head_age: float | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``max_staleness``: when the issuer's list cannot be resolved, accept the last
        head verified no more than this many seconds ago; None (the default) fails closed.

        ``max_head_age``: refuse (fail closed) a list whose newest head was signed longer
        ago than this. A node that keeps serving an old head cannot be told from a list
        that did not change, except by age: issuers who promise this bound re-sign their
        list within it (:meth:`refresh`). None (the default) trusts any head that is not
        older than one seen before."""
        self.storage = storage
        self.db = db
        self.max_staleness = max_staleness
        self.max_head_age = max_head_age
        self._now = now
        self._lock = asyncio.Lock()

    async def _get(self, cid: str) -> bytes:
        return await asyncio.wait_for(self.storage.block_get(cid), FETCH_TIMEOUT)

    # -- our own list -----------------------------------------------------------------------
    async def ensure_list(self, keys: IdentityKeys) -> RevocationHead:
        """Our list's head, publishing an empty list first if there is none yet."""
        row = self.db.own_head(keys.did)
        if row is not None:
            return decode_head(row.head_block, issuer=keys.did)
        return await self.revoke(keys, [])

    async def revoke(self, keys: IdentityKeys, capsule_ids: Iterable[str]) -> RevocationHead:
        """Add ``capsule_ids`` to our list, store the new blocks, publish the new head."""
        ids = list(capsule_ids)
        async with self._lock:  # one writer per process; the db check covers processes
            for _ in range(10):
                row = self.db.own_head(keys.did)
                head = None if row is None else decode_head(row.head_block, issuer=keys.did)
                done = await drive(
                    revoke(keys.signing, head, ids, updated=int(self._now())), self._get
                )
                for block in done.blocks:
                    await self.storage.block_put(block.data, codec="dag-cbor")
                new = done.head
                await self.storage.pin_add(new.cid)  # keeps every block of the list
                if self.db.set_own_head(
                    HeadRow(keys.did, new.cid, new.seq, new.data),
                    expected_seq=None if head is None else head.seq,
                ):
                    break
            else:  # pragma: no cover - ten writers raced us
                raise ChainInvalidError("the revocation list kept moving; retry")
            if head is not None:
                await self.storage.pin_rm(head.cid)
            await self._publish(keys, new)
        return new

    async def refresh(self, keys: IdentityKeys) -> RevocationHead:
        """Re-sign our list with nothing added: a fresh ``updated`` time (for readers with
        ``max_head_age``) and a fresh IPNS record (its validity is a year)."""
        return await self.revoke(keys, [])

    async def _publish(self, keys: IdentityKeys, head: RevocationHead) -> None:
        list_key = revocation_key(keys.signing)
        record = make_record(
            list_key,
            f"/ipfs/{head.cid}",
            sequence=head.seq,
            validity=LIST_VALIDITY,
            ttl_seconds=LIST_TTL_SECONDS,
            now=datetime.fromtimestamp(self._now(), UTC),
        )
        await self.storage.ipns_put(ipns_name(list_key.public_key), record)

    # -- checking someone's list ------------------------------------------------------------
    async def check(
        self, issuer: str, list_name: str, capsule_id: str, *, max_staleness: float | None = None
    ) -> CheckedList:
        """Raise :class:`ShareRevokedError` if ``capsule_id`` is on ``issuer``'s list at its
        freshest head; return which head was checked. When the list cannot be resolved, the
        staleness rule decides: a head verified within ``max_staleness`` seconds is used,
        else :class:`RevocationUnavailableError` (fail closed)."""
        try:
            head = await self.fresh_head(issuer, list_name)
            fresh = True
        except (NodeError, TimeoutError) as exc:
            bound = self.max_staleness if max_staleness is None else max_staleness
            head = self._stale_head(issuer, exc, bound)
            fresh = False
        age = self._now() - head.updated
        if self.max_head_age is not None and age > self.max_head_age:
            raise RevocationUnavailableError(
                f"the newest revocation list of {issuer} was signed {int(age)} s ago, over "
                f"max_head_age ({int(self.max_head_age)} s); failing closed",
                hint="the issuer must refresh the list, or a node is serving an old one",
            )
        if await drive(is_revoked(head, capsule_id), self._get):
            raise ShareRevokedError(
                f"the share {capsule_id} was revoked by its issuer (list seq {head.seq})"
            )
        return CheckedList(head.cid, head.seq, fresh)

    async def fresh_head(self, issuer: str, list_name: str) -> RevocationHead:
        """The freshest head of ``issuer``'s list under ``list_name``: resolved, verified
        (record, signature, and that it extends the head seen before: no rollback), and
        remembered. For checking many capsules of one issuer against one head (a sync),
        read it once and run :func:`~ipfs_share.formats.revocation.is_revoked` per ID."""
        record_bytes = await asyncio.wait_for(self.storage.ipns_get(list_name), FETCH_TIMEOUT)
        now = datetime.fromtimestamp(self._now(), UTC)
        try:
            record = verify_record(list_name, record_bytes, now=now)
            if not record.value.startswith("/ipfs/"):
                raise FormatError(f"expected /ipfs/<cid>, found {record.value!r:.80}")
            head = decode_head(await self._get(record.value.removeprefix("/ipfs/")), issuer=issuer)
        except (FormatError, SignatureInvalidError) as exc:
            raise ChainInvalidError(f"the revocation list of {issuer}: {exc.message}") from exc
        if head.seq != record.sequence:
            raise ChainInvalidError(
                f"expected the list head of {issuer} at seq {record.sequence}, found {head.seq}"
            )
        seen = self.db.seen_head(issuer)
        if seen is not None and seen.head != head.cid:
            known = decode_head(seen.head_block, issuer=issuer)
            if head.seq < known.seq:
                raise ChainInvalidError(
                    f"expected the revocation list of {issuer} at seq >= {known.seq} (checked "
                    f"before), found seq {head.seq}: a rollback"
                )
            # However long the gap, a fork must not go unnoticed: walk it (each step is one
            # small block, fetched once; the next check starts from this head).
            await drive(verify_history(head, known), self._get)
        self.db.keep_seen_head(HeadRow(issuer, head.cid, head.seq, head.data, int(self._now())))
        return head

    def _stale_head(
        self, issuer: str, cause: BaseException, max_staleness: float | None
    ) -> RevocationHead:
        seen = self.db.seen_head(issuer)
        reason = cause.message if isinstance(cause, IpfsShareError) else "timed out"
        if max_staleness is None or seen is None:
            raise RevocationUnavailableError(
                f"the revocation list of {issuer} could not be checked ({reason}); failing closed"
            ) from cause
        age = self._now() - seen.checked_at
        if age > max_staleness:
            raise RevocationUnavailableError(
                f"the revocation list of {issuer} could not be checked ({reason}), and the "
                f"last check is {int(age)} s old (max_staleness {int(max_staleness)} s)"
            ) from cause
        return decode_head(seen.head_block, issuer=issuer)
