"""X25519 encryption keys, and the versioned text forms of public keys (docs/spec/keys.md).

An identity has two independent keys: an Ed25519 signing key (:mod:`.signing`) and the
X25519 key here, which recipients of a share are addressed by. Public keys have text
forms with a multicodec prefix, so a key's type travels with it:

- X25519 public key: multibase base58btc of ``ec 01 || key``, ``z6LS...``;
- Ed25519 public key: the did:key of ``ed 01 || key``, ``did:key:z6Mk...``.

Secret keys have no text form (only the encrypted keystore holds them).

>>> key = EncryptionKey.generate(rng=lambda n: b"\\x01" * n)   # tests inject randomness
>>> key
EncryptionKey(<redacted>)
>>> text = key.public_key.to_text()
>>> text[:4], PublicEncryptionKey.from_text(text) == key.public_key
('z6LS', True)
>>> did = encode_did_key(bytes(32))
>>> did[:13], decode_did_key(did) == bytes(32)
('did:key:z6Mke', True)
"""

from __future__ import annotations

import hmac
from typing import Final, NoReturn

import nacl.bindings
import nacl.exceptions

from ipfs_share.basex import b58decode, b58encode
from ipfs_share.crypto.random import Secret
from ipfs_share.errors import InvalidInputError

__all__ = [
    "DID_KEY_PREFIX",
    "ED25519_PUB_MULTICODEC",
    "KEY_SIZE",
    "X25519_PUB_MULTICODEC",
    "EncryptionKey",
    "PublicEncryptionKey",
    "decode_did_key",
    "encode_did_key",
    "x25519",
]

KEY_SIZE: Final = 32
# Multicodec codes as unsigned varints (0xec -> ec 01, 0xed -> ed 01): the "version" of a
# key's text form. A reader that meets another prefix knows it is another key type.
X25519_PUB_MULTICODEC: Final = b"\xec\x01"
ED25519_PUB_MULTICODEC: Final = b"\xed\x01"
DID_KEY_PREFIX: Final = "did:key:"
_BASE58BTC_PREFIX: Final = "z"  # multibase code for base58btc
# A 34-byte key with its prefix is 47 or 48 base58 digits; anything much longer is not a
# key and is refused before the quadratic-time decode.
_MAX_TEXT: Final = 64


def x25519(secret: bytes, public: bytes) -> bytes:
    """The raw X25519 function, total: a low-order ``public`` gives 32 zero bytes.

    libsodium refuses to return an all-zero shared secret (the result for a low-order
    point) and PyNaCl reports it as a generic error; it is returned here as 32 zero bytes
    so callers can apply their own rule (wrap and unwrap reject it).
    """
    try:
        return nacl.bindings.crypto_scalarmult(secret, public)
    except nacl.exceptions.RuntimeError:
        return bytes(KEY_SIZE)


class EncryptionKey(Secret):
    """An X25519 secret key (32 bytes, clamped by X25519 itself when used).

    >>> a = EncryptionKey.from_bytes(bytes(range(32)))
    >>> a == EncryptionKey(bytes(range(32))), f"{a}"
    (True, 'EncryptionKey(<redacted>)')
    """

    __slots__ = ("_public",)
    SIZE = KEY_SIZE
    _public: PublicEncryptionKey

    def __init__(self, secret: bytes) -> None:
        super().__init__(secret)
        public = nacl.bindings.crypto_scalarmult_base(secret)
        object.__setattr__(self, "_public", PublicEncryptionKey(public))

    @property
    def public_key(self) -> PublicEncryptionKey:
        return self._public

    def exchange(self, peer: PublicEncryptionKey | bytes) -> bytes:
        """X25519(self, peer): 32 bytes, all zero if ``peer`` is a low-order point."""
        return x25519(self._secret, bytes(peer))


class PublicEncryptionKey:
    """An X25519 public key: 32 bytes, hashable, ``bytes(key)`` gives them back.

    >>> PublicEncryptionKey(b"\\x09" + bytes(30))
    Traceback (most recent call last):
    ...
    ipfs_share.errors.InvalidInputError: expected a 32-byte x25519 public key, found 31 bytes
    """

    __slots__ = ("_key",)
    _key: bytes

    def __init__(self, key: bytes) -> None:
        if type(key) is not bytes:
            raise TypeError(f"expected the public key as bytes, found {type(key).__name__}")
        if len(key) != KEY_SIZE:
            raise InvalidInputError(
                f"expected a {KEY_SIZE}-byte x25519 public key, found {len(key)} bytes"
            )
        object.__setattr__(self, "_key", key)

    @classmethod
    def from_text(cls, text: str) -> PublicEncryptionKey:
        """Parse the ``z6LS...`` form; strict (one spelling per key)."""
        return cls(_decode_multikey(text, X25519_PUB_MULTICODEC, "x25519"))

    def to_text(self) -> str:
        """``z`` || base58btc(ec 01 || key)."""
        return _BASE58BTC_PREFIX + b58encode(X25519_PUB_MULTICODEC + self._key)

    def __bytes__(self) -> bytes:
        return self._key

    def __eq__(self, other: object) -> bool:
        if type(other) is not PublicEncryptionKey:
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash((PublicEncryptionKey, self._key))

    def __repr__(self) -> str:
        return f"PublicEncryptionKey({self.to_text()!r})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("PublicEncryptionKey is immutable")

    def __reduce__(self) -> tuple[type[PublicEncryptionKey], tuple[bytes]]:
        return (PublicEncryptionKey, (self._key,))


def encode_did_key(ed25519_public: bytes) -> str:
    """The did:key of a 32-byte Ed25519 public key: ``did:key:z`` || base58btc(ed 01 || key)."""
    if type(ed25519_public) is not bytes or len(ed25519_public) != KEY_SIZE:
        raise InvalidInputError(
            f"expected a {KEY_SIZE}-byte ed25519 public key, found {_describe(ed25519_public)}"
        )
    return DID_KEY_PREFIX + _BASE58BTC_PREFIX + b58encode(ED25519_PUB_MULTICODEC + ed25519_public)


def decode_did_key(did: str) -> bytes:
    """The 32-byte Ed25519 public key of a ``did:key:z6Mk...``; strict.

    >>> decode_did_key("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK").hex()[:8]
    '2e6fcce3'
    """
    if not isinstance(did, str) or not did.startswith(DID_KEY_PREFIX):
        raise InvalidInputError(f"expected a did:key, found {_preview(did)}")
    return _decode_multikey(did[len(DID_KEY_PREFIX) :], ED25519_PUB_MULTICODEC, "ed25519")


def _decode_multikey(text: str, codec: bytes, kind: str) -> bytes:
    if not isinstance(text, str) or not text.startswith(_BASE58BTC_PREFIX):
        raise InvalidInputError(
            f"expected a base58btc ('z') {kind} public key, found {_preview(text)}"
        )
    if len(text) > _MAX_TEXT:
        raise InvalidInputError(
            f"expected a {kind} public key of at most {_MAX_TEXT} characters, found {len(text)}"
        )
    try:
        raw = b58decode(text[1:])
    except ValueError as exc:
        raise InvalidInputError(f"the {kind} public key: {exc}") from None
    if raw[: len(codec)] != codec or len(raw) != len(codec) + KEY_SIZE:
        raise InvalidInputError(
            f"expected multicodec {codec.hex()} and a {KEY_SIZE}-byte {kind} key, "
            f"found prefix {raw[:2].hex()} and {len(raw) - 2} key bytes"
        )
    return raw[len(codec) :]


def _describe(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return type(value).__name__


def _preview(value: object) -> str:
    # Public keys only reach here, but a caller may pass anything: keep messages short.
    if isinstance(value, str):
        return repr(value if len(value) <= 24 else value[:24] + "...")
    return type(value).__name__
