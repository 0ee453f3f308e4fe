"""HChaCha20 and XChaCha20-Poly1305 against draft-irtf-cfrg-xchacha-03, a literal
HChaCha20, and libsodium."""

from __future__ import annotations

import os

import pytest
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

from ipfs_share.crypto.xchacha import hchacha20, ietf_nonce, xchacha20poly1305

# draft-irtf-cfrg-xchacha-03, 2.2.1 (HChaCha20) and A.3.1 (AEAD_XChaCha20_Poly1305).
HCHACHA_KEY = bytes(range(32))
HCHACHA_INPUT = bytes.fromhex("000000090000004a0000000031415927")
HCHACHA_SUBKEY = bytes.fromhex("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")

AEAD_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
AEAD_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
AEAD_KEY = bytes(range(0x80, 0xA0))
AEAD_NONCE = bytes(range(0x40, 0x58))
AEAD_CIPHERTEXT = bytes.fromhex(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e"
)
AEAD_TAG = bytes.fromhex("c0875924c1c7987947deafd8780acf49")


def literal_hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 written out as the draft states it: 20 rounds, no final addition."""
    mask = 0xFFFFFFFF

    def rotl(x: int, n: int) -> int:
        return ((x << n) | (x >> (32 - n))) & mask

    def quarter(s: list[int], a: int, b: int, c: int, d: int) -> None:
        s[a] = (s[a] + s[b]) & mask
        s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & mask
        s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & mask
        s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & mask
        s[b] = rotl(s[b] ^ s[c], 7)

    words = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    words += [int.from_bytes(key[i : i + 4], "little") for i in range(0, 32, 4)]
    words += [int.from_bytes(nonce16[i : i + 4], "little") for i in range(0, 16, 4)]
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)):
            quarter(words, a, b, c, d)
        for a, b, c, d in ((0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
            quarter(words, a, b, c, d)
    return b"".join(w.to_bytes(4, "little") for w in words[0:4] + words[12:16])


def test_hchacha20_draft_vector() -> None:
    assert literal_hchacha20(HCHACHA_KEY, HCHACHA_INPUT) == HCHACHA_SUBKEY
    assert hchacha20(HCHACHA_KEY, HCHACHA_INPUT) == HCHACHA_SUBKEY


def test_hchacha20_equals_the_literal_rounds() -> None:
    for _ in range(50):
        key, nonce = os.urandom(32), os.urandom(16)
        assert hchacha20(key, nonce) == literal_hchacha20(key, nonce)
    for nonce in (bytes(16), b"\xff" * 16):
        assert hchacha20(HCHACHA_KEY, nonce) == literal_hchacha20(HCHACHA_KEY, nonce)


def test_xchacha20poly1305_draft_vector() -> None:
    aead = xchacha20poly1305(AEAD_KEY, AEAD_NONCE)
    sealed = aead.encrypt(ietf_nonce(AEAD_NONCE), AEAD_PLAINTEXT, AEAD_AAD)
    assert sealed == AEAD_CIPHERTEXT + AEAD_TAG
    assert aead.decrypt(ietf_nonce(AEAD_NONCE), sealed, AEAD_AAD) == AEAD_PLAINTEXT


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 1000, 65536])
def test_xchacha20poly1305_equals_libsodium(length: int) -> None:
    key, nonce, aad = os.urandom(32), os.urandom(24), os.urandom(length % 29)
    message = os.urandom(length)
    ours = xchacha20poly1305(key, nonce).encrypt(ietf_nonce(nonce), message, aad)
    assert ours == crypto_aead_xchacha20poly1305_ietf_encrypt(message, aad, nonce, key)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="HChaCha20"):
        hchacha20(bytes(31), bytes(16))
    with pytest.raises(ValueError, match="HChaCha20"):
        hchacha20(bytes(32), bytes(15))
    with pytest.raises(ValueError, match="24-byte"):
        ietf_nonce(bytes(23))
    with pytest.raises(ValueError, match="16 nonce bytes"):
        xchacha20poly1305(bytes(32), bytes(15))
