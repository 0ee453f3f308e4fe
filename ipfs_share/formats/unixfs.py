"""UnixFS files: build them block by block exactly as Kubo does, and read them back by range.

:class:`FileBuilder` turns a byte stream into the blocks of a UnixFS file, byte for byte
what ``ipfs add --cid-version=1 --raw-leaves --chunker=size-262144 --max-file-links=174``
writes (the balanced layout; docs/spec/content-addressing.md states the rules). It is pure
and synchronous: feed it pieces of any size, store the blocks it hands back, then
``finish()`` for the root CID. Memory stays flat: it holds at most one partial chunk and,
per tree level, the links not yet wrapped in a node.

>>> builder = FileBuilder(chunk_size=4, max_links=2)
>>> blocks = builder.feed(b"hello ") + builder.feed(b"world")
>>> root, rest = builder.finish()
>>> root
'bafybeiecdip3s7s6d6dkzhy3nfqdn6ppz5uk2gtwovednewct37e3ygqsy'
>>> len(blocks + rest), builder.size
(6, 11)

The reading side decodes one node at a time, so a store can walk the DAG itself and fetch
only the blocks a range needs (see :func:`plan_read`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from enum import IntEnum

from ipfs_share.errors import FormatError, InvalidInputError
from ipfs_share.formats.cid import DAG_PB, RAW, cid_string
from ipfs_share.formats.dagpb import PBLink, PBNode, decode_node, encode_node
from ipfs_share.formats.protobuf import LEN, VARINT, field_bytes, field_varint, iter_fields

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_LINKS",
    "MAX_CHUNK_SIZE",
    "Block",
    "ChildRange",
    "DataType",
    "FileBuilder",
    "FileLink",
    "FileNode",
    "ReadPlan",
    "UnixFSData",
    "decode_data",
    "decode_file_node",
    "encode_data",
    "plan_read",
]

# Equal to storage.base.UNIXFS_PARAMS (a test holds them together); formats may not import
# storage, which sits above it.
DEFAULT_CHUNK_SIZE = 262144
DEFAULT_MAX_LINKS = 174
# Kubo v0.43 refuses larger chunks ("may not exceed the maximum chunk size of 2096896").
MAX_CHUNK_SIZE = 2096896

# Binary CIDv1 prefixes: version 1, codec, sha2-256, 32-byte digest.
_RAW_PREFIX = b"\x01\x55\x12\x20"
_DAG_PB_PREFIX = b"\x01\x70\x12\x20"


class DataType(IntEnum):
    """The UnixFS ``Data.Type`` enum."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


_SUPPORTED_TYPES = (DataType.RAW, DataType.FILE)

# UnixFS Data fields
_TYPE = 1
_DATA = 2
_FILESIZE = 3
_BLOCKSIZES = 4
_FIELD_NAMES = {5: "hashType", 6: "fanout", 7: "mode", 8: "mtime"}


@dataclass(frozen=True, slots=True)
class UnixFSData:
    """The UnixFS ``Data`` message of a file node (the fields a File or Raw node uses)."""

    type: DataType = DataType.FILE
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()


def encode_data(msg: UnixFSData) -> bytes:
    """Protobuf bytes in field order, blocksizes unpacked, as Go's proto2 encoder writes them.

    >>> encode_data(UnixFSData(DataType.FILE, None, 3000, (1024, 1024, 952))).hex()
    '080218b81720800820800820b807'
    """
    out = [field_varint(_TYPE, int(msg.type))]
    if msg.data is not None:
        out.append(field_bytes(_DATA, msg.data))
    if msg.filesize is not None:
        out.append(field_varint(_FILESIZE, msg.filesize))
    out.extend(field_varint(_BLOCKSIZES, size) for size in msg.blocksizes)
    return b"".join(out)


def decode_data(buf: bytes | memoryview) -> UnixFSData:
    """Decode a UnixFS ``Data`` message of type File or Raw, strictly.

    Fields must appear in ascending order, once each (``blocksizes`` repeated, unpacked);
    other node types and the fields only they or metadata use are refused by name.

    >>> decode_data(bytes.fromhex("08021803"))
    UnixFSData(type=<DataType.FILE: 2>, data=None, filesize=3, blocksizes=())
    >>> decode_data(bytes.fromhex("0801"))
    Traceback (most recent call last):
    ...
    ipfs_share.errors.FormatError: expected UnixFS type File or Raw, found Directory
    """
    last = 0
    type_: DataType | None = None
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    for field, wire, value in iter_fields(buf):
        if field < last or (field == last and field != _BLOCKSIZES):
            raise FormatError(
                f"expected UnixFS fields in ascending order, found field {field} after {last}"
            )
        last = field
        if field in _FIELD_NAMES:
            raise FormatError(
                f"expected UnixFS file fields 1-4, found field {field} ({_FIELD_NAMES[field]})"
            )
        if field == _TYPE and wire == VARINT:
            assert isinstance(value, int)
            type_ = _check_type(value)
        elif field == _DATA and wire == LEN:
            assert isinstance(value, bytes)
            data = value
        elif field == _FILESIZE and wire == VARINT:
            assert isinstance(value, int)
            filesize = value
        elif field == _BLOCKSIZES and wire == VARINT:
            assert isinstance(value, int)
            blocksizes.append(value)
        else:
            raise FormatError(f"expected UnixFS field 1-4, found field {field} (wire {wire})")
        if type_ is None:
            raise FormatError(f"expected UnixFS Type first, found field {field}")
    if type_ is None:
        raise FormatError("expected a UnixFS Type, found none")
    return UnixFSData(type_, data, filesize, tuple(blocksizes))


def _check_type(value: int) -> DataType:
    try:
        found = DataType(value)
    except ValueError:
        raise FormatError(f"expected UnixFS type File or Raw, found unknown type {value}") from None
    if found not in _SUPPORTED_TYPES:
        name = {DataType.HAMT_SHARD: "HAMTShard"}.get(found, found.name.capitalize())
        raise FormatError(f"expected UnixFS type File or Raw, found {name}")
    return found


# --- building ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a built file: its CID, its bytes, and its codec (RAW or DAG_PB)."""

    cid: str
    data: bytes = dataclasses.field(repr=False)  # up to a chunk: keep it out of logs
    codec: int


# A link not yet written into a parent: (binary CID, Tsize, file bytes under it).
_Pending = tuple[bytes, int, int]


class FileBuilder:
    """Build a UnixFS file (balanced layout, raw leaves, CIDv1) from pieces of any size.

    ``feed`` returns the blocks completed so far (leaves as their chunk fills, internal
    nodes as a level overflows); ``finish`` returns the root CID and the rest. Every block
    must be stored for the root to resolve. The builder keeps no reference to the caller's
    buffers, so a ``bytearray`` may be reused between calls.

    >>> b = FileBuilder()
    >>> b.feed(b"hello")
    []
    >>> b.finish()[0]
    'bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq'
    >>> FileBuilder().finish()[0]  # the empty file is the empty raw block
    'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
    """

    __slots__ = ("_buf", "_chunk", "_done", "_fill", "_levels", "_max_links", "_size")

    def __init__(
        self, *, chunk_size: int = DEFAULT_CHUNK_SIZE, max_links: int = DEFAULT_MAX_LINKS
    ) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidInputError(
                f"expected a chunk size in [1, {MAX_CHUNK_SIZE}], found {chunk_size}"
            )
        # Kubo treats 0 as "the default" and never finishes with 1; neither is a tree.
        if max_links < 2:
            raise InvalidInputError(f"expected max links >= 2, found {max_links}")
        self._chunk = chunk_size
        self._max_links = max_links
        # The partial chunk lives in _buf[:_fill]; allocated once, on first use.
        self._buf = bytearray()
        self._fill = 0
        # _levels[i]: links to complete subtrees of height i not yet in a parent node.
        self._levels: list[list[_Pending]] = [[]]
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        """File bytes fed so far."""
        return self._size

    def feed(self, data: bytes | bytearray | memoryview) -> list[Block]:
        """Add the next piece of the file; return the blocks it completed."""
        if self._done:
            raise InvalidInputError("expected an unfinished builder, found feed after finish")
        out: list[Block] = []
        chunk = self._chunk
        with memoryview(data) as view:
            mv = view if view.ndim == 1 and view.itemsize == 1 else view.cast("B")
            n = len(mv)
            self._size += n
            pos = 0
            if self._fill:
                # Top up the partial chunk in place: a fixed buffer, never reallocated.
                pos = min(chunk - self._fill, n)
                self._buf[self._fill : self._fill + pos] = mv[:pos]
                self._fill += pos
                if self._fill < chunk:
                    return out
                self._leaf(bytes(self._buf), out)
                self._fill = 0
            if pos == 0 and n == chunk and type(data) is bytes:
                # The common case of chunk-sized bytes pieces: the input is the block.
                self._leaf(data, out)
                return out
            while n - pos >= chunk:
                self._leaf(bytes(mv[pos : pos + chunk]), out)
                pos += chunk
            if pos < n:
                if not self._buf:
                    self._buf = bytearray(chunk)
                self._fill = n - pos
                self._buf[: self._fill] = mv[pos:]
        return out

    def finish(self) -> tuple[str, list[Block]]:
        """End the file; return (root CID, the blocks not yet returned)."""
        if self._done:
            raise InvalidInputError("expected an unfinished builder, found finish called twice")
        self._done = True
        out: list[Block] = []
        if self._fill or self._size == 0:
            # The empty file is one empty raw leaf, as Kubo's balanced layout makes it.
            self._leaf(bytes(self._buf[: self._fill]), out)
        self._buf = bytearray()  # a finished builder holds no chunk buffer
        levels = self._levels
        height = 0
        # Wrap each level's pending links in a node and hand it up; the top level's lone
        # link (a single leaf, or one finished subtree) is the root itself, never wrapped.
        while height < len(levels) - 1 or len(levels[height]) > 1:
            self._push(height + 1, self._node(levels[height], out), out)
            levels[height] = []
            height += 1
        return cid_string(levels[height][0][0]), out

    def _leaf(self, data: bytes, out: list[Block]) -> None:
        cid = _RAW_PREFIX + hashlib.sha256(data).digest()
        out.append(Block(cid_string(cid), data, RAW))
        self._push(0, (cid, len(data), len(data)), out)

    def _push(self, height: int, link: _Pending, out: list[Block]) -> None:
        levels = self._levels
        if height == len(levels):
            levels.append([])
        pending = levels[height]
        if len(pending) == self._max_links:
            # A full level is closed only when one more link arrives: a file that ends
            # exactly at a full node keeps that node as its root, as Kubo does.
            self._push(height + 1, self._node(pending, out), out)
            pending = levels[height] = []
        pending.append(link)

    def _node(self, links: list[_Pending], out: list[Block]) -> _Pending:
        sizes = tuple(size for _, _, size in links)
        filesize = sum(sizes)
        body = encode_node(
            PBNode(
                tuple(PBLink(cid, "", tsize) for cid, tsize, _ in links),
                encode_data(UnixFSData(DataType.FILE, None, filesize, sizes)),
            )
        )
        cid = _DAG_PB_PREFIX + hashlib.sha256(body).digest()
        out.append(Block(cid_string(cid), body, DAG_PB))
        # Tsize: this block's bytes plus everything beneath it (go-merkledag's Size()).
        return cid, len(body) + sum(tsize for _, tsize, _ in links), filesize


# --- reading ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileLink:
    """A child of a file node: its CID and the file bytes beneath it (its blocksize)."""

    cid: str
    size: int


@dataclass(frozen=True, slots=True)
class FileNode:
    """A decoded dag-pb UnixFS file node: inline data first, then the children's bytes."""

    links: tuple[FileLink, ...]
    data: bytes
    filesize: int


def decode_file_node(block: bytes | memoryview) -> FileNode:
    """Decode a dag-pb UnixFS File (or Raw) node, checking its sizes agree.

    Raw-codec blocks are file bytes as they are and never come here.

    >>> builder = FileBuilder(chunk_size=2)
    >>> leaves = builder.feed(b"abc")
    >>> root, rest = builder.finish()
    >>> node = decode_file_node(rest[-1].data)
    >>> node.filesize, [link.size for link in node.links]
    (3, [2, 1])
    """
    pb = decode_node(block)
    if pb.data is None:
        raise FormatError("expected a UnixFS Data field in the dag-pb node, found none")
    msg = decode_data(pb.data)
    if len(msg.blocksizes) != len(pb.links):
        raise FormatError(
            f"expected one blocksize per link ({len(pb.links)}), found {len(msg.blocksizes)}"
        )
    inline = msg.data or b""
    total = len(inline) + sum(msg.blocksizes)
    if msg.filesize is not None and msg.filesize != total:
        raise FormatError(f"expected filesize {total} (data plus blocksizes), found {msg.filesize}")
    links = tuple(
        FileLink(link.cid, size) for link, size in zip(pb.links, msg.blocksizes, strict=True)
    )
    return FileNode(links, inline, total)


@dataclass(frozen=True, slots=True)
class ChildRange:
    """Read ``length`` bytes from ``offset`` within the file beneath child ``cid``."""

    cid: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """How to read a range of a node: ``inline`` bytes, then each child range in order."""

    inline: bytes
    children: tuple[ChildRange, ...]


def plan_read(node: FileNode, offset: int, length: int) -> ReadPlan:
    """Which parts of ``node`` hold bytes [offset, offset + length) of its file.

    The range is clipped to the file's end. A store reads a file range by applying this to
    the root and recursing into each child range (a raw child's bytes are the block itself):

    >>> builder = FileBuilder(chunk_size=4)
    >>> blocks = builder.feed(b"0123456789")
    >>> root, rest = builder.finish()
    >>> store = {b.cid: b for b in blocks + rest}
    >>> def read(cid: str, offset: int, length: int) -> bytes:
    ...     if store[cid].codec == RAW:
    ...         return store[cid].data[offset : offset + length]
    ...     plan = plan_read(decode_file_node(store[cid].data), offset, length)
    ...     return plan.inline + b"".join(read(c.cid, c.offset, c.length) for c in plan.children)
    >>> read(root, 3, 6)
    b'345678'
    """
    if offset < 0 or length < 0:
        raise InvalidInputError(
            f"expected a non-negative offset and length, found {offset} and {length}"
        )
    end = min(offset + length, node.filesize)
    inline_len = len(node.data)
    inline = node.data[offset:end] if offset < inline_len else b""
    children: list[ChildRange] = []
    start = inline_len  # where the current child's bytes begin in this node's file
    for link in node.links:
        if start >= end:
            break
        stop = start + link.size
        if stop > offset and link.size:
            lo = max(offset, start)
            children.append(ChildRange(link.cid, lo - start, min(end, stop) - lo))
        start = stop
    return ReadPlan(inline, tuple(children))
