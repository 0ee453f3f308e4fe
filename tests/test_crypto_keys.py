"""Key types and text forms: X25519 keys (RFC 7748 vectors), secrets that never show,
the versioned text forms of public keys (docs/spec/keys.md), injectable randomness."""

from __future__ import annotations

import copy
import doctest
import logging
import pickle

import pytest
from multiformats import multibase

from ipfs_share.crypto import random as random_module
from ipfs_share.crypto import x25519 as x25519_module
from ipfs_share.crypto.random import DeterministicRng, Secret, random_bytes
from ipfs_share.crypto.stream import FileKey, PayloadKey
from ipfs_share.crypto.x25519 import (
    EncryptionKey,
    PublicEncryptionKey,
    decode_did_key,
    encode_did_key,
    x25519,
)
from ipfs_share.errors import InvalidInputError

# RFC 7748 section 6.1.
ALICE_SECRET = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_SECRET = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# did:key spec (w3c-ccg.github.io/did-method-key), its first Ed25519 example.
DID_EXAMPLE = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
# did:key spec, an X25519 example (the part after did:key: is the multibase key).
X25519_EXAMPLE = "z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F"

SECRET_TYPES = [EncryptionKey, FileKey, PayloadKey]


def test_rfc7748_x25519() -> None:
    alice, bob = EncryptionKey(ALICE_SECRET), EncryptionKey(BOB_SECRET)
    assert bytes(alice.public_key) == ALICE_PUBLIC
    assert bytes(bob.public_key) == BOB_PUBLIC
    assert alice.exchange(bob.public_key) == SHARED == bob.exchange(ALICE_PUBLIC)


def test_low_order_point_gives_zero_instead_of_an_exception() -> None:
    assert x25519(ALICE_SECRET, bytes(32)) == bytes(32)


def test_generate_uses_the_injected_rng() -> None:
    assert EncryptionKey.generate(DeterministicRng(b"a")) == EncryptionKey.generate(
        DeterministicRng(b"a")
    )
    assert EncryptionKey.generate() != EncryptionKey.generate()
    assert EncryptionKey.generate(lambda n: ALICE_SECRET) == EncryptionKey(ALICE_SECRET)


@pytest.mark.parametrize("cls", SECRET_TYPES)
def test_secrets_never_show(cls: type[Secret], caplog: pytest.LogCaptureFixture) -> None:
    raw = bytes(range(100, 132))
    key = cls(raw)
    shown = [repr(key), str(key), f"{key}", f"{key!r:>40}", repr([key]), repr({"k": key})]
    logging.getLogger("test").warning("key %s %r", key, key)
    shown.append(caplog.text)
    for text in shown:
        assert raw.hex() not in text and str(raw) not in text, text
        assert "<redacted>" in text
    assert key.secret_bytes() == raw


@pytest.mark.parametrize("cls", SECRET_TYPES)
def test_secrets_are_not_hashable_picklable_or_mutable(cls: type[Secret]) -> None:
    key = cls(bytes(32))
    with pytest.raises(TypeError):
        hash(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.deepcopy(key)
    with pytest.raises(AttributeError, match="immutable"):
        key._secret = b"x" * 32
    with pytest.raises(AttributeError, match="immutable"):
        del key._secret


@pytest.mark.parametrize("cls", SECRET_TYPES)
def test_secret_equality_is_by_value_and_by_type(cls: type[Secret]) -> None:
    assert cls(bytes(32)) == cls(bytes(32))
    assert cls(bytes(32)) != cls(b"\x01" + bytes(31))
    other = next(c for c in SECRET_TYPES if c is not cls)
    assert cls(bytes(32)) != other(bytes(32))


@pytest.mark.parametrize("cls", SECRET_TYPES)
def test_secret_errors_carry_no_secret(cls: type[Secret]) -> None:
    raw = bytes(range(200, 233))  # 33 bytes: one too many
    with pytest.raises(ValueError) as info:
        cls(raw)
    assert raw.hex() not in str(info.value) and "33 bytes" in str(info.value)
    with pytest.raises(TypeError):
        cls(bytearray(32))  # type: ignore[arg-type]


def test_public_key_value_semantics() -> None:
    a = PublicEncryptionKey(ALICE_PUBLIC)
    assert a == PublicEncryptionKey(bytes(ALICE_PUBLIC)) and hash(a) == hash(
        PublicEncryptionKey(ALICE_PUBLIC)
    )
    assert a != PublicEncryptionKey(BOB_PUBLIC)
    assert bytes(a) == ALICE_PUBLIC
    assert pickle.loads(pickle.dumps(a)) == a
    assert a.to_text() in repr(a)
    with pytest.raises(AttributeError):
        a._key = b""
    with pytest.raises(InvalidInputError, match="32-byte x25519 public key, found 33"):
        PublicEncryptionKey(bytes(33))


def test_x25519_text_form() -> None:
    key = PublicEncryptionKey(ALICE_PUBLIC)
    text = key.to_text()
    assert text.startswith("z6LS")
    # An independent multibase implementation reads the same multicodec prefix and key.
    assert multibase.decode(text) == b"\xec\x01" + ALICE_PUBLIC
    assert PublicEncryptionKey.from_text(text) == key
    # The did:key spec's example reads as an X25519 key, and writes back the same.
    example = PublicEncryptionKey.from_text(X25519_EXAMPLE)
    assert example.to_text() == X25519_EXAMPLE


def test_did_key_form() -> None:
    raw = decode_did_key(DID_EXAMPLE)
    assert raw == multibase.decode(DID_EXAMPLE[len("did:key:") :])[2:]
    assert encode_did_key(raw) == DID_EXAMPLE


@pytest.mark.parametrize(
    "text",
    [
        "",
        "z",
        "Z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F",  # base58flickr, not btc
        "z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6",  # one digit short
        "z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F1",  # one digit long
        "z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit60",  # '0' is no base58 digit
        "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",  # an ed25519 key
        "z" + "2" * 300,  # long: refused before decoding
    ],
)
def test_x25519_text_form_is_strict(text: str) -> None:
    with pytest.raises(InvalidInputError):
        PublicEncryptionKey.from_text(text)


@pytest.mark.parametrize(
    "did",
    [
        "did:key:" + X25519_EXAMPLE,  # an x25519 key is no signing identity
        DID_EXAMPLE.replace("did:key:", "did:web:"),
        DID_EXAMPLE[:-1],
        "did:key:",
    ],
)
def test_did_key_is_strict(did: str) -> None:
    with pytest.raises(InvalidInputError):
        decode_did_key(did)


def test_random_bytes_checks_the_injected_rng() -> None:
    assert len(random_bytes(7)) == 7
    with pytest.raises(ValueError, match="expected the rng to return 32 bytes, found 31"):
        random_bytes(32, lambda n: bytes(n - 1))
    with pytest.raises(TypeError, match="found bytearray"):
        random_bytes(4, lambda n: bytearray(n))  # type: ignore[arg-type,return-value]


def test_deterministic_rng_is_a_stream() -> None:
    a, b = DeterministicRng(b"s"), DeterministicRng(b"s")
    assert a(5) + a(40) + a(3) == b(48)
    assert DeterministicRng(b"t")(48) != DeterministicRng(b"s")(48)


def test_doctests() -> None:
    assert doctest.testmod(random_module).failed == 0
    assert doctest.testmod(x25519_module).failed == 0
