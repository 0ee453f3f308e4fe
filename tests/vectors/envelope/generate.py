"""Generate the envelope vectors (docs/spec/envelope.md).

Run from the repository root: ``.venv/bin/python tests/vectors/envelope/generate.py``.
Each scenario has a file key and a body (the envelope bytes); success scenarios also pin
the metadata and the plaintext (its SHA-256, and the bytes themselves when short).
Failures the public encoder cannot make (a wrong flag, bad padding) are built here from
the primitives of ``ipfs_share.crypto.stream``, each with a note saying how.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import vectorfile  # noqa: E402

from ipfs_share.crypto.random import DeterministicRng  # noqa: E402
from ipfs_share.crypto.stream import (  # noqa: E402
    CHUNK_SIZE,
    SEALED_CHUNK_SIZE,
    FileKey,
    PayloadKey,
    derive_payload_key,
    seal_chunk,
    seal_metadata,
)
from ipfs_share.formats import dagcbor  # noqa: E402
from ipfs_share.formats.envelope import PREFIX_SIZE, encrypt  # noqa: E402

SHOW_PLAINTEXT = 256  # plaintexts up to this size are stored in full, in hex
OCTET = "application/octet-stream"


def _rng(scenario: str) -> DeterministicRng:
    return DeterministicRng(b"ipfs-share/vectors/envelope/" + scenario.encode())


def _success(comment: str, file_key: FileKey, name: str, media_type: str, plaintext: bytes,
             envelope: bytes) -> str:  # fmt: skip
    fields: dict[str, str | int | bytes] = {
        "expect": "success",
        "comment": comment,
        "file_key": file_key.secret_bytes(),
        "name": name,
        "media_type": media_type,
        "size": len(plaintext),
        "plaintext_sha256": hashlib.sha256(plaintext).digest(),
    }
    if len(plaintext) <= SHOW_PLAINTEXT:
        fields["plaintext"] = plaintext
    return vectorfile.dump(fields, body=envelope)


def _failure(expect: str, comment: str, file_key: FileKey, envelope: bytes) -> str:
    fields: dict[str, str | int | bytes] = {
        "expect": expect,
        "comment": comment,
        "file_key": file_key.secret_bytes(),
    }
    return vectorfile.dump(fields, body=envelope)


def _made(scenario: str, size: int, name: str = "file.bin") -> tuple[FileKey, bytes, bytes]:
    """A file key, plaintext and envelope from the public encoder."""
    rng = _rng(scenario)
    file_key = FileKey.generate(rng)
    plaintext = rng(size)
    return file_key, plaintext, encrypt(file_key, plaintext, name=name, media_type=OCTET, rng=rng)


def _flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x01
    return bytes(out)


def _header_length(envelope: bytes) -> int:
    return PREFIX_SIZE + int.from_bytes(envelope[22:26], "big")


def _chunks(envelope: bytes) -> tuple[bytes, list[bytes]]:
    start = _header_length(envelope)
    payload = envelope[start:]
    chunks = [payload[i : i + SEALED_CHUNK_SIZE] for i in range(0, len(payload), SEALED_CHUNK_SIZE)]
    return envelope[:start], chunks


def _handmade_header(
    file_key: FileKey,
    nonce: bytes,
    padded_metadata: bytes,
    *,
    version: int = 1,
    exponent: int = 16,
) -> tuple[bytes, PayloadKey]:
    """The header, as the spec builds it, around any padded metadata bytes."""
    prefix = (
        b"IPSE"
        + bytes((version, exponent))
        + nonce
        + (len(padded_metadata) + 16).to_bytes(4, "big")
    )
    sealed = seal_metadata(file_key, nonce, padded_metadata, prefix)
    return prefix + sealed, derive_payload_key(file_key, nonce)


def _pad(encoded: bytes, to: int | None = None) -> bytes:
    target = to if to is not None else -(-len(encoded) // 64) * 64
    return encoded + bytes(target - len(encoded))


def _metadata(name: str, size: int, media_type: str = OCTET) -> bytes:
    return dagcbor.encode({"name": name, "type": media_type, "size": size})


def _handmade(
    scenario: str,
    padded_metadata: bytes | None,
    chunks: list[tuple[bytes, bool]],
    *,
    size: int | None = None,
) -> tuple[FileKey, bytes]:
    """An envelope with the given padded metadata (or a correct one for ``size``) and the
    given (plaintext, final flag) chunks, numbered from 0."""
    rng = _rng(scenario)
    file_key = FileKey.generate(rng)
    nonce = rng(16)
    if padded_metadata is None:
        assert size is not None
        padded_metadata = _pad(_metadata("file.bin", size))
    header, key = _handmade_header(file_key, nonce, padded_metadata)
    sealed = [seal_chunk(key, i, data, final=final) for i, (data, final) in enumerate(chunks)]
    return file_key, header + b"".join(sealed)


def build() -> dict[str, str]:
    """Scenario name -> file text."""
    files: dict[str, str] = {}

    # --- success ---------------------------------------------------------------------
    for scenario, size, name, comment in (
        ("success_empty", 0, "empty", "an empty file is one empty final chunk (16 bytes)"),
        ("success_one_byte", 1, "one.bin", "one byte: one final chunk of 17 bytes"),
        ("success_one_chunk", CHUNK_SIZE, "full.bin", "exactly 65536 bytes: one full final chunk"),
        (
            "success_one_chunk_plus_one",
            CHUNK_SIZE + 1,
            "plus-one.bin",
            "65537 bytes: a full chunk, then a final chunk of one byte",
        ),
        (
            "success_several_chunks",
            2 * CHUNK_SIZE + 1000,
            "several.bin",
            "two full chunks and a final chunk of 1000 bytes",
        ),
    ):
        file_key, plaintext, envelope = _made(scenario, size, name)
        files[scenario] = _success(comment, file_key, name, OCTET, plaintext, envelope)

    rng = _rng("success_text")
    file_key = FileKey.generate(rng)
    text = b"hello, ipfs-share\n"
    media = "text/plain; charset=utf-8"
    envelope = encrypt(file_key, text, name="hello.txt", media_type=media, rng=rng)
    files["success_text"] = _success(
        "the worked example of docs/spec/envelope.md", file_key, "hello.txt", media, text, envelope
    )

    rng = _rng("success_long_name")
    file_key = FileKey.generate(rng)
    name = "Größenübersicht " * 5 + "\u2013 final.pdf"  # an en dash: 3 bytes in UTF-8
    envelope = encrypt(file_key, b"%PDF", name=name, media_type="application/pdf", rng=rng)
    files["success_long_name"] = _success(
        "a non-ascii name long enough that the metadata pads to 192 bytes",
        file_key,
        name,
        "application/pdf",
        b"%PDF",
        envelope,
    )

    # --- the payload -----------------------------------------------------------------
    file_key, _, envelope = _made("tampered_chunk", CHUNK_SIZE + 1)
    header, chunks = _chunks(envelope)
    files["tampered_chunk"] = _failure(
        "decryption_failed",
        "one bit flipped in the middle of chunk 0 (of 2)",
        file_key,
        _flip(envelope, len(header) + 1000),
    )

    file_key, _, envelope = _made("tampered_final_tag", 100)
    files["tampered_final_tag"] = _failure(
        "decryption_failed",
        "one bit flipped in the final chunk's tag",
        file_key,
        _flip(envelope, len(envelope) - 1),
    )

    file_key, _, envelope = _made("truncated_final_chunk", CHUNK_SIZE + 1)
    header, chunks = _chunks(envelope)
    files["truncated_final_chunk"] = _failure(
        "decryption_failed",
        "the final chunk is missing: the stream ends after chunk 0 (of 2), on a chunk boundary",
        file_key,
        header + chunks[0],
    )

    file_key, _, envelope = _made("truncated_mid_chunk", 100)
    files["truncated_mid_chunk"] = _failure(
        "decryption_failed",
        "the stream ends 10 bytes into the final chunk",
        file_key,
        envelope[: len(envelope) - 106],
    )

    file_key, _, envelope = _made("truncated_header", 100)
    files["truncated_header"] = _failure(
        "decryption_failed",
        "the stream ends inside the encrypted metadata",
        file_key,
        envelope[:60],
    )

    file_key, _, envelope = _made("trailing_data", 100)
    files["trailing_data"] = _failure(
        "decryption_failed", "one zero byte after the final chunk", file_key, envelope + b"\x00"
    )

    file_key, _, envelope = _made("trailing_chunk", 100)
    key = derive_payload_key(file_key, envelope[6:22])
    files["trailing_chunk"] = _failure(
        "decryption_failed",
        "a valid chunk 1 (flag 1) sealed after the final chunk 0",
        file_key,
        envelope + seal_chunk(key, 1, b"more", final=True),
    )

    file_key, _, envelope = _made("reordered_chunks", 2 * CHUNK_SIZE + 1000)
    header, chunks = _chunks(envelope)
    files["reordered_chunks"] = _failure(
        "decryption_failed",
        "chunks 0 and 1 (both full, not final) swapped",
        file_key,
        header + chunks[1] + chunks[0] + chunks[2],
    )

    file_key, _, envelope = _made("duplicated_chunk", 2 * CHUNK_SIZE + 1000)
    header, chunks = _chunks(envelope)
    files["duplicated_chunk"] = _failure(
        "decryption_failed",
        "chunk 0 repeated in place of chunk 1",
        file_key,
        header + chunks[0] + chunks[0] + chunks[2],
    )

    # Chunk flags and counts that disagree with the size, sealed correctly otherwise.
    data = _rng("final_flag_missing")(200)
    file_key, envelope = _handmade("final_flag_missing", None, [(data[100:], False)], size=100)
    files["final_flag_missing"] = _failure(
        "decryption_failed", "the only chunk was sealed with flag 0 (not final)", file_key, envelope
    )

    data = _rng("final_flag_early_data")(CHUNK_SIZE + 1)
    file_key, envelope = _handmade(
        "final_flag_early",
        None,
        [(data[:CHUNK_SIZE], True), (data[CHUNK_SIZE:], True)],
        size=CHUNK_SIZE + 1,
    )
    files["final_flag_early"] = _failure(
        "decryption_failed", "chunk 0 of 2 sealed with flag 1 (final)", file_key, envelope
    )

    data = _rng("empty_final_chunk_after_full_data")(CHUNK_SIZE)
    file_key, envelope = _handmade(
        "empty_final_chunk_after_full",
        None,
        [(data, False), (b"", True)],
        size=CHUNK_SIZE,
    )
    files["empty_final_chunk_after_full"] = _failure(
        "decryption_failed",
        "65536 bytes as a full non-final chunk and an empty final one (only an empty file "
        "may end in an empty chunk; size 65536 means one chunk)",
        file_key,
        envelope,
    )

    data = _rng("size_larger_than_chunks_data")(100)
    file_key, envelope = _handmade("size_larger_than_chunks", None, [(data, True)], size=101)
    files["size_larger_than_chunks"] = _failure(
        "decryption_failed",
        "the metadata says 101 bytes; the final chunk holds 100",
        file_key,
        envelope,
    )

    data = _rng("size_smaller_than_chunks_data")(100)
    file_key, envelope = _handmade("size_smaller_than_chunks", None, [(data, True)], size=99)
    files["size_smaller_than_chunks"] = _failure(
        "decryption_failed",
        "the metadata says 99 bytes; the final chunk holds 100",
        file_key,
        envelope,
    )

    # --- the header: structure (format_invalid, before any crypto) -------------------
    file_key, _, envelope = _made("wrong_file_key", 100)
    files["wrong_file_key"] = _failure(
        "decryption_failed",
        "a valid envelope, opened with another file key",
        FileKey.generate(_rng("wrong_file_key/other")),
        envelope,
    )

    file_key, _, envelope = _made("bad_magic", 100)
    files["bad_magic"] = _failure(
        "format_invalid", "magic 'IPSF' instead of 'IPSE'", file_key, b"IPSF" + envelope[4:]
    )

    file_key, _, envelope = _made("unknown_version", 100)
    files["unknown_version"] = _failure(
        "format_invalid",
        "version byte 2: refused before any crypto",
        file_key,
        envelope[:4] + b"\x02" + envelope[5:],
    )

    file_key, _, envelope = _made("unsupported_chunk_size", 100)
    files["unsupported_chunk_size"] = _failure(
        "format_invalid",
        "chunk size exponent 20 (version 1 allows 16 only)",
        file_key,
        envelope[:5] + b"\x14" + envelope[6:],
    )

    for scenario, length, comment in (
        ("metadata_length_oversize", 16384 + 16 + 64, "encrypted metadata length 16464 > 16400"),
        (
            "metadata_length_unaligned",
            81,
            "encrypted metadata length 81: not 16 + a multiple of 64",
        ),
        ("metadata_length_too_small", 16, "encrypted metadata length 16: no metadata at all"),
    ):
        file_key, _, envelope = _made(scenario, 100)
        forged = envelope[:22] + length.to_bytes(4, "big") + envelope[26:]
        files[scenario] = _failure("format_invalid", comment, file_key, forged)

    # --- the header: authenticated content (decryption_failed) -----------------------
    file_key, _, envelope = _made("header_tampered_nonce", 100)
    files["header_tampered_nonce"] = _failure(
        "decryption_failed", "one bit of the payload nonce flipped", file_key, _flip(envelope, 10)
    )

    file_key, _, envelope = _made("header_tampered_metadata", 100)
    files["header_tampered_metadata"] = _failure(
        "decryption_failed",
        "one bit of the encrypted metadata flipped",
        file_key,
        _flip(envelope, 40),
    )

    data = _rng("bad_padding_data")(100)
    padded = bytearray(_pad(_metadata("file.bin", 100)))
    padded[-1] = 0x01
    file_key, envelope = _handmade("bad_padding", bytes(padded), [(data, True)])
    files["bad_padding"] = _failure(
        "decryption_failed", "the metadata's padding ends in 01 instead of 00", file_key, envelope
    )

    data = _rng("excess_padding_data")(100)
    short_map = _metadata("file.bin", 100)
    file_key, envelope = _handmade("excess_padding", _pad(short_map, to=128), [(data, True)])
    files["excess_padding"] = _failure(
        "decryption_failed",
        f"a {len(short_map)}-byte metadata map padded to 128 bytes, not 64 (the padding "
        "must be the shortest)",
        file_key,
        envelope,
    )

    data = _rng("metadata_extra_field_data")(100)
    extra = dagcbor.encode({"name": "file.bin", "type": OCTET, "size": 100, "mtime": 0})
    file_key, envelope = _handmade("metadata_extra_field", _pad(extra), [(data, True)])
    files["metadata_extra_field"] = _failure(
        "decryption_failed", "the metadata map has a fourth key, 'mtime'", file_key, envelope
    )

    data = _rng("metadata_non_canonical_data")(100)
    canonical = _metadata("file.bin", 100)
    # "size" 100 is 18 64 (one-byte argument); 19 00 64 is the same number, non-canonical.
    loose = canonical.replace(b"dsize\x18\x64", b"dsize\x19\x00\x64")
    assert loose != canonical
    file_key, envelope = _handmade("metadata_non_canonical", _pad(loose), [(data, True)])
    files["metadata_non_canonical"] = _failure(
        "decryption_failed",
        "the size is written with a two-byte argument (19 0064)",
        file_key,
        envelope,
    )
    return files


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
