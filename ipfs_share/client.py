"""The library's front door: ``connect()`` gives a :class:`Mesh` with everything on it.

>>> import asyncio, tempfile
>>> from ipfs_share.crypto.passphrase import KdfParams
>>> async def demo() -> str:
...     home = tempfile.mkdtemp()
...     async with connect(home=home, embedded=f"{home}/store",
...                        passphrase="pw", kdf=KdfParams.fastest()) as mesh:
...         alice = await mesh.identity.create("alice")
...         return alice.did[:12]
>>> asyncio.run(demo())
'did:key:z6Mk'

``connect()`` is both awaitable and an async context manager: ``mesh = await
connect()`` (then ``await mesh.close()``), ``async with connect() as mesh``, and ``async
with await connect() as mesh`` all work.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from ipfs_share import paths
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.local.state import StateDB
from ipfs_share.node.discovery import resolve_api
from ipfs_share.services.feeds import FeedReader, FeedWriter
from ipfs_share.services.feeds.republish import Republisher, RepublishReport
from ipfs_share.services.files import FileService
from ipfs_share.services.identities import IdentityService, PassphraseSource, env_passphrase
from ipfs_share.services.mailbox import MailboxService, MailShareService
from ipfs_share.services.policy import PolicyProvider, PolicyRegistry
from ipfs_share.services.record_keys import UnlockedRecordKeys
from ipfs_share.services.revocations import RevocationService
from ipfs_share.storage.base import Storage
from ipfs_share.storage.embedded import EmbeddedStorage
from ipfs_share.storage.kubo import KuboStorage
from ipfs_share.storage.timed import TimedStorage

__all__ = ["Connecting", "Mesh", "Passphrase", "connect", "open_storage"]

# What connect() takes as the passphrase: the passphrase itself (str or bytes: the same
# for every identity of the home), or a function asked with a prompt such as "passphrase
# for alice" that returns it (str or bytes).
Passphrase = str | bytes | Callable[[str], bytes | str]


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
    ``inbox`` reads them (``sync``, ``list``, ``watch``, events). ``feeds`` and ``follow``
    are the home's feed writer and reader, which identities, revocation lists and
    mailboxes share."""

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
        # Every call to the node has a deadline (storage/timed.py): a timeout is a typed
        # error wherever it happens.
        self.storage: Storage = TimedStorage(storage)
        self.home = home
        self._now = now
        self.db = StateDB(home)
        self.feeds = FeedWriter(self.storage, self.db, now=now)
        self.follow = FeedReader(self.storage, self.db, now=now)
        self.identity = IdentityService(
            home,
            self.storage,
            passphrase=passphrase,
            kdf=kdf,
            db=self.db,
            now=now,
            writer=self.feeds,
            reader=self.follow,
        )
        self.files = FileService(self.storage, self.db, home, self.identity, now=now)
        self.revocations = RevocationService(
            self.storage,
            self.db,
            max_staleness=max_staleness,
            max_head_age=max_head_age,
            now=now,
            writer=self.feeds,
            reader=self.follow,
        )
        self.share = MailShareService(
            self.storage,
            self.db,
            self.identity,
            self.files,
            self.revocations,
            PolicyRegistry(policy_providers),
            now=now,
            feed_writer=self.feeds,
            feed_reader=self.follow,
        )
        self.inbox: MailboxService = self.share.mailbox

    def __repr__(self) -> str:
        return f"Mesh(home={str(self.home)!r}, storage={self.storage!r})"

    async def republish(self, *, renew: bool = True, unlock: bool = False) -> RepublishReport:
        """Put every signed record this home published or depends on again (the same
        bytes: no key needed), so its feeds stay resolvable; re-sign records of its own
        near their end of validity if their keys are unlocked (``unlock``: unlock them,
        which may ask for passphrases). Idempotent, safe from several processes at once;
        the agent runs it every 4 hours. Returns what it did, record by record."""
        keys = UnlockedRecordKeys(self.identity, unlock=unlock)
        republisher = Republisher(self.storage, self.db, self.feeds, keys, now=self._now)
        return await republisher.republish(renew=renew)

    async def close(self) -> None:
        self.identity.lock()  # drop unlocked keys from memory
        await self.storage.close()
        self.db.close()

    async def __aenter__(self) -> Mesh:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def passphrase_source(passphrase: Passphrase) -> PassphraseSource:
    """The function the services ask, from what :func:`connect` was given.

    >>> passphrase_source("pw")("passphrase for alice"), passphrase_source(b"pw")("x")
    (b'pw', b'pw')
    >>> passphrase_source(lambda prompt: "pw")("x")
    b'pw'
    """
    if isinstance(passphrase, str | bytes):
        fixed = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
        return lambda prompt: fixed
    if not callable(passphrase):
        raise TypeError(
            f"expected the passphrase as str, bytes or a function, found "
            f"{type(passphrase).__name__}"
        )
    ask = passphrase

    def source(prompt: str) -> bytes:
        answer = ask(prompt)
        if isinstance(answer, str):
            return answer.encode()
        if isinstance(answer, bytes | bytearray):
            return bytes(answer)
        raise TypeError(
            f"expected the passphrase function to return str or bytes, found "
            f"{type(answer).__name__}"
        )

    return source


class Connecting(Awaitable[Mesh]):
    """What :func:`connect` returns: await it for the :class:`Mesh`, or use it as an
    async context manager (the mesh is closed at the end of the block). It connects once,
    however it is used."""

    def __init__(self, opening: Callable[[], Awaitable[Mesh]]) -> None:
        self._opening = opening
        self._mesh: Mesh | None = None

    def __repr__(self) -> str:
        return f"Connecting(mesh={self._mesh!r})"

    async def _open(self) -> Mesh:
        if self._mesh is None:
            self._mesh = await self._opening()
        return self._mesh

    def __await__(self) -> Generator[Any, None, Mesh]:
        return self._open().__await__()

    async def __aenter__(self) -> Mesh:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._mesh is not None:
            await self._mesh.close()


def connect(
    api: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    embedded: str | os.PathLike[str] | None = None,
    passphrase: Passphrase = env_passphrase,
    kdf: KdfParams | None = None,
    policy_providers: Iterable[PolicyProvider] = (),
    max_staleness: float | None = None,
    max_head_age: float | None = None,
    now: Callable[[], float] = time.time,
) -> Connecting:
    """Open the home (``IPFS_SHARE_HOME`` or the XDG default) and the storage::

        async with connect() as mesh:   # or: mesh = await connect()
            ...

    ``passphrase`` is the identities' passphrase (a str or bytes) or a function asked
    with a prompt such as "passphrase for alice" that returns one (default: the
    ``IPFS_SHARE_PASSPHRASE`` environment variable); ``policy_providers`` add to those
    installed as entry points; ``max_head_age`` (seconds) refuses revocation lists signed
    longer ago than that (against a node that keeps serving an old list; issuers then
    refresh theirs); ``max_staleness`` (seconds) lets an open use a recently verified
    revocation list when the issuer's cannot be resolved (default: fail closed);
    ``now`` is the clock (inject one in tests)."""
    source = passphrase_source(passphrase)

    async def opening() -> Mesh:
        storage = await open_storage(api, embedded=embedded)
        return Mesh(
            storage,
            Path(home) if home is not None else paths.home_dir(),
            passphrase=source,
            kdf=kdf,
            policy_providers=policy_providers,
            max_staleness=max_staleness,
            max_head_age=max_head_age,
            now=now,
        )

    return Connecting(opening)
