"""Recipient stanzas: a file key wrapped for each recipient's X25519 key (age's X25519 model).

For recipient public key R, with a fresh ephemeral key e (E = X25519(e, 9)):

- shared   = X25519(e, R), refused if all zero
- wrap key = HKDF(shared, salt = E || R, LABEL_WRAP, 32)
- body     = ChaCha20-Poly1305-IETF(wrap key, nonce 0^12, file key)   (48 bytes)
- stanza   = E || body                                                (80 bytes)

A stanza names no recipient: whoever holds a capsule cannot tell who it is for, and a
recipient finds its stanza by trying each. docs/spec/keys.md specifies it.

>>> alice = EncryptionKey.generate(rng=lambda n: b"\\x01" * n)
>>> bob = EncryptionKey.generate(rng=lambda n: b"\\x02" * n)
>>> file_key = FileKey.generate(rng=lambda n: b"\\x03" * n)
>>> stanzas = wrap(file_key, [alice.public_key, bob.public_key])
>>> [len(bytes(s)) for s in stanzas]
[80, 80]
>>> unwrap(stanzas, bob) == file_key
True
>>> unwrap(stanzas[:1], bob)
Traceback (most recent call last):
...
ipfs_share.errors.RecipientNotAuthorizedError: expected a stanza for this key among 1, found none
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import nacl.bindings
import nacl.exceptions

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_WRAP
from ipfs_share.crypto.random import Rng, random_bytes
from ipfs_share.crypto.stream import FILE_KEY_SIZE, FileKey
from ipfs_share.crypto.x25519 import KEY_SIZE, EncryptionKey, PublicEncryptionKey, x25519
from ipfs_share.errors import (
    FormatError,
    InvalidInputError,
    KeyUnwrapFailedError,
    RecipientNotAuthorizedError,
)

__all__ = ["BODY_SIZE", "EPHEMERAL_SIZE", "STANZA_SIZE", "Stanza", "unwrap", "wrap"]

EPHEMERAL_SIZE: Final = KEY_SIZE
BODY_SIZE: Final = FILE_KEY_SIZE + 16  # the file key and a Poly1305 tag
STANZA_SIZE: Final = EPHEMERAL_SIZE + BODY_SIZE  # 80

_ZERO_NONCE: Final = bytes(12)  # each wrap key is used once (fresh ephemeral key)
_ZERO_SHARED: Final = bytes(KEY_SIZE)
_seal = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
_open = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt
_base = nacl.bindings.crypto_scalarmult_base


@dataclass(frozen=True, slots=True)
class Stanza:
    """One recipient's wrapped file key: ``ephemeral`` (E, 32 bytes) and ``body`` (48 bytes).

    Public data: it can be logged and compared. ``bytes(stanza)`` is E || body.

    >>> Stanza.from_bytes(bytes(80)).body == bytes(48)
    True
    >>> Stanza.from_bytes(bytes(79))
    Traceback (most recent call last):
    ...
    ipfs_share.errors.FormatError: expected an 80-byte stanza, found 79 bytes
    """

    ephemeral: bytes
    body: bytes

    def __post_init__(self) -> None:
        if type(self.ephemeral) is not bytes or len(self.ephemeral) != EPHEMERAL_SIZE:
            raise FormatError(
                f"expected a {EPHEMERAL_SIZE}-byte stanza ephemeral key, "
                f"found {_describe(self.ephemeral)}"
            )
        if type(self.body) is not bytes or len(self.body) != BODY_SIZE:
            raise FormatError(
                f"expected a {BODY_SIZE}-byte stanza body, found {_describe(self.body)}"
            )

    @classmethod
    def from_bytes(cls, data: bytes) -> Stanza:
        if type(data) is not bytes or len(data) != STANZA_SIZE:
            raise FormatError(f"expected an {STANZA_SIZE}-byte stanza, found {_describe(data)}")
        return cls(data[:EPHEMERAL_SIZE], data[EPHEMERAL_SIZE:])

    def __bytes__(self) -> bytes:
        return self.ephemeral + self.body


def wrap(
    file_key: FileKey, recipients: Iterable[PublicEncryptionKey], rng: Rng | None = None
) -> list[Stanza]:
    """One stanza per recipient, in the order given, each with its own ephemeral key.

    Refuses an empty or repeated recipient list and a low-order recipient key (one whose
    shared secret would be all zero) with :class:`InvalidInputError`.
    """
    secret = file_key.secret_bytes()
    stanzas: list[Stanza] = []
    seen: set[bytes] = set()
    for recipient in recipients:
        r = bytes(recipient)
        if r in seen:
            raise InvalidInputError(
                f"expected distinct recipients, found {recipient!r} more than once"
            )
        seen.add(r)
        e = random_bytes(EPHEMERAL_SIZE, rng)
        ephemeral = _base(e)
        shared = x25519(e, r)
        if hmac.compare_digest(shared, _ZERO_SHARED):
            raise InvalidInputError(
                f"expected an x25519 public key of full order, found {recipient!r}",
                hint="the recipient's encryption key is invalid; ask them for their identity",
            )
        wrap_key = hkdf(shared, salt=ephemeral + r, info=LABEL_WRAP, length=32)
        stanzas.append(Stanza(ephemeral, _seal(secret, None, _ZERO_NONCE, wrap_key)))
    if not stanzas:
        raise InvalidInputError("expected at least one recipient, found none")
    return stanzas


def unwrap(stanzas: Sequence[Stanza], my_key: EncryptionKey) -> FileKey:
    """The file key from the first stanza that opens with ``my_key``.

    Every stanza costs the same (one X25519, one HKDF, one AEAD open), and all are tried
    even after a match, so the time taken does not say which stanza is ours.

    - :class:`KeyUnwrapFailedError` if any stanza has a low-order ephemeral key (its
      shared secret is all zero for every recipient): no honest sender writes one, so the
      stanza list is malformed, whoever opens it;
    - :class:`RecipientNotAuthorizedError` if none opens. A stanza for someone else and
      our own stanza with a changed body look the same by design (stanzas carry no
      recipient id), so both are "not a recipient".

    Callers MUST bound ``len(stanzas)`` before calling (the capsule decoder does).
    """
    secret = my_key.secret_bytes()
    mine = bytes(my_key.public_key)
    found: bytes | None = None
    malformed = False
    for stanza in stanzas:
        shared = x25519(secret, stanza.ephemeral)
        malformed |= hmac.compare_digest(shared, _ZERO_SHARED)
        wrap_key = hkdf(shared, salt=stanza.ephemeral + mine, info=LABEL_WRAP, length=32)
        try:
            opened = _open(stanza.body, None, _ZERO_NONCE, wrap_key)
        except nacl.exceptions.CryptoError:
            continue
        if found is None:
            found = opened
    if malformed:
        raise KeyUnwrapFailedError(
            "expected stanzas with valid ephemeral keys, found a low-order point",
            hint="the share is malformed; ask the sender to share it again",
        )
    if found is None:
        raise RecipientNotAuthorizedError(
            f"expected a stanza for this key among {len(stanzas)}, found none"
        )
    return FileKey(found)


def _describe(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return type(value).__name__
