"""The storage protocol: everything ipfs-share asks of a node, in one async interface.

Three implementations honour it: :class:`~ipfs_share.storage.kubo.KuboStorage` (a Kubo
node over its RPC API), :class:`~ipfs_share.storage.cluster.ClusterStorage` (IPFS Cluster
over its REST API, with its peers' Kubo nodes) and
:class:`~ipfs_share.storage.embedded.EmbeddedStorage` (an on-disk store in a directory, for
one machine without a daemon). All give the same CID for the same bytes, because all
address content by the parameters in :data:`UNIXFS_PARAMS` and CIDs are computed locally
and checked against what the node says.

CIDs cross this interface as canonical strings (CIDv1, base32; see ``formats.cid``).

>>> import asyncio, tempfile
>>> from ipfs_share.storage.embedded import EmbeddedStorage
>>> async def demo() -> str:
...     async with EmbeddedStorage(tempfile.mkdtemp()) as store:
...         return await store.block_put(b"hello")
>>> asyncio.run(demo())
'bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq'
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from ipfs_share.errors import BlockTooLargeError, CidInvalidError
from ipfs_share.formats.cid import DAG_CBOR, DAG_PB, RAW, cid_for

__all__ = [
    "MAX_BLOCK_SIZE",
    "UNIXFS_PARAMS",
    "AddResult",
    "BlockCodec",
    "ByteSource",
    "NodeCapabilities",
    "NodeInfo",
    "PeerPin",
    "Placement",
    "Placing",
    "PubsubMessage",
    "Storage",
    "block_cid",
    "from_blocking",
]

# Kubo refuses blocks over 2 MiB (bitswap's limit); we refuse them before sending.
MAX_BLOCK_SIZE = 2 * 1024 * 1024

# How files are chunked into a UnixFS DAG. Passed explicitly to Kubo on every add, so a CID
# never depends on a node's Import.* config, and equal to what plain
# `ipfs add --cid-version=1 --raw-leaves` does, so anyone can check our CIDs with stock Kubo.
UNIXFS_PARAMS = {
    "cid-version": 1,
    "raw-leaves": True,
    "chunker": "size-262144",
    "max-file-links": 174,
    "layout": "balanced",
}

BlockCodec = Literal["raw", "dag-cbor", "dag-pb"]

# What add() accepts: bytes; an async iterable of byte chunks (any sizes, any bytes-like
# type), where a chunk may still be in a socket's buffer after the next is asked for, so a
# producer must not reuse the memory of one it handed out; or a synchronous iterator of
# chunks, which add() pulls on a worker thread (never on the event loop): the form for a
# producer that blocks (reads a file and seals it) and reuses one buffer, so each of its
# chunks is valid only until the next is asked for.
ByteSource = (
    bytes | AsyncIterable[bytes | bytearray | memoryview] | Iterator[bytes | bytearray | memoryview]
)

ProgressCallback = Callable[[int], None]  # called with the bytes done so far


_CODECS = {"raw": RAW, "dag-cbor": DAG_CBOR, "dag-pb": DAG_PB}


async def from_blocking(pieces: Iterator[bytes | bytearray | memoryview]) -> AsyncIterator[bytes]:
    """A synchronous :data:`ByteSource` as an async one: each chunk pulled on a worker
    thread and copied (its producer may reuse the memory), empty ones left out.

    >>> async def demo() -> list[bytes]:
    ...     return [p async for p in from_blocking(iter([b"ab", b"", memoryview(b"c")]))]
    >>> asyncio.run(demo())
    [b'ab', b'c']
    """

    def pull() -> bytes | None:
        for piece in pieces:
            if piece:
                return bytes(piece)
        return None

    while True:
        pulling = asyncio.ensure_future(asyncio.to_thread(pull))
        try:
            piece = await asyncio.shield(pulling)
        except asyncio.CancelledError:
            await asyncio.wait([pulling])  # the producer's file is not ours to leave busy
            raise
        if piece is None:
            return
        yield piece


def block_cid(data: bytes, codec: str) -> str:
    """The CID a block must get, after the checks every backend makes before storing it:
    a known codec and at most :data:`MAX_BLOCK_SIZE` bytes."""
    if codec not in _CODECS:
        raise CidInvalidError(f"expected codec raw, dag-cbor or dag-pb, found {codec!r}")
    if len(data) > MAX_BLOCK_SIZE:
        raise BlockTooLargeError(
            f"expected a block of at most {MAX_BLOCK_SIZE} bytes, found {len(data)}"
        )
    return cid_for(_CODECS[codec], data)


@dataclass(frozen=True, slots=True)
class AddResult:
    cid: str
    size: int  # plaintext bytes added (the file size, not the DAG size)


Backend = Literal["kubo", "embedded", "cluster"]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    backend: Backend
    peer_id: str
    version: str  # Kubo's version, or ipfs-share's for the embedded store
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeCapabilities:
    """What the node can do for us, probed once (see Storage.capabilities)."""

    pubsub: bool
    ipns_over_pubsub: bool
    ipns_put: bool  # can store IPNS records signed elsewhere (name/put)
    online: bool  # connected to a network at all (false for the embedded store)


@dataclass(frozen=True, slots=True)
class PubsubMessage:
    topic: str
    data: bytes
    sender: str  # peer id of the publishing node
    seqno: bytes = b""


@runtime_checkable
class Storage(Protocol):
    """The async storage interface. Every method raises only ``IpfsShareError`` subclasses."""

    @property
    def backend(self) -> Backend:
        """Which implementation this is."""
        ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Storage: ...

    async def __aexit__(self, *exc: object) -> None: ...

    # -- blocks ---------------------------------------------------------------------------
    async def block_put(self, data: bytes, *, codec: BlockCodec = "raw", pin: bool = False) -> str:
        """Store one block; return its CID, computed locally and checked against the node."""
        ...

    async def block_get(self, cid: str) -> bytes:
        """Fetch one block and check it hashes to ``cid``."""
        ...

    async def block_has(self, cid: str) -> bool:
        """True if the block is stored locally (no network fetch)."""
        ...

    async def block_get_local(self, cids: Sequence[str]) -> dict[str, bytes]:
        """The blocks among ``cids`` stored locally (no network fetch), each checked
        against its CID; a block not held is left out. Many at once: a backend may batch
        them (Kubo pipelines the requests)."""
        ...

    async def follow_local(self, cid: str, field: str, hops: int) -> str | None:
        """The CID reached from the dag-cbor block ``cid`` by following the link named
        ``field`` ``hops`` times, through blocks stored locally (no network fetch); None
        when a block on the way is not held or has no such link. A hint, not a proof: a
        caller fetches what it names by CID and checks it (a reader learns where a chain
        is far below its head and walks the parts side by side)."""
        ...

    # -- files (UnixFS, streamed) ---------------------------------------------------------
    async def add(
        self,
        source: ByteSource,
        *,
        pin: bool = True,
        progress: ProgressCallback | None = None,
        size: int | None = None,
        verify: bool = True,
    ) -> AddResult:
        """Store a byte stream as a UnixFS file with :data:`UNIXFS_PARAMS`; memory stays flat.

        ``size``: the exact byte count the source yields, if known (a node is then sent
        a plain body of that length; a source of another length fails). ``verify``: compute
        the CID locally and compare it with the node's (the default). Skipping it saves a
        sha-256 pass over the data, and is sound only when the bytes authenticate
        themselves end to end, as an envelope does (AEAD tags, and a capsule that commits
        to the content CID): a node that lied about the CID would then fail every open."""
        ...

    def cat(
        self, cid: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes | memoryview]:
        """Stream a file's bytes from ``offset``; raise StreamTruncatedError if it ends short.
        Pieces are bytes or read-only views of buffers no one else writes (the reader may
        keep them)."""
        ...

    async def file_size(self, cid: str) -> int:
        """The size in bytes of the UnixFS file (or raw block) at ``cid``."""
        ...

    # -- pins -----------------------------------------------------------------------------
    async def pin_add(self, cid: str, *, recursive: bool = True) -> None: ...

    async def pin_update(self, old: str, new: str, *, unpin: bool = True) -> None:
        """Pin ``new`` recursively, starting from the recursive pin of ``old`` (only what
        ``new`` adds is walked: a chain moves its pin in O(new) blocks); with ``unpin``,
        ``old``'s pin goes (what ``new`` still links to stays pinned through it)."""
        ...

    async def pin_rm(self, cid: str) -> None: ...

    async def pin_ls(self) -> frozenset[str]:
        """The CIDs pinned recursively or directly (not indirectly)."""
        ...

    # -- IPNS (records are built and signed by the caller; keys never reach the node) --------
    async def ipns_put(self, name: str, record: bytes, *, renew: bool = False) -> None:
        """Store a signed IPNS record under ``name`` (a k51... libp2p-key CID).

        A node keeps the better of two records for a name: the higher sequence, then the
        later end of validity. It refuses a record with a lower sequence than the one it
        holds, and (unless ``renew``) another record with the same sequence; the same bytes
        again are accepted (a republish). ``renew``: the caller verified ``record`` and it
        renews the one held (same sequence, later end of validity)."""
        ...

    async def ipns_get(self, name: str) -> bytes:
        """The freshest signed record for ``name`` the node can find."""
        ...

    async def ipns_resolve(self, name: str, *, nocache: bool = True) -> str:
        """The path (``/ipfs/<cid>...``) that ``name`` points to now."""
        ...

    # -- pubsub ---------------------------------------------------------------------------
    async def pubsub_publish(self, topic: str, data: bytes) -> None: ...

    def pubsub_subscribe(
        self, topic: str
    ) -> AbstractAsyncContextManager[AsyncIterator[PubsubMessage]]:
        """``async with store.pubsub_subscribe(t) as messages: async for m in messages: ...``"""
        ...

    # -- the node -------------------------------------------------------------------------
    async def node_info(self) -> NodeInfo: ...

    async def capabilities(self) -> NodeCapabilities: ...


# -- where a CID is pinned (storage that replicates: IPFS Cluster) ------------------------


@dataclass(frozen=True, slots=True)
class PeerPin:
    """What one peer of a replicating storage says about one CID."""

    peer_id: str
    name: str
    status: str  # "pinned", "pinning", "remote" (held by others), "pin_error", ...
    kubo_peer_id: str = ""
    error: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "peer_id": self.peer_id,
            "name": self.name,
            "status": self.status,
            "kubo_peer_id": self.kubo_peer_id,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a CID is pinned: the peers it is allocated to (empty: every peer) and what
    each peer reports.

    >>> p = Placement.of({"cid": "bafk...", "allocations": ["A"], "peer_map": {
    ...     "A": {"peername": "peer0", "status": "pinned"}, "B": {"status": "remote"}}})
    >>> [x.name for x in p.pinned], p.allocations
    (['peer0'], ('A',))
    """

    cid: str
    allocations: tuple[str, ...]
    peers: tuple[PeerPin, ...]

    def with_status(self, *statuses: str) -> tuple[PeerPin, ...]:
        return tuple(p for p in self.peers if p.status in statuses)

    @property
    def pinned(self) -> tuple[PeerPin, ...]:
        return self.with_status("pinned")

    def to_json(self) -> dict[str, object]:
        return {
            "cid": self.cid,
            "allocations": list(self.allocations),
            "peers": [p.to_json() for p in self.peers],
        }

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Placement:
        """From IPFS Cluster's status of one CID (its GlobalPinInfo JSON)."""
        peers = []
        for peer_id, info in sorted((doc.get("peer_map") or {}).items()):
            info = info if isinstance(info, dict) else {}
            peers.append(
                PeerPin(
                    peer_id=str(peer_id),
                    name=str(info.get("peername") or peer_id),
                    status=str(info.get("status") or "undefined"),
                    kubo_peer_id=str(info.get("ipfs_peer_id") or ""),
                    error=str(info.get("error") or ""),
                )
            )
        return cls(
            cid=str(doc.get("cid", "")),
            allocations=tuple(str(a) for a in doc.get("allocations") or ()),
            peers=tuple(peers),
        )


@runtime_checkable
class Placing(Protocol):
    """A storage that can say where each CID is pinned (ClusterStorage)."""

    async def placements(self, cids: list[str]) -> list[Placement]: ...
