"""Encrypted files: put (encrypt, stream into the node, pin), list, remove, and read.

The file key is wrapped to the owner's own X25519 key, like a share to oneself, and only
that 80-byte stanza is kept locally: no file key is ever stored in the clear, and sharing
needs the owner's passphrase to unwrap it. A record is written only after the node has
stored and pinned the whole ciphertext, so no record ever points at content that is not
stored.

What ``remove`` does and does not do: it unpins the ciphertext on this node, so the
node's next garbage collection frees it. Copies other nodes fetched, pinned or cached are
theirs, and capsules that link to the content keep it pinned until they are revoked or
unpinned too; the ciphertext is useless without a key, but it is not erased.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import mimetypes
import os
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from ipfs_share.crypto.random import Rng
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.wrap import Stanza, unwrap, wrap
from ipfs_share.crypto.x25519 import EncryptionKey, PublicEncryptionKey
from ipfs_share.errors import InvalidInputError, NotFoundError, StoreError
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.formats.envelope import (
    Encryptor,
    Header,
    NeedMore,
    UnsizedEncryptor,
    decode_header,
    header_length,
)
from ipfs_share.formats.keychain_file import looks_like_keychain_file
from ipfs_share.local.home import prepare_home
from ipfs_share.local.state import FileRow, StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.opened import OpenedFile
from ipfs_share.storage.base import AddResult, Placement, Placing, ProgressCallback, Storage
from ipfs_share.storage.timed import innermost

if TYPE_CHECKING:
    from ipfs_share.services.keychains import KeychainService

__all__ = ["FileService", "MeshFile", "PutSource", "media_type_for"]

PIECE = 1 << 20  # read and encrypt in 1 MiB pieces: flat memory, few calls
# A file is read, sealed and sent in 256 KiB pieces: the plaintext and the ciphertext
# buffers then stay in a core's L2 cache between the read, the AEAD and the send (1 MiB
# pieces cost 20% more CPU here, 64 KiB ones more system calls).
FILE_PIECE = 256 << 10
DEFAULT_MEDIA_TYPE = "application/octet-stream"
# Headers decoded and authenticated, kept for the opens that follow (least recently used
# out first): at most this many, each well under 1 KiB in memory.
HEADER_CACHE = 256

# What put accepts: bytes, text, a path, a binary file object, or an async iterator of bytes.
PutSource = (
    bytes
    | bytearray
    | memoryview
    | str
    | os.PathLike[str]
    | IO[bytes]
    | AsyncIterable[bytes | bytearray | memoryview]
)


def media_type_for(name: str) -> str:
    guess, _ = mimetypes.guess_type(name, strict=False)
    return guess or DEFAULT_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class MeshFile:
    cid: str  # the content CID: the envelope as a UnixFS file
    name: str
    size: int  # plaintext bytes
    media_type: str
    owner: str  # did
    created: int
    state: str = "stored"
    keychain_file: str | None = None  # after a put with a keychain: what members open

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "content": self.cid,
            "name": self.name,
            "size": self.size,
            "media_type": self.media_type,
            "owner": self.owner,
            "created": self.created,
            "state": self.state,
        }
        if self.keychain_file is not None:
            out["keychain_file"] = self.keychain_file
        return out

    @classmethod
    def of(cls, row: FileRow) -> MeshFile:
        return cls(row.cid, row.name, row.size, row.media_type, row.owner, row.created, row.state)


class FileService:
    def __init__(
        self,
        storage: Storage,
        db: StateDB,
        home: Path,
        identities: IdentityService,
        *,
        now: Callable[[], float],
        keychains: KeychainService | Callable[[], KeychainService] | None = None,
    ) -> None:
        self.storage = storage
        self.db = db
        self.home = home
        self.identities = identities
        # The keychain service, or a function that makes it when a keychain file is first
        # put or opened (a put without --keychain needs none).
        self._keychains = keychains
        self._now = now
        self._headers: HeaderCache = HeaderCache()

    @property
    def keychains(self) -> KeychainService | None:
        if callable(self._keychains):
            self._keychains = self._keychains()
        return self._keychains

    async def put(
        self,
        name: str,
        data: PutSource,
        *,
        as_: str | None = None,
        media_type: str | None = None,
        progress: ProgressCallback | None = None,
        size: int | None = None,
        keychain: str | None = None,
    ) -> MeshFile:
        """Encrypt ``data`` and store it, pinned, as the acting identity's file.

        ``data`` is bytes, str (stored as UTF-8 text), a path, a binary file object or an
        async iterator of bytes; memory stays flat whatever its size. ``size`` may be given
        for an async iterator whose length is known, which saves spooling its ciphertext.
        No passphrase is needed: the file key is wrapped to the owner's public key.

        With ``keychain`` (a fingerprint) the file key is also sealed under that keychain's
        most recent key, in a keychain file (``MeshFile.keychain_file``): every member
        holding the key opens it, also one who joins later and is shared the key."""
        me = self.identities.get(as_)
        file_key = FileKey.generate()
        if keychain is not None:
            if self.keychains is None:
                raise InvalidInputError("expected a home with keychains, found none")
            await self.keychains.show(keychain, as_=as_)  # fails before any upload
        stored = await self.put_as(
            name,
            data,
            owner=me.did,
            owner_enc=PublicEncryptionKey.from_text(me.enc),
            media_type=media_type,
            progress=progress,
            file_key=file_key,
            size=size,
        )
        if keychain is None or self.keychains is None:
            return stored
        made = await self.keychains.seal_file(keychain, stored.cid, file_key, as_=as_)
        return dataclasses.replace(stored, keychain_file=made.cid)

    async def put_as(
        self,
        name: str,
        data: PutSource,
        *,
        owner: str,
        owner_enc: PublicEncryptionKey,
        media_type: str | None = None,
        progress: ProgressCallback | None = None,
        file_key: FileKey | None = None,
        size: int | None = None,
        rng: Rng | None = None,
    ) -> MeshFile:
        """:meth:`put` for a given owner (its did and X25519 public key). ``file_key`` and
        ``rng`` (the source of the envelope's payload nonce) make the envelope the same for
        the same plaintext: what a rotation retried after a crash needs (one copy, one
        CID)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
            media_type = media_type or "text/plain; charset=utf-8"
        media = media_type or media_type_for(name)
        key = file_key or FileKey.generate()
        stanza = bytes(wrap(key, [owner_enc])[0])
        source = _open_source(data)
        try:
            if source.size is not None or size is not None:
                # The envelope authenticates itself (AEAD, and capsules commit to its CID),
                # so the local CID pass is skipped: a node that lied would fail every open.
                size = source.size if source.size is not None else size
                assert size is not None
                encryptor = Encryptor(key, name=name, media_type=media, size=size, rng=rng)
                added = await self.storage.add(
                    source.sealed(encryptor),
                    progress=progress,
                    size=encryptor.envelope_size,
                    verify=False,
                )
            else:
                added, size = await self._add_unsized(key, name, media, source, progress, rng)
        finally:
            source.close()
        row = FileRow(added.cid, owner, name, media, size, stanza, int(self._now()))
        self.db.files.add(row)
        return MeshFile.of(row)

    async def _add_unsized(
        self,
        key: FileKey,
        name: str,
        media: str,
        source: _Source,
        progress: ProgressCallback | None,
        rng: Rng | None = None,
    ) -> tuple[AddResult, int]:
        # The header holds the size, so for a stream of unknown length the chunks are sealed
        # first and spooled, as ciphertext only, to a temp file; then header + chunks go in.
        spool_dir = prepare_home(self.home / "tmp")
        encryptor = UnsizedEncryptor(key, name=name, media_type=media, rng=rng)
        with tempfile.TemporaryFile(dir=spool_dir) as spool:
            async for piece in source.pieces():
                sealed = encryptor.push(piece)
                if sealed:
                    await asyncio.to_thread(spool.write, sealed)
            header, final = encryptor.finish()
            await asyncio.to_thread(spool.write, final)

            def envelope() -> Iterator[bytes | memoryview]:  # pulled on a worker thread
                yield header
                buffer = memoryview(bytearray(FILE_PIECE))
                while n := spool.readinto(buffer):
                    yield buffer[:n]

            envelope_size = len(header) + spool.seek(0, os.SEEK_END)
            spool.seek(0)
            added = await self.storage.add(
                envelope(), progress=progress, size=envelope_size, verify=False
            )
            return added, encryptor.size

    def get(self, cid: str) -> MeshFile:
        cid = normalize_cid(cid)
        row = self.db.files.get(cid)
        if row is None:
            raise NotFoundError(
                f"no file {cid} was put from this home",
                hint="files.list() shows the files put here",
                reason="no_file",
            )
        return MeshFile.of(row)

    def list(self, *, owner: str | None = None) -> list[MeshFile]:
        return [MeshFile.of(r) for r in self.db.files.list(owner=owner)]

    async def placements(self, cids: Sequence[str]) -> dict[str, Placement] | None:
        """Where each CID is pinned, peer by peer, when the storage replicates (IPFS
        Cluster); None for a storage that is one node."""
        backend = innermost(self.storage)
        if not isinstance(backend, Placing):
            return None
        found = await backend.placements([normalize_cid(c) for c in cids])
        return {normalize_cid(p.cid): p for p in found}

    async def remove(self, cid: str) -> MeshFile:
        """Unpin the ciphertext here (see the module docstring for what that does not do)."""
        cid = normalize_cid(cid)
        row = self.db.files.get(cid)
        if row is None or row.state != "stored":
            raise NotFoundError(f"no stored file {cid} in this home")
        # The record goes first: a crash between the two leaves a pinned file marked removed
        # (harmless), never a "stored" record whose content garbage collection may delete.
        self.db.files.set_state(cid, "removed")
        await self.storage.pin_rm(cid)
        return MeshFile.of(FileRow(**{**_as_dict(row), "state": "removed"}))

    def forget_headers(self) -> None:
        """Drop every header held (:class:`HeaderCache`): an identity was locked, and
        a header carries its file's payload key."""
        self._headers.clear()

    async def open_own(self, cid: str, *, as_: str | None = None) -> OpenedFile:
        """Open a file this home put, as its owner: no capsule (one wraps keys for its
        recipients, never for the issuer); the file key comes from the owner's own stanza,
        so this asks for the owner's passphrase. ``as_``, if given, must be the owner.
        Reads, ranges and saves as for a capsule's :class:`OpenedFile`."""
        cid = normalize_cid(cid)
        row = self.db.files.get(cid)
        if row is None or row.state != "stored":
            raise NotFoundError(
                f"no stored file {cid} was put from this home",
                hint="files.list() shows the files put here; a file someone shared with "
                "you opens through its capsule",
                reason="no_file",
            )
        if as_ is not None and self.identities.get(as_).did != row.owner:
            raise InvalidInputError(
                f"the file {cid} belongs to {row.owner}, not to {as_}",
                hint="act as the identity that put it (as_=)",
                reason="not_owner",
            )
        keys = await self.identities.unlock(row.owner)
        return await self.open(cid, self.file_key(cid, keys.encryption))

    def file_key(self, cid: str, my_key: EncryptionKey) -> FileKey:
        """The file key of a file we put, from the stanza wrapped to ourselves."""
        row = self.db.files.get(cid)
        if row is None:
            raise NotFoundError(f"no file {cid} was put from this home")
        return unwrap([Stanza.from_bytes(row.stanza)], my_key)

    async def is_keychain_file(self, block_id: str) -> bool:
        """Is the dag-cbor block ``block_id`` a keychain file (else, say, a capsule)? A block
        that cannot be fetched is :class:`NotFoundError` here, as it would be for a capsule."""
        cid = normalize_cid(block_id)
        try:
            data = await asyncio.wait_for(self.storage.block_get(cid), 30)
        except TimeoutError:
            raise NotFoundError(
                f"the capsule {cid} could not be fetched in 30 s",
                hint="check the nodes are connected and the sharer's node is online",
            ) from None
        return looks_like_keychain_file(data)

    async def open_keychain_file(self, file_id: str, *, as_: str | None = None) -> OpenedFile:
        """Open a file put with ``keychain=``, as a member holding the key it names."""
        if self.keychains is None:
            raise InvalidInputError("expected a home with keychains, found none")
        cid = normalize_cid(file_id)
        try:
            data = await asyncio.wait_for(self.storage.block_get(cid), 30)
        except TimeoutError:
            raise NotFoundError(
                f"the keychain file {cid} could not be fetched in 30 s",
                hint="check the nodes are connected and the owner's node is online",
            ) from None
        file, file_key = await self.keychains.open_file(data, as_=as_)
        return await self.open(
            file.content.cid,
            file_key,
            capsule=file.cid,
            issuer=file.owner,
            issuer_name=self.keychains.name_of(file.owner),
        )

    async def open(
        self,
        cid: str,
        file_key: FileKey,
        *,
        allow_download: bool = True,
        capsule: str | None = None,
        issuer: str | None = None,
        issuer_name: str | None = None,
    ) -> OpenedFile:
        """Read the header (authenticating it) and return a handle for reads."""
        header, prefix = await read_header(self.storage, cid, file_key, self._headers)
        return OpenedFile(
            self.storage,
            cid,
            file_key,
            header,
            prefix,
            allow_download=allow_download,
            capsule=capsule,
            issuer=issuer,
            issuer_name=issuer_name,
        )


async def read_header(
    storage: Storage, cid: str, file_key: FileKey, headers: HeaderCache | None = None
) -> tuple[Header, bytes]:
    """The authenticated header of the envelope at ``cid`` and every byte read (header
    included).

    One request reads the header and, for a small file, all of it (a 1 KiB open costs one
    round trip); a long header costs a second. With ``headers``, a header whose bytes were
    authenticated under ``file_key`` before is not decoded again (see :class:`HeaderCache`)."""
    want = 96 * 1024
    data = b"".join([p async for p in storage.cat(cid, offset=0, length=want)])
    result = _decode_header(data, file_key, headers)
    if isinstance(result, NeedMore):
        more = b"".join(
            [p async for p in storage.cat(cid, offset=len(data), length=result.total - len(data))]
        )
        data += more
        result = _decode_header(data, file_key, headers)
        if isinstance(result, NeedMore):
            raise StoreError(f"the envelope {cid} ends inside its header")
    return result, data


def _decode_header(
    data: bytes, file_key: FileKey, headers: HeaderCache | None
) -> Header | NeedMore:
    if headers is None:
        return decode_header(data, file_key)
    length = header_length(data[:26])  # the format's checks, before any lookup
    if length is None or len(data) < length:
        return decode_header(data, file_key)
    return headers.decode(data[:length], file_key)


class HeaderCache:
    """Envelope headers decoded and authenticated (:func:`decode_header`), held under a
    digest of the file key and the header's exact bytes: the same bytes under the same
    key decode to the same header, so an open of a file opened before skips the
    metadata's key derivation, AEAD and decoding, and the payload key's derivation. A
    header that fails is never held; other bytes or another key are decoded afresh.
    At most :data:`HEADER_CACHE` headers, least recently used out first; the digest,
    not the key, is what is kept as the lookup key.

    >>> from ipfs_share.formats.envelope import encrypt
    >>> key = FileKey(bytes(32))
    >>> blob = encrypt(key, b"hello", name="a.txt", rng=lambda n: bytes(n))
    >>> headers = HeaderCache()
    >>> first = headers.decode(blob, key)
    >>> headers.decode(blob, key) is first
    True
    """

    def __init__(self, limit: int = HEADER_CACHE) -> None:
        self._held: OrderedDict[bytes, Header] = OrderedDict()
        self._limit = limit

    def __len__(self) -> int:
        return len(self._held)

    def clear(self) -> None:
        """Hold nothing (the headers carry payload keys: an identity was locked)."""
        self._held.clear()

    def decode(self, header: bytes, file_key: FileKey) -> Header | NeedMore:
        digest = hashlib.sha256(file_key.secret_bytes() + header).digest()
        held = self._held.get(digest)
        if held is not None:
            self._held.move_to_end(digest)
            return held
        result = decode_header(header, file_key)
        if isinstance(result, Header):
            self._held[digest] = result
            if len(self._held) > self._limit:
                self._held.popitem(last=False)
        return result


def _as_dict(row: FileRow) -> dict[str, Any]:
    return {f: getattr(row, f) for f in row.__dataclass_fields__}


class _Source:
    """Plaintext to put: bytes in memory, a binary file, or an async iterator of bytes.

    :meth:`sealed` encrypts it for a sized put. A file is read, sealed and sent by one
    worker thread of the storage (``readinto`` one reused buffer, the AEAD into another,
    ``sendall``: all three without the GIL), so no piece of it crosses the event loop."""

    def __init__(
        self,
        *,
        memory: memoryview | None = None,
        file: IO[bytes] | None = None,
        stream: AsyncIterable[bytes | bytearray | memoryview] | None = None,
        size: int | None = None,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self._memory = memory
        self._file = file
        self._stream = stream
        self.size = size
        self.close = close

    async def pieces(self) -> AsyncIterator[bytes | bytearray | memoryview]:
        """The plaintext in pieces, each valid until the next is asked for."""
        if self._memory is not None:
            for i in range(0, len(self._memory), PIECE):
                yield self._memory[i : i + PIECE]
        elif self._file is not None:
            read = _reader(self._file)
            while piece := await asyncio.to_thread(read):
                yield piece
        else:
            assert self._stream is not None
            async for item in self._stream:
                if not isinstance(item, bytes | bytearray | memoryview):
                    raise InvalidInputError(
                        f"expected the async iterator to yield bytes, found {type(item).__name__}"
                    )
                if item:
                    yield item

    def sealed(self, encryptor: Encryptor) -> Iterator[memoryview] | AsyncIterator[memoryview]:
        """The envelope, in pieces. For a file, a synchronous iterator that storage pulls on
        a worker thread: it reads into one buffer and seals into another, both reused, so
        each piece is valid until the next is asked for. Else an async iterator of
        buffers no one else holds."""
        if self._file is not None:
            return self._sealed_file(self._file, encryptor)
        return self._sealed_pieces(encryptor)

    @staticmethod
    def _sealed_file(file: IO[bytes], encryptor: Encryptor) -> Iterator[memoryview]:
        read = _reader(file, FILE_PIECE)
        out = memoryview(bytearray(encryptor.max_output(FILE_PIECE)))
        while piece := read():
            if n := encryptor.push_into(piece, out):
                yield out[:n]
        yield memoryview(encryptor.finish())

    async def _sealed_pieces(self, encryptor: Encryptor) -> AsyncIterator[memoryview]:
        async for piece in self.pieces():
            out = encryptor.push(piece)
            if out:
                yield memoryview(out)
        yield memoryview(encryptor.finish())


def _reader(f: IO[bytes], size: int = PIECE) -> Callable[[], memoryview | bytes]:
    """A function returning the file's next piece of at most ``size`` bytes (empty at the
    end). Files that can ``readinto`` fill one buffer, made once; each piece is valid until
    the next call."""
    readinto = getattr(f, "readinto", None)
    if readinto is None:

        def read() -> bytes:
            data = f.read(size)
            if not isinstance(data, bytes | bytearray):
                raise InvalidInputError("expected a file opened in binary mode ('rb')")
            return bytes(data)

        return read
    buffer = memoryview(bytearray(size))

    def read_into() -> memoryview:
        try:
            n = readinto(buffer)
        except TypeError as exc:  # a text file's readinto wants no bytes buffer
            raise InvalidInputError("expected a file opened in binary mode ('rb')") from exc
        return buffer[: n or 0]

    return read_into


def _open_source(data: PutSource) -> _Source:
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data).cast("B")
        return _Source(memory=view, size=len(view))
    if isinstance(data, os.PathLike):
        path = Path(data)
        try:
            # Unbuffered: readinto then reads straight into our buffer, with no copy.
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the source's close
        except OSError as exc:
            raise InvalidInputError(
                f"cannot read {path}: {exc.strerror}", hint="check the path and its permissions"
            ) from exc
        return _Source(file=f, size=os.fstat(f.fileno()).st_size, close=f.close)
    if hasattr(data, "read"):
        stream = cast(IO[bytes], data)
        size: int | None = None
        try:
            if getattr(stream, "seekable", lambda: False)():  # a bare read() is a stream too
                here = stream.tell()
                size = stream.seek(0, os.SEEK_END) - here
                stream.seek(here)
        except (OSError, ValueError):
            size = None
        return _Source(file=stream, size=size)
    if isinstance(data, AsyncIterable):
        return _Source(stream=data)
    raise InvalidInputError(
        f"expected bytes, str, a path, a binary file or an async iterator of bytes, "
        f"found {type(data).__name__}"
    )
