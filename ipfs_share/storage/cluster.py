"""The storage protocol over IPFS Cluster: replicated pins across many Kubo peers.

IPFS Cluster orchestrates pins (which peers hold which CID, with a replication factor)
but carries neither IPNS records nor loose blocks: ``block/put`` and ``name/put`` reach one
Kubo node only. So a :class:`ClusterStorage` talks to two things:

- the cluster's REST API (any peer's; the next one if that one is down) for what Cluster
  does: ``add`` (the cluster chunks the bytes, with our UnixFS parameters, and streams the
  blocks to the peers it allocates), ``pin_add``/``pin_rm``/``pin_ls``, and where a CID
  is pinned (:meth:`placements`);
- every peer's Kubo RPC API for the rest: blocks and IPNS records are written to every
  peer at once and count as written when a majority of them (the write quorum) took them;
  reads go to the first peer that answers and fail over to the next, also in the middle of
  a stream; an IPNS lookup asks every peer and takes the freshest valid record, and needs
  answers from a majority, so that it always meets the majority the last write reached
  (a peer that was down during a write cannot make a lookup stale on its own).

Pins are confirmed, not assumed: Cluster pins asynchronously, so ``add`` and ``pin_add``
wait (bounded) until the peers it allocated report ``pinned``; if they do not, the pin is
removed again and :class:`~ipfs_share.errors.ReplicationError` is raised, so nothing is
left half-pinned and no caller records as stored what is not.

A recursive pin of a dag-cbor block (a share capsule, a revocation list's head) goes where
the pins it links to already are: covering a file it links to then copies nothing to new
peers (a capsule pinned on other peers than its file would make those fetch the whole
file). Other pins use the session's replication factor (:attr:`replication`; None leaves
it to the cluster's own configuration).

The republisher re-puts every stored record through :meth:`ipns_put`, so on this backend
each republish reaches every peer again; a peer that was down catches up at the next one.

>>> import asyncio
>>> async def demo() -> None:
...     store = await ClusterStorage.connect(
...         ["http://127.0.0.1:9094"], kubo=["http://127.0.0.1:5001"], replication=2)
...     async with store:
...         print((await store.add(b"hello")).cid)
>>> # asyncio.run(demo())
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from ipfs_share.errors import (
    IntegrityError,
    InvalidInputError,
    IpfsShareError,
    IpnsRecordInvalidError,
    NodeError,
    NodeRequestError,
    NodeUnreachableError,
    NotFoundError,
    ReplicationError,
    StreamTruncatedError,
)
from ipfs_share.formats import dagcbor
from ipfs_share.formats.cid import DAG_CBOR, RAW, cid_for, normalize_cid, parse_cid
from ipfs_share.formats.ipns import IpnsRecord, verify_record
from ipfs_share.formats.unixfs import FileBuilder
from ipfs_share.storage.base import (
    UNIXFS_PARAMS,
    AddResult,
    BlockCodec,
    ByteSource,
    NodeCapabilities,
    NodeInfo,
    Placement,
    ProgressCallback,
    PubsubMessage,
    block_cid,
    from_blocking,
)
from ipfs_share.storage.cluster_api import CLUSTER_HINT, PENDING, ClusterAPI
from ipfs_share.storage.kubo import KuboStorage

__all__ = ["ClusterStorage"]

_T = TypeVar("_T")
_UPLOAD_PIECE = 1024 * 1024
_MAX_FOLLOWED_LINKS = 16  # links of one block whose pins a recursive pin follows
KUBO_ENV_HINT = "IPFS_SHARE_CLUSTER_KUBO (cluster_kubo= in the library), one URL per peer"
# Failures that say "this peer is not there (or broke off)": the next peer may do better.
_TRANSPORT = (NodeUnreachableError, StreamTruncatedError)
# The empty file (and block): its bytes follow from its CID, and Kubo cannot fetch a
# zero-length block from another peer over bitswap (the request hangs), so it is never
# asked for.
_EMPTY = cid_for(RAW, b"")


class ClusterStorage:
    """IPFS Cluster as ipfs-share storage. Make one with :meth:`connect`.

    ``replication``: copies of each file and pin (None: the cluster's default);
    ``pin_wait``: seconds to wait for the allocated peers to report a pin as pinned."""

    backend: Literal["cluster"] = "cluster"

    def __init__(
        self,
        api: ClusterAPI,
        kubo: Sequence[KuboStorage],
        *,
        replication: int | None = None,
        pin_wait: float = 120.0,
    ) -> None:
        if not kubo:
            raise NodeUnreachableError(
                "a cluster storage needs the Kubo RPC API of at least one of its peers",
                hint=f"give them in {KUBO_ENV_HINT}",
            )
        self.api = api
        self.kubo = list(kubo)
        self.replication = replication
        self.pin_wait = pin_wait

    def __repr__(self) -> str:
        return f"ClusterStorage({self.api.urls!r}, kubo={[k.url for k in self.kubo]!r})"

    @classmethod
    async def connect(
        cls,
        rest: str | Sequence[str],
        *,
        kubo: Sequence[str],
        replication: int | None = None,
        pin_wait: float = 120.0,
        timeout: float = 120.0,
    ) -> ClusterStorage:
        """Check a cluster peer answers and connect to the peers' Kubo nodes (those down now
        are kept, and tried again on every call)."""
        if replication is not None and (isinstance(replication, bool) or replication < 1):
            raise InvalidInputError(
                f"expected a replication factor >= 1, found {replication!r}",
                hint="ask for a number of copies such as 2",
                reason="replication_factor",
            )
        api = ClusterAPI([rest] if isinstance(rest, str) else list(rest), timeout=timeout)
        found: list[KuboStorage | BaseException] = []
        try:
            await api.id()
            found = await asyncio.gather(
                *(KuboStorage.connect(url, timeout=timeout) for url in kubo),
                return_exceptions=True,
            )
            refused = [f for f in found if isinstance(f, BaseException)]
            if len(refused) == len(found):
                raise NodeUnreachableError(
                    f"none of the cluster's Kubo nodes answered ({', '.join(kubo)})",
                    hint=f"start the cluster's peers, or check {KUBO_ENV_HINT}",
                    reason="cluster_kubo_down",
                )
            for failure in refused:
                if not isinstance(failure, NodeUnreachableError):
                    raise failure  # a node that answers wrongly (too old, not Kubo)
        except BaseException:
            await api.close()
            for node in found:
                if isinstance(node, KuboStorage):
                    await node.close()
            raise
        # A node down now is kept, unconnected: every call tries it again.
        nodes = [
            n if isinstance(n, KuboStorage) else KuboStorage(url, timeout=timeout)
            for url, n in zip(kubo, found, strict=True)
        ]
        return cls(api, nodes, replication=replication, pin_wait=pin_wait)

    async def close(self) -> None:
        await self.api.close()
        for node in self.kubo:
            await node.close()

    async def __aenter__(self) -> ClusterStorage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def quorum(self) -> int:
        """How many Kubo peers make a write (and a read of IPNS) count: a majority."""
        return len(self.kubo) // 2 + 1

    # -- plumbing ---------------------------------------------------------------------------

    async def _first(self, what: str, call: Callable[[KuboStorage], Awaitable[_T]]) -> _T:
        """``call`` on the first Kubo peer that answers (the one that did goes first next)."""
        last: IpfsShareError | None = None
        for node in list(self.kubo):
            try:
                result = await call(node)
            except _TRANSPORT as exc:
                last = exc
                continue
            self._prefer(node)
            return result
        raise NodeUnreachableError(
            f"{what}: none of the cluster's {len(self.kubo)} Kubo nodes answered ({last})",
            hint=CLUSTER_HINT,
        )

    def _prefer(self, node: KuboStorage) -> None:
        if self.kubo[0] is not node:
            self.kubo.remove(node)
            self.kubo.insert(0, node)

    async def _everywhere(self, what: str, call: Callable[[KuboStorage], Awaitable[None]]) -> int:
        """``call`` on every Kubo peer at once; the number that succeeded, at least a quorum.

        A refusal that is not about reaching a peer (a bad record, a block the peer hashed
        differently) is raised as is: the next peer would refuse it too."""
        results = await asyncio.gather(*(call(n) for n in self.kubo), return_exceptions=True)
        done = 0
        for result in results:
            if result is None:
                done += 1
            elif isinstance(result, _TRANSPORT):
                continue
            elif isinstance(result, BaseException):
                raise result
        if done < self.quorum:
            raise ReplicationError(
                f"{what}: {done} of the cluster's {len(self.kubo)} Kubo nodes took it, "
                f"expected at least {self.quorum}"
            )
        return done

    # -- blocks -----------------------------------------------------------------------------

    async def block_put(self, data: bytes, *, codec: BlockCodec = "raw", pin: bool = False) -> str:
        ours = block_cid(data, codec)

        async def put(node: KuboStorage) -> None:
            await node.block_put(data, codec=codec)

        await self._everywhere("block/put", put)
        if pin:
            # Kubo's block/put --pin is recursive; so is this.
            await self.pin_add(ours)
        return ours

    async def block_get(self, cid: str) -> bytes:
        parse_cid(cid)
        if normalize_cid(cid) == _EMPTY:
            return b""
        return await self._first("block/get", lambda n: n.block_get(cid))

    async def block_get_local(self, cids: Sequence[str]) -> dict[str, bytes]:
        """The blocks among ``cids`` that any of the cluster's Kubo nodes holds."""
        found: dict[str, bytes] = {}
        for node in self.kubo:
            missing = [c for c in cids if c not in found]
            if not missing:
                break
            found.update(await node.block_get_local(missing))
        return found

    async def follow_local(self, cid: str, field: str, hops: int) -> str | None:
        """:meth:`KuboStorage.follow_local` on the cluster's Kubo nodes, the first that can."""
        for node in self.kubo:
            found = await node.follow_local(cid, field, hops)
            if found is not None:
                return found
        return None

    async def block_has(self, cid: str) -> bool:
        """True if any of the cluster's Kubo nodes holds the block (no network fetch)."""
        parse_cid(cid)
        found = await asyncio.gather(*(n.block_has(cid) for n in self.kubo), return_exceptions=True)
        if any(f is True for f in found):
            return True
        if all(isinstance(f, _TRANSPORT) for f in found):
            raise NodeUnreachableError(
                "block/stat: none of the cluster's Kubo nodes answered", hint=CLUSTER_HINT
            )
        return False

    # -- files ------------------------------------------------------------------------------

    async def add(
        self,
        source: ByteSource,
        *,
        pin: bool = True,
        progress: ProgressCallback | None = None,
        size: int | None = None,
        verify: bool = True,
    ) -> AddResult:
        """Add through the cluster (which pins it with :attr:`replication` copies), then wait
        until the allocated peers report it pinned.

        ``pin=False`` adds to one Kubo peer without a pin (Cluster's own add always pins
        somewhere, and a pin that is not asked for must not appear)."""
        if not pin:
            return await self._first(
                "add",
                lambda n: n.add(source, pin=False, progress=progress, size=size, verify=verify),
            )
        builder: FileBuilder | None = FileBuilder() if verify else None
        if isinstance(source, bytes | bytearray | memoryview):
            size = len(source)
        sent = 0
        started = False

        async def pieces() -> AsyncIterator[bytes | bytearray | memoryview]:
            nonlocal sent, started
            started = True
            hashing: asyncio.Future[Any] | None = None
            async for piece in _pieces(source):
                if hashing is not None:
                    await hashing
                if builder is not None:
                    hashing = asyncio.ensure_future(asyncio.to_thread(builder.feed, piece))
                sent += len(piece)
                if progress:
                    progress(sent)
                yield piece
            if hashing is not None:
                await hashing

        # A name of our own finds the pin again if the answer is lost after the cluster
        # committed it (a peer killed mid-request); it says nothing about the content.
        tag = "ipfs-share-" + secrets.token_hex(8)
        body, headers = _multipart(pieces(), size)
        params = {
            "format": "unixfs",
            "cid-version": "1",
            "raw-leaves": "true",
            "chunker": str(UNIXFS_PARAMS["chunker"]),
            "layout": str(UNIXFS_PARAMS["layout"]),
            "hash": "sha2-256",
            "stream-channels": "false",
            "progress": "false",
            "local": "false",
            "name": tag,
        }
        # Cluster's importer has no max-file-links option: it uses boxo's default, 174,
        # which is what UNIXFS_PARAMS asks (tests check the CID of a file of 175 leaves).
        if self.replication is not None:
            params["replication-min"] = params["replication-max"] = str(self.replication)
        try:
            added = await self.api.add(body, headers, params, started=lambda: started)
        except NodeRequestError as exc:
            # The cluster failed the add itself (a peer it streamed blocks to went away,
            # it could not pin): say so in the cluster's terms.
            await self._unpin_tagged(tag, exc)
            raise ReplicationError(
                f"add: the cluster could not store the copies asked for: {exc.message}"
            ) from exc
        except BaseException as exc:
            await self._unpin_tagged(tag, exc)
            raise
        theirs = normalize_cid(str(added.get("cid", "")))
        try:
            if size is not None and sent != size:
                raise StreamTruncatedError(
                    f"add: expected {size} bytes from the source, found {sent}"
                )
            if builder is not None:
                ours, _ = builder.finish()
                if ours != theirs:
                    raise IntegrityError(f"add: expected CID {ours}, the cluster reported {theirs}")
            await self._confirm(theirs, [str(a) for a in added.get("allocations") or ()])
        except BaseException:
            await self._unpin_quietly(theirs)
            raise
        return AddResult(cid=theirs, size=sent)

    async def _unpin_tagged(self, tag: str, cause: BaseException) -> None:
        """After a failed add: remove the pin it may have committed before failing."""
        try:
            for pin in await self.api.allocations():
                if pin.get("name") == tag and pin.get("cid"):
                    await self.api.unpin(str(pin["cid"]))
        except IpfsShareError as exc:
            cause.add_note(f"the cluster could not be asked to undo a partial pin: {exc}")

    async def _unpin_quietly(self, cid: str) -> None:
        # The caller raises the first failure; a later unpin is the fix for this one.
        with contextlib.suppress(IpfsShareError):
            await self.api.unpin(cid)

    async def _confirm(self, cid: str, allocations: Sequence[str]) -> Placement:
        """Wait until the peers the pin was allocated to (empty: every peer) report
        ``pinned``; raise ReplicationError as soon as that cannot happen, or after
        :attr:`pin_wait` s.

        ``allocations`` come from the answer to the add or pin (a status read right after
        may not show them yet)."""
        deadline = time.monotonic() + self.pin_wait
        # Pins of blocks the peers already hold take a few tens of milliseconds: poll
        # often at first, then every 200 ms (one small status request each).
        delay = 0.02
        while True:
            placement = await self.api.status(cid)
            allocated = set(allocations) or set(placement.allocations)
            # An empty allocation list means "every peer" (replication -1).
            mine = [p for p in placement.peers if not allocated or p.peer_id in allocated]
            if allocated:
                need = len(allocated)
            else:  # every peer that is part of the cluster right now
                need = max(1, len([p for p in mine if p.status != "cluster_error"]))
            pinned = sum(p.status == "pinned" for p in mine)
            pending = sum(p.status in PENDING for p in mine)
            if pinned >= need:
                return placement
            if pinned + pending < need:
                bad = ", ".join(
                    f"{p.name}: {p.status}" + (f" ({p.error[:100]})" if p.error else "")
                    for p in mine
                    if p.status != "pinned"
                )
                raise ReplicationError(
                    f"pin {cid}: expected {need} peers to pin it, {pinned} did ({bad})"
                )
            if time.monotonic() >= deadline:
                raise ReplicationError(
                    f"pin {cid}: expected {need} peers to pin it within {self.pin_wait:g} s, "
                    f"{pinned} did"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def cat(
        self, cid: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes | memoryview]:
        return self._cat(cid, offset, length)

    async def _cat(
        self, cid: str, offset: int, length: int | None
    ) -> AsyncIterator[bytes | memoryview]:
        """Read from the first Kubo peer that answers; if it breaks off, go on from the
        same byte on the next one (every byte is verified against the CID either way)."""
        if offset < 0 or (length is not None and length < 0):
            raise InvalidInputError(f"expected offset, length >= 0, found {offset}, {length}")
        if normalize_cid(cid) == _EMPTY:
            return
        done = 0
        last: IpfsShareError | None = None
        for node in list(self.kubo):
            remaining = None if length is None else length - done
            if remaining == 0:
                return
            try:
                async for piece in node.cat(cid, offset=offset + done, length=remaining):
                    done += len(piece)
                    yield piece
            except _TRANSPORT as exc:
                last = exc
                continue
            self._prefer(node)
            return
        raise NodeUnreachableError(
            f"cat: none of the cluster's {len(self.kubo)} Kubo nodes could serve {cid} ({last})",
            hint=CLUSTER_HINT,
        )

    async def file_size(self, cid: str) -> int:
        parse_cid(cid)
        if normalize_cid(cid) == _EMPTY:
            return 0
        return await self._first("file_size", lambda n: n.file_size(cid))

    # -- pins -------------------------------------------------------------------------------

    async def pin_add(self, cid: str, *, recursive: bool = True) -> None:
        parse_cid(cid)
        allocations = await self._linked_allocations(cid) if recursive else []
        replication = len(allocations) if allocations else self.replication
        already = await self.api.allocation(cid)
        pin = await self.api.pin(
            cid,
            mode="recursive" if recursive else "direct",
            replication=replication,
            allocations=allocations,
        )
        try:
            await self._confirm(cid, [str(a) for a in pin.get("allocations") or ()])
        except BaseException:
            if already is None:  # never unpin what was pinned before we came
                await self._unpin_quietly(cid)
            raise

    async def _linked_allocations(self, cid: str) -> list[str]:
        """The peers holding the pins a dag-cbor block links to (empty if none is pinned)."""
        if parse_cid(cid).codec != DAG_CBOR:
            return []
        try:
            links = _links(dagcbor.decode(await self.block_get(cid)))
        except (IpfsShareError, ValueError):
            return []  # not ours to judge here; the pin itself will say
        peers: dict[str, None] = {}
        for link in links[:_MAX_FOLLOWED_LINKS]:
            pin = await self.api.allocation(link)
            for peer in (pin or {}).get("allocations") or ():
                peers[str(peer)] = None
        return list(peers)

    async def pin_update(self, old: str, new: str, *, unpin: bool = True) -> None:
        """Pin ``new`` (confirmed on its peers, as :meth:`pin_add`), then drop ``old``'s
        pin: the cluster allocates and walks ``new`` as a pin of its own."""
        parse_cid(old)
        await self.pin_add(new)
        if unpin and normalize_cid(old) != normalize_cid(new):
            await self.pin_rm(old)

    async def pin_rm(self, cid: str) -> None:
        parse_cid(cid)
        await self.api.unpin(cid)  # not pinned: already the state asked for

    async def pin_ls(self) -> frozenset[str]:
        return frozenset(
            normalize_cid(str(p["cid"])) for p in await self.api.allocations() if p.get("cid")
        )

    async def placements(self, cids: list[str]) -> list[Placement]:
        """Where each CID is pinned, peer by peer, as the cluster reports it."""
        for cid in cids:
            parse_cid(cid)
        return await self.api.statuses([normalize_cid(c) for c in cids])

    # -- IPNS -------------------------------------------------------------------------------

    async def ipns_put(self, name: str, record: bytes, *, renew: bool = False) -> None:
        """Store the record on every Kubo peer; it counts once a majority took it."""

        async def put(node: KuboStorage) -> None:
            await node.ipns_put(name, record, renew=renew)

        await self._everywhere("name/put", put)

    async def _freshest(self, name: str) -> tuple[bytes, IpnsRecord]:
        """The valid record with the highest sequence among the answers of every peer,
        which must come from at least a quorum (so it overlaps the last write's)."""
        answers = await asyncio.gather(
            *(n.ipns_get(name) for n in self.kubo), return_exceptions=True
        )
        now = datetime.now(UTC)
        best: tuple[bytes, IpnsRecord] | None = None
        heard = 0
        invalid: IpfsShareError | None = None
        for answer in answers:
            if isinstance(answer, NotFoundError):
                heard += 1
            elif isinstance(answer, bytes):
                heard += 1
                try:
                    record = verify_record(name, answer, now=now)
                except IpnsRecordInvalidError as exc:
                    invalid = exc
                    continue
                if best is None or record.sequence > best[1].sequence:
                    best = (answer, record)
            elif isinstance(answer, NodeError):
                continue  # unreachable, or a refusal: this peer does not count
            elif isinstance(answer, BaseException):
                raise answer
        if heard < self.quorum:
            raise NodeUnreachableError(
                f"name/get: {heard} of the cluster's {len(self.kubo)} Kubo nodes answered for "
                f"{name}, expected at least {self.quorum} (fewer could miss the newest record)",
                hint=CLUSTER_HINT,
            )
        if best is None:
            if invalid is not None:
                raise invalid
            raise NotFoundError(f"name/get: no record for {name} on the cluster's Kubo nodes")
        return best

    async def ipns_get(self, name: str) -> bytes:
        return (await self._freshest(name))[0]

    async def ipns_resolve(self, name: str, *, nocache: bool = True) -> str:
        """The freshest record's value (always fresh: every peer is asked each time)."""
        return (await self._freshest(name))[1].value

    # -- pubsub (on one peer; the Kubo nodes relay messages to each other) --------------------

    async def pubsub_publish(self, topic: str, data: bytes) -> None:
        await self._first("pubsub/pub", lambda n: n.pubsub_publish(topic, data))

    @asynccontextmanager
    async def pubsub_subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[PubsubMessage]]:
        last: IpfsShareError | None = None
        for node in list(self.kubo):
            try:
                subscription = node.pubsub_subscribe(topic)
                messages = await subscription.__aenter__()
            except _TRANSPORT as exc:
                last = exc
                continue
            try:
                yield messages
            finally:
                await subscription.__aexit__(None, None, None)
            return
        raise NodeUnreachableError(
            f"pubsub/sub: none of the cluster's Kubo nodes answered ({last})", hint=CLUSTER_HINT
        )

    # -- the node ---------------------------------------------------------------------------

    async def node_info(self) -> NodeInfo:
        """The first answering Kubo peer's id; the addresses of every peer that answers
        (all of them hold or can fetch what is pinned: origins for a remote pin)."""
        infos = await asyncio.gather(*(n.node_info() for n in self.kubo), return_exceptions=True)
        live = [i for i in infos if isinstance(i, NodeInfo)]
        if not live:
            raise NodeUnreachableError(
                "id: none of the cluster's Kubo nodes answered", hint=CLUSTER_HINT
            )
        try:
            cluster_version = str((await self.api.id()).get("version", "?"))
        except NodeError:
            cluster_version = "unreachable"
        return NodeInfo(
            backend="cluster",
            peer_id=live[0].peer_id,
            version=f"ipfs-cluster {cluster_version}, kubo {live[0].version}",
            addresses=tuple(a for i in live for a in i.addresses),
        )

    async def capabilities(self) -> NodeCapabilities:
        return await self._first("capabilities", lambda n: n.capabilities())

    async def swarm_connect(self, multiaddr: str) -> None:
        """Connect every Kubo peer that answers to ``multiaddr`` (one is enough)."""
        results = await asyncio.gather(
            *(n.swarm_connect(multiaddr) for n in self.kubo), return_exceptions=True
        )
        if not any(r is None for r in results):
            error = next((r for r in results if isinstance(r, IpfsShareError)), None)
            raise error or NodeUnreachableError("swarm/connect: no Kubo node answered")


async def _pieces(source: ByteSource) -> AsyncIterator[bytes | bytearray | memoryview]:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for i in range(0, len(view), _UPLOAD_PIECE):
            yield bytes(view[i : i + _UPLOAD_PIECE])
        return
    if isinstance(source, Iterator):
        source = from_blocking(source)
    async for piece in source:
        if piece:
            yield piece


def _multipart(
    pieces: AsyncIterator[bytes | bytearray | memoryview], size: int | None
) -> tuple[AsyncIterator[bytes | bytearray | memoryview], dict[str, str]]:
    """A multipart/form-data body with one file part; with its ``size``, a Content-Length."""
    boundary = secrets.token_hex(16)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="data"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def body() -> AsyncIterator[bytes | bytearray | memoryview]:
        yield head
        async for piece in pieces:
            yield piece
        yield tail

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if size is not None:
        headers["Content-Length"] = str(len(head) + size + len(tail))
    return body(), headers


def _links(value: Any) -> list[str]:
    """Every link in a decoded dag-cbor value, in order, without repeats."""
    found: dict[str, None] = {}
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dagcbor.Link):
            found[item.cid] = None
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return list(found)
