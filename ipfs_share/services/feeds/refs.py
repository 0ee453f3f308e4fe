"""What names one feed for the writer and the reader, and how long its records live."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ipfs_share.formats.feed import FeedKind, Only, Signers

__all__ = ["LIFETIMES", "Feed", "Lifetime", "lifetime_of"]


@dataclass(frozen=True, slots=True)
class Feed:
    """One feed: its kind, its IPNS name and whose entries it holds.

    ``topic`` tells apart several feeds of one signer and kind that this home signs (a
    mailbox: the recipient's did); ``reader`` is the local identity a feed is read for
    ('' for the whole home); ``signers`` who may sign its entries (default: ``signer``
    alone, by its did:key)."""

    kind: FeedKind
    name: str
    signer: str
    topic: str = ""
    reader: str = ""
    signers: Signers | None = None

    @property
    def accepts(self) -> Signers:
        return self.signers if self.signers is not None else Only(self.signer)


@dataclass(frozen=True, slots=True)
class Lifetime:
    """A kind's IPNS record parameters (docs/spec/feeds.md section 7): records are valid
    for ``validity``, cached by resolvers for ``ttl`` seconds, and re-signed by their owner
    (when its keys are unlocked) once less than ``renew_before`` is left."""

    validity: timedelta
    ttl: int
    renew_before: timedelta


_DAY = timedelta(days=1)
LIFETIMES: dict[str, Lifetime] = {
    "identity": Lifetime(90 * _DAY, 60, 30 * _DAY),
    "revocation": Lifetime(90 * _DAY, 30, 30 * _DAY),
    "mailbox": Lifetime(90 * _DAY, 10, 30 * _DAY),
}
DEFAULT_LIFETIME = Lifetime(90 * _DAY, 60, 30 * _DAY)


def lifetime_of(kind: str) -> Lifetime:
    """The lifetime of records of ``kind`` (a kind registered later gets the default, or
    adds its own to :data:`LIFETIMES`)."""
    return LIFETIMES.get(kind, DEFAULT_LIFETIME)
