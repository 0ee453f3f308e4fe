"""Ed25519 keys: sign/verify, refusals, and no secret in any printed form."""

from __future__ import annotations

import base64
import copy
import doctest
import pickle
from collections.abc import Callable

import pytest

from ipfs_share.crypto import labels, signing
from ipfs_share.crypto.signing import SigningKey, VerifyKey
from ipfs_share.errors import InvalidInputError, SignatureInvalidError

SEED = bytes(range(32))


def test_docstring_examples() -> None:
    assert doctest.testmod(signing).failed == 0
    assert doctest.testmod(labels).failed == 0


def test_rfc8032_test_vector_1() -> None:
    # RFC 8032 section 7.1, TEST 1: empty message.
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    key = SigningKey.from_seed(seed)
    assert bytes(key.public_key).hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    signature = key.sign(b"")
    assert signature.hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    key.public_key.verify(b"", signature)


def test_sign_and_verify() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"hello")
    assert len(signature) == 64
    key.public_key.verify(b"hello", signature)  # no exception: valid


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m, s: (m + b"!", s),
        lambda m, s: (m, bytes([s[0] ^ 1]) + s[1:]),
        lambda m, s: (m, s[:-1] + bytes([s[-1] ^ 0x80])),
        lambda m, s: (m, s[:63]),
        lambda m, s: (m, s + b"\x00"),
        lambda m, s: (m, bytes(64)),
    ],
)
def test_wrong_signature_raises_typed_error(
    tamper: Callable[[bytes, bytes], tuple[bytes, bytes]],
) -> None:
    key = SigningKey.from_seed(SEED)
    message, signature = tamper(b"hello", key.sign(b"hello"))
    with pytest.raises(SignatureInvalidError) as info:
        key.public_key.verify(message, signature)
    assert info.value.code == "signature_invalid"
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)


def test_signature_of_another_key_fails() -> None:
    other = SigningKey.generate()
    with pytest.raises(SignatureInvalidError):
        SigningKey.from_seed(SEED).public_key.verify(b"m", other.sign(b"m"))


def test_invalid_public_keys_never_verify() -> None:
    # An all-zero key is a small-order point; libsodium refuses it whatever the signature.
    with pytest.raises(SignatureInvalidError):
        VerifyKey(bytes(32)).verify(b"", bytes(64))


def test_generate_uses_injected_rng() -> None:
    calls: list[int] = []

    def rng(n: int) -> bytes:
        calls.append(n)
        return SEED[:n]

    assert SigningKey.generate(rng=rng) == SigningKey.from_seed(SEED)
    assert calls == [32]
    assert SigningKey.generate() != SigningKey.generate()


def test_seed_round_trip_is_explicit() -> None:
    assert SigningKey.from_seed(SEED).seed_bytes() == SEED


@pytest.mark.parametrize("seed", [b"", b"x" * 31, b"x" * 33, bytearray(32), "x" * 32])
def test_bad_seeds_are_refused_without_echoing_them(seed: object) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        SigningKey.from_seed(seed)  # type: ignore[arg-type]
    assert "xxxx" not in str(info.value)


def test_repr_never_contains_key_material() -> None:
    key = SigningKey.from_seed(SEED)
    shown = [repr(key), str(key), f"{key}", f"{key!r}", repr([key]), repr({"k": key})]
    secret_forms = [
        SEED.hex(),
        SEED.hex().upper(),
        base64.b64encode(SEED).decode(),
        base64.urlsafe_b64encode(SEED).decode().rstrip("="),
        base64.b32encode(SEED).decode().rstrip("="),
        repr(SEED)[2:-1],
        SEED.decode("latin-1"),
    ]
    for text in shown:
        assert text.count("SigningKey(<redacted>)") >= 1
        for form in secret_forms:
            assert form not in text
            assert form[:12] not in text


def test_signing_key_cannot_be_pickled_copied_or_hashed() -> None:
    key = SigningKey.from_seed(SEED)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        copy.copy(key)
    with pytest.raises(TypeError):
        hash(key)
    with pytest.raises(AttributeError):
        key._seed = bytes(32)


def test_signing_key_equality() -> None:
    assert SigningKey.from_seed(SEED) == SigningKey.from_seed(SEED)
    assert SigningKey.from_seed(SEED) != SigningKey.from_seed(bytes(32))
    assert SigningKey.from_seed(SEED) != SEED


def test_verify_key_value_semantics() -> None:
    public = SigningKey.from_seed(SEED).public_key
    again = VerifyKey(bytes(public))
    assert public == again and hash(public) == hash(again)
    assert len({public, again}) == 1
    assert public != bytes(public)
    assert bytes(public).hex() in repr(public)
    assert pickle.loads(pickle.dumps(public)) == public
    with pytest.raises(ValueError, match="32-byte"):
        VerifyKey(bytes(33))
    with pytest.raises(TypeError):
        VerifyKey(bytearray(32))  # type: ignore[arg-type]
