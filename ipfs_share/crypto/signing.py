"""Ed25519 signing keys as their own types: the seed never shows up by accident.

Pure and synchronous; PyNaCl (libsodium) does the arithmetic.

>>> key = SigningKey.from_seed(bytes(32))
>>> key
SigningKey(<redacted>)
>>> signature = key.sign(b"message")
>>> len(signature)
64
>>> key.public_key.verify(b"message", signature)  # returns None, or raises
>>> key.public_key.verify(b"massage", signature)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ipfs_share.errors.SignatureInvalidError: expected a valid ed25519 signature, found one ...
>>> bytes(key.public_key).hex()[:16]
'3b6a27bcceb6a42d'
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import NoReturn

import nacl.exceptions
import nacl.signing

from ipfs_share.errors import SignatureInvalidError

__all__ = ["PUBLIC_KEY_SIZE", "SEED_SIZE", "SIGNATURE_SIZE", "SigningKey", "VerifyKey"]

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64

Rng = Callable[[int], bytes]


class SigningKey:
    """An Ed25519 private key, held as its 32-byte seed.

    ``repr`` and ``str`` never show the seed; equality is constant-time; the key cannot be
    pickled or hashed. The only way to the seed is the explicit :meth:`seed_bytes`.

    >>> fixed = SigningKey.generate(rng=lambda n: b"\\x07" * n)   # tests inject randomness
    >>> fixed == SigningKey.from_seed(b"\\x07" * 32)
    True
    >>> f"{fixed}"
    'SigningKey(<redacted>)'
    """

    __slots__ = ("_nacl", "_public", "_seed")
    _seed: bytes
    _nacl: nacl.signing.SigningKey
    _public: VerifyKey

    def __init__(self, seed: bytes) -> None:
        if type(seed) is not bytes:
            raise TypeError(f"expected the seed as bytes, found {type(seed).__name__}")
        if len(seed) != SEED_SIZE:
            # The length only: the message must not carry secret material.
            raise ValueError(f"expected a {SEED_SIZE}-byte ed25519 seed, found {len(seed)} bytes")
        signer = nacl.signing.SigningKey(seed)
        object.__setattr__(self, "_seed", seed)
        object.__setattr__(self, "_nacl", signer)
        object.__setattr__(self, "_public", VerifyKey(bytes(signer.verify_key)))

    @classmethod
    def generate(cls, rng: Rng | None = None) -> SigningKey:
        """A new random key; ``rng(n)`` returns n random bytes (default ``os.urandom``)."""
        return cls((rng or os.urandom)(SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        return cls(seed)

    def seed_bytes(self) -> bytes:
        """The 32-byte seed. Explicit on purpose: every call site is a place a secret leaves."""
        return self._seed

    @property
    def public_key(self) -> VerifyKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached Ed25519 signature of ``message``."""
        return bytes(self._nacl.sign(message).signature)

    def __repr__(self) -> str:
        return "SigningKey(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKey):
            return NotImplemented
        return hmac.compare_digest(self._seed, other._seed)

    # A hash would be a function of the secret, computed in variable time: not hashable.
    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("SigningKey is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SigningKey cannot be pickled; store seed_bytes() deliberately")


class VerifyKey:
    """An Ed25519 public key (32 bytes): hashable, comparable, ``bytes(key)`` gives it back.

    >>> VerifyKey(b"\\x01" * 31)
    Traceback (most recent call last):
    ...
    ValueError: expected a 32-byte ed25519 public key, found 31 bytes
    """

    __slots__ = ("_key", "_nacl")
    _key: bytes
    _nacl: nacl.signing.VerifyKey

    def __init__(self, key: bytes) -> None:
        if type(key) is not bytes:
            raise TypeError(f"expected the public key as bytes, found {type(key).__name__}")
        if len(key) != PUBLIC_KEY_SIZE:
            raise ValueError(
                f"expected a {PUBLIC_KEY_SIZE}-byte ed25519 public key, found {len(key)} bytes"
            )
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_nacl", nacl.signing.VerifyKey(key))

    def verify(self, message: bytes, signature: bytes) -> None:
        """Return if ``signature`` is this key's signature of ``message``; else raise
        :class:`SignatureInvalidError`."""
        if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
            found = f"{len(signature)} bytes" if isinstance(signature, bytes) else "non-bytes"
            raise SignatureInvalidError(
                f"expected a {SIGNATURE_SIZE}-byte ed25519 signature, found {found}"
            )
        try:
            # libsodium also refuses small-order keys and non-canonical signatures here.
            self._nacl.verify(message, signature)
        except nacl.exceptions.CryptoError:
            raise SignatureInvalidError(
                "expected a valid ed25519 signature, found one that does not verify"
            ) from None

    def __bytes__(self) -> bytes:
        return self._key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyKey):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash((VerifyKey, self._key))

    def __repr__(self) -> str:
        return f"VerifyKey({self._key.hex()!r})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("VerifyKey is immutable")

    def __reduce__(self) -> tuple[type[VerifyKey], tuple[bytes]]:
        return (VerifyKey, (self._key,))
