"""HKDF-SHA-256 (RFC 5869), on the standard library's HMAC.

Every key ipfs-share derives goes through :func:`hkdf` with a label from
:mod:`ipfs_share.crypto.labels` as ``info``, so keys made for one purpose are unrelated to
keys made for any other.

>>> okm = hkdf(b"input key material", salt=b"salt", info=b"ipfs-share/v1/example", length=32)
>>> len(okm), okm.hex()[:16]
(32, '454893437af7484a')
"""

from __future__ import annotations

import hmac

__all__ = ["HASH_SIZE", "MAX_LENGTH", "hkdf", "hkdf_expand", "hkdf_extract"]

HASH_SIZE = 32
# RFC 5869 section 2.3: L <= 255 * HashLen.
MAX_LENGTH = 255 * HASH_SIZE


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """PRK = HMAC-SHA-256(salt, ikm); an empty salt means HashLen zero bytes (RFC 5869 2.2)."""
    return hmac.digest(salt or bytes(HASH_SIZE), ikm, "sha256")


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """OKM = T(1) || T(2) || ... truncated to ``length``, T(i) = HMAC(prk, T(i-1) || info || i)."""
    if not 0 <= length <= MAX_LENGTH:
        raise ValueError(f"expected an hkdf output length in 0..{MAX_LENGTH}, found {length}")
    if len(prk) < HASH_SIZE:
        raise ValueError(f"expected a prk of at least {HASH_SIZE} bytes, found {len(prk)}")
    blocks = []
    previous = b""
    for counter in range(1, -(-length // HASH_SIZE) + 1):
        previous = hmac.digest(prk, previous + info + bytes((counter,)), "sha256")
        blocks.append(previous)
    return b"".join(blocks)[:length]


def hkdf(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256(ikm, salt, info, length): extract, then expand."""
    if length == HASH_SIZE:
        # The one case on hot paths (a 32-byte key per recipient stanza): one HMAC for
        # extract, one for expand, no loop.
        prk = hmac.digest(salt or bytes(HASH_SIZE), ikm, "sha256")
        return hmac.digest(prk, info + b"\x01", "sha256")
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)
