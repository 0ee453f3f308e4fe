"""Feeds over storage: the one signed-log primitive every client builds on
(docs/spec/feeds.md).

A feed is a signed, append-only chain of entries whose head is published under an IPNS
name: identity documents, revocation lists and mailboxes are feeds, and so are the member
chains of a keychain. The pure part (entries, kinds, the walk) is
:mod:`ipfs_share.formats.feed`; this package does the I/O, one concept a module:

- :mod:`.refs` -- :class:`Feed` (kind, name, signer, who may sign) and record lifetimes;
- :mod:`.writer` -- :class:`FeedWriter`: compare-and-set on our own head across processes,
  blocks stored and pinned, the head's IPNS record signed here and stored with name/put;
- :mod:`.reader` -- :class:`FeedReader`: resolve, verify the record under the name, walk
  back to the high-water mark, refuse rollbacks and forks, keep the mark and the
  verification progress;
- :mod:`.records` -- every signed record published or accepted, kept byte for byte;
- :mod:`.republish` -- :class:`Republisher`: put every kept record again (no key needed),
  re-sign our own near their end of validity when the keys are unlocked.

A client registers what differs (a kind, who may sign) and composes these; it does not
subclass them. Sketch of a client with a feed of its own::

    feed = Feed(MY_KIND, name=ipns_name(record_key.public_key), signer=my_did)
    await writer.append(feed, make_next_entries, then=record_what_they_carry)
    await writer.publish(feed, record_key)
    update = await reader.read(Feed(MY_KIND, their_name, their_did), apply=file_them)
"""

from __future__ import annotations

from ipfs_share.services.feeds.blocks import bounded, drive, store_blocks
from ipfs_share.services.feeds.reader import Apply, FeedReader, FeedUpdate
from ipfs_share.services.feeds.refs import LIFETIMES, Feed, Lifetime, lifetime_of
from ipfs_share.services.feeds.republish import RecordReport, Republisher, RepublishReport
from ipfs_share.services.feeds.writer import Appended, Batch, FeedWriter, Make, held_sequence

__all__ = [
    "LIFETIMES",
    "Appended",
    "Apply",
    "Batch",
    "Feed",
    "FeedReader",
    "FeedUpdate",
    "FeedWriter",
    "Lifetime",
    "Make",
    "RecordReport",
    "RepublishReport",
    "Republisher",
    "bounded",
    "drive",
    "held_sequence",
    "lifetime_of",
    "store_blocks",
]
