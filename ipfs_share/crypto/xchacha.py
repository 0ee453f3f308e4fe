"""XChaCha20-Poly1305 as HChaCha20 plus IETF ChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03).

The extended-nonce AEAD is defined (draft section 2.3) as::

    subkey = HChaCha20(key, nonce[0:16])
    XChaCha20-Poly1305(key, nonce, m, aad)
        = ChaCha20-Poly1305(subkey, 0^4 || nonce[16:24], m, aad)      (RFC 8439)

so any IETF ChaCha20-Poly1305 gives the same bytes once HChaCha20 has made the subkey.
OpenSSL's (through ``cryptography``) seals and opens 64 KiB chunks about twice as fast as
libsodium's XChaCha20-Poly1305 here, and writes into a caller's buffer; HChaCha20 runs once
per key and nonce prefix.

>>> key = bytes(range(32))
>>> nonce = bytes.fromhex("000000090000004a0000000031415927")   # the draft's 2.2.1
>>> hchacha20(key, nonce).hex()
'82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc'
>>> aead = xchacha20poly1305(key, bytes(24))
>>> len(aead.encrypt(ietf_nonce(bytes(24)), b"hi", None))
18
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = ["KEY_SIZE", "NONCE_SIZE", "hchacha20", "ietf_nonce", "xchacha20poly1305"]

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 24  # the extended nonce; its first 16 bytes go to HChaCha20

_SIGMA: Final = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"
_MASK: Final = 0xFFFFFFFF


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha-03, 2.2): words 0-3 and 12-15 of the ChaCha20
    state (constants, key, the 16 input bytes as words 12-15) after its 20 rounds.

    The ChaCha20 block function (RFC 8439, 2.3) is that same state after the rounds *plus*
    the state itself, and OpenSSL's ChaCha20 takes exactly those 16 bytes as its counter
    and nonce; so the first keystream block, less the known input words, is HChaCha20.
    One block from OpenSSL costs about 12 us, a pure-Python 20 rounds about 150 us (the
    tests keep that literal version and check the two agree)."""
    if len(key) != KEY_SIZE or len(nonce16) != 16:
        raise ValueError("expected a 32-byte key and a 16-byte input for HChaCha20")
    block = Cipher(algorithms.ChaCha20(key, nonce16), mode=None).encryptor().update(bytes(64))
    w = struct.unpack("<16I", block)
    n = struct.unpack("<4I", nonce16)
    return struct.pack(
        "<8I",
        *((w[i] - _SIGMA[i]) & _MASK for i in range(4)),
        *((w[12 + i] - n[i]) & _MASK for i in range(4)),
    )


def xchacha20poly1305(key: bytes, nonce: bytes) -> ChaCha20Poly1305:
    """The IETF ChaCha20-Poly1305 that seals as XChaCha20-Poly1305 under ``key`` does, for
    every 24-byte nonce that starts with ``nonce[0:16]``; call it with :func:`ietf_nonce`."""
    if len(nonce) < 16:
        raise ValueError(f"expected at least 16 nonce bytes, found {len(nonce)}")
    return ChaCha20Poly1305(hchacha20(key, bytes(nonce[:16])))


def ietf_nonce(nonce: bytes) -> bytes:
    """The 12-byte IETF nonce for the extended ``nonce``: 0^4 || nonce[16:24].

    >>> ietf_nonce(bytes(range(24))).hex()
    '000000001011121314151617'
    """
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"expected a {NONCE_SIZE}-byte nonce, found {len(nonce)}")
    return bytes(4) + nonce[16:]
