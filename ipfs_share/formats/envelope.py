"""The envelope: one encrypted file, as stored in IPFS (docs/spec/envelope.md).

::

    header = "IPSE" || 01 || 10 || payload nonce (16) || u32be(L) || encrypted metadata (L)
    chunks = chunk 0 || chunk 1 || ... || chunk n-1          (65552 bytes each but the last)

The metadata (name, media type, plaintext size) is a strict dag-cbor map, padded with zeros
to a multiple of 64 bytes and sealed with the metadata key, the 26 bytes before it as
associated data. Chunks are :mod:`ipfs_share.crypto.stream` chunks. Because the size is
in the header, every reader knows how many chunks follow, which one is final and where
each starts: chunk i is at ``header.length + i * 65552``.

>>> from ipfs_share.crypto.random import DeterministicRng
>>> file_key = FileKey.generate(rng=DeterministicRng(b"doc"))
>>> blob = encrypt(file_key, b"hello", name="a.txt", media_type="text/plain",
...                rng=DeterministicRng(b"nonce"))
>>> len(blob)   # 26 + 64 + 16 (header) + 5 + 16 (one chunk)
127
>>> metadata, plaintext = decrypt(file_key, blob)
>>> metadata, plaintext
(Metadata(name='a.txt', media_type='text/plain', size=5), b'hello')

Streaming, with pieces of any size, in flat memory:

>>> enc = Encryptor(file_key, name="b.bin", media_type="application/octet-stream", size=70000)
>>> out = enc.push(b"x" * 30000) + enc.push(b"x" * 40000) + enc.finish()
>>> dec = Decryptor(file_key)
>>> back = b"".join(dec.push(out[i : i + 1000]) for i in range(0, len(out), 1000))
>>> dec.finish(); back == b"x" * 70000, dec.header.chunk_count
(True, 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ipfs_share.crypto.random import Rng, random_bytes
from ipfs_share.crypto.stream import (
    CHUNK_SIZE,
    DECRYPTION_FAILED,
    PAYLOAD_NONCE_SIZE,
    SEALED_CHUNK_SIZE,
    TAG_SIZE,
    FileKey,
    PayloadKey,
    derive_payload_key,
    open_chunk,
    open_chunks_into,
    open_metadata,
    seal_chunk,
    seal_chunks_into,
    seal_metadata,
)
from ipfs_share.errors import DecryptionError, FormatError, InvalidInputError, IpfsShareError
from ipfs_share.formats import dagcbor

__all__ = [
    "CHUNK_SIZE",
    "MAGIC",
    "MAX_HEADER_SIZE",
    "MAX_METADATA_SIZE",
    "MAX_SIZE",
    "METADATA_PADDING",
    "PREFIX_SIZE",
    "SEALED_CHUNK_SIZE",
    "VERSION",
    "ChunkRange",
    "Decryptor",
    "Encryptor",
    "FileKey",
    "Header",
    "Metadata",
    "NeedMore",
    "PayloadKey",
    "UnsizedEncryptor",
    "chunk_count",
    "chunk_range",
    "decode_header",
    "decrypt",
    "decrypt_chunk",
    "decrypt_range",
    "encrypt",
    "encrypt_header",
    "envelope_size",
    "header_length",
]

MAGIC: Final = b"IPSE"
VERSION: Final = 1
CHUNK_SIZE_EXPONENT: Final = 16  # 2^16 = CHUNK_SIZE; the only value version 1 allows
PREFIX_SIZE: Final = 4 + 1 + 1 + PAYLOAD_NONCE_SIZE + 4  # 26: enough to know the header length
METADATA_PADDING: Final = 64  # padded metadata is a multiple of this: hides name lengths
MAX_METADATA_SIZE: Final = 16384  # padded metadata plaintext, bytes
MAX_HEADER_SIZE: Final = PREFIX_SIZE + MAX_METADATA_SIZE + TAG_SIZE  # 16426
MAX_MEDIA_TYPE_SIZE: Final = 255
MAX_SIZE: Final = 2**64 - 1  # plaintext bytes; the dag-cbor uint limit
DEFAULT_MEDIA_TYPE: Final = "application/octet-stream"

_METADATA_KEYS: Final = frozenset(("name", "type", "size"))
_HEAD_LENGTHS: Final = {24: 1, 25: 2, 26: 4, 27: 8}  # CBOR additional info -> argument bytes


@dataclass(frozen=True, slots=True)
class Metadata:
    """What the envelope says about its plaintext; encrypted in the header.

    >>> Metadata("a.txt", "text", 1)
    Traceback (most recent call last):
    ...
    ipfs_share.errors.InvalidInputError: expected a media type such as 'text/plain', found 'text'
    """

    name: str
    media_type: str
    size: int

    def __post_init__(self) -> None:
        if type(self.name) is not str:
            raise InvalidInputError(f"expected the name as str, found {type(self.name).__name__}")
        try:
            self.name.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError("expected a name that is valid unicode text") from None
        if not _is_media_type(self.media_type):
            # docs/spec/envelope.md: printable ASCII, 1 to 255 bytes, a '/' after the start.
            raise InvalidInputError(
                f"expected a media type such as 'text/plain', found {_preview(self.media_type)}"
            )
        if type(self.size) is not int or not 0 <= self.size <= MAX_SIZE:
            raise InvalidInputError(f"expected a size in 0..2^64-1, found {self.size!r}")


@dataclass(frozen=True, slots=True)
class NeedMore:
    """:func:`decode_header` needs ``total`` bytes from the start of the envelope."""

    total: int


@dataclass(frozen=True, slots=True)
class ChunkRange:
    """Where a plaintext range lives in the envelope (see :func:`chunk_range`).

    Fetch envelope bytes ``start:end``, decrypt chunks ``first_chunk`` to ``last_chunk``,
    drop ``skip`` bytes from the front and keep ``length`` bytes.
    """

    first_chunk: int
    chunk_count: int
    start: int
    end: int
    skip: int
    length: int

    @property
    def last_chunk(self) -> int:
        return self.first_chunk + self.chunk_count - 1


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded, authenticated header; ``length`` is where chunk 0 starts."""

    metadata: Metadata
    payload_nonce: bytes
    length: int
    payload_key: PayloadKey = field(repr=False)

    @property
    def size(self) -> int:
        return self.metadata.size

    @property
    def chunk_count(self) -> int:
        return chunk_count(self.metadata.size)

    @property
    def final_index(self) -> int:
        return self.chunk_count - 1

    @property
    def envelope_size(self) -> int:
        """Header plus chunks: the exact byte length of the whole envelope."""
        return self.length + _payload_size(self.metadata.size)

    def range(self, offset: int, length: int) -> ChunkRange:
        return chunk_range(self.metadata.size, offset, length, header_length=self.length)


# --- sizes and ranges --------------------------------------------------------------------


def chunk_count(size: int) -> int:
    """Chunks for ``size`` plaintext bytes: ceil(size / 65536), and 1 for an empty file.

    >>> [chunk_count(n) for n in (0, 1, 65536, 65537)]
    [1, 1, 1, 2]
    """
    return max(1, -(-size // CHUNK_SIZE))


def envelope_size(size: int, metadata_length: int) -> int:
    """Total envelope bytes for ``size`` plaintext bytes and ``L`` encrypted metadata bytes."""
    return PREFIX_SIZE + metadata_length + _payload_size(size)


def chunk_range(size: int, offset: int, length: int, *, header_length: int) -> ChunkRange:
    """Map plaintext bytes ``offset:offset+length`` of a ``size``-byte file to envelope bytes.

    ``length`` is clamped to the end of the file; an offset past the end is refused.

    >>> r = chunk_range(200_000, 65_530, 10, header_length=106)
    >>> (r.first_chunk, r.last_chunk, r.start, r.end, r.skip, r.length)
    (0, 1, 106, 131210, 65530, 10)
    """
    if type(offset) is not int or type(length) is not int or offset < 0 or length < 0:
        raise InvalidInputError(
            f"expected a non-negative offset and length, found {offset!r}, {length!r}"
        )
    if offset > size:
        raise InvalidInputError(f"expected an offset within the {size}-byte file, found {offset}")
    length = min(length, size - offset)
    first = min(offset // CHUNK_SIZE, chunk_count(size) - 1)
    start = header_length + first * SEALED_CHUNK_SIZE
    if length == 0:
        return ChunkRange(first, 0, start, start, 0, 0)
    last = (offset + length - 1) // CHUNK_SIZE
    end = header_length + last * SEALED_CHUNK_SIZE + _sealed_chunk_length(size, last)
    return ChunkRange(first, last - first + 1, start, end, offset - first * CHUNK_SIZE, length)


# --- the header ----------------------------------------------------------------------------


def encrypt_header(
    file_key: FileKey, *, name: str, media_type: str, size: int, rng: Rng | None = None
) -> tuple[bytes, PayloadKey]:
    """A fresh header (random payload nonce) and the payload key for the chunks after it.

    Raises :class:`InvalidInputError` for metadata that does not fit the format.
    """
    nonce = random_bytes(PAYLOAD_NONCE_SIZE, rng)
    return _header(file_key, nonce, Metadata(name, media_type, size))


def _header(file_key: FileKey, nonce: bytes, metadata: Metadata) -> tuple[bytes, PayloadKey]:
    padded = _encode_metadata(metadata)
    prefix = (
        MAGIC
        + bytes((VERSION, CHUNK_SIZE_EXPONENT))
        + nonce
        + (len(padded) + TAG_SIZE).to_bytes(4, "big")
    )
    sealed = seal_metadata(file_key, nonce, padded, prefix)
    return prefix + sealed, derive_payload_key(file_key, nonce)


def header_length(prefix: bytes | bytearray) -> int | None:
    """The header's length from its first 26 bytes (None if fewer are given).

    Checks, before any crypto, what can be checked: magic, version, chunk size, and the
    metadata length. Raises :class:`FormatError`; the bytes given may be a prefix of those.
    """
    given = len(prefix)
    if prefix[:4] != MAGIC[:given]:
        raise FormatError(f"expected the envelope magic 'IPSE', found {bytes(prefix[:4])!r}")
    if given > 4 and prefix[4] != VERSION:
        raise FormatError(f"expected envelope version {VERSION}, found {prefix[4]}")
    if given > 5 and prefix[5] != CHUNK_SIZE_EXPONENT:
        raise FormatError(f"expected chunk size exponent {CHUNK_SIZE_EXPONENT}, found {prefix[5]}")
    if given < PREFIX_SIZE:
        return None
    sealed = int.from_bytes(prefix[22:26], "big")
    padded = sealed - TAG_SIZE
    if not METADATA_PADDING <= padded <= MAX_METADATA_SIZE or padded % METADATA_PADDING:
        raise FormatError(
            "expected an encrypted metadata length of 16 + a multiple of 64, "
            f"from 80 to {MAX_METADATA_SIZE + TAG_SIZE}, found {sealed}"
        )
    return PREFIX_SIZE + sealed


def decode_header(prefix: bytes, file_key: FileKey) -> Header | NeedMore:
    """Decode and authenticate the header at the start of ``prefix``.

    Returns :class:`NeedMore` when ``prefix`` is too short (after at most two rounds the
    caller knows the exact length); ``prefix`` may run on into the chunks.
    :class:`FormatError` for a malformed prefix (before any crypto),
    :class:`DecryptionError` if the header does not authenticate under ``file_key``.
    """
    data = bytes(prefix[:MAX_HEADER_SIZE])
    length = header_length(data)
    if length is None:
        return NeedMore(PREFIX_SIZE)
    if len(data) < length:
        return NeedMore(length)
    nonce = data[6:22]
    padded = open_metadata(file_key, nonce, data[PREFIX_SIZE:length], data[:PREFIX_SIZE])
    metadata = _decode_metadata(padded)
    return Header(metadata, nonce, length, derive_payload_key(file_key, nonce))


def _encode_metadata(metadata: Metadata) -> bytes:
    encoded = dagcbor.encode(
        {"name": metadata.name, "type": metadata.media_type, "size": metadata.size}
    )
    padded_length = -(-len(encoded) // METADATA_PADDING) * METADATA_PADDING
    if padded_length > MAX_METADATA_SIZE:
        raise InvalidInputError(
            f"expected metadata of at most {MAX_METADATA_SIZE} bytes, found {len(encoded)} "
            "(the name is too long)"
        )
    return encoded + bytes(padded_length - len(encoded))


def _decode_metadata(padded: bytes) -> Metadata:
    # Authenticated already, so only the file key's holder can have made these bytes; they
    # are checked as strictly as any input, and every failure is the same coarse error.
    end = _metadata_map_end(padded)
    if end is None or len(padded) - end >= METADATA_PADDING or any(padded[end:]):
        raise DecryptionError(DECRYPTION_FAILED)
    try:
        value: Any = dagcbor.decode(padded[:end])
    except FormatError:
        raise DecryptionError(DECRYPTION_FAILED) from None
    if type(value) is not dict or value.keys() != _METADATA_KEYS:
        raise DecryptionError(DECRYPTION_FAILED)
    name, media_type, size = value["name"], value["type"], value["size"]
    if type(name) is not str or type(media_type) is not str or type(size) is not int:
        raise DecryptionError(DECRYPTION_FAILED)
    try:
        return Metadata(name, media_type, size)
    except InvalidInputError:
        raise DecryptionError(DECRYPTION_FAILED) from None


def _metadata_map_end(data: bytes) -> int | None:
    """End of the metadata map: a3 then six items, each a uint (major 0) or a text string
    (major 3). dag-cbor is self-delimiting, so this finds where the zero padding starts;
    anything else is no valid metadata (the strict decode then checks canonical form)."""
    if not data or data[0] != 0xA3:
        return None
    pos = 1
    for _ in range(6):
        if pos >= len(data):
            return None
        initial = data[pos]
        major, info = initial >> 5, initial & 0x1F
        pos += 1
        if major not in (0, 3) or info > 27:
            return None
        if info < 24:
            argument = info
        else:
            width = _HEAD_LENGTHS[info]
            argument = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        if major == 3:
            pos += argument
        if pos > len(data):
            return None
    return pos


# --- chunks ------------------------------------------------------------------------------


def decrypt_chunk(
    key: PayloadKey, index: int, ciphertext_chunk: bytes | memoryview, *, final: bool
) -> bytes:
    """Open one chunk for a range read. The caller says whether ``index`` is the final
    chunk (``index == header.final_index``, from the size); if the sealer disagreed, the
    chunk does not authenticate. Every failure is :class:`DecryptionError`.
    """
    n = len(ciphertext_chunk)
    if final:
        # Only an empty file has an empty final chunk.
        if not (TAG_SIZE < n <= SEALED_CHUNK_SIZE or (index == 0 and n == TAG_SIZE)):
            raise DecryptionError(DECRYPTION_FAILED)
    elif n != SEALED_CHUNK_SIZE:
        raise DecryptionError(DECRYPTION_FAILED)
    return open_chunk(key, index, ciphertext_chunk, final=final)


def decrypt_range(header: Header, ciphertext: bytes | memoryview, span: ChunkRange) -> bytes:
    """Plaintext of ``span`` from ``ciphertext`` = envelope bytes ``span.start:span.end``.

    >>> from ipfs_share.crypto.random import DeterministicRng
    >>> key = FileKey(bytes(32))
    >>> data = bytes(range(256)) * 1000
    >>> blob = encrypt(key, data, rng=DeterministicRng(b""))
    >>> header = decode_header(blob, key)
    >>> span = header.range(65_530, 10)
    >>> decrypt_range(header, blob[span.start : span.end], span) == data[65_530:65_540]
    True
    """
    if len(ciphertext) != span.end - span.start:
        raise DecryptionError(DECRYPTION_FAILED)
    if span.chunk_count == 0:
        return b""
    view = memoryview(ciphertext)
    key = header.payload_key
    final_in_span = span.last_chunk == header.final_index
    whole = span.chunk_count - final_in_span
    cut = whole * SEALED_CHUNK_SIZE
    tail = decrypt_chunk(key, header.final_index, view[cut:], final=True) if final_in_span else b""
    out = bytearray(whole * CHUNK_SIZE + len(tail))
    plain = memoryview(out)
    open_chunks_into(key, view[:cut], span.first_chunk, plain[: whole * CHUNK_SIZE])
    plain[whole * CHUNK_SIZE :] = tail
    return bytes(plain[span.skip : span.skip + span.length])


class Encryptor:
    """Encrypts a stream of known size: ``push`` pieces of any size, then ``finish``.

    The output of the first call starts with the header; concatenated, the outputs are
    the envelope. Memory stays flat: one partial chunk is buffered, in a buffer made once.
    Each output is a new buffer the caller owns; chunks are sealed straight into it, so
    each byte is read once and written once. Pushing more or fewer bytes than ``size``
    raises :class:`InvalidInputError`.
    """

    def __init__(
        self,
        file_key: FileKey,
        *,
        name: str,
        media_type: str,
        size: int,
        rng: Rng | None = None,
    ) -> None:
        self.header, self._key = encrypt_header(
            file_key, name=name, media_type=media_type, size=size, rng=rng
        )
        self.size = size
        self.envelope_size = len(self.header) + _payload_size(size)
        self._final_index = chunk_count(size) - 1
        self._index = 0
        self._remaining = size
        self._partial = _Partial(CHUNK_SIZE)
        self._started = False
        self._finished = False

    def push(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Encrypt ``data``; returns the ciphertext ready so far (possibly empty)."""
        view = _byte_view(data)
        out = bytearray(self._ready_size(len(view)))
        self._seal(view, memoryview(out))
        return out

    def push_into(self, data: bytes | bytearray | memoryview, out: memoryview) -> int:
        """:meth:`push`, writing the ciphertext into ``out`` instead of a new buffer (one
        the caller reuses, at least :meth:`max_output` of ``len(data)`` bytes); returns how
        many bytes it wrote.

        >>> enc = Encryptor(FileKey(bytes(32)), name="", media_type="a/b", size=70000)
        >>> buffer = memoryview(bytearray(enc.max_output(70000)))
        >>> n = enc.push_into(bytes(70000), buffer)
        >>> n == len(enc.header) + SEALED_CHUNK_SIZE   # the final chunk waits for finish
        True
        """
        view = _byte_view(data)
        n = self._ready_size(len(view))
        if len(out) < n:
            raise ValueError(f"expected an output of at least {n} bytes, found {len(out)}")
        self._seal(view, out[:n])
        return n

    def max_output(self, n: int) -> int:
        """The most bytes one push of ``n`` bytes can return.

        >>> enc = Encryptor(FileKey(bytes(32)), name="", media_type="a/b", size=1 << 20)
        >>> enc.max_output(1 << 20) == len(enc.header) + 16 * SEALED_CHUNK_SIZE
        True
        """
        return len(self.header) + -(-n // CHUNK_SIZE) * SEALED_CHUNK_SIZE

    def _ready_size(self, n: int) -> int:
        """The bytes a push of ``n`` bytes returns (the checks of a push come first)."""
        if self._finished:
            raise InvalidInputError("expected no push after finish")
        if n > self._remaining:
            raise InvalidInputError(
                f"expected {self.size} plaintext bytes in all, found at least "
                f"{self.size - self._remaining + n}"
            )
        head = 0 if self._started else len(self.header)
        return head + self._ready(n) * SEALED_CHUNK_SIZE

    def _ready(self, n: int) -> int:
        # The chunks a push of n bytes completes, all before the final one (finish() seals
        # that).
        return min((self._partial.fill + n) // CHUNK_SIZE, self._final_index - self._index)

    def _seal(self, view: memoryview, sink: memoryview) -> None:
        """Seal ``view`` into ``sink``, of exactly :meth:`_ready_size` bytes."""
        ready = self._ready(len(view))
        self._remaining -= len(view)
        pos = 0
        if not self._started:
            pos = len(self.header)
            sink[:pos] = self.header
            self._started = True
        partial = self._partial
        if ready and partial.fill:
            view = partial.top_up(view)
            seal_chunks_into(
                self._key, partial.data(), self._index, sink[pos : pos + SEALED_CHUNK_SIZE]
            )
            partial.clear()
            self._index += 1
            pos += SEALED_CHUNK_SIZE
            ready -= 1
        if ready:
            cut = ready * CHUNK_SIZE
            seal_chunks_into(self._key, view[:cut], self._index, sink[pos:])
            self._index += ready
            view = view[cut:]
        partial.add(view)

    def finish(self) -> bytes:
        """Seal the final chunk (flag 1) and return the last bytes of the envelope."""
        if self._finished:
            raise InvalidInputError("expected one finish, found a second")
        if self._remaining:
            raise InvalidInputError(
                f"expected {self.size} plaintext bytes, found {self.size - self._remaining}"
            )
        self._finished = True
        last = seal_chunk(self._key, self._final_index, self._partial.data(), final=True)
        self._partial.clear()
        return last if self._started else self.header + last


class UnsizedEncryptor:
    """Encrypts a stream whose size is not known up front (a pipe, an async iterator).

    The chunks do not depend on the header, only on the payload key, which comes from the
    file key and a payload nonce chosen at the start; so the chunks can be produced first
    and the header, which holds the size, last. The caller spools the chunks (ciphertext
    only: no plaintext reaches a disk) and stores header + chunks once :meth:`finish` has
    returned. For the same nonce the envelope is byte for byte what :class:`Encryptor` makes.

    >>> from ipfs_share.crypto.random import DeterministicRng
    >>> key = FileKey(bytes(32))
    >>> enc = UnsizedEncryptor(key, name="x", media_type="text/plain",
    ...                        rng=DeterministicRng(b"n"))
    >>> chunks = enc.push(b"a" * 70000) + enc.push(b"b")
    >>> header, last = enc.finish()
    >>> decrypt(key, header + chunks + last)[1] == b"a" * 70000 + b"b"
    True
    """

    def __init__(
        self, file_key: FileKey, *, name: str, media_type: str, rng: Rng | None = None
    ) -> None:
        Metadata(name, media_type, 0)  # refuse bad metadata before any work
        self._file_key = file_key
        self._name = name
        self._media_type = media_type
        self._nonce = random_bytes(PAYLOAD_NONCE_SIZE, rng)
        self._key = derive_payload_key(file_key, self._nonce)
        # Up to one chunk is held back: the final chunk is sealed with its own flag, and
        # only the end of the stream says which chunk that is.
        self._held = _Partial(CHUNK_SIZE)
        self._index = 0
        self._finished = False
        self.size = 0

    def push(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Encrypt ``data``; returns the chunks now known not to be the final one."""
        if self._finished:
            raise InvalidInputError("expected no push after finish")
        view = _byte_view(data)
        self.size += len(view)
        if self.size > MAX_SIZE:
            raise InvalidInputError(f"expected at most {MAX_SIZE} bytes, found more")
        held = self._held
        # Every whole chunk with at least one byte after it is not the final chunk.
        ready = max(0, held.fill + len(view) - 1) // CHUNK_SIZE
        out = bytearray(ready * SEALED_CHUNK_SIZE)
        sink = memoryview(out)
        pos = 0
        if ready and held.fill:
            # The held bytes are at most one chunk: top them up to exactly one.
            take = CHUNK_SIZE - held.fill
            held.add(view[:take])
            view = view[take:]
            seal_chunks_into(self._key, held.data(), self._index, sink[:SEALED_CHUNK_SIZE])
            held.clear()
            self._index += 1
            pos = SEALED_CHUNK_SIZE
            ready -= 1
        if ready:
            cut = ready * CHUNK_SIZE
            seal_chunks_into(self._key, view[:cut], self._index, sink[pos:])
            self._index += ready
            view = view[cut:]
        held.add(view)
        return out

    def finish(self) -> tuple[bytes, bytes]:
        """(the header, the final chunk): the envelope is header + every push + final chunk."""
        if self._finished:
            raise InvalidInputError("expected one finish, found a second")
        self._finished = True
        final = seal_chunk(self._key, self._index, self._held.data(), final=True)
        self._held.clear()
        metadata = Metadata(self._name, self._media_type, self.size)
        header, _ = _header(self._file_key, self._nonce, metadata)
        return header, final


class Decryptor:
    """Decrypts an envelope fed in pieces of any size: ``push`` each piece, then ``finish``.

    Each chunk's plaintext is released once that chunk authenticates, so a caller MUST NOT
    act on the output (commit a file, answer "ok") until :meth:`finish` has returned:
    only then is it known that nothing was cut off. Trailing data, reordered or repeated
    chunks, a flipped bit anywhere: all raise :class:`DecryptionError` (the header's
    structure may raise :class:`FormatError` first). After an error every call raises.

    Chunks are opened straight from the pieces pushed (only a chunk split between two
    pieces is copied, into a buffer made once) into one new buffer per push.
    """

    def __init__(self, file_key: FileKey) -> None:
        self._file_key = file_key
        self._header: Header | None = None
        self._head = bytearray()
        self._need = PREFIX_SIZE
        self._partial = _Partial(SEALED_CHUNK_SIZE)
        self._index = 0
        self._final_index = 0
        self._remaining = 0
        self._failed = False
        self._finished = False

    @classmethod
    def after(cls, file_key: FileKey, header: Header) -> Decryptor:
        """A decryptor past ``header``, which :func:`decode_header` returned for
        ``file_key`` (so it is authenticated already): push the envelope from byte
        ``header.length`` on. A caller that decoded the header to learn the file's size and
        name then does not decode it a second time; the chunks are checked as ever, under
        the payload key the header holds.

        >>> from ipfs_share.crypto.random import DeterministicRng
        >>> key = FileKey(bytes(32))
        >>> blob = encrypt(key, b"hello", rng=DeterministicRng(b""))
        >>> header = decode_header(blob, key)
        >>> dec = Decryptor.after(key, header)
        >>> bytes(dec.push(blob[header.length :]))
        b'hello'
        >>> dec.finish()
        """
        decryptor = cls(file_key)
        decryptor._start(header)
        return decryptor

    @property
    def header(self) -> Header | None:
        """The authenticated header, once enough bytes were pushed (None before)."""
        return self._header

    def push(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Decrypt ``data``; returns the plaintext of the chunks completed by it."""
        return self.push_all((data,))

    def push_all(self, pieces: Iterable[bytes | bytearray | memoryview]) -> bytearray:
        """Decrypt consecutive pieces into one buffer: what ``push`` of their concatenation
        returns, without concatenating them."""
        if self._failed or self._finished:
            raise DecryptionError(DECRYPTION_FAILED)
        try:
            return self._push([_byte_view(p) for p in pieces])
        except IpfsShareError:
            self._failed = True
            raise

    def finish(self) -> None:
        """Return if the final chunk arrived and authenticated; else :class:`DecryptionError`."""
        if self._failed or self._finished or self._header is None:
            self._failed = True
            raise DecryptionError(DECRYPTION_FAILED)
        if self._index <= self._final_index:
            self._failed = True
            raise DecryptionError(DECRYPTION_FAILED)
        self._finished = True

    def _push(self, views: list[memoryview]) -> bytearray:
        if self._header is None:
            views = [self._take_header(v) if self._header is None else v for v in views]
            if self._header is None:
                return bytearray()
        header = self._header
        n = sum(len(v) for v in views)
        if n > self._remaining:
            raise DecryptionError(DECRYPTION_FAILED)  # data after the final chunk
        if not n:
            return bytearray()  # nothing new (the payload is never empty: 16 bytes or more)
        self._remaining -= n
        key = header.payload_key
        partial = self._partial
        # Non-final chunks these pieces complete, then the final one if the last byte of the
        # envelope is among them (the size says where it starts, so it is left whole).
        ready = min((partial.fill + n) // SEALED_CHUNK_SIZE, self._final_index - self._index)
        final = self._remaining == 0
        final_length = header.size - self._final_index * CHUNK_SIZE if final else 0
        out = bytearray(ready * CHUNK_SIZE + final_length)
        sink = memoryview(out)
        pos = 0
        for view in views:
            if ready and partial.fill:
                view = partial.top_up(view)
                if partial.fill < SEALED_CHUNK_SIZE:
                    continue  # this piece did not complete it
                open_chunks_into(key, partial.data(), self._index, sink[pos : pos + CHUNK_SIZE])
                partial.clear()
                self._index += 1
                pos += CHUNK_SIZE
                ready -= 1
            whole = min(len(view) // SEALED_CHUNK_SIZE, ready)
            if whole:
                cut = whole * SEALED_CHUNK_SIZE
                size = whole * CHUNK_SIZE
                open_chunks_into(key, view[:cut], self._index, sink[pos : pos + size])
                self._index += whole
                pos += size
                ready -= whole
                view = view[cut:]
            partial.add(view)  # part of the next chunk, or of the final one
        if final:
            sink[pos:] = decrypt_chunk(key, self._index, partial.data(), final=True)
            partial.clear()
            self._index += 1
        return out

    def _take_header(self, view: memoryview) -> memoryview:
        # Buffer only what the header needs (at most 16 426 bytes), never the chunks.
        head = self._head
        while True:
            take = self._need - len(head)
            head += view[:take]
            view = view[take:]
            if len(head) < self._need:
                header_length(head)  # fail fast on a bad magic, version or chunk size
                return view
            result = decode_header(bytes(head), self._file_key)
            if isinstance(result, NeedMore):
                self._need = result.total
                continue
            self._head = bytearray()
            self._start(result)
            return view

    def _start(self, header: Header) -> None:
        self._header = header
        self._final_index = header.final_index
        self._remaining = _payload_size(header.size)


class _Partial:
    """A chunk in the making: a buffer allocated once, filled through memoryviews (a
    bytearray grown with += would be reallocated, and a bytearray slice assigned from bytes
    copies the bytes into a temporary first)."""

    __slots__ = ("_buf", "_view", "fill")

    def __init__(self, capacity: int) -> None:
        self._buf = bytearray(capacity)
        self._view = memoryview(self._buf)
        self.fill = 0

    def add(self, data: memoryview) -> None:
        n = len(data)
        if n:
            self._view[self.fill : self.fill + n] = data
            self.fill += n

    def top_up(self, data: memoryview) -> memoryview:
        """Fill to capacity from ``data``; return what is left of it."""
        take = len(self._buf) - self.fill
        self.add(data[:take])
        return data[take:]

    def data(self) -> memoryview:
        return self._view[: self.fill]

    def clear(self) -> None:
        self.fill = 0


# --- whole-buffer helpers ----------------------------------------------------------------


def encrypt(
    file_key: FileKey,
    plaintext: bytes,
    *,
    name: str = "",
    media_type: str = DEFAULT_MEDIA_TYPE,
    rng: Rng | None = None,
) -> bytes:
    """The whole envelope of ``plaintext`` (for small data; stream large files)."""
    encryptor = Encryptor(file_key, name=name, media_type=media_type, size=len(plaintext), rng=rng)
    envelope = encryptor.push(plaintext)
    envelope += encryptor.finish()
    return bytes(envelope)


def decrypt(file_key: FileKey, envelope: bytes) -> tuple[Metadata, bytes]:
    """The metadata and plaintext of a whole envelope; the strict inverse of :func:`encrypt`."""
    decryptor = Decryptor(file_key)
    plaintext = decryptor.push(envelope)
    decryptor.finish()
    assert decryptor.header is not None  # finish() guarantees it
    return decryptor.header.metadata, bytes(plaintext)


# --- helpers -----------------------------------------------------------------------------


def _payload_size(size: int) -> int:
    return size + TAG_SIZE * chunk_count(size)


def _sealed_chunk_length(size: int, index: int) -> int:
    final = chunk_count(size) - 1
    if index < final:
        return SEALED_CHUNK_SIZE
    return size - final * CHUNK_SIZE + TAG_SIZE


def _byte_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    if view.itemsize != 1 or view.ndim != 1:
        view = view.cast("B")
    return view


def _is_media_type(value: object) -> bool:
    return (
        type(value) is str
        and 0 < len(value) <= MAX_MEDIA_TYPE_SIZE
        and value.isascii()
        and value.isprintable()
        and "/" in value[1:]
    )


def _preview(value: object) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    return type(value).__name__
