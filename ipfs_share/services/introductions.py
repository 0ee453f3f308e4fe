"""Introductions: reaching a recipient who has not added you, and being reached.

Sending (``announce``): seal an introduction to the recipient's X25519 key (from its
verified identity document) and publish it on the recipient's introduction topic, which
anyone can derive from its did. The agent does this for capsules sent and not yet
acknowledged, with a backoff (docs/spec/introductions.md section 5).

Receiving (``receive``): everything that arrives on one of our topics goes through the
limits first (a token bucket per identity: no crypto for a message over budget), then
the checks of the spec (size, seal, signature, recipient, clock, replay), then the
repository: a new sender becomes a pending introduction, unless the identity already has
:attr:`IntroductionLimits.max_pending` of them. A sender that is already known (a contact,
a local identity) is no introduction at all: the caller syncs its mailbox instead.

Accepting (``accept``): the sender becomes a contact, so every inbox sync reads its
mailbox from then on.

>>> limits = IntroductionLimits()
>>> limits.burst, limits.rate, limits.max_pending, limits.window
(10, 1.0, 16, 300)
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ipfs_share.errors import (
    DecryptionError,
    FormatError,
    IntroductionRejectedError,
    InvalidInputError,
    NodeUnreachableError,
    NotFoundError,
    SignatureInvalidError,
)
from ipfs_share.formats.introduction import (
    CLOCK_WINDOW,
    MAX_SEALED_SIZE,
    Introduction,
    introduction_topic,
    make_introduction,
    open_introduction,
    parse_link,
)
from ipfs_share.formats.keystore import IdentityKeys, check_name
from ipfs_share.formats.signed import did_key, parse_did_key
from ipfs_share.local.agentdb import IntroductionRepository, PendingIntroduction
from ipfs_share.local.state import StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.storage.base import Storage

__all__ = [
    "IntroductionLimits",
    "IntroductionService",
    "Outcome",
    "Received",
    "TokenBucket",
    "auto_petname",
]

log = logging.getLogger("ipfs_share.introductions")

Outcome = Literal[
    "pending",  # a new pending introduction
    "refreshed",  # a pending one seen again
    "known",  # from a contact or a local identity: sync its mailbox, no introduction
    "accepted",  # from a sender accepted before (a contact since)
    "rejected",  # from a sender the user rejected: ignored
    "capped",  # verified, but the identity has max_pending pending already
    "rate_limited",  # over the identity's budget: dropped before any crypto
    "oversize",  # longer than any introduction: dropped before any crypto
    "invalid",  # did not open or verify (not for us, changed, forged, malformed)
    "stale",  # outside the clock window, or addressed to another identity
    "replayed",  # seen before
]


@dataclass(frozen=True, slots=True)
class IntroductionLimits:
    """The numbers of docs/spec/introductions.md section 4 (defaults are the spec's)."""

    burst: int = 10  # messages one identity's topic may bring at once ...
    rate: float = 1.0  # ... and per second after that (a token bucket)
    max_pending: int = 16  # pending introductions per identity
    window: int = CLOCK_WINDOW  # seconds either side of our clock
    replay_entries: int = 4096  # introductions remembered against replays


class TokenBucket:
    """``take()`` is True while tokens last; they come back at ``rate`` per second, up to
    ``capacity``.

    >>> t = [0.0]
    >>> bucket = TokenBucket(2, 1.0, clock=lambda: t[0])
    >>> [bucket.take() for _ in range(3)]
    [True, True, False]
    >>> t[0] = 1.5
    >>> bucket.take(), bucket.take()
    (True, False)
    """

    def __init__(
        self, capacity: int, rate: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._tokens = float(capacity)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class _Seen:
    """Introductions seen within the clock window, by CID, at most ``size`` of them (the
    oldest go first: an evicted one is past its window soon anyway)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._until: OrderedDict[str, float] = OrderedDict()

    def first_time(self, cid: str, *, now: float, keep: float) -> bool:
        while self._until and next(iter(self._until.values())) < now:
            self._until.popitem(last=False)
        if cid in self._until:
            return False
        self._until[cid] = now + keep
        while len(self._until) > self._size:
            self._until.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._until)


@dataclass(frozen=True, slots=True)
class Received:
    """What became of one message on an introduction topic."""

    outcome: Outcome
    sender: str | None = None  # once verified
    recipient: str | None = None


@dataclass
class _Counters:
    by_outcome: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1


def auto_petname(did: str) -> str:
    """The petname an accepted sender gets when none is given: ``peer-`` and the did's
    last 8 characters.

    >>> auto_petname("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp")
    'peer-X3mDooWp'
    """
    return f"peer-{did[-8:]}"


class IntroductionService:
    """Announce, receive, list, accept and reject introductions for one home."""

    def __init__(
        self,
        home: Path,
        storage: Storage | None,
        identities: IdentityService,
        db: StateDB,
        *,
        limits: IntroductionLimits | None = None,
        now: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.home = home
        self._storage = storage
        self.identities = identities
        self.db = db
        self.limits = limits or IntroductionLimits()
        self._now = now
        self._clock = clock
        self._repo: IntroductionRepository | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._seen = _Seen(self.limits.replay_entries)
        self.counters = _Counters()

    def __repr__(self) -> str:
        return f"IntroductionService({str(self.home)!r})"

    @property
    def storage(self) -> Storage:
        """The node; only announcing needs one."""
        if self._storage is None:
            raise NodeUnreachableError("announcing needs a node, and none was given")
        return self._storage

    @property
    def repo(self) -> IntroductionRepository:
        if self._repo is None:  # opened on first use: most commands never need it
            self._repo = IntroductionRepository(self.home)
        return self._repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    @staticmethod
    def topic(did: str) -> str:
        """The introduction topic of ``did`` (see :func:`introduction_topic`)."""
        return introduction_topic(did)

    # -- sending --------------------------------------------------------------------------
    async def announce(self, keys: IdentityKeys, recipient: str) -> bool:
        """Publish one introduction from ``keys``' identity to ``recipient`` (a did) on its
        topic. False (nothing sent) where the node has no pubsub."""
        caps = await self.storage.capabilities()
        if not caps.pubsub:
            return False
        target = await self.identities.recipient(recipient)
        sealed = make_introduction(keys.signing, target.did, target.enc, sent=int(self._now()))
        await self.storage.pubsub_publish(introduction_topic(target.did), sealed)
        return True

    # -- receiving ------------------------------------------------------------------------
    def receive(self, keys: IdentityKeys, message: bytes) -> Received:
        """Take one message from ``keys``' identity's introduction topic (section 4)."""
        me = keys.did
        received = self._receive(keys, message)
        self.counters.add(received.outcome)
        if received.outcome in ("pending", "capped", "stale", "invalid"):
            log.info(
                "introduction to %s: %s%s",
                me,
                received.outcome,
                f" from {received.sender}" if received.sender else "",
            )
        return received

    def _receive(self, keys: IdentityKeys, message: bytes) -> Received:
        me = keys.did
        if len(message) > MAX_SEALED_SIZE:
            return Received("oversize", recipient=me)
        bucket = self._buckets.get(me)
        if bucket is None:
            bucket = self._buckets[me] = TokenBucket(
                self.limits.burst, self.limits.rate, clock=self._clock
            )
        if not bucket.take():
            return Received("rate_limited", recipient=me)
        now = int(self._now())
        try:
            intro = open_introduction(
                message, me, keys.encryption, now=now, window=self.limits.window
            )
        except IntroductionRejectedError:
            return Received("stale", recipient=me)
        except (FormatError, DecryptionError, SignatureInvalidError, InvalidInputError):
            return Received("invalid", recipient=me)
        if not self._seen.first_time(intro.cid, now=now, keep=2 * self.limits.window):
            return Received("replayed", intro.sender, me)
        return self._file(intro, now)

    def _file(self, intro: Introduction, now: int) -> Received:
        sender, me = intro.sender, intro.recipient
        if self.identities.keystore.find(sender) is not None or self.db.contacts.of(sender):
            return Received("known", sender, me)
        outcome = self.repo.offer(me, sender, at=now, max_pending=self.limits.max_pending)
        return Received(outcome, sender, me)

    # -- the user's side ------------------------------------------------------------------
    def pending(self, as_: str | None = None) -> list[PendingIntroduction]:
        """Pending introductions to ``as_`` (None: to any identity of this home)."""
        me = None if as_ is None else self.identities.get(as_).did
        return self.repo.pending(me)

    def accept(self, sender: str, petname: str | None = None, *, as_: str | None = None) -> str:
        """Add the sender of a pending (or rejected) introduction as a contact, named
        ``petname`` (default :func:`auto_petname`), so inbox syncs read its mailbox;
        returns the petname."""
        did = _did(sender)
        me = None if as_ is None else self.identities.get(as_).did
        found = [i for i in self.repo.find(did) if me is None or i.recipient == me]
        if not found:
            raise NotFoundError(
                f"no introduction from {did} reached {'this home' if me is None else as_}",
                hint="see 'ipfs-share inbox'; to add someone who did not introduce "
                "themselves, use 'ipfs-share contacts add NAME DID'",
            )
        name = self._free_petname(did, petname)
        self.db.contacts.put(name, did)
        self.repo.settle(did, "accepted", recipient=me)
        return name

    def reject(self, sender: str, *, as_: str | None = None) -> int:
        """Drop the pending introductions from ``sender``; later ones are ignored."""
        did = _did(sender)
        me = None if as_ is None else self.identities.get(as_).did
        changed = self.repo.settle(did, "rejected", recipient=me)
        if not changed:
            raise NotFoundError(f"no introduction from {did} reached this home")
        return changed

    def register_link(self, link: str) -> tuple[str, str | None]:
        """Take an out-of-band link (section 6): its sender becomes a contact unless it is
        one already (or a local identity). Returns (capsule, the new petname or None)."""
        parsed = parse_link(link)
        sender = parsed.sender
        if self.identities.keystore.find(sender) is not None or self.db.contacts.of(sender):
            return parsed.capsule, None
        name = self._free_petname(sender, None)
        self.db.contacts.put(name, sender)
        self.repo.settle(sender, "accepted", recipient=None)
        return parsed.capsule, name

    def _free_petname(self, did: str, wanted: str | None) -> str:
        if wanted is not None:
            check_name(wanted)
            held = self.db.contacts.get(wanted)
            if held is not None and held.did != did:
                raise InvalidInputError(
                    f"the petname {wanted!r} already names {held.did}",
                    hint="choose another name, or remove that contact first",
                )
            return wanted
        base = auto_petname(did)
        for i in range(1, 100):
            name = base if i == 1 else f"{base}-{i}"
            held = self.db.contacts.get(name)
            if held is None or held.did == did:
                return name
        raise InvalidInputError(f"no free petname for {did}", hint="pass NAME")


def _did(text: str) -> str:
    value = text.strip()
    try:
        return did_key(parse_did_key(value))
    except FormatError:
        raise InvalidInputError(
            f"expected a did:key:z6Mk..., found {value[:80]!r}",
            hint="copy the sender's did from 'ipfs-share inbox'",
        ) from None
