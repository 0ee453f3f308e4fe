"""The chunk AEAD primitives: nonce layout, the authenticated last-chunk flag, keys."""

from __future__ import annotations

import doctest
from collections.abc import Callable

import pytest
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

from ipfs_share.crypto import stream
from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_METADATA, LABEL_PAYLOAD
from ipfs_share.crypto.stream import (
    CHUNK_SIZE,
    MAX_CHUNK_INDEX,
    SEALED_CHUNK_SIZE,
    FileKey,
    chunk_nonce,
    derive_payload_key,
    open_chunk,
    open_chunks_into,
    open_metadata,
    seal_chunk,
    seal_chunks_into,
    seal_metadata,
)
from ipfs_share.errors import DecryptionError

FILE_KEY = FileKey(bytes(range(32)))
NONCE = bytes(range(16))
KEY = derive_payload_key(FILE_KEY, NONCE)


def test_payload_key_is_hkdf_with_the_payload_label() -> None:
    expected = hkdf(bytes(range(32)), salt=NONCE, info=LABEL_PAYLOAD, length=32)
    assert KEY.secret_bytes() == expected
    assert expected != hkdf(bytes(range(32)), salt=NONCE, info=LABEL_METADATA, length=32)


def test_nonce_layout() -> None:
    # 12 zero bytes, the index as 11 bytes big-endian, the flag.
    assert chunk_nonce(0, final=False) == bytes(24)
    assert chunk_nonce(0x0102, final=True) == bytes(12) + bytes(9) + b"\x01\x02" + b"\x01"
    assert chunk_nonce(MAX_CHUNK_INDEX, final=False) == bytes(12) + b"\xff" * 11 + b"\x00"
    for bad in (-1, MAX_CHUNK_INDEX + 1):
        with pytest.raises(ValueError, match="chunk index"):
            chunk_nonce(bad, final=False)


@pytest.mark.parametrize("index", [0, 7, 2**40, 2**56 - 1, 2**56, 2**60 + 3, MAX_CHUNK_INDEX])
def test_chunk_is_plain_xchacha20poly1305(index: int) -> None:
    # An independent spelling of the spec's formula (libsodium's XChaCha20-Poly1305, not
    # our HChaCha20 + OpenSSL) gives the same bytes, on both sides of the 2^56 boundary
    # where the counter starts reaching HChaCha20's input.
    plaintext = b"p" * 100
    nonce = bytes(12) + index.to_bytes(11, "big") + b"\x01"
    expected = crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, None, nonce, KEY.secret_bytes()
    )
    assert seal_chunk(KEY, index, plaintext, final=True) == expected
    assert open_chunk(KEY, index, expected, final=True) == plaintext


def test_metadata_is_plain_xchacha20poly1305() -> None:
    sealed = seal_metadata(FILE_KEY, NONCE, b"m" * 64, b"aad")
    metadata_key = hkdf(bytes(range(32)), salt=NONCE, info=LABEL_METADATA, length=32)
    assert sealed == crypto_aead_xchacha20poly1305_ietf_encrypt(
        b"m" * 64, b"aad", bytes(24), metadata_key
    )


@pytest.mark.parametrize(
    ("index", "final"), [(0, True), (0, False), (1, False), (2**40, True), (MAX_CHUNK_INDEX, True)]
)
def test_open_checks_index_and_flag(index: int, final: bool) -> None:
    sealed = seal_chunk(KEY, index, b"data", final=final)
    assert open_chunk(KEY, index, sealed, final=final) == b"data"
    with pytest.raises(DecryptionError):
        open_chunk(KEY, index, sealed, final=not final)
    with pytest.raises(DecryptionError):
        open_chunk(KEY, index ^ 1, sealed, final=final)
    with pytest.raises(DecryptionError):
        open_chunk(derive_payload_key(FILE_KEY, bytes(16)), index, sealed, final=final)


def test_open_refuses_impossible_lengths() -> None:
    for n in (0, 15, SEALED_CHUNK_SIZE + 1):
        with pytest.raises(DecryptionError):
            open_chunk(KEY, 0, bytes(n), final=True)
    with pytest.raises(ValueError):
        seal_chunk(KEY, 0, bytes(CHUNK_SIZE + 1), final=True)


def test_bulk_loops_equal_one_at_a_time() -> None:
    data = bytes(range(256)) * (3 * CHUNK_SIZE // 256)
    out = bytearray(3 * SEALED_CHUNK_SIZE)
    seal_chunks_into(KEY, data, 5, memoryview(out))
    singles = [
        seal_chunk(KEY, 5 + i, data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE], final=False)
        for i in range(3)
    ]
    assert bytes(out) == b"".join(singles)
    back = bytearray(3 * CHUNK_SIZE)
    open_chunks_into(KEY, memoryview(out), 5, memoryview(back))
    assert back == data
    with pytest.raises(ValueError, match="whole"):
        seal_chunks_into(KEY, data[:-1], 0, memoryview(out))
    with pytest.raises(ValueError, match="output"):
        seal_chunks_into(KEY, data, 0, memoryview(out)[:-1])
    with pytest.raises(ValueError, match="whole"):
        open_chunks_into(KEY, bytes(out)[:-1], 0, memoryview(back))


def test_bulk_open_refuses_and_wipes_its_output() -> None:
    # Chunk 1 of 3 tampered: the call fails, and no plaintext (not even chunk 0's, which
    # authenticated) is left in the caller's buffer.
    data = bytes(range(256)) * (3 * CHUNK_SIZE // 256)
    sealed = bytearray(3 * SEALED_CHUNK_SIZE)
    seal_chunks_into(KEY, data, 0, memoryview(sealed))
    for bad_index, bad_bytes in ((1, sealed), (0, bytes(sealed))):
        tampered = bytearray(bad_bytes)
        tampered[SEALED_CHUNK_SIZE + 7] ^= 1
        back = bytearray(3 * CHUNK_SIZE)
        first = 1 if bad_index == 0 else 0  # the wrong first index fails on chunk 0
        with pytest.raises(DecryptionError):
            open_chunks_into(KEY, tampered if bad_index else bad_bytes, first, memoryview(back))
        assert back == bytes(len(back))


def test_bulk_loops_cross_a_subkey_boundary() -> None:
    # Chunk indexes >= 2^56 put the counter's high bits into HChaCha20's input: a run
    # across 2^56 needs two subkeys, and gives what chunk-by-chunk sealing gives.
    first = (1 << 56) - 2
    data = bytes(range(256)) * (4 * CHUNK_SIZE // 256)
    out = bytearray(4 * SEALED_CHUNK_SIZE)
    seal_chunks_into(KEY, data, first, memoryview(out))
    singles = b"".join(
        seal_chunk(KEY, first + i, data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE], final=False)
        for i in range(4)
    )
    assert bytes(out) == singles
    expected = crypto_aead_xchacha20poly1305_ietf_encrypt(
        data[3 * CHUNK_SIZE :], None, chunk_nonce(first + 3, final=False), KEY.secret_bytes()
    )
    assert bytes(out[3 * SEALED_CHUNK_SIZE :]) == expected
    back = bytearray(4 * CHUNK_SIZE)
    open_chunks_into(KEY, out, first, memoryview(back))
    assert back == data


def test_metadata_seal_binds_aad_and_nonce() -> None:
    sealed = seal_metadata(FILE_KEY, NONCE, b"m" * 64, b"aad")
    assert open_metadata(FILE_KEY, NONCE, sealed, b"aad") == b"m" * 64
    with pytest.raises(DecryptionError):
        open_metadata(FILE_KEY, NONCE, sealed, b"aae")
    with pytest.raises(DecryptionError):
        open_metadata(FILE_KEY, bytes(16), sealed, b"aad")
    with pytest.raises(DecryptionError):
        open_metadata(FileKey(bytes(32)), NONCE, sealed, b"aad")


def test_errors_are_coarse_and_carry_no_secret() -> None:
    messages = set()
    sealed = seal_chunk(KEY, 0, b"x", final=True)
    attempts: list[Callable[[], bytes]] = [
        lambda: open_chunk(KEY, 0, sealed, final=False),
        lambda: open_chunk(KEY, 1, sealed, final=True),
        lambda: open_chunk(KEY, 0, b"short", final=True),
        lambda: open_metadata(FILE_KEY, NONCE, sealed, b""),
    ]
    for attempt in attempts:
        with pytest.raises(DecryptionError) as info:
            attempt()
        assert info.value.code == "decryption_failed"
        assert info.value.__cause__ is None  # libsodium's error is not chained on
        messages.add(str(info.value))
        assert KEY.secret_bytes().hex() not in repr(info.value)
    assert len(messages) == 1


def test_doctests() -> None:
    assert doctest.testmod(stream).failed == 0
