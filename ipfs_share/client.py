"""The library's front door: ``connect()`` gives a :class:`Mesh` with everything on it.

>>> import asyncio, tempfile
>>> from ipfs_share.crypto.passphrase import KdfParams
>>> async def demo() -> str:
...     home = tempfile.mkdtemp()
...     async with await connect(home=home, embedded=f"{home}/store",
...                              passphrase=lambda prompt: b"pw", kdf=KdfParams.fastest()) as mesh:
...         alice = await mesh.identity.create("alice")
...         return alice.did[:12]
>>> asyncio.run(demo())
'did:key:z6Mk'
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ipfs_share import paths
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.local.db import StateDB
from ipfs_share.node.discovery import resolve_api
from ipfs_share.services.files import FileService
from ipfs_share.services.identities import IdentityService, PassphraseSource, env_passphrase
from ipfs_share.services.introductions import IntroductionService
from ipfs_share.services.mailbox import MailboxService, MailShareService
from ipfs_share.services.policy import PolicyProvider, PolicyRegistry
from ipfs_share.services.revocations import RevocationService
from ipfs_share.storage.base import Storage
from ipfs_share.storage.embedded import EmbeddedStorage
from ipfs_share.storage.kubo import KuboStorage

__all__ = ["Mesh", "connect", "open_storage"]


async def open_storage(
    api: str | None = None, *, embedded: str | os.PathLike[str] | None = None
) -> Storage:
    """Open the storage to use: an embedded store in ``embedded``, else a Kubo node.

    The Kubo node is found from ``api``, then ``IPFS_SHARE_API``, then the node
    ipfs-share manages, then ``/ip4/127.0.0.1/tcp/5001``; if it does not answer, this
    raises :class:`~ipfs_share.errors.NodeUnreachableError` whose hint says how to start one.
    """
    if embedded is not None:
        return EmbeddedStorage(embedded)
    return await KuboStorage.connect(resolve_api(api))


class Mesh:
    """Storage, identities, files, shares and mailboxes, over one home.

    ``share`` also sends capsules through mailboxes (``send``, ``outgoing``, ``cancel``);
    ``inbox`` reads them (``sync``, ``list``, ``watch``, events); ``introductions`` reach
    recipients who have not added the sender yet (``pending``, ``accept``, ``reject``)."""

    def __init__(
        self,
        storage: Storage,
        home: Path,
        *,
        passphrase: PassphraseSource = env_passphrase,
        kdf: KdfParams | None = None,
        policy_providers: Iterable[PolicyProvider] = (),
        max_staleness: float | None = None,
        max_head_age: float | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.home = home
        self.db = StateDB(home)
        self.identity = IdentityService(
            home, storage, passphrase=passphrase, kdf=kdf, db=self.db, now=now
        )
        self.files = FileService(storage, self.db, home, self.identity, now=now)
        self.revocations = RevocationService(
            storage, self.db, max_staleness=max_staleness, max_head_age=max_head_age, now=now
        )
        self.share = MailShareService(
            storage,
            self.db,
            self.identity,
            self.files,
            self.revocations,
            PolicyRegistry(policy_providers),
            now=now,
        )
        self.inbox: MailboxService = self.share.mailbox
        self.introductions = IntroductionService(home, storage, self.identity, self.db, now=now)

    def __repr__(self) -> str:
        return f"Mesh(home={str(self.home)!r}, storage={self.storage!r})"

    async def close(self) -> None:
        self.identity.lock()  # drop unlocked keys from memory
        await self.storage.close()
        self.introductions.close()
        self.db.close()

    async def __aenter__(self) -> Mesh:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect(
    api: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    embedded: str | os.PathLike[str] | None = None,
    passphrase: PassphraseSource = env_passphrase,
    kdf: KdfParams | None = None,
    policy_providers: Iterable[PolicyProvider] = (),
    max_staleness: float | None = None,
    max_head_age: float | None = None,
    now: Callable[[], float] = time.time,
) -> Mesh:
    """Open the home (``IPFS_SHARE_HOME`` or the XDG default) and the storage.

    ``passphrase`` answers prompts for identity passphrases (default: the
    ``IPFS_SHARE_PASSPHRASE`` environment variable); ``policy_providers`` add to those
    installed as entry points; ``max_head_age`` (seconds) refuses revocation lists signed
    longer ago than that (against a node that keeps serving an old list; issuers then
    refresh theirs); ``max_staleness`` (seconds) lets an open use a recently verified
    revocation list when the issuer's cannot be resolved (default: fail closed);
    ``now`` is the clock (inject one in tests)."""
    storage = await open_storage(api, embedded=embedded)
    return Mesh(
        storage,
        Path(home) if home is not None else paths.home_dir(),
        passphrase=passphrase,
        kdf=kdf,
        policy_providers=policy_providers,
        max_staleness=max_staleness,
        max_head_age=max_head_age,
        now=now,
    )
