"""Anonymous sealing of a short message to an X25519 public key (age's X25519 recipient,
for a message instead of a file key).

For recipient public key R, with a fresh ephemeral key e (E = X25519(e, 9)):

- shared = X25519(e, R), refused if all zero
- key    = HKDF(shared, salt = E || R, info = label, 32)
- sealed = E || ChaCha20-Poly1305-IETF(key, nonce 0^12, message)     (48 bytes + message)

The sealed bytes name neither end: only the holder of R's secret learns anything, and
nothing tells the sender apart (authenticate the message inside, as introductions do by
signing it). ``label`` keeps each use apart from every other use of an X25519 secret.

>>> from ipfs_share.crypto.labels import LABEL_INTRODUCTION_SEAL as LABEL
>>> bob = EncryptionKey.generate(rng=lambda n: b"\\x02" * n)
>>> sealed = seal(b"hello", bob.public_key, label=LABEL, rng=lambda n: b"\\x03" * n)
>>> len(sealed), unseal(sealed, bob, label=LABEL)
(53, b'hello')
>>> unseal(sealed[:-1] + b"\\x00", bob, label=LABEL)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ipfs_share.errors.DecryptionError: expected a message sealed to this key, found one that ...
"""

from __future__ import annotations

import hmac
from typing import Final

import nacl.bindings
import nacl.exceptions

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.random import Rng, random_bytes
from ipfs_share.crypto.x25519 import KEY_SIZE, EncryptionKey, PublicEncryptionKey, x25519
from ipfs_share.errors import DecryptionError, InvalidInputError

__all__ = ["OVERHEAD", "seal", "unseal"]

TAG_SIZE: Final = 16
OVERHEAD: Final = KEY_SIZE + TAG_SIZE  # 48: the ephemeral key and the Poly1305 tag

_ZERO_NONCE: Final = bytes(12)  # each key is used once (a fresh ephemeral key per seal)
_ZERO_SHARED: Final = bytes(KEY_SIZE)
_seal = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
_open = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt
_base = nacl.bindings.crypto_scalarmult_base


def seal(
    message: bytes, recipient: PublicEncryptionKey, *, label: bytes, rng: Rng | None = None
) -> bytes:
    """``E || AEAD(key, message)`` for ``recipient``; refuses a low-order recipient key."""
    r = bytes(recipient)
    e = random_bytes(KEY_SIZE, rng)
    ephemeral = _base(e)
    shared = x25519(e, r)
    if hmac.compare_digest(shared, _ZERO_SHARED):
        raise InvalidInputError(
            f"expected an x25519 public key of full order, found {recipient!r}",
            hint="the recipient's encryption key is invalid; ask them for their identity",
        )
    key = hkdf(shared, salt=ephemeral + r, info=label, length=32)
    return ephemeral + _seal(bytes(message), None, _ZERO_NONCE, key)


def unseal(sealed: bytes, my_key: EncryptionKey, *, label: bytes) -> bytes:
    """The message sealed to ``my_key``, or :class:`DecryptionError` (coarse: a message
    for another key, a changed one and a low-order ephemeral key look the same)."""
    if len(sealed) < OVERHEAD:
        raise DecryptionError(
            f"expected a sealed message of at least {OVERHEAD} bytes, found {len(sealed)}"
        )
    ephemeral = bytes(sealed[:KEY_SIZE])
    shared = x25519(my_key.secret_bytes(), ephemeral)
    key = hkdf(shared, salt=ephemeral + bytes(my_key.public_key), info=label, length=32)
    try:
        if hmac.compare_digest(shared, _ZERO_SHARED):
            raise nacl.exceptions.CryptoError("low-order ephemeral key")
        return bytes(_open(bytes(sealed[KEY_SIZE:]), None, _ZERO_NONCE, key))
    except nacl.exceptions.CryptoError:
        raise DecryptionError(
            "expected a message sealed to this key, found one that does not open"
        ) from None
