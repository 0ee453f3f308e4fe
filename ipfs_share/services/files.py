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
import mimetypes
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

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
)
from ipfs_share.local.db import FileRow, StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.opened import OpenedFile
from ipfs_share.storage.base import AddResult, ProgressCallback, Storage

__all__ = ["FileService", "MeshFile", "PutSource", "media_type_for"]

PIECE = 1 << 20  # read and encrypt in 1 MiB pieces: flat memory, few calls
DEFAULT_MEDIA_TYPE = "application/octet-stream"

# What put accepts: bytes, text, a path, a binary file object, or an async iterator of bytes.
PutSource = (
    bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes] | AsyncIterable[bytes]
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

    def to_json(self) -> dict[str, object]:
        return {
            "cid": self.cid,
            "name": self.name,
            "size": self.size,
            "media_type": self.media_type,
            "owner": self.owner,
            "created": self.created,
            "state": self.state,
        }

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
    ) -> None:
        self.storage = storage
        self.db = db
        self.home = home
        self.identities = identities
        self._now = now

    async def put(
        self,
        name: str,
        data: PutSource,
        *,
        as_: str | None = None,
        media_type: str | None = None,
        progress: ProgressCallback | None = None,
        size: int | None = None,
    ) -> MeshFile:
        """Encrypt ``data`` and store it, pinned, as the acting identity's file.

        ``data`` is bytes, str (stored as UTF-8 text), a path, a binary file object or an
        async iterator of bytes; memory stays flat whatever its size. ``size`` may be given
        for an async iterator whose length is known, which saves spooling its ciphertext.
        No passphrase is needed: the file key is wrapped to the owner's public key."""
        me = self.identities.get(as_)
        return await self.put_as(
            name,
            data,
            owner=me.did,
            owner_enc=PublicEncryptionKey.from_text(me.enc),
            media_type=media_type,
            progress=progress,
            size=size,
        )

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
    ) -> MeshFile:
        """:meth:`put` for a given owner (its did and X25519 public key)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
            media_type = media_type or "text/plain; charset=utf-8"
        media = media_type or media_type_for(name)
        key = file_key or FileKey.generate()
        stanza = bytes(wrap(key, [owner_enc])[0])
        known, pieces, closer = _open_source(data)
        if known is not None:
            size = known
        try:
            if size is not None:
                # The envelope authenticates itself (AEAD, and capsules commit to its CID),
                # so the local CID pass is skipped: a node that lied would fail every open.
                encryptor = Encryptor(key, name=name, media_type=media, size=size)
                added = await self.storage.add(
                    _encrypt_sized(encryptor, pieces),
                    progress=progress,
                    size=encryptor.envelope_size,
                    verify=False,
                )
            else:
                added, size = await self._add_unsized(key, name, media, pieces, progress)
        finally:
            closer()
        row = FileRow(added.cid, owner, name, media, size, stanza, int(self._now()))
        self.db.add_file(row)
        return MeshFile.of(row)

    async def _add_unsized(
        self,
        key: FileKey,
        name: str,
        media: str,
        pieces: AsyncIterator[bytes],
        progress: ProgressCallback | None,
    ) -> tuple[AddResult, int]:
        # The header holds the size, so for a stream of unknown length the chunks are sealed
        # first and spooled, as ciphertext only, to a temp file; then header + chunks go in.
        spool_dir = self.home / "tmp"
        spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        encryptor = UnsizedEncryptor(key, name=name, media_type=media)
        with tempfile.TemporaryFile(dir=spool_dir) as spool:
            async for piece in pieces:
                sealed = encryptor.push(piece)
                if sealed:
                    await asyncio.to_thread(spool.write, sealed)
            header, final = encryptor.finish()
            await asyncio.to_thread(spool.write, final)

            async def envelope() -> AsyncIterator[bytes]:
                yield header
                while chunk := await asyncio.to_thread(spool.read, PIECE):
                    yield chunk

            envelope_size = len(header) + spool.seek(0, os.SEEK_END)
            spool.seek(0)
            added = await self.storage.add(
                envelope(), progress=progress, size=envelope_size, verify=False
            )
            return added, encryptor.size

    def get(self, cid: str) -> MeshFile:
        cid = normalize_cid(cid)
        row = self.db.file(cid)
        if row is None:
            raise NotFoundError(
                f"no file {cid} was put from this home", hint="see 'ipfs-share files'"
            )
        return MeshFile.of(row)

    def list(self, *, owner: str | None = None) -> list[MeshFile]:
        return [MeshFile.of(r) for r in self.db.files(owner=owner)]

    async def remove(self, cid: str) -> MeshFile:
        """Unpin the ciphertext here (see the module docstring for what that does not do)."""
        cid = normalize_cid(cid)
        row = self.db.file(cid)
        if row is None or row.state != "stored":
            raise NotFoundError(f"no stored file {cid} in this home")
        # The record goes first: a crash between the two leaves a pinned file marked removed
        # (harmless), never a "stored" record whose content garbage collection may delete.
        self.db.set_file_state(cid, "removed")
        await self.storage.pin_rm(cid)
        return MeshFile.of(FileRow(**{**_as_dict(row), "state": "removed"}))

    def file_key(self, cid: str, my_key: EncryptionKey) -> FileKey:
        """The file key of a file we put, from the stanza wrapped to ourselves."""
        row = self.db.file(cid)
        if row is None:
            raise NotFoundError(f"no file {cid} was put from this home")
        return unwrap([Stanza.from_bytes(row.stanza)], my_key)

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
        header, prefix = await read_header(self.storage, cid, file_key)
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


async def read_header(storage: Storage, cid: str, file_key: FileKey) -> tuple[Header, bytes]:
    """The authenticated header of the envelope at ``cid`` and every byte read (header
    included).

    One request reads the header and, for a small file, all of it (a 1 KiB open costs one
    round trip); a long header costs a second."""
    want = 96 * 1024
    data = b"".join([p async for p in storage.cat(cid, offset=0, length=want)])
    result = decode_header(data, file_key)
    if isinstance(result, NeedMore):
        more = b"".join(
            [p async for p in storage.cat(cid, offset=len(data), length=result.total - len(data))]
        )
        data += more
        result = decode_header(data, file_key)
        if isinstance(result, NeedMore):
            raise StoreError(f"the envelope {cid} ends inside its header")
    return result, data


def _as_dict(row: FileRow) -> dict[str, Any]:
    return {f: getattr(row, f) for f in row.__dataclass_fields__}


async def _encrypt_sized(
    encryptor: Encryptor, pieces: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    async for piece in pieces:
        out = encryptor.push(piece)
        if out:
            yield out
    yield encryptor.finish()


def _open_source(data: PutSource) -> tuple[int | None, AsyncIterator[bytes], Callable[[], None]]:
    """(size if known, an async iterator of plaintext pieces, a close function)."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data).cast("B")

        async def from_memory() -> AsyncIterator[bytes]:
            for i in range(0, len(view), PIECE):
                yield bytes(view[i : i + PIECE])

        return len(view), from_memory(), lambda: None
    if isinstance(data, os.PathLike):
        path = Path(data)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the returned closer
        except OSError as exc:
            raise InvalidInputError(
                f"cannot read {path}: {exc.strerror}", hint="check the path and its permissions"
            ) from exc
        return os.fstat(f.fileno()).st_size, _read_file(f), f.close
    if hasattr(data, "read"):
        stream = cast(IO[bytes], data)
        size: int | None = None
        try:
            if stream.seekable():
                here = stream.tell()
                size = stream.seek(0, os.SEEK_END) - here
                stream.seek(here)
        except (OSError, ValueError):
            size = None
        return size, _read_file(stream), lambda: None
    if isinstance(data, AsyncIterable):
        return None, _checked(data), lambda: None
    raise InvalidInputError(
        f"expected bytes, str, a path, a binary file or an async iterator of bytes, "
        f"found {type(data).__name__}"
    )


async def _read_file(f: IO[bytes]) -> AsyncIterator[bytes]:
    while piece := await asyncio.to_thread(f.read, PIECE):
        if not isinstance(piece, bytes | bytearray):
            raise InvalidInputError("expected a file opened in binary mode ('rb')")
        yield bytes(piece)


async def _checked(source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for piece in source:
        if not isinstance(piece, bytes | bytearray | memoryview):
            raise InvalidInputError(
                f"expected the async iterator to yield bytes, found {type(piece).__name__}"
            )
        if piece:
            yield bytes(piece)
