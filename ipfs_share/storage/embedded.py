"""An on-disk store in one directory: the storage protocol for one machine, no daemon.

Layout (docs/spec/embedded-store.md)::

    <root>/FORMAT                 "ipfs-share-embedded 1"
    <root>/blocks/<xx>/<cid>      block bytes; xx = the CID's last two characters
    <root>/records/<name>         the current signed IPNS record for a name
    <root>/pins/<cid>.<kind>      empty marker; kind is "recursive" or "direct"
    <root>/tmp/                   where every file is written before it is renamed

Every file is written to ``tmp/``, flushed, fsync'd and then renamed into place, so a crash
leaves either the old file or the new one, never a torn one; a leftover temp file is
harmless and removed at the next open. Blocks are named by their CID and re-hashed on
every read, so a corrupted disk shows up as an IntegrityError, not as wrong bytes.

Pubsub works between the stores of one process that share a root directory (there is no
network to carry it further), which is what a single-machine app needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ipfs_share import __version__
from ipfs_share.errors import (
    CidInvalidError,
    FormatError,
    IntegrityError,
    IpnsRecordInvalidError,
    NotFoundError,
    StoreError,
)
from ipfs_share.formats import dagcbor, dagpb
from ipfs_share.formats.cid import DAG_CBOR, DAG_PB, RAW, normalize_cid, parse_cid
from ipfs_share.formats.ipns import parse_ipns_name, verify_record
from ipfs_share.formats.unixfs import Block, FileBuilder, decode_file_node, plan_read
from ipfs_share.local.files import fsync_dir
from ipfs_share.storage.base import (
    AddResult,
    BlockCodec,
    ByteSource,
    NodeCapabilities,
    NodeInfo,
    ProgressCallback,
    PubsubMessage,
    block_cid,
    from_blocking,
)

__all__ = ["EmbeddedStorage"]

FORMAT_LINE = b"ipfs-share-embedded 1\n"
STALE_TMP_SECONDS = 3600  # a temp file older than this is a crash's leftover
_PIECE = 1024 * 1024

# topic subscribers per store root, for in-process pubsub
_HUB: dict[tuple[str, str], set[asyncio.Queue[PubsubMessage]]] = defaultdict(set)


class EmbeddedStorage:
    """The storage protocol over a directory.

    >>> import asyncio, tempfile
    >>> async def demo() -> bytes:
    ...     async with EmbeddedStorage(tempfile.mkdtemp()) as store:
    ...         added = await store.add(b"hello world")
    ...         return b"".join([c async for c in store.cat(added.cid, offset=6)])
    >>> asyncio.run(demo())
    b'world'
    """

    backend: Literal["embedded"] = "embedded"

    def __init__(self, root: str | os.PathLike[str], *, now: type[datetime] = datetime) -> None:
        self.root = Path(root)
        self._now = now
        try:
            self._open()
        except OSError as exc:
            raise StoreError(f"cannot open the store at {self.root}: {exc.strerror}") from exc
        self.peer_id = self._peer_id()

    def __repr__(self) -> str:
        return f"EmbeddedStorage({str(self.root)!r})"

    def _open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fmt = self.root / "FORMAT"
        if fmt.exists():
            found = fmt.read_bytes()
            if found != FORMAT_LINE:
                raise StoreError(
                    f"expected an ipfs-share store ({FORMAT_LINE.strip().decode()}) at "
                    f"{self.root}, found {found[:40]!r}",
                    hint="point at an empty directory or one ipfs-share made",
                )
        elif any(p.name not in {"tmp"} for p in self.root.iterdir()):
            raise StoreError(
                f"expected an empty directory or an ipfs-share store at {self.root}, "
                "found other files",
                hint="point at an empty directory or one ipfs-share made",
            )
        for sub in ("blocks", "records", "pins", "tmp"):
            (self.root / sub).mkdir(exist_ok=True)
        # Temp files left by a crash mid-write; only old ones, since another process may be
        # writing into tmp/ right now.
        cutoff = time.time() - STALE_TMP_SECONDS
        for stale in (self.root / "tmp").iterdir():
            with contextlib.suppress(FileNotFoundError):
                if stale.stat().st_mtime < cutoff:
                    stale.unlink()
        if not fmt.exists():
            self._write_atomic(fmt, FORMAT_LINE)

    def _peer_id(self) -> str:
        path = self.root / "peer-id"
        if not path.exists():
            self._write_atomic(path, b"embedded-" + secrets.token_hex(8).encode(), exclusive=True)
        return path.read_text().strip()

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> EmbeddedStorage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- files on disk ----------------------------------------------------------------------
    def _write_atomic(self, dest: Path, data: bytes, *, exclusive: bool = False) -> None:
        tmp = self.root / "tmp" / f"{dest.name}.{secrets.token_hex(6)}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if exclusive and dest.exists():
                return
            os.replace(tmp, dest)
            fsync_dir(dest.parent)  # the rename survives a power cut, like SQLite's commits
        except OSError as exc:
            raise StoreError(f"cannot write {dest.name}: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _block_path(self, cid: str) -> Path:
        return self.root / "blocks" / cid[-2:] / cid

    def _put_block_sync(self, cid: str, data: bytes) -> None:
        path = self._block_path(cid)
        if path.exists():  # content-addressed: the same name always holds the same bytes
            return
        path.parent.mkdir(exist_ok=True)
        self._write_atomic(path, data)

    def _get_block_sync(self, cid: str) -> bytes:
        parsed = parse_cid(cid)
        canonical = str(parsed)
        try:
            data = self._block_path(canonical).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"block {cid} is not in the store at {self.root}") from None
        except OSError as exc:
            raise StoreError(f"cannot read block {cid}: {exc.strerror}") from exc
        if hashlib.sha256(data).digest() != parsed.digest:
            raise IntegrityError(f"block {cid} on disk does not hash to its CID (disk corruption?)")
        return data

    # -- blocks ---------------------------------------------------------------------------
    async def block_put(self, data: bytes, *, codec: BlockCodec = "raw", pin: bool = False) -> str:
        cid = block_cid(data, codec)
        await asyncio.to_thread(self._put_block_sync, cid, bytes(data))
        if pin:
            await self.pin_add(cid, recursive=False)
        return cid

    async def block_get(self, cid: str) -> bytes:
        return await asyncio.to_thread(self._get_block_sync, cid)

    async def block_has(self, cid: str) -> bool:
        return self._block_path(normalize_cid(cid)).exists()

    async def block_get_local(self, cids: Sequence[str]) -> dict[str, bytes]:
        return await asyncio.to_thread(self._get_blocks_sync, list(cids))

    def _get_blocks_sync(self, cids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for cid in cids:
            with contextlib.suppress(NotFoundError):
                found[cid] = self._get_block_sync(cid)
        return found

    async def follow_local(self, cid: str, field: str, hops: int) -> str | None:
        return await asyncio.to_thread(self._follow_sync, cid, field, hops)

    def _follow_sync(self, cid: str, field: str, hops: int) -> str | None:
        for _ in range(hops):
            try:
                node = dagcbor.decode(self._get_block_sync(cid))
            except (NotFoundError, FormatError):
                return None
            link = node.get(field) if isinstance(node, dict) else None
            if not isinstance(link, dagcbor.Link):
                return None
            cid = link.cid
        return cid

    # -- files ----------------------------------------------------------------------------
    async def add(
        self,
        source: ByteSource,
        *,
        pin: bool = True,
        progress: ProgressCallback | None = None,
        size: int | None = None,
        verify: bool = True,
    ) -> AddResult:
        # The store computes every CID itself, so there is nothing to verify against.
        builder = FileBuilder()
        done = 0

        def store(blocks: list[Block]) -> None:
            for b in blocks:
                self._put_block_sync(b.cid, b.data)

        async def feed(piece: bytes | bytearray | memoryview) -> None:
            nonlocal done
            await asyncio.to_thread(lambda: store(builder.feed(piece)))
            done += len(piece)
            if progress:
                progress(done)

        if isinstance(source, bytes | bytearray | memoryview):
            view = memoryview(source)
            for i in range(0, len(view), _PIECE):
                await feed(view[i : i + _PIECE])
        else:
            if isinstance(source, Iterator):
                source = from_blocking(source)
            async for piece in source:
                if piece:
                    await feed(piece)
        if size is not None and done != size:
            raise StoreError(f"add: expected {size} bytes from the source, found {done}")
        root, rest = builder.finish()
        await asyncio.to_thread(store, rest)
        if pin:
            await self.pin_add(root)
        return AddResult(cid=root, size=done)

    async def file_size(self, cid: str) -> int:
        return _file_size(cid, await self.block_get(cid))

    async def cat(
        self, cid: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise CidInvalidError(f"expected offset, length >= 0, found {offset}, {length}")
        root = await self.block_get(cid)
        left = max(0, _file_size(cid, root) - offset)
        expected = left if length is None else min(length, left)
        got = 0
        async for piece in self._walk(cid, root, offset, expected):
            got += len(piece)
            yield piece
        # A DAG whose leaves are shorter than their parents say would otherwise read short
        # without a word; Kubo's cat fails the same way.
        if got != expected:
            raise IntegrityError(f"cat: expected {expected} bytes of {cid}, the DAG held {got}")

    async def _walk(self, cid: str, data: bytes, offset: int, length: int) -> AsyncIterator[bytes]:
        """Yield ``length`` bytes from ``offset`` of the file whose root block is ``data``,
        reading only the blocks that hold them."""
        if length == 0:
            return
        if parse_cid(cid).codec == RAW:
            yield data[offset : offset + length]
            return
        plan = plan_read(decode_file_node(data), offset, length)
        if plan.inline:
            yield plan.inline
        for child in plan.children:
            child_data = await self.block_get(child.cid)
            async for piece in self._walk(child.cid, child_data, child.offset, child.length):
                yield piece

    # -- pins -----------------------------------------------------------------------------
    def _links_of(self, cid: str, data: bytes) -> Iterator[str]:
        codec = parse_cid(cid).codec
        if codec == DAG_PB:
            for link in dagpb.decode_node(data).links:
                yield link.cid
        elif codec == DAG_CBOR:
            yield from _cbor_links(dagcbor.decode(data))

    async def pin_add(self, cid: str, *, recursive: bool = True) -> None:
        cid = normalize_cid(cid)
        # Like Kubo, refuse to pin what is not all here (Kubo would fetch it; we cannot).
        todo = [cid]
        seen: set[str] = set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                data = await self.block_get(current)
            except NotFoundError:
                raise NotFoundError(
                    f"cannot pin {cid}: block {current} is not in the store at {self.root}"
                ) from None
            if recursive:
                todo.extend(self._links_of(current, data))
        kind = "recursive" if recursive else "direct"
        other = "direct" if recursive else "recursive"
        if recursive:
            (self.root / "pins" / f"{cid}.{other}").unlink(missing_ok=True)
        elif (self.root / "pins" / f"{cid}.{other}").exists():
            return  # a recursive pin already covers it
        self._write_atomic(self.root / "pins" / f"{cid}.{kind}", b"")

    async def pin_update(self, old: str, new: str, *, unpin: bool = True) -> None:
        old, new = normalize_cid(old), normalize_cid(new)
        if not (self.root / "pins" / f"{old}.recursive").exists():
            raise NotFoundError(f"cannot update the pin of {old}: it is not pinned recursively")
        await self.pin_add(new)
        if unpin and old != new:
            await self.pin_rm(old)

    async def pin_rm(self, cid: str) -> None:
        cid = normalize_cid(cid)
        for kind in ("recursive", "direct"):
            (self.root / "pins" / f"{cid}.{kind}").unlink(missing_ok=True)

    async def pin_ls(self) -> frozenset[str]:
        return frozenset(p.name.rsplit(".", 1)[0] for p in (self.root / "pins").iterdir())

    # -- IPNS -----------------------------------------------------------------------------
    def _record_path(self, name: str) -> Path:
        key = parse_ipns_name(name)
        from ipfs_share.formats.ipns import ipns_name

        return self.root / "records" / ipns_name(key)

    async def ipns_put(self, name: str, record: bytes, *, renew: bool = False) -> None:
        new = verify_record(name, record, now=self._now.now(UTC))
        await asyncio.to_thread(
            self._replace_record, name, bytes(record), new.sequence, new.validity, renew
        )

    def _replace_record(
        self, name: str, record: bytes, sequence: int, eol: datetime, renew: bool
    ) -> None:
        path = self._record_path(name)
        # One writer at a time per store, across processes: the sequence check and the
        # rename must not interleave with another put.
        with open(self.root / "records" / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                stored = None
                if path.exists():
                    # An expired or damaged stored record does not block a valid new one.
                    with contextlib.suppress(IpnsRecordInvalidError, FormatError):
                        held = path.read_bytes()
                        if held == record:
                            return  # the same record again: a republish
                        stored = verify_record(name, held, now=self._now.now(UTC))
                # As Kubo: a lower sequence never replaces a higher one; the same sequence
                # only as a renewal that is valid longer.
                if stored is not None and (
                    sequence < stored.sequence
                    or (sequence == stored.sequence and not (renew and eol > stored.validity))
                ):
                    raise IpnsRecordInvalidError(
                        f"expected a sequence > {stored.sequence} for {name} (or a renewal "
                        f"valid longer), found sequence {sequence}",
                        hint="publish with a higher sequence number",
                    )
                self._write_atomic(path, record)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    async def ipns_get(self, name: str) -> bytes:
        path = self._record_path(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no IPNS record for {name} in the store") from None

    async def ipns_resolve(self, name: str, *, nocache: bool = True) -> str:
        record = verify_record(name, await self.ipns_get(name), now=self._now.now(UTC))
        return record.value

    # -- pubsub ---------------------------------------------------------------------------
    async def pubsub_publish(self, topic: str, data: bytes) -> None:
        msg = PubsubMessage(
            topic=topic, data=bytes(data), sender=self.peer_id, seqno=secrets.token_bytes(8)
        )
        for queue in list(_HUB[(str(self.root.resolve()), topic)]):
            queue.put_nowait(msg)

    @asynccontextmanager
    async def pubsub_subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[PubsubMessage]]:
        key = (str(self.root.resolve()), topic)
        queue: asyncio.Queue[PubsubMessage] = asyncio.Queue()
        _HUB[key].add(queue)

        async def messages() -> AsyncIterator[PubsubMessage]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            _HUB[key].discard(queue)
            if not _HUB[key]:
                del _HUB[key]

    # -- the node -------------------------------------------------------------------------
    async def node_info(self) -> NodeInfo:
        return NodeInfo(backend="embedded", peer_id=self.peer_id, version=__version__)

    async def capabilities(self) -> NodeCapabilities:
        return NodeCapabilities(pubsub=True, ipns_over_pubsub=False, ipns_put=True, online=False)


def _cbor_links(value: object) -> Iterator[str]:
    """Every CID linked from a decoded dag-cbor value, depth first."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dagcbor.Link):
            yield v.cid
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def _file_size(cid: str, root: bytes) -> int:
    """The size of the UnixFS file whose root block (raw or dag-pb) is ``root``."""
    parsed = parse_cid(cid)
    if parsed.codec == RAW:
        return len(root)
    if parsed.codec != DAG_PB:
        raise CidInvalidError(f"expected a raw or dag-pb file CID, found {parsed.codec_name}")
    return decode_file_node(root).filesize
