"""Sealing a secret under a passphrase: argon2id, then XChaCha20-Poly1305.

    key = argon2id(passphrase, salt, ops, mem)            32 bytes
    sealed = XChaCha20-Poly1305(key, nonce, secret, aad)

The salt, the nonce and the argon2id cost (ops, mem) travel with the sealed bytes
(docs/spec/keystore.md), so a file sealed with one cost opens on a machine whose default
has changed. The AAD binds the public parts of what is sealed (for a key file: its did and
encryption key), so the ciphertext cannot be moved under another identity's name.

>>> sealed = seal(b"s" * 64, b"correct horse", aad=b"ctx", params=KdfParams.fastest())
>>> unseal(sealed, b"correct horse", aad=b"ctx") == b"s" * 64
True
>>> unseal(sealed, b"wrong", aad=b"ctx")
Traceback (most recent call last):
...
ipfs_share.errors.PassphraseInvalidError: the passphrase does not open this key
"""

from __future__ import annotations

from dataclasses import dataclass

from nacl import bindings
from nacl.pwhash import argon2id

from ipfs_share.crypto.random import Rng, random_bytes
from ipfs_share.errors import FormatError, PassphraseInvalidError, PassphraseRequiredError

__all__ = ["KDF_ALG", "KdfParams", "Sealed", "seal", "unseal"]

KDF_ALG = "argon2id13"
SALT_SIZE = argon2id.SALTBYTES  # 16
NONCE_SIZE = 24
# Bounds a decoder accepts: a hostile file must not make us spend minutes or gigabytes.
MAX_OPS = 32
MAX_MEM = 2 * 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class KdfParams:
    ops: int
    mem: int  # bytes

    def __post_init__(self) -> None:
        if not argon2id.OPSLIMIT_MIN <= self.ops <= MAX_OPS:
            raise FormatError(f"expected argon2id ops in 1..{MAX_OPS}, found {self.ops}")
        if not argon2id.MEMLIMIT_MIN <= self.mem <= MAX_MEM:
            raise FormatError(f"expected argon2id mem in 8 KiB..2 GiB, found {self.mem}")

    @classmethod
    def moderate(cls) -> KdfParams:
        """libsodium's 'moderate': 3 passes over 256 MiB, about half a second here."""
        return cls(argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE)

    @classmethod
    def fastest(cls) -> KdfParams:
        """The minimum cost. For tests only: it protects nothing against guessing."""
        return cls(argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN)


@dataclass(frozen=True, slots=True)
class Sealed:
    params: KdfParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes  # len(secret) + 16

    def __repr__(self) -> str:
        return f"Sealed(params={self.params!r}, {len(self.ciphertext)} bytes)"


def _key(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    if not passphrase:
        raise PassphraseRequiredError("expected a passphrase, found an empty one")
    key: bytes = argon2id.kdf(32, passphrase, salt, opslimit=params.ops, memlimit=params.mem)
    return key


def seal(
    secret: bytes,
    passphrase: bytes,
    *,
    aad: bytes,
    params: KdfParams | None = None,
    rng: Rng | None = None,
) -> Sealed:
    params = params or KdfParams.moderate()
    salt = random_bytes(SALT_SIZE, rng)
    nonce = random_bytes(NONCE_SIZE, rng)
    key = _key(passphrase, salt, params)
    box = bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(secret, aad, nonce, key)
    return Sealed(params, salt, nonce, bytes(box))


def unseal(sealed: Sealed, passphrase: bytes, *, aad: bytes) -> bytes:
    """Open ``sealed``; a wrong passphrase and tampered bytes fail alike (no oracle)."""
    if len(sealed.salt) != SALT_SIZE or len(sealed.nonce) != NONCE_SIZE:
        raise FormatError(
            f"expected a {SALT_SIZE}-byte salt and {NONCE_SIZE}-byte nonce, "
            f"found {len(sealed.salt)} and {len(sealed.nonce)}"
        )
    key = _key(passphrase, sealed.salt, sealed.params)
    try:
        secret = bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed.ciphertext, aad, sealed.nonce, key
        )
    except Exception:  # nacl raises CryptoError; say nothing more than "no"
        raise PassphraseInvalidError("the passphrase does not open this key") from None
    return bytes(secret)
