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

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import (
    ChainInvalidError,
    FormatError,
    InvalidInputError,
    IpfsShareError,
    IpnsRecordExpiredError,
    NodeError,
    RevocationUnavailableError,
    ShareRevokedError,
    SignatureInvalidError,
)
from ipfs_share.formats.feed import FeedEntry
from ipfs_share.formats.identity_doc import revocation_key
from ipfs_share.formats.ipns import ipns_name
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.revocation import (
    REVOCATION_FEED,
    RevocationHead,
    decode_head,
    is_revoked,
    revoke,
)
from ipfs_share.local.state import StateDB
from ipfs_share.services.feeds import Batch, Feed, FeedReader, FeedWriter, drive
from ipfs_share.storage.base import Storage

__all__ = [
    "MAX_FRESH_FOR",
    "RECENT_LISTS",
    "CheckedList",
    "RevocationService",
    "checked_fresh_for",
    "drive",
]

RECENT_LISTS = 1024  # lists whose last resolved head is held for ``fresh_for`` (each < 2 KiB)
MAX_FRESH_FOR = 60.0  # the most fresh_for may be (docs/spec/revocation.md section 5.1)
RACED_READS = 4  # reads of a list that may each lose the race to move its mark, in a row


def checked_fresh_for(seconds: float) -> float:
    """``seconds`` as a freshness bound, if it is one: 0 to :data:`MAX_FRESH_FOR`.

    >>> checked_fresh_for(1)
    1.0
    >>> checked_fresh_for(float("inf"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ipfs_share.errors.InvalidInputError: expected ... bound in 0..60 seconds, found inf
    """
    if not 0 <= seconds <= MAX_FRESH_FOR:  # NaN too
        raise InvalidInputError(
            f"expected a revocation freshness bound in 0..{MAX_FRESH_FOR:g} seconds, "
            f"found {seconds:g}",
            hint="it is how long a revocation may go unnoticed by opens here; keep it short",
        )
    return float(seconds)


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
        writer: FeedWriter | None = None,
        reader: FeedReader | None = None,
        fresh_for: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``max_staleness``: when the issuer's list cannot be resolved, accept the last
        head verified no more than this many seconds ago; None (the default) fails closed.

        ``max_head_age``: refuse (fail closed) a list whose newest head was signed longer
        ago than this. A node that keeps serving an old head cannot be told from a list
        that did not change, except by age: issuers who promise this bound re-sign their
        list within it (:meth:`refresh`). None (the default) trusts any head that is not
        older than one seen before.

        ``writer`` and ``reader``: the home's feed writer and reader (made from
        ``storage`` and ``db`` when not given).

        ``fresh_for``: answer a check from the head this service resolved for the same
        list at most this many seconds ago (by ``clock``), instead of resolving again
        (docs/spec/revocation.md section 5.1: a standing agent's freshness bound; it adds
        at most that much to the time a revocation takes to be refused). 0 (the default)
        resolves on every check; at most :data:`MAX_FRESH_FOR`, else
        :class:`InvalidInputError` (here and when set later). At most
        :data:`RECENT_LISTS` lists are held."""
        self.storage = storage
        self.db = db
        self.max_staleness = max_staleness
        self.max_head_age = max_head_age
        self._now = now
        self.writer = writer or FeedWriter(storage, db, now=now)
        self.reader = reader or FeedReader(storage, db, now=now)
        self.fresh_for = fresh_for
        self._clock = clock
        # (issuer, list name) -> (head, clock time the resolve that found it began)
        self._recent: OrderedDict[tuple[str, str], tuple[RevocationHead, float]] = OrderedDict()
        self._moved: dict[tuple[str, str], float] = {}  # our own lists -> when we last revoked

    @property
    def fresh_for(self) -> float:
        """How long a resolved head answers checks of its list (see :meth:`__init__`)."""
        return self._fresh_for

    @fresh_for.setter
    def fresh_for(self, seconds: float) -> None:
        self._fresh_for = checked_fresh_for(seconds)

    @staticmethod
    def feed(issuer: str, list_name: str) -> Feed:
        """The feed of ``issuer``'s revocation list, published under ``list_name``."""
        return Feed(REVOCATION_FEED, list_name, issuer)

    @classmethod
    def own_feed(cls, keys: IdentityKeys) -> tuple[Feed, SigningKey]:
        """Our list's feed and the key that signs its records."""
        list_key = revocation_key(keys.signing)
        return cls.feed(keys.did, ipns_name(list_key.public_key)), list_key

    # -- our own list -----------------------------------------------------------------------
    async def ensure_list(self, keys: IdentityKeys) -> RevocationHead:
        """Our list's head, publishing an empty list first if there is none yet."""
        feed, _ = self.own_feed(keys)
        row = self.writer.head(feed)
        if row is not None and row.head_block is not None:
            return decode_head(row.head_block, issuer=keys.did)
        return await self.revoke(keys, [])

    async def revoke(self, keys: IdentityKeys, capsule_ids: Iterable[str]) -> RevocationHead:
        """Add ``capsule_ids`` to our list, store the new blocks, publish the new head.

        With no head in this home (a recovered home, an identity from elsewhere) the list
        continues from the head the network has: a new empty list would un-revoke every
        capsule on the old one for readers that never saw it."""
        ids = list(capsule_ids)
        feed, list_key = self.own_feed(keys)

        async def next_head(prev: FeedEntry | None) -> Batch:
            head = None if prev is None else prev.value
            done = await drive(
                revoke(keys.signing, head, ids, updated=int(self._now())),
                self.storage.block_get,
            )
            entry = REVOCATION_FEED.read(done.head.data, None)  # signed just now
            return Batch([entry], blocks=[b.data for b in done.blocks[:-1]])

        appended = await self.writer.append(feed, next_head)
        assert appended.head is not None and appended.head.head_block is not None
        await self.writer.publish(feed, list_key)
        # Our own revoke: no waiting for it. Nor for a check that resolved the list before
        # this and ends after: what it found is not held (see _recent_head).
        self._recent.pop((keys.did, feed.name), None)
        self._moved[(keys.did, feed.name)] = self._clock()
        return decode_head(appended.head.head_block, issuer=keys.did)

    async def refresh(self, keys: IdentityKeys) -> RevocationHead:
        """Re-sign our list with nothing added: a fresh ``updated`` time (for readers with
        ``max_head_age``) and a fresh IPNS record."""
        return await self.revoke(keys, [])

    # -- checking someone's list ------------------------------------------------------------
    async def check(
        self, issuer: str, list_name: str, capsule_id: str, *, max_staleness: float | None = None
    ) -> CheckedList:
        """Raise :class:`ShareRevokedError` if ``capsule_id`` is on ``issuer``'s list at its
        freshest head; return which head was checked. When the list cannot be resolved (no
        answer, or only an expired record), the staleness rule decides: a head verified
        within ``max_staleness`` seconds is used, else :class:`RevocationUnavailableError`
        (fail closed)."""
        try:
            head = await self._recent_head(issuer, list_name)
            fresh = True
        except (NodeError, IpnsRecordExpiredError) as exc:
            bound = self.max_staleness if max_staleness is None else max_staleness
            head = self._stale_head(issuer, list_name, exc, bound)
            fresh = False
        age = self._now() - head.updated
        if self.max_head_age is not None and not age <= self.max_head_age:  # NaN too
            raise RevocationUnavailableError(
                f"the newest revocation list of {issuer} was signed {int(age)} s ago, over "
                f"max_head_age ({self.max_head_age:g} s); failing closed",
                hint="the issuer must refresh the list, or a node is serving an old one",
            )
        if await drive(is_revoked(head, capsule_id), self.storage.block_get):
            raise ShareRevokedError(
                f"the share {capsule_id} was revoked by its issuer (list seq {head.seq})"
            )
        return CheckedList(head.cid, head.seq, fresh)

    async def _recent_head(self, issuer: str, list_name: str) -> RevocationHead:
        """:meth:`fresh_head`, or the head it gave for this list within ``fresh_for``
        seconds. The time held is when that resolve began, so the head it found is at
        least that fresh."""
        key = (issuer, list_name)
        if self.fresh_for > 0:
            held = self._recent.get(key)
            if held is not None and self._clock() - held[1] <= self.fresh_for:
                self._recent.move_to_end(key)
                return held[0]
        began = self._clock()
        head = await self.fresh_head(issuer, list_name)
        if self.fresh_for > 0 and began > self._moved.get(key, -math.inf):
            self._recent[key] = (head, began)
            self._recent.move_to_end(key)
            while len(self._recent) > RECENT_LISTS:
                self._recent.popitem(last=False)
        return head

    async def fresh_head(self, issuer: str, list_name: str) -> RevocationHead:
        """The freshest head of ``issuer``'s list under ``list_name``: resolved, verified
        (record, signature, and that it extends the head seen before: no rollback, no
        fork, however long the gap), and remembered. For checking many capsules of one
        issuer against one head (a sync), read it once and run
        :func:`~ipfs_share.formats.revocation.is_revoked` per ID."""
        feed = self.feed(issuer, list_name)
        for _ in range(RACED_READS):
            try:
                update = await self.reader.read(feed)
            except (ChainInvalidError, IpnsRecordExpiredError):
                raise
            except (FormatError, SignatureInvalidError) as exc:
                raise ChainInvalidError(f"the revocation list of {issuer}: {exc.message}") from exc
            if update.head is not None:
                head: RevocationHead = update.head.value
                return head
            if not update.raced:  # pragma: no cover - a revocation head is always kept
                raise ChainInvalidError(f"the revocation list of {issuer}: no head kept")
            # Raced: another read of this home (another task: a sync checking a capsule
            # while an open checks another) moved the mark first. What it verified may be
            # older than the head this read resolved (a record that came in between), so
            # it is not taken as is: read again, from that mark, resolving anew.
        raise RevocationUnavailableError(
            f"the revocation list of {issuer} moved under {RACED_READS} reads in a row; "
            "failing closed",
            hint="try again: other reads of this home were updating the same list",
        )

    def _stale_head(
        self, issuer: str, list_name: str, cause: IpfsShareError, max_staleness: float | None
    ) -> RevocationHead:
        feed = self.feed(issuer, list_name)
        seen = self.reader.mark(feed)
        held = None if seen is None else self.reader.held(feed, seen)
        if max_staleness is None or seen is None or held is None:
            raise RevocationUnavailableError(
                f"the revocation list of {issuer} could not be checked ({cause.message}); "
                "failing closed"
            ) from cause
        age = self._now() - seen.checked_at
        if not age <= max_staleness:  # NaN is no bound: refused too
            raise RevocationUnavailableError(
                f"the revocation list of {issuer} could not be checked ({cause.message}), "
                f"and the last check is {int(age)} s old (max_staleness {max_staleness:g} s)"
            ) from cause
        head: RevocationHead = held.value
        return head
