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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ipfs_share import paths
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import InvalidInputError
from ipfs_share.local.state import StateDB
from ipfs_share.node.cluster import LocalCluster
from ipfs_share.node.discovery import resolve_api
from ipfs_share.services.feeds import FeedReader, FeedWriter
from ipfs_share.services.feeds.republish import Republisher, RepublishReport
from ipfs_share.services.files import FileService
from ipfs_share.services.identities import IdentityService, PassphraseSource, env_passphrase
from ipfs_share.services.introductions import IntroductionService
from ipfs_share.services.keychains import KeychainService, MailboxNotifier
from ipfs_share.services.mailbox import MailboxService, MailShareService
from ipfs_share.services.policy import PolicyProvider, PolicyRegistry
from ipfs_share.services.record_keys import UnlockedRecordKeys
from ipfs_share.services.remote_pins import RemotePins
from ipfs_share.services.revocations import RevocationService
from ipfs_share.storage.base import Storage
from ipfs_share.storage.cluster import ClusterStorage
from ipfs_share.storage.embedded import EmbeddedStorage
from ipfs_share.storage.kubo import KuboStorage
from ipfs_share.storage.timed import TimedStorage

__all__ = [
    "CLUSTER_ENV",
    "CLUSTER_KUBO_ENV",
    "REPLICATION_META",
    "Mesh",
    "connect",
    "home_replication",
    "open_storage",
    "set_home_replication",
]

CLUSTER_ENV = "IPFS_SHARE_CLUSTER"
CLUSTER_KUBO_ENV = "IPFS_SHARE_CLUSTER_KUBO"
REPLICATION_META = "cluster_replication"  # the home's default number of copies


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
    return rest, [resolve_api(api)]


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
    ipfs-share manages, then ``/ip4/127.0.0.1/tcp/5001``; if it does not answer, this
    raises :class:`~ipfs_share.errors.NodeUnreachableError` whose hint says how to start one.
    """
    if embedded is not None:
        return EmbeddedStorage(embedded)
    cluster = cluster if cluster is not None else os.environ.get(CLUSTER_ENV) or None
    if cluster:
        rest, kubo = _cluster_endpoints(
            cluster, cluster_kubo, api, Path(home) if home is not None else None
        )
        return await ClusterStorage.connect(rest, kubo=kubo, replication=replication)
    if replication is not None:
        raise InvalidInputError(
            f"expected a cluster to replicate to, found none (replication {replication} was asked)",
            hint="name one with --cluster URL or IPFS_SHARE_CLUSTER ('local' for the one "
            "'ipfs-share cluster up' runs), or leave out --replication",
        )
    return await KuboStorage.connect(resolve_api(api))


class Mesh:
    """Storage, identities, files, shares, mailboxes and keychains, over one home.

    ``share`` also sends capsules through mailboxes (``send``, ``outgoing``, ``cancel``);
    ``inbox`` reads them (``sync``, ``list``, ``watch``, events). ``feeds`` and ``follow``
    are the home's feed writer and reader, which identities, revocation lists and
    mailboxes share; ``remote_pins`` asks pinning services (the Pinning Service API) to
    keep copies. ``keychains`` holds the keychains this home belongs to (``create``,
    ``share_*``, ``sync``, ``encrypt``, ...). ``introductions`` reach recipients who have
    not added the sender yet (``pending``, ``accept``, ``reject``)."""

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
        self.keychains = KeychainService(
            self.storage, self.db, self.identity, writer=self.feeds, reader=self.follow, now=now
        )
        self.files = FileService(
            self.storage, self.db, home, self.identity, now=now, keychains=self.keychains
        )
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
        self.introductions = IntroductionService(
            home, self.storage, self.identity, self.db, now=now
        )
        self.remote_pins = RemotePins(home, storage)
        # Offers and accepts travel as mailbox entries that point at keychain ops.
        self.keychains.notifier = MailboxNotifier(self.inbox)

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
    cluster: str | Sequence[str] | None = None,
    cluster_kubo: str | Sequence[str] | None = None,
    replication: int | None = None,
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
    ``now`` is the clock (inject one in tests). ``cluster``, ``cluster_kubo`` and
    ``replication`` select IPFS Cluster storage (see :func:`open_storage`); without
    ``replication`` a cluster gets the home's default (``ipfs-share cluster replication``)."""
    home_path = Path(home) if home is not None else paths.home_dir()
    storage = await open_storage(
        api,
        embedded=embedded,
        cluster=cluster,
        cluster_kubo=cluster_kubo,
        replication=replication,
        home=home_path,
    )
    if isinstance(storage, ClusterStorage) and replication is None:
        storage.replication = home_replication(home_path)
    return Mesh(
        storage,
        home_path,
        passphrase=passphrase,
        kdf=kdf,
        policy_providers=policy_providers,
        max_staleness=max_staleness,
        max_head_age=max_head_age,
        now=now,
    )


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
