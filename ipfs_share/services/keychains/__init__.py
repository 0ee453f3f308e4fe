"""Keychains: keys with rotation, shares, four permissions, participants and bans,
enforced by signatures over a log every member replays (docs/spec/keychain.md).

- :mod:`.service`: :class:`KeychainService` (``mesh.keychains``), the API;
- :mod:`.chains`: what member chains need besides the feed primitive (fetching the ops
  others' ops depend on; the kind's record lifetime and record key);
- :mod:`.keyring`: the keys one member holds, opened from its deliveries;
- :mod:`.views`: what the API returns.
"""

from ipfs_share.services.keychains.service import (
    EVENTS,
    KeychainService,
    MailboxNotifier,
    Notifier,
)
from ipfs_share.services.keychains.views import (
    BanResult,
    KeychainView,
    KeyReceived,
    KeyView,
    OutgoingShare,
    Participant,
    Rejected,
    SyncReport,
)

__all__ = [
    "EVENTS",
    "BanResult",
    "KeyReceived",
    "KeyView",
    "KeychainService",
    "KeychainView",
    "MailboxNotifier",
    "Notifier",
    "OutgoingShare",
    "Participant",
    "Rejected",
    "SyncReport",
]
