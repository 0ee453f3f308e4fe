"""The envelope's AEAD primitives: file and payload keys, chunk nonces, chunk seal/open.

This is the STREAM construction of age (C2SP age, "payload"), with ipfs-share's labels
and a header nonce of 16 bytes. The byte layout around it (header, metadata, ranges) is
:mod:`ipfs_share.formats.envelope`; docs/spec/envelope.md specifies both.

- payload key  = HKDF(file key, payload nonce, LABEL_PAYLOAD, 32)
- metadata key = HKDF(file key, payload nonce, LABEL_METADATA, 32)
- chunk i      = XChaCha20-Poly1305(payload key, nonce = 0^12 || u88be(i) || last, chunk)

XChaCha20-Poly1305 here is :mod:`ipfs_share.crypto.xchacha`: IETF ChaCha20-Poly1305 under
the subkey HChaCha20(key, nonce[0:16]). For every chunk of a real file (index < 2^56) the
first 16 nonce bytes are zero, so one subkey, made once per payload key, seals them all,
each with the 12-byte nonce 0^4 || nonce[16:24] = u88be(i) || last, low 12 bytes.

>>> file_key = FileKey(bytes(32))
>>> key = derive_payload_key(file_key, bytes(16))
>>> key
PayloadKey(<redacted>)
>>> sealed = seal_chunk(key, 0, b"hello", final=True)
>>> len(sealed), open_chunk(key, 0, sealed, final=True)
(21, b'hello')
>>> open_chunk(key, 0, sealed, final=False)    # the last-chunk flag is authenticated
Traceback (most recent call last):
...
ipfs_share.errors.DecryptionError: expected an authentic envelope, found one that does not decrypt
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_METADATA, LABEL_PAYLOAD
from ipfs_share.crypto.random import Secret
from ipfs_share.crypto.xchacha import xchacha20poly1305
from ipfs_share.errors import DecryptionError

__all__ = [
    "CHUNK_SIZE",
    "DECRYPTION_FAILED",
    "FILE_KEY_SIZE",
    "MAX_CHUNK_INDEX",
    "PAYLOAD_NONCE_SIZE",
    "SEALED_CHUNK_SIZE",
    "TAG_SIZE",
    "FileKey",
    "PayloadKey",
    "chunk_nonce",
    "derive_payload_key",
    "open_chunk",
    "open_chunks_into",
    "open_metadata",
    "seal_chunk",
    "seal_chunks_into",
    "seal_metadata",
]

FILE_KEY_SIZE: Final = 32
PAYLOAD_NONCE_SIZE: Final = 16
CHUNK_SIZE: Final = 1 << 16  # plaintext bytes per chunk; the header stores the exponent 16
TAG_SIZE: Final = 16  # Poly1305
SEALED_CHUNK_SIZE: Final = CHUNK_SIZE + TAG_SIZE  # 65552
MAX_CHUNK_INDEX: Final = (1 << 88) - 1  # the counter is 11 bytes

# The one message of every decryption failure: which check failed is not said
# (docs/spec/envelope.md, "Errors").
DECRYPTION_FAILED: Final = "expected an authentic envelope, found one that does not decrypt"

# A chunk nonce is 0^12 || u88be(index) || flag: HChaCha20 takes bytes 0-15 (zero unless
# index >= 2^56, the high 32 bits of the counter), the IETF nonce is 0^4 || bytes 16-23.
_LOW_BITS: Final = 56
_LOW_MASK: Final = (1 << _LOW_BITS) - 1
_ZERO_NONCE: Final = bytes(24)  # the metadata key seals exactly one message
_ZERO_IETF_NONCE: Final = bytes(12)


class FileKey(Secret):
    """The 32-byte random key of one envelope; recipient stanzas carry it, wrapped.

    >>> FileKey.generate(rng=lambda n: b"\\x2a" * n) == FileKey(b"\\x2a" * 32)
    True
    """

    __slots__ = ()
    SIZE = FILE_KEY_SIZE


class PayloadKey(Secret):
    """The key that seals an envelope's chunks (derived; never stored or sent).

    It keeps the AEAD for its subkey HChaCha20(key, 0^16), made on first use: every chunk
    of a file below 2^56 chunks (all of them: 2^64 bytes are 2^48 chunks) uses that one.
    """

    __slots__ = ("_aead",)
    SIZE = 32
    _aead: ChaCha20Poly1305 | None

    def __init__(self, secret: bytes) -> None:
        super().__init__(secret)
        object.__setattr__(self, "_aead", None)

    def aead(self, high: int = 0) -> ChaCha20Poly1305:
        """The IETF AEAD for chunks whose index is ``high`` once shifted right by 56."""
        if high:
            return xchacha20poly1305(self.secret_bytes(), bytes(12) + high.to_bytes(4, "big"))
        if self._aead is None:
            object.__setattr__(self, "_aead", xchacha20poly1305(self.secret_bytes(), bytes(16)))
        assert self._aead is not None
        return self._aead


def derive_payload_key(file_key: FileKey, payload_nonce: bytes) -> PayloadKey:
    """payload key = HKDF(file key, salt = payload nonce, LABEL_PAYLOAD, 32)."""
    _check_nonce(payload_nonce)
    return PayloadKey(
        hkdf(file_key.secret_bytes(), salt=payload_nonce, info=LABEL_PAYLOAD, length=32)
    )


def seal_metadata(file_key: FileKey, payload_nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """XChaCha20-Poly1305(metadata key, nonce 0^24, plaintext, aad).

    A zero nonce is safe because the metadata key is derived per (file key, payload nonce)
    and seals this one message only.
    """
    return _metadata_aead(file_key, payload_nonce).encrypt(_ZERO_IETF_NONCE, plaintext, aad)


def open_metadata(file_key: FileKey, payload_nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """The inverse of :func:`seal_metadata`; :class:`DecryptionError` if it does not verify."""
    aead = _metadata_aead(file_key, payload_nonce)
    try:
        return aead.decrypt(_ZERO_IETF_NONCE, ciphertext, aad)
    except InvalidTag:
        raise DecryptionError(DECRYPTION_FAILED) from None


def chunk_nonce(index: int, *, final: bool) -> bytes:
    """0^12 || u88be(index) || (0x01 if final else 0x00): 24 bytes.

    >>> chunk_nonce(1, final=True).hex()
    '000000000000000000000000000000000000000000000101'
    """
    _check_index(index)
    return ((index << 8) | final).to_bytes(24, "big")


def seal_chunk(
    key: PayloadKey, index: int, plaintext: bytes | bytearray | memoryview, *, final: bool
) -> bytes:
    """Chunk ``index`` sealed: plaintext length + 16 bytes."""
    if len(plaintext) > CHUNK_SIZE:
        raise ValueError(f"expected a chunk of at most {CHUNK_SIZE} bytes, found {len(plaintext)}")
    _check_index(index)
    return key.aead(index >> _LOW_BITS).encrypt(_ietf(index, final), plaintext, None)


def open_chunk(
    key: PayloadKey, index: int, ciphertext: bytes | bytearray | memoryview, *, final: bool
) -> bytes:
    """The plaintext of sealed chunk ``index``; :class:`DecryptionError` if it does not verify
    (also when ``final`` is not what the sealer said: the flag is in the nonce)."""
    _check_index(index)
    if not TAG_SIZE <= len(ciphertext) <= SEALED_CHUNK_SIZE:
        raise DecryptionError(DECRYPTION_FAILED)
    try:
        return key.aead(index >> _LOW_BITS).decrypt(_ietf(index, final), ciphertext, None)
    except InvalidTag:
        raise DecryptionError(DECRYPTION_FAILED) from None


# The two loops below are the hot path of every put and open: one AEAD call per 64 KiB,
# reading from and writing into the callers' buffers (no copy, no allocation per chunk),
# and as little Python around it as possible (locals, one int.to_bytes per nonce, no
# checks inside the loop that were made before it). OpenSSL drops the GIL for each call.


def seal_chunks_into(
    key: PayloadKey, plaintext: bytes | bytearray | memoryview, first_index: int, out: memoryview
) -> None:
    """Seal ``len(plaintext) // CHUNK_SIZE`` whole non-final chunks, numbered from
    ``first_index``, into ``out`` (exactly that many times 65552 bytes). The final chunk
    always goes through :func:`seal_chunk`.

    >>> key = PayloadKey(bytes(32))
    >>> out = bytearray(2 * SEALED_CHUNK_SIZE)
    >>> seal_chunks_into(key, bytes(2 * CHUNK_SIZE), 0, memoryview(out))
    >>> bytes(out[SEALED_CHUNK_SIZE:]) == seal_chunk(key, 1, bytes(CHUNK_SIZE), final=False)
    True
    """
    count, rest = divmod(len(plaintext), CHUNK_SIZE)
    if rest:
        raise ValueError(f"expected whole {CHUNK_SIZE}-byte chunks, found {rest} extra bytes")
    if len(out) != count * SEALED_CHUNK_SIZE:
        raise ValueError(
            f"expected an output of {count * SEALED_CHUNK_SIZE} bytes, found {len(out)}"
        )
    _check_index(first_index + count)
    src = memoryview(plaintext)
    for first, start, stop in _runs(first_index, count):
        encrypt = key.aead(first >> _LOW_BITS).encrypt_into
        nonce_base = (first & _LOW_MASK) << 8  # the flag byte stays 0: not final chunks
        for j in range(start, stop):
            encrypt(
                (nonce_base + ((j - start) << 8)).to_bytes(12, "big"),
                src[j * CHUNK_SIZE : (j + 1) * CHUNK_SIZE],
                None,
                out[j * SEALED_CHUNK_SIZE : (j + 1) * SEALED_CHUNK_SIZE],
            )


def open_chunks_into(
    key: PayloadKey, ciphertext: bytes | bytearray | memoryview, first_index: int, out: memoryview
) -> None:
    """Open ``len(ciphertext) // SEALED_CHUNK_SIZE`` whole non-final chunks numbered from
    ``first_index`` into ``out`` (65536 bytes each); :class:`DecryptionError` at the first
    that fails, with ``out`` wiped (a failed chunk's bytes are never left behind)."""
    count, rest = divmod(len(ciphertext), SEALED_CHUNK_SIZE)
    if rest:
        raise ValueError(
            f"expected whole {SEALED_CHUNK_SIZE}-byte sealed chunks, found {rest} extra bytes"
        )
    if len(out) != count * CHUNK_SIZE:
        raise ValueError(f"expected an output of {count * CHUNK_SIZE} bytes, found {len(out)}")
    _check_index(first_index + count)
    src = memoryview(ciphertext)
    try:
        for first, start, stop in _runs(first_index, count):
            decrypt = key.aead(first >> _LOW_BITS).decrypt_into
            nonce_base = (first & _LOW_MASK) << 8
            for j in range(start, stop):
                decrypt(
                    (nonce_base + ((j - start) << 8)).to_bytes(12, "big"),
                    src[j * SEALED_CHUNK_SIZE : (j + 1) * SEALED_CHUNK_SIZE],
                    None,
                    out[j * CHUNK_SIZE : (j + 1) * CHUNK_SIZE],
                )
    except InvalidTag:
        out[:] = bytes(len(out))
        raise DecryptionError(DECRYPTION_FAILED) from None


def _runs(first_index: int, count: int) -> list[tuple[int, int, int]]:
    """(first chunk index, start, stop) of each run of ``count`` chunks from ``first_index``
    that shares one subkey: one run, unless the counter's high 32 bits change inside."""
    runs = []
    start = 0
    while start < count:
        first = first_index + start
        stop = min(count, start + (((first >> _LOW_BITS) + 1) << _LOW_BITS) - first)
        runs.append((first, start, stop))
        start = stop
    return runs


def _ietf(index: int, final: bool) -> bytes:
    return (((index & _LOW_MASK) << 8) | final).to_bytes(12, "big")


def _metadata_aead(file_key: FileKey, payload_nonce: bytes) -> ChaCha20Poly1305:
    _check_nonce(payload_nonce)
    key = hkdf(file_key.secret_bytes(), salt=payload_nonce, info=LABEL_METADATA, length=32)
    return xchacha20poly1305(key, _ZERO_NONCE)


def _check_nonce(payload_nonce: bytes) -> None:
    if type(payload_nonce) is not bytes or len(payload_nonce) != PAYLOAD_NONCE_SIZE:
        raise ValueError(f"expected a {PAYLOAD_NONCE_SIZE}-byte payload nonce")


def _check_index(index: int) -> None:
    if not 0 <= index <= MAX_CHUNK_INDEX:
        raise ValueError(f"expected a chunk index in 0..2^88-1, found {index}")
