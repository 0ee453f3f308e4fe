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

import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ipfs_share import paths
from ipfs_share.errors import InvalidInputError, NodeUnreachableError
from ipfs_share.local.state import StateDB
from ipfs_share.node.discovery import (
    api_source_note,
    api_source_text,
    multiaddr_to_url,
    resolve_api,
    resolve_api_source,
)
from ipfs_share.services.feeds import FeedReader, FeedWriter
from ipfs_share.services.files import FileService
from ipfs_share.services.identities import IdentityService, PassphraseSource, env_passphrase
from ipfs_share.storage.base import Storage
from ipfs_share.storage.timed import Deadlines, TimedStorage

# A command pays only for what it uses: what a put or an open does not need (keychains,
# mailboxes, revocations, introductions, pinning services, a cluster) is imported and
# built on first use (see Mesh).
if TYPE_CHECKING:
    from ipfs_share.crypto.passphrase import KdfParams
    from ipfs_share.services.feeds.republish import RepublishReport
    from ipfs_share.services.introductions import IntroductionService
    from ipfs_share.services.keychains import KeychainService
    from ipfs_share.services.mailbox import MailboxService, MailShareService
    from ipfs_share.services.policy import PolicyProvider
    from ipfs_share.services.remote_pins import RemotePins
    from ipfs_share.services.revocations import RevocationService

__all__ = [
    "CLUSTER_ENV",
    "CLUSTER_KUBO_ENV",
    "REPLICATION_META",
    "TIMEOUT_ENV",
    "Connecting",
    "Mesh",
    "Passphrase",
    "connect",
    "home_replication",
    "open_storage",
    "search_deadlines",
    "set_home_replication",
]

CLUSTER_ENV = "IPFS_SHARE_CLUSTER"
CLUSTER_KUBO_ENV = "IPFS_SHARE_CLUSTER_KUBO"
REPLICATION_META = "cluster_replication"  # the home's default number of copies
TIMEOUT_ENV = "IPFS_SHARE_TIMEOUT"  # seconds a search for a block or a record may take

log = logging.getLogger("ipfs_share.client")

# What connect() takes as the passphrase: the passphrase itself (str or bytes: the same
# for every identity of the home), or a function asked with a prompt such as "passphrase
# for alice" that returns it (str or bytes).
Passphrase = str | bytes | Callable[[str], bytes | str]


def _split(value: str | Sequence[str]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _cluster_endpoints(
    cluster: str | Sequence[str],
    kubo: str | Sequence[str] | None,
    api: str | None,
    home: Path | None,
) -> tuple[list[str], list[str]]:
    """(REST URLs, Kubo RPC URLs) of the cluster to use; see :func:`open_storage`."""
    from ipfs_share.node.cluster import LocalCluster

    rest = _split(cluster)
    managed = LocalCluster(paths.cluster_dir(home))
    if rest == ["local"]:
        return managed.endpoints()  # NodeManagementError with a hint when there is none
    given = kubo if kubo is not None else os.environ.get(CLUSTER_KUBO_ENV)
    if given:
        return rest, _split(given)
    if managed.exists():
        known_rest, known_kubo = managed.endpoints()
        if rest[0] in known_rest:
            # The peer asked for first, then the others (their Kubo nodes in the same order).
            order = sorted(range(len(known_rest)), key=lambda i: known_rest[i] != rest[0])
            return rest + [known_rest[i] for i in order if known_rest[i] not in rest], [
                known_kubo[i] for i in order
            ]
    return rest, [resolve_api(api, home=home)]


async def open_storage(
    api: str | None = None,
    *,
    embedded: str | os.PathLike[str] | None = None,
    cluster: str | Sequence[str] | None = None,
    cluster_kubo: str | Sequence[str] | None = None,
    replication: int | None = None,
    home: str | os.PathLike[str] | None = None,
) -> Storage:
    """Open the storage to use: an embedded store in ``embedded``, else an IPFS Cluster,
    else a Kubo node.

    The cluster is ``cluster`` or ``IPFS_SHARE_CLUSTER``: the REST API of one of its peers
    (more, comma-separated, for failover), or ``local`` for the cluster ``ipfs-share
    cluster up`` runs. Its peers' Kubo RPC APIs (blocks and IPNS records go to each) are
    ``cluster_kubo`` or ``IPFS_SHARE_CLUSTER_KUBO`` (comma-separated), else those of the
    local cluster when the REST API is one of its peers', else the one Kubo node found as
    below. ``replication`` is the number of copies pins get (None: the cluster's default).

    The Kubo node is found from ``api``, then ``IPFS_SHARE_API``, then the node
    ipfs-share manages for ``home`` (default: ``IPFS_SHARE_HOME``), then
    ``/ip4/127.0.0.1/tcp/5001`` (with a warning logged: it may be anyone's node); if it
    does not answer, this raises :class:`~ipfs_share.errors.NodeUnreachableError` naming
    the node and why it was chosen, whose hint says how to start one.
    """
    if embedded is not None:
        from ipfs_share.storage.embedded import EmbeddedStorage

        return EmbeddedStorage(embedded)
    cluster = cluster if cluster is not None else os.environ.get(CLUSTER_ENV) or None
    if cluster:
        from ipfs_share.storage.cluster import ClusterStorage

        rest, kubo = _cluster_endpoints(
            cluster, cluster_kubo, api, Path(home) if home is not None else None
        )
        return await ClusterStorage.connect(rest, kubo=kubo, replication=replication)
    if replication is not None:
        raise InvalidInputError(
            f"expected a cluster to replicate to, found none (replication {replication} was asked)",
            hint="name one with cluster= or IPFS_SHARE_CLUSTER ('local' for the local "
            "cluster ipfs-share manages), or leave out replication",
            reason="no_cluster",
        )
    from ipfs_share.storage.kubo import KuboStorage

    home_path = Path(home) if home is not None else None
    address, source = resolve_api_source(api, home=home_path)
    try:
        storage = await KuboStorage.connect(address)
    except NodeUnreachableError as exc:
        why = api_source_text(source, home_path)
        raise NodeUnreachableError(f"{exc.message} ({why})", hint=exc.hint) from exc
    note = api_source_note(multiaddr_to_url(address), source, home_path)
    if note is not None:
        log.warning(note)
    else:
        log.info("using the Kubo node at %s, %s", storage.url, api_source_text(source, home_path))
    return storage


class Mesh:
    """Storage, identities, files, shares, mailboxes and keychains, over one home.

    ``share`` also sends capsules through mailboxes (``send``, ``outgoing``, ``cancel``);
    ``inbox`` reads them (``sync``, ``list``, ``watch``, events). ``feeds`` and ``follow``
    are the home's feed writer and reader, which identities, revocation lists and
    mailboxes share; ``remote_pins`` asks pinning services (the Pinning Service API) to
    keep copies. ``keychains`` holds the keychains this home belongs to (``create``,
    ``share_*``, ``sync``, ``encrypt``, ...). ``introductions`` reach recipients who have
    not added the sender yet (``pending``, ``accept``, ``reject``).

    Storage, the state, identities and files are there from the start; every other
    service is made (and its code imported) the first time it is asked for, and is the
    same object from then on: a put pays for no mailbox, keychain or pinning service."""

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
        deadlines: Deadlines | None = None,
    ) -> None:
        # Every call to the node has a deadline (storage/timed.py): a timeout is a typed
        # error wherever it happens.
        self.storage: Storage = TimedStorage(storage, deadlines)
        self.home = home
        self._now = now
        self._untimed = storage  # pinning services are asked about it, not through it
        self._policy_providers = tuple(policy_providers)
        self._max_staleness = max_staleness
        self._max_head_age = max_head_age
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
        self.files = FileService(
            self.storage, self.db, home, self.identity, now=now, keychains=lambda: self.keychains
        )

    @cached_property
    def keychains(self) -> KeychainService:
        from ipfs_share.services.keychains import KeychainService, MailboxNotifier

        service = KeychainService(
            self.storage,
            self.db,
            self.identity,
            writer=self.feeds,
            reader=self.follow,
            now=self._now,
        )
        # Offers and accepts travel as mailbox entries that point at keychain ops.
        service.notifier = MailboxNotifier(self.inbox)
        return service

    @cached_property
    def revocations(self) -> RevocationService:
        from ipfs_share.services.revocations import RevocationService

        return RevocationService(
            self.storage,
            self.db,
            max_staleness=self._max_staleness,
            max_head_age=self._max_head_age,
            now=self._now,
            writer=self.feeds,
            reader=self.follow,
        )

    @cached_property
    def share(self) -> MailShareService:
        from ipfs_share.services.mailbox import MailShareService
        from ipfs_share.services.policy import PolicyRegistry

        return MailShareService(
            self.storage,
            self.db,
            self.identity,
            self.files,
            self.revocations,
            PolicyRegistry(self._policy_providers),
            now=self._now,
            feed_writer=self.feeds,
            feed_reader=self.follow,
        )

    @cached_property
    def inbox(self) -> MailboxService:
        return self.share.mailbox

    @cached_property
    def introductions(self) -> IntroductionService:
        from ipfs_share.services.introductions import IntroductionService

        return IntroductionService(self.home, self.storage, self.identity, self.db, now=self._now)

    @cached_property
    def remote_pins(self) -> RemotePins:
        from ipfs_share.services.remote_pins import RemotePins

        return RemotePins(self.home, self._untimed)

    def __repr__(self) -> str:
        return f"Mesh(home={str(self.home)!r}, storage={self.storage!r})"

    async def republish(self, *, renew: bool = True, unlock: bool = False) -> RepublishReport:
        """Put every signed record this home published or depends on again (the same
        bytes: no key needed), so its feeds stay resolvable; re-sign records of its own
        near their end of validity if their keys are unlocked (``unlock``: unlock them,
        which may ask for passphrases). Idempotent, safe from several processes at once;
        the agent runs it every 4 hours. Returns what it did, record by record."""
        from ipfs_share.services.feeds.republish import Republisher
        from ipfs_share.services.record_keys import UnlockedRecordKeys

        keys = UnlockedRecordKeys(self.identity, unlock=unlock)
        republisher = Republisher(self.storage, self.db, self.feeds, keys, now=self._now)
        return await republisher.republish(renew=renew)

    async def close(self) -> None:
        self.identity.lock()  # drop unlocked keys from memory
        await self.storage.close()
        if "introductions" in self.__dict__:  # made (and opened) only if it was used
            self.introductions.close()
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
    cluster: str | Sequence[str] | None = None,
    cluster_kubo: str | Sequence[str] | None = None,
    replication: int | None = None,
    passphrase: Passphrase = env_passphrase,
    kdf: KdfParams | None = None,
    policy_providers: Iterable[PolicyProvider] = (),
    max_staleness: float | None = None,
    max_head_age: float | None = None,
    now: Callable[[], float] = time.time,
    timeout: float | None = None,
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
    ``now`` is the clock (inject one in tests). ``cluster``, ``cluster_kubo`` and
    ``replication`` select IPFS Cluster storage (see :func:`open_storage`); without
    ``replication`` a cluster gets the home's default (``ipfs-share cluster replication``).
    ``timeout`` (seconds; default ``IPFS_SHARE_TIMEOUT``, else 20) is how long the node may
    search for a block or a record before the call fails with ``node_timeout``: the wait
    for something that may not exist. The node is the one :func:`open_storage` finds for
    ``home``."""
    source = passphrase_source(passphrase)
    deadlines = search_deadlines(timeout)
    home_path = Path(home) if home is not None else paths.home_dir()

    async def opening() -> Mesh:
        storage = await open_storage(
            api,
            embedded=embedded,
            cluster=cluster,
            cluster_kubo=cluster_kubo,
            replication=replication,
            home=home_path,
        )
        try:
            if storage.backend == "cluster" and replication is None:
                from ipfs_share.storage.cluster import ClusterStorage  # imported: it opened

                if isinstance(storage, ClusterStorage):
                    storage.replication = home_replication(home_path)
            return Mesh(
                storage,
                home_path,
                passphrase=source,
                kdf=kdf,
                policy_providers=policy_providers,
                max_staleness=max_staleness,
                max_head_age=max_head_age,
                now=now,
                deadlines=deadlines,
            )
        except BaseException:
            # The home failed after the node answered (state missing, a bad database):
            # the storage's connections would otherwise outlive the call, unclosed.
            await storage.close()
            raise

    return Connecting(opening)


def search_deadlines(timeout: float | None = None) -> Deadlines:
    """The deadlines for a search of ``timeout`` seconds (None: ``IPFS_SHARE_TIMEOUT``,
    else the defaults of :class:`~ipfs_share.storage.timed.Deadlines`).

    >>> search_deadlines(5).block, search_deadlines(None).block
    (5.0, 20.0)
    """
    given: object = timeout
    if timeout is None:
        text = os.environ.get(TIMEOUT_ENV, "").strip()
        if not text:
            return Deadlines()
        given = text
    try:
        seconds = float(given)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(given, bool) or not (0 < seconds < math.inf):
        where = TIMEOUT_ENV if timeout is None else "timeout"
        raise InvalidInputError(
            f"{where}: expected a number of seconds > 0, found {given!r:.40}",
            hint="give seconds such as 5 or 120",
        )
    return Deadlines().searching(seconds)


def home_replication(home: Path) -> int | None:
    """The home's default number of copies on a cluster (None: the cluster's own)."""
    db = StateDB(home)
    try:
        value = db.meta.get(REPLICATION_META)
    finally:
        db.close()
    return int(value) if value is not None and value.isdigit() else None


def set_home_replication(home: Path, copies: int | None) -> None:
    """Set (or with None, clear) the home's default number of copies on a cluster."""
    if copies is not None and (isinstance(copies, bool) or copies < 1):
        raise InvalidInputError(
            f"expected a number of copies >= 1, found {copies!r}",
            hint="give a number such as 2, or clear the default",
        )
    db = StateDB(home)
    try:
        db.meta.set(REPLICATION_META, None if copies is None else str(copies))
    finally:
        db.close()
