"""The envelope's AEAD primitives: file and payload keys, chunk nonces, chunk seal/open.

This is the STREAM construction of age (C2SP age, "payload"), with ipfs-share's labels
and a header nonce of 16 bytes. The byte layout around it (header, metadata, ranges) is
:mod:`ipfs_share.formats.envelope`; docs/spec/envelope.md specifies both.

- payload key  = HKDF(file key, payload nonce, LABEL_PAYLOAD, 32)
- metadata key = HKDF(file key, payload nonce, LABEL_METADATA, 32)
- chunk i      = XChaCha20-Poly1305(payload key, nonce = 0^12 || u88be(i) || last, chunk)

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

import nacl.bindings
import nacl.exceptions

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_METADATA, LABEL_PAYLOAD
from ipfs_share.crypto.random import Secret
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
    "open_chunks",
    "open_metadata",
    "seal_chunk",
    "seal_chunks",
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

_ZERO_NONCE: Final = bytes(24)  # the metadata key seals exactly one message
_encrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
_decrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt
_CryptoError = nacl.exceptions.CryptoError


class FileKey(Secret):
    """The 32-byte random key of one envelope; recipient stanzas carry it, wrapped.

    >>> FileKey.generate(rng=lambda n: b"\\x2a" * n) == FileKey(b"\\x2a" * 32)
    True
    """

    __slots__ = ()
    SIZE = FILE_KEY_SIZE


class PayloadKey(Secret):
    """The key that seals an envelope's chunks (derived; never stored or sent)."""

    __slots__ = ()
    SIZE = 32


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
    return _encrypt(plaintext, aad, _ZERO_NONCE, _metadata_key(file_key, payload_nonce))


def open_metadata(file_key: FileKey, payload_nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """The inverse of :func:`seal_metadata`; :class:`DecryptionError` if it does not verify."""
    try:
        return _decrypt(ciphertext, aad, _ZERO_NONCE, _metadata_key(file_key, payload_nonce))
    except _CryptoError:
        raise DecryptionError(DECRYPTION_FAILED) from None


def chunk_nonce(index: int, *, final: bool) -> bytes:
    """0^12 || u88be(index) || (0x01 if final else 0x00): 24 bytes.

    >>> chunk_nonce(1, final=True).hex()
    '000000000000000000000000000000000000000000000101'
    """
    _check_index(index)
    return ((index << 8) | final).to_bytes(24, "big")


def seal_chunk(key: PayloadKey, index: int, plaintext: bytes, *, final: bool) -> bytes:
    """Chunk ``index`` sealed: plaintext length + 16 bytes."""
    if len(plaintext) > CHUNK_SIZE:
        raise ValueError(f"expected a chunk of at most {CHUNK_SIZE} bytes, found {len(plaintext)}")
    return _encrypt(bytes(plaintext), None, chunk_nonce(index, final=final), key.secret_bytes())


def open_chunk(key: PayloadKey, index: int, ciphertext: bytes, *, final: bool) -> bytes:
    """The plaintext of sealed chunk ``index``; :class:`DecryptionError` if it does not verify
    (also when ``final`` is not what the sealer said: the flag is in the nonce)."""
    nonce = chunk_nonce(index, final=final)
    if not TAG_SIZE <= len(ciphertext) <= SEALED_CHUNK_SIZE:
        raise DecryptionError(DECRYPTION_FAILED)
    try:
        return _decrypt(bytes(ciphertext), None, nonce, key.secret_bytes())
    except _CryptoError:
        raise DecryptionError(DECRYPTION_FAILED) from None


# The two loops below are the hot path of every put and get: one AEAD call per 64 KiB and
# as little Python around it as possible (locals, one int.to_bytes per nonce, no checks
# inside the loop that the caller already made).


def seal_chunks(
    key: PayloadKey, plaintext: bytes | memoryview, first_index: int, out: list[bytes]
) -> None:
    """Seal ``len(plaintext) // CHUNK_SIZE`` whole non-final chunks, numbered from
    ``first_index``, appending each to ``out``; the length must be a multiple of the chunk
    size. The final chunk always goes through :func:`seal_chunk`."""
    count, rest = divmod(len(plaintext), CHUNK_SIZE)
    if rest:
        raise ValueError(f"expected whole {CHUNK_SIZE}-byte chunks, found {rest} extra bytes")
    _check_index(first_index + count)
    view = memoryview(plaintext)
    encrypt, secret, size, append = _encrypt, key.secret_bytes(), CHUNK_SIZE, out.append
    nonce_base = first_index << 8  # the flag byte stays 0: these chunks are not final
    for j in range(count):
        start = j * size
        append(
            encrypt(
                view[start : start + size].tobytes(),
                None,
                (nonce_base + (j << 8)).to_bytes(24, "big"),
                secret,
            )
        )


def open_chunks(
    key: PayloadKey, ciphertext: bytes | memoryview, first_index: int, out: list[bytes]
) -> None:
    """Open ``len(ciphertext) // SEALED_CHUNK_SIZE`` whole non-final chunks numbered from
    ``first_index`` into ``out``; :class:`DecryptionError` at the first that fails."""
    count, rest = divmod(len(ciphertext), SEALED_CHUNK_SIZE)
    if rest:
        raise ValueError(
            f"expected whole {SEALED_CHUNK_SIZE}-byte sealed chunks, found {rest} extra bytes"
        )
    _check_index(first_index + count)
    view = memoryview(ciphertext)
    decrypt, secret, size, append = _decrypt, key.secret_bytes(), SEALED_CHUNK_SIZE, out.append
    nonce_base = first_index << 8
    try:
        for j in range(count):
            start = j * size
            append(
                decrypt(
                    view[start : start + size].tobytes(),
                    None,
                    (nonce_base + (j << 8)).to_bytes(24, "big"),
                    secret,
                )
            )
    except _CryptoError:
        raise DecryptionError(DECRYPTION_FAILED) from None


def _metadata_key(file_key: FileKey, payload_nonce: bytes) -> bytes:
    _check_nonce(payload_nonce)
    return hkdf(file_key.secret_bytes(), salt=payload_nonce, info=LABEL_METADATA, length=32)


def _check_nonce(payload_nonce: bytes) -> None:
    if type(payload_nonce) is not bytes or len(payload_nonce) != PAYLOAD_NONCE_SIZE:
        raise ValueError(f"expected a {PAYLOAD_NONCE_SIZE}-byte payload nonce")


def _check_index(index: int) -> None:
    if not 0 <= index <= MAX_CHUNK_INDEX:
        raise ValueError(f"expected a chunk index in 0..2^88-1, found {index}")
