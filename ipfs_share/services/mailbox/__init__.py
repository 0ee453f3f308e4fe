"""Mailboxes: capsules delivered through IPNS, synced by high-water mark, watched live.

Each ordered pair (sender, recipient) has one mailbox (docs/spec/mailbox.md): a signed,
append-only chain of entries whose head is published under an IPNS name that only the two
ends can compute. Sending appends a capsule entry to our chain for the recipient and
publishes the new head; syncing walks someone's chain back to the last entry we verified
(the high-water mark), so it reads only what is new; acknowledgements ("delivered",
"opened") travel back the same way, in the recipient's chain for the sender.

Where the node has pubsub, a send also publishes the new head record on a topic only the
two ends can name (:func:`notice_topic`), and :meth:`MailboxService.watch` reacts to it;
elsewhere watch polls with a backoff and says so (``InboxWatch.mode``, and a log line).

Nothing here needs a server: the sender's node serves the entries and the record; the
recipient can be offline when a capsule is sent and sync later.

    sent = await mesh.share.send(capsule, "bob")          # alice's side
    for item in await mesh.inbox.sync(as_="bob"):         # bob's side, any time later
        opened = await mesh.share.open_capsule(item.id, as_="bob")
    [o.state for o in await mesh.share.outgoing()]        # alice: ['opened']

The package, one concept a module, composed (no part is handed the object that owns it):

- :mod:`.views` -- what callers get back: :class:`InboxItem`, :class:`OutgoingCapsule`,
  :class:`SyncReport`, and :class:`~.views.Views` that make them from rows;
- :mod:`.pairs` -- the two mailboxes between a local identity and a peer (and the feeds
  they are), :func:`notice_topic`;
- :mod:`.support` -- the logger, the node probe, event subscribers;
- :mod:`.writer` -- :class:`~.writer.MailboxWriter`: appending to our chains through the
  feed writer (a group commit per chain), publishing heads, notices;
- :mod:`.reader` -- :class:`~.reader.MailboxReader`: reading others' chains through the
  feed reader, each sender within its own deadlines, settling what arrived (with retries),
  acknowledgements;
- :mod:`.watching` -- :class:`InboxWatch`, live over pubsub (a bounded notice queue) or
  by polling;
- :mod:`.service` -- :class:`MailboxService` (the parts as one service, with
  ``outgoing``, ``cancel``, ``watch``, ``list``) and :class:`MailShareService`.
"""

from __future__ import annotations

from ipfs_share.services.mailbox.pairs import notice_topic
from ipfs_share.services.mailbox.service import MailboxService, MailShareService
from ipfs_share.services.mailbox.support import EVENTS
from ipfs_share.services.mailbox.views import InboxItem, OutgoingCapsule, SyncReport
from ipfs_share.services.mailbox.watching import InboxWatch

__all__ = [
    "EVENTS",
    "InboxItem",
    "InboxWatch",
    "MailShareService",
    "MailboxService",
    "OutgoingCapsule",
    "SyncReport",
    "notice_topic",
]
