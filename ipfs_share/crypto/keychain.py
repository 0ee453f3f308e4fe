"""Keychain keys and the three AEAD uses around them (docs/spec/keychain.md sections 2, 5, 8).

- key fingerprint = SHA-256(LABEL_KEYCHAIN_KEY_FP || key) (32 bytes, public);
- delivery box    = ChaCha20-Poly1305-IETF(release key, 0^12, LABEL_KEYCHAIN_BOX, bundle),
  the release key being fresh per box and wrapped for each recipient in a stanza
  (:mod:`ipfs_share.crypto.wrap`), as age wraps a file key;
- sealed name     = nonce(24) || XChaCha20-Poly1305(HKDF(secret, "", LABEL_KEYCHAIN_NAME),
  nonce, LABEL_KEYCHAIN_NAME, name);
- sealed message  = 0x01 || key fingerprint (32) || nonce (24) || XChaCha20-Poly1305(key,
  nonce, LABEL_KEYCHAIN_SEAL || ad, data).

>>> key = KeychainKey(bytes(32))
>>> fp = key_fingerprint(key)
>>> sealed = seal_message(key, fp, b"hello", b"ad", rng=lambda n: b"\\x07" * n)
>>> len(sealed) - len(b"hello") == HEADER_SIZE + TAG_SIZE, sealed_fingerprint(sealed) == fp
(True, True)
>>> open_message(key, sealed, b"ad")
b'hello'
>>> open_message(key, sealed, b"other ad")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ipfs_share.errors.DecryptionError: expected an authentic sealed message, found one ...
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Final, NoReturn

import nacl.bindings
import nacl.exceptions

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import (
    LABEL_KEYCHAIN_BOX,
    LABEL_KEYCHAIN_KEY_FP,
    LABEL_KEYCHAIN_NAME,
    LABEL_KEYCHAIN_SEAL,
)
from ipfs_share.crypto.random import Rng, Secret, random_bytes
from ipfs_share.errors import DecryptionError, FormatError, RecipientNotAuthorizedError

__all__ = [
    "FINGERPRINT_SIZE",
    "HEADER_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "SEALED_VERSION",
    "TAG_SIZE",
    "KeychainKey",
    "KeychainSecret",
    "ReleaseKey",
    "key_fingerprint",
    "open_box",
    "open_message",
    "open_name",
    "open_with",
    "seal_box",
    "seal_message",
    "seal_name",
    "sealed_fingerprint",
]

KEY_SIZE: Final = 32
FINGERPRINT_SIZE: Final = 32
NONCE_SIZE: Final = 24
TAG_SIZE: Final = 16
SEALED_VERSION: Final = 1
HEADER_SIZE: Final = 1 + FINGERPRINT_SIZE + NONCE_SIZE  # 57

MESSAGE_FAILED: Final = "expected an authentic sealed message, found one that does not decrypt"
BOX_FAILED: Final = "expected an authentic delivery box, found one that does not decrypt"

_VERSION_BYTE: Final = bytes((SEALED_VERSION,))
_ZERO_NONCE_12: Final = bytes(12)
_xencrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
_xdecrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt
_encrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
_decrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt
_CryptoError = nacl.exceptions.CryptoError
_urandom = os.urandom


class KeychainKey(Secret):
    """One 32-byte symmetric key of a keychain (it encrypts and decrypts messages)."""

    __slots__ = ()
    SIZE = KEY_SIZE


class KeychainSecret(Secret):
    """The keychain's own secret, held by every member: it seals the keychain's name."""

    __slots__ = ()
    SIZE = KEY_SIZE


class ReleaseKey(Secret):
    """The one-use key of a delivery box; each recipient's stanza wraps it."""

    __slots__ = ()
    SIZE = KEY_SIZE


def key_fingerprint(key: KeychainKey) -> bytes:
    """SHA-256(LABEL_KEYCHAIN_KEY_FP || key): the public name of a key, and a commitment to it.

    >>> key_fingerprint(KeychainKey(bytes(32))).hex()[:16]
    'dda8a84f1805afcf'
    """
    return hashlib.sha256(LABEL_KEYCHAIN_KEY_FP + key.secret_bytes()).digest()


# --- delivery boxes -----------------------------------------------------------------------


def seal_box(release_key: ReleaseKey, bundle: bytes) -> bytes:
    """The box of a delivery. The nonce is zero because a release key seals one box."""
    return _encrypt(bundle, LABEL_KEYCHAIN_BOX, _ZERO_NONCE_12, release_key.secret_bytes())


def open_box(release_key: ReleaseKey, box: bytes) -> bytes:
    try:
        return _decrypt(box, LABEL_KEYCHAIN_BOX, _ZERO_NONCE_12, release_key.secret_bytes())
    except _CryptoError:
        raise DecryptionError(BOX_FAILED) from None


# --- the sealed name ----------------------------------------------------------------------


def _name_key(secret: KeychainSecret) -> bytes:
    return hkdf(secret.secret_bytes(), salt=b"", info=LABEL_KEYCHAIN_NAME, length=32)


def seal_name(secret: KeychainSecret, name: bytes, rng: Rng | None = None) -> bytes:
    """nonce || XChaCha20-Poly1305(name key, nonce, LABEL_KEYCHAIN_NAME, name)."""
    nonce = random_bytes(NONCE_SIZE, rng)
    return nonce + _xencrypt(name, LABEL_KEYCHAIN_NAME, nonce, _name_key(secret))


def open_name(secret: KeychainSecret, sealed: bytes) -> bytes:
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError("expected a sealed keychain name, found too few bytes")
    nonce = sealed[:NONCE_SIZE]
    try:
        return _xdecrypt(sealed[NONCE_SIZE:], LABEL_KEYCHAIN_NAME, nonce, _name_key(secret))
    except _CryptoError:
        raise DecryptionError(
            "expected the keychain name sealed under this secret, found one that does not open"
        ) from None


# --- sealed messages (encrypt / decrypt) --------------------------------------------------
# The hot path of keychain encrypt/decrypt: one AEAD call, a random nonce, a few slices and
# concatenations; nothing else, so the cost stays that of the AEAD (bench/keychain_bench.py).
# The header is not in the AAD because each of its fields is bound already: the nonce by
# the AEAD, the fingerprint by choosing the key (another fingerprint picks another key,
# which fails), the version by the parser.


def seal_message(
    key: KeychainKey, fingerprint: bytes, data: bytes, ad: bytes = b"", rng: Rng | None = None
) -> bytes:
    """``data`` sealed under ``key`` (whose fingerprint the caller passes, computed once).

    A random 24-byte nonce is safe for any number of messages under one key (XChaCha20)."""
    nonce = _urandom(NONCE_SIZE) if rng is None else random_bytes(NONCE_SIZE, rng)
    header = _VERSION_BYTE + fingerprint + nonce
    return header + _xencrypt(data, _SEAL_LABEL + ad, nonce, key._secret)


def sealed_fingerprint(sealed: bytes) -> bytes:
    """The fingerprint of the key a sealed message names (checked: version, length)."""
    if len(sealed) < _MIN_SEALED or sealed[0] != SEALED_VERSION:
        _refuse(sealed)
    return sealed[1:_FP_END]


def open_message(key: KeychainKey, sealed: bytes, ad: bytes = b"") -> bytes:
    """The plaintext of a sealed message; :class:`DecryptionError` if anything was changed,
    the ``ad`` differs, or the key is not the one the message names."""
    if len(sealed) < _MIN_SEALED or sealed[0] != SEALED_VERSION:
        _refuse(sealed)
    try:
        return _xdecrypt(
            sealed[HEADER_SIZE:],
            _SEAL_LABEL + ad,
            sealed[_FP_END:HEADER_SIZE],
            key._secret,
        )
    except _CryptoError:
        raise DecryptionError(MESSAGE_FAILED) from None


def open_with(keys: Mapping[bytes, KeychainKey], sealed: bytes, ad: bytes = b"") -> bytes:
    """:func:`open_message` with the key the message names, looked up in ``keys`` (by
    fingerprint); :class:`RecipientNotAuthorizedError` if it is not there."""
    if len(sealed) < _MIN_SEALED or sealed[0] != SEALED_VERSION:
        _refuse(sealed)
    key = keys.get(sealed[1:_FP_END])
    if key is None:
        raise RecipientNotAuthorizedError(
            "expected a message sealed under a key this member holds, found another key",
            hint="ask a member with allow_sharing to share that key ('keychain share --key')",
        )
    try:
        return _xdecrypt(
            sealed[HEADER_SIZE:],
            _SEAL_LABEL + ad,
            sealed[_FP_END:HEADER_SIZE],
            key._secret,
        )
    except _CryptoError:
        raise DecryptionError(MESSAGE_FAILED) from None


_SEAL_LABEL: Final = LABEL_KEYCHAIN_SEAL
_FP_END: Final = 1 + FINGERPRINT_SIZE
_MIN_SEALED: Final = HEADER_SIZE + TAG_SIZE


def _refuse(sealed: bytes) -> NoReturn:
    if len(sealed) < _MIN_SEALED:
        raise FormatError(
            f"expected a sealed message of at least {_MIN_SEALED} bytes, found {len(sealed)}"
        )
    raise FormatError(f"expected sealed message version {SEALED_VERSION}, found {sealed[0]}")
