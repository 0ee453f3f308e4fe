"""An opened file: the plaintext of an envelope, read whole, streamed, by range, or saved.

Opened through a capsule, it says who shared it: ``issuer`` (the did that signed the
capsule, and whose revocation list was checked) and ``issuer_name`` (that did's local
identity name or contact petname here, or None for a stranger).

Every byte handed out has been authenticated. Whole reads and streams end with the
decryptor's final check, so a truncated or extended envelope fails before ``read``
returns or iteration ends; a range read fetches and authenticates only the chunks that
hold the range.

``allow_download=False`` makes :meth:`OpenedFile.save` refuse. That is advice to honest
clients, nothing more: a modified client that decrypted the bytes can write them anywhere.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path

from ipfs_share.crypto.stream import FileKey
from ipfs_share.errors import DownloadNotAllowedError, InvalidInputError, StoreError
from ipfs_share.formats.envelope import Decryptor, Header, decrypt_range
from ipfs_share.local.files import fsync_dir
from ipfs_share.storage.base import Storage

__all__ = ["OpenedFile", "write_behind"]

PIECE = 4 << 20  # plaintext pieces of about this size (a verified cat releases 4 MiB batches)


async def write_behind(
    pieces: AsyncIterable[bytes | bytearray],
    write: Callable[[bytes | bytearray], object],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every piece with ``write`` (a blocking call: a file's or a pipe's) in a thread
    while the next piece is fetched, verified and decrypted here, so the disk or the
    reader of a pipe and the decryption overlap. One write at a time, in order: memory
    holds at most two pieces (each piece must be a buffer of its own, as an
    :class:`OpenedFile` hands out). ``progress`` gets the bytes written so far. Returns
    their count. If reading fails, or the caller is cancelled, the write in flight ends
    before the error goes up (the caller may then close what it writes to)."""
    done = 0
    writing: asyncio.Future[object] | None = None
    try:
        async for piece in pieces:
            if writing is not None:
                await asyncio.shield(writing)  # a cancel must not leave the thread writing
                if progress:
                    progress(done)
            writing = asyncio.ensure_future(asyncio.to_thread(write, piece))
            done += len(piece)
        if writing is not None:
            await asyncio.shield(writing)
            if progress:
                progress(done)
    finally:
        if writing is not None and not writing.done():
            await asyncio.wait([writing])  # a thread cannot be stopped: let it end
        if writing is not None and not writing.cancelled():
            writing.exception()  # collected (the error that stopped us is the one raised)
    return done


class OpenedFile:
    """A decryptable file. Cheap to make: only the header (and, for a small file, the rest)
    has been read."""

    def __init__(
        self,
        storage: Storage,
        cid: str,
        file_key: FileKey,
        header: Header,
        prefix: bytes,
        *,
        allow_download: bool = True,
        capsule: str | None = None,
        issuer: str | None = None,
        issuer_name: str | None = None,
    ) -> None:
        self._storage = storage
        self.cid = cid
        self._file_key = file_key
        self.header = header
        self._prefix = prefix  # the envelope's first bytes, header included, already read
        self.allow_download = allow_download
        self.capsule = capsule
        self.issuer = issuer
        self.issuer_name = issuer_name

    def __repr__(self) -> str:
        return (
            f"OpenedFile(name={self.name!r}, size={self.size}, cid={self.cid!r}, "
            f"issuer={self.issuer!r})"
        )

    @property
    def name(self) -> str:
        return self.header.metadata.name

    @property
    def media_type(self) -> str:
        return self.header.metadata.media_type

    @property
    def size(self) -> int:
        return self.header.metadata.size

    async def _payload(self) -> AsyncIterator[bytes | memoryview]:
        """The envelope's chunks: those already read, then the rest from the node."""
        yield memoryview(self._prefix)[self.header.length :]
        if len(self._prefix) < self.header.envelope_size:
            async for piece in self._storage.cat(self.cid, offset=len(self._prefix)):
                yield piece

    async def __aiter__(self) -> AsyncIterator[bytearray]:
        """The plaintext in pieces of about 4 MiB, each a new buffer the caller owns. The
        last piece is held back until the decryptor's final check passes, so a consumer
        that stops at the end never saw a truncated file."""
        # The header was authenticated when the file was opened: not decoded again.
        decryptor = Decryptor.after(self._file_key, self.header)
        pending = bytearray()
        batch: list[bytes | memoryview] = []
        batched = 0
        async for piece in self._payload():
            batch.append(piece)
            batched += len(piece)
            if batched < PIECE:
                continue
            # Decrypt a few verified pieces at once, into one buffer: fewer, larger
            # pieces for the consumer (each write to a file or pipe is a thread hop).
            out = decryptor.push_all(batch)
            batch, batched = [], 0
            if out:
                if pending:
                    yield pending
                pending = out
        out = decryptor.push_all(batch)
        decryptor.finish()
        for plain in (pending, out):
            if plain:
                yield plain

    async def read(self) -> bytes:
        """All of the plaintext (for small files; stream or save large ones)."""
        return b"".join([piece async for piece in self])

    async def text(self, encoding: str = "utf-8") -> str:
        data = await self.read()
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"expected {encoding} text, found bytes that are not ({exc.reason})",
                hint="read() returns the bytes",
            ) from None

    async def iter_range(
        self, offset: int, length: int, *, step: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        """Plaintext bytes ``offset:offset+length`` in pieces of at most ``step`` bytes,
        each fetched and authenticated as it is needed: flat memory for any range. Pieces
        end on multiples of ``step`` (keep it a multiple of 64 KiB), so no chunk is
        fetched or decrypted twice."""
        end = min(self.size, offset + length)
        while offset < end:
            n = min(step - offset % step, end - offset)
            yield await self.read_range(offset, n)
            offset += n

    async def read_range(self, offset: int, length: int) -> bytes:
        """Plaintext bytes ``offset:offset+length`` (clipped to the end), fetching and
        authenticating only the chunks that hold them."""
        span = self.header.range(offset, length)
        if span.end <= len(self._prefix):
            ciphertext = self._prefix[span.start : span.end]
        else:
            pieces = [
                p
                async for p in self._storage.cat(
                    self.cid, offset=span.start, length=span.end - span.start
                )
            ]
            ciphertext = b"".join(pieces)
        return decrypt_range(self.header, ciphertext, span)

    async def save(
        self,
        path: str | os.PathLike[str],
        *,
        offset: int = 0,
        length: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Path:
        """Write the plaintext (or bytes ``offset:offset+length`` of it) to ``path``
        atomically, 0600: a temp file beside it, renamed into place only after every byte
        authenticated. Refused when the owner did not allow downloads (see the module
        docstring for what that does and does not mean)."""
        if not self.allow_download:
            raise DownloadNotAllowedError(
                f"the owner shared {self.name or self.cid} for viewing only; it is not saved"
            )
        dest = Path(path)
        if await asyncio.to_thread(dest.is_dir):
            raise InvalidInputError(f"expected a file path, found the folder {dest}")
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        try:
            # 0600: decrypted plaintext is for its recipient, not for other users here.
            fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            f = os.fdopen(fd, "wb")
            try:
                whole = offset == 0 and length is None
                pieces = (
                    self
                    if whole
                    else self.iter_range(offset, self.size - offset if length is None else length)
                )
                await write_behind(pieces, f.write, progress)
                await asyncio.to_thread(f.flush)
                await asyncio.to_thread(os.fsync, f.fileno())
            finally:
                f.close()
            os.replace(tmp, dest)
            await asyncio.to_thread(fsync_dir, dest.parent)
        except OSError as exc:
            raise StoreError(f"cannot write {dest}: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return dest
