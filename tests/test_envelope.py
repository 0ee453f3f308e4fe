"""The envelope (docs/spec/envelope.md): decryption against tests/vectors/envelope/,
encryption by round trip with injected randomness, ranges, and property and fuzz tests."""

from __future__ import annotations

import doctest
import hashlib
import importlib.util
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_share.crypto.random import DeterministicRng
from ipfs_share.errors import DecryptionError, FormatError, InvalidInputError, IpfsShareError
from ipfs_share.formats import envelope as envelope_module
from ipfs_share.formats.envelope import (
    CHUNK_SIZE,
    MAX_HEADER_SIZE,
    MAX_METADATA_SIZE,
    PREFIX_SIZE,
    SEALED_CHUNK_SIZE,
    Decryptor,
    Encryptor,
    FileKey,
    Header,
    Metadata,
    NeedMore,
    chunk_count,
    chunk_range,
    decode_header,
    decrypt,
    decrypt_chunk,
    decrypt_range,
    encrypt,
    encrypt_header,
    header_length,
)

ROOT = Path(__file__).parent.parent
VECTORS = Path(__file__).parent / "vectors"
sys.path.insert(0, str(VECTORS))
import vectorfile  # noqa: E402

ENVELOPE_VECTORS = vectorfile.load_dir(VECTORS / "envelope")
KEY = FileKey(bytes(range(32)))
OCTET = "application/octet-stream"


def _load_generator(folder: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"generate_{folder}", VECTORS / folder / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _stream_decrypt(
    file_key: FileKey, data: bytes, piece: int, *, group: int = 1
) -> tuple[Header, bytes]:
    """Decrypt ``data`` pushed in pieces of ``piece`` bytes, ``group`` pieces per call
    (``push_all``, which opens them into one buffer without joining them)."""
    decryptor = Decryptor(file_key)
    pieces = list(_pieces(data, piece))
    if group == 1:
        out = b"".join(decryptor.push(p) for p in pieces)
    else:
        calls = [pieces[i : i + group] for i in range(0, len(pieces), group)]
        out = b"".join(decryptor.push_all(c) for c in calls)
    decryptor.finish()
    assert decryptor.header is not None
    return decryptor.header, out


def _blob(size: int, seed: bytes = b"blob") -> bytes:
    return DeterministicRng(seed)(size)


# --- vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("vector", ENVELOPE_VECTORS, ids=lambda v: v.name)
def test_envelope_vector(vector: vectorfile.Vector) -> None:
    file_key = FileKey(vector.hex("file_key"))
    body = vector.body
    assert body is not None
    # The same outcome whole and in pieces of several sizes (1-byte pieces for small ones).
    piece_sizes = [len(body) + 1, 1000, SEALED_CHUNK_SIZE + 3] + (
        [1, 7] if len(body) < 5000 else []
    )
    for piece, group in itertools.product(piece_sizes, (1, 3)):
        if vector.expect == "success":
            header, plaintext = _stream_decrypt(file_key, body, piece, group=group)
            assert header.metadata == Metadata(
                vector.fields["name"], vector.fields["media_type"], int(vector.fields["size"])
            )
            assert hashlib.sha256(plaintext).hexdigest() == vector.fields["plaintext_sha256"]
            if "plaintext" in vector.fields:
                assert plaintext == vector.hex("plaintext")
            assert header.envelope_size == len(body)
        else:
            with pytest.raises(IpfsShareError) as info:
                _stream_decrypt(file_key, body, piece, group=group)
            assert info.value.code == vector.expect, (piece, group)


@pytest.mark.parametrize(
    "vector", [v for v in ENVELOPE_VECTORS if v.expect == "success"], ids=lambda v: v.name
)
def test_vector_ranges(vector: vectorfile.Vector) -> None:
    file_key = FileKey(vector.hex("file_key"))
    assert vector.body is not None
    metadata, plaintext = decrypt(file_key, vector.body)
    header = decode_header(vector.body, file_key)
    assert isinstance(header, Header)
    size = metadata.size
    points = sorted({0, 1, size // 2, max(0, size - 1), size, CHUNK_SIZE - 1, CHUNK_SIZE + 1})
    for offset in (p for p in points if p <= size):
        for length in (0, 1, 2, CHUNK_SIZE, size):
            span = header.range(offset, length)
            got = decrypt_range(header, vector.body[span.start : span.end], span)
            assert got == plaintext[offset : offset + length]


def test_vectors_cover_the_issue_scenarios() -> None:
    names = {v.name for v in ENVELOPE_VECTORS}
    required = {
        "success_empty",
        "success_one_byte",
        "success_one_chunk",
        "success_one_chunk_plus_one",
        "success_several_chunks",
        "tampered_chunk",
        "truncated_final_chunk",
        "trailing_data",
        "reordered_chunks",
        "wrong_file_key",
        "header_tampered_nonce",
        "unknown_version",
        "bad_padding",
        "metadata_length_oversize",
    }
    assert required <= names
    assert {v.expect for v in ENVELOPE_VECTORS} == {
        "success",
        "format_invalid",
        "decryption_failed",
    }


def test_format_failures_are_found_by_decode_header_before_crypto() -> None:
    for vector in (v for v in ENVELOPE_VECTORS if v.expect == "format_invalid"):
        assert vector.body is not None
        with pytest.raises(FormatError):
            header_length(vector.body[:PREFIX_SIZE])


def test_generator_reproduces_the_files() -> None:
    built = _load_generator("envelope").build()
    assert set(built) == {v.name for v in ENVELOPE_VECTORS}
    for name, text in built.items():
        assert (VECTORS / "envelope" / name).read_text(encoding="utf-8") == text, name


def test_spec_worked_example_is_the_text_vector() -> None:
    spec = (ROOT / "docs" / "spec" / "envelope.md").read_text(encoding="utf-8")
    vector = next(v for v in ENVELOPE_VECTORS if v.name == "success_text")
    assert vector.body is not None
    assert vector.fields["file_key"] in spec
    body = vector.body.hex()
    for i in range(0, len(body), 64):  # the spec wraps hex at 32 bytes a line
        assert body[i : i + 64] in spec, i


def test_long_name_pads_to_192() -> None:
    vector = next(v for v in ENVELOPE_VECTORS if v.name == "success_long_name")
    assert vector.body is not None
    assert header_length(vector.body) == PREFIX_SIZE + 192 + 16


# --- encryption: round trip with injected randomness ---------------------------------


def test_encryption_is_deterministic_under_an_injected_rng() -> None:
    data = _blob(CHUNK_SIZE + 5)
    a = encrypt(KEY, data, name="x", media_type=OCTET, rng=DeterministicRng(b"r"))
    b = encrypt(KEY, data, name="x", media_type=OCTET, rng=DeterministicRng(b"r"))
    assert a == b
    assert a != encrypt(KEY, data, name="x", media_type=OCTET)  # fresh nonce by default
    assert decrypt(KEY, a) == (Metadata("x", OCTET, len(data)), data)


@pytest.mark.parametrize(
    "size", [0, 1, 63, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE]
)
def test_layout(size: int) -> None:
    blob = encrypt(KEY, bytes(size), rng=DeterministicRng(b"layout"))
    header = decode_header(blob, KEY)
    assert isinstance(header, Header)
    assert blob[:6] == b"IPSE\x01\x10"
    assert header.length == PREFIX_SIZE + 64 + 16
    n = chunk_count(size)
    assert len(blob) == header.length + size + 16 * n == header.envelope_size
    # Chunk i starts at header_len + i * 65552, and opens alone.
    for i in range(n):
        start = header.length + i * SEALED_CHUNK_SIZE
        chunk = blob[start : start + SEALED_CHUNK_SIZE]
        plain = decrypt_chunk(header.payload_key, i, chunk, final=i == n - 1)
        assert plain == bytes(min(CHUNK_SIZE, size - i * CHUNK_SIZE))


def test_encryptor_pieces_do_not_change_the_bytes() -> None:
    data = _blob(2 * CHUNK_SIZE + 77)
    whole = encrypt(KEY, data, name="n", media_type=OCTET, rng=DeterministicRng(b"p"))
    for split in (1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE):
        enc = Encryptor(KEY, name="n", media_type=OCTET, size=len(data), rng=DeterministicRng(b"p"))
        if split == 1:  # byte by byte only over the first chunk boundary: slow otherwise
            out = [enc.push(data[i : i + 1]) for i in range(CHUNK_SIZE + 2)]
            out.append(enc.push(data[CHUNK_SIZE + 2 :]))
        else:
            out = [enc.push(p) for p in _pieces(data, split)]
        out.append(enc.finish())
        assert b"".join(out) == whole
        assert enc.envelope_size == len(whole)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 5 * CHUNK_SIZE + 100),
    cuts=st.lists(st.integers(0, 5 * CHUNK_SIZE + 100), max_size=8),
)
def test_push_into_one_reused_buffer_makes_the_same_bytes(size: int, cuts: list[int]) -> None:
    data = _blob(size, b"into")
    whole = encrypt(KEY, data, name="r", media_type=OCTET, rng=DeterministicRng(b"i"))
    enc = Encryptor(KEY, name="r", media_type=OCTET, size=size, rng=DeterministicRng(b"i"))
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    buffer = memoryview(
        bytearray(enc.max_output(max(b - a for a, b in itertools.pairwise(bounds)) if size else 0))
    )
    out = bytearray()
    for a, b in itertools.pairwise(bounds):
        buffer[:] = b"\xee" * len(buffer)  # what the last piece left is overwritten, not kept
        n = enc.push_into(data[a:b], buffer)
        assert n <= enc.max_output(b - a)
        out += buffer[:n]
    out += enc.finish()
    assert bytes(out) == whole


def test_push_into_refuses_a_buffer_too_small_before_sealing() -> None:
    data = _blob(3 * CHUNK_SIZE)
    enc = Encryptor(KEY, name="", media_type=OCTET, size=len(data), rng=DeterministicRng(b"s"))
    short = memoryview(bytearray(enc.max_output(len(data)) - SEALED_CHUNK_SIZE - 1))
    with pytest.raises(ValueError, match="expected an output of at least"):
        enc.push_into(data, short)
    # Nothing was consumed: the same push into a buffer big enough gives the envelope.
    buffer = memoryview(bytearray(enc.max_output(len(data))))
    n = enc.push_into(data, buffer)
    blob = bytes(buffer[:n]) + enc.finish()
    assert blob == encrypt(KEY, data, rng=DeterministicRng(b"s"))
    with pytest.raises(InvalidInputError, match="no push after finish"):
        enc.push_into(b"", buffer)


def test_encryptor_accepts_any_bytes_like() -> None:
    data = _blob(1000)
    enc = Encryptor(KEY, name="", media_type=OCTET, size=1000, rng=DeterministicRng(b"b"))
    out = enc.push(bytearray(data[:10])) + enc.push(memoryview(data)[10:]) + enc.finish()
    assert out == encrypt(KEY, data, rng=DeterministicRng(b"b"))


def test_empty_envelope_without_any_push() -> None:
    enc = Encryptor(KEY, name="e", media_type=OCTET, size=0)
    blob = enc.finish()
    assert len(blob) == PREFIX_SIZE + 64 + 16 + 16
    assert decrypt(KEY, blob) == (Metadata("e", OCTET, 0), b"")


def test_encryptor_holds_the_declared_size() -> None:
    enc = Encryptor(KEY, name="", media_type=OCTET, size=10)
    enc.push(b"12345")
    with pytest.raises(
        InvalidInputError, match="expected 10 plaintext bytes in all, found at least 16"
    ):
        enc.push(b"x" * 11)
    with pytest.raises(InvalidInputError, match="expected 10 plaintext bytes, found 5"):
        enc.finish()
    enc.push(b"67890")
    enc.finish()
    with pytest.raises(InvalidInputError, match="no push after finish"):
        enc.push(b"")
    with pytest.raises(InvalidInputError, match="one finish"):
        enc.finish()


@pytest.mark.parametrize(
    "media_type",
    ["", "text", "/plain", "text/plain\n", "t\u00e9xt/plain", "a/" + "b" * 254, None, 7],
)
def test_metadata_refuses_bad_media_types(media_type: object) -> None:
    with pytest.raises(InvalidInputError, match="media type"):
        Metadata("n", media_type, 1)  # type: ignore[arg-type]


def test_metadata_limits() -> None:
    Metadata("n", "a/" + "b" * 253, 2**64 - 1)
    Metadata("", "text/plain; charset=utf-8", 0)
    for size in (-1, 2**64, True, 1.0):
        with pytest.raises(InvalidInputError, match="size"):
            Metadata("n", OCTET, size)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unicode"):
        Metadata("\udcff", OCTET, 1)
    with pytest.raises(InvalidInputError, match="as str"):
        Metadata(b"n", OCTET, 1)  # type: ignore[arg-type]
    # The metadata (padded) is capped at 16 KiB: the longest name that fits, and one more.
    overhead = len(envelope_module._encode_metadata(Metadata("", OCTET, 0)).rstrip(b"\0"))
    fits = "n" * (MAX_METADATA_SIZE - overhead - 2)  # a 2-byte longer text head
    header, _ = encrypt_header(KEY, name=fits, media_type=OCTET, size=0)
    assert len(header) == MAX_HEADER_SIZE
    with pytest.raises(InvalidInputError, match="at most 16384 bytes"):
        encrypt_header(KEY, name=fits + "n", media_type=OCTET, size=0)


# --- the header ------------------------------------------------------------------------


def test_decode_header_says_how_much_it_needs() -> None:
    blob = encrypt(KEY, b"abc", name="a.txt", media_type="text/plain")
    length = header_length(blob)
    assert length == PREFIX_SIZE + 64 + 16
    for n in range(length):
        result = decode_header(blob[:n], KEY)
        assert result == NeedMore(PREFIX_SIZE if n < PREFIX_SIZE else length)
    header = decode_header(blob[:length], KEY)
    assert isinstance(header, Header) and header.metadata == Metadata("a.txt", "text/plain", 3)
    assert decode_header(blob, KEY) == header  # chunk bytes after the header are ignored


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (b"X", "magic"),
        (b"IPSX", "magic"),
        (b"IPSE\x00", "version 1, found 0"),
        (b"IPSE\x01\x11", "exponent 16, found 17"),
    ],
)
def test_bad_prefix_fails_early(prefix: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        decode_header(prefix, KEY)
    decryptor = Decryptor(KEY)
    with pytest.raises(FormatError):
        decryptor.push(prefix)
    with pytest.raises(DecryptionError):  # a failed decryptor stays failed
        decryptor.push(b"")


def test_header_repr_hides_the_key() -> None:
    blob = encrypt(KEY, b"abc")
    header = decode_header(blob, KEY)
    assert isinstance(header, Header)
    text = repr(header) + str(header)
    assert header.payload_key.secret_bytes().hex() not in text
    assert KEY.secret_bytes().hex() not in text


# --- chunks and ranges -----------------------------------------------------------------


def test_decrypt_chunk_checks_lengths_and_flag() -> None:
    blob = encrypt(KEY, _blob(CHUNK_SIZE + 1), rng=DeterministicRng(b"c"))
    header = decode_header(blob, KEY)
    assert isinstance(header, Header)
    key, start = header.payload_key, header.length
    chunk0 = blob[start : start + SEALED_CHUNK_SIZE]
    chunk1 = blob[start + SEALED_CHUNK_SIZE :]
    decrypt_chunk(key, 0, chunk0, final=False)
    decrypt_chunk(key, 1, chunk1, final=True)
    for index, chunk, final in (
        (0, chunk0, True),  # the flag disagrees
        (1, chunk1, False),
        (1, chunk0, False),  # the index disagrees
        (0, chunk0[:-1], False),  # a non-final chunk must be full
        (1, chunk1[:16], True),  # only chunk 0 may be an empty final chunk
        (1, b"", True),
    ):
        with pytest.raises(DecryptionError):
            decrypt_chunk(key, index, chunk, final=final)


def test_chunk_range_edges() -> None:
    assert chunk_range(0, 0, 10, header_length=100) == envelope_module.ChunkRange(
        0, 0, 100, 100, 0, 0
    )
    span = chunk_range(CHUNK_SIZE, CHUNK_SIZE, 5, header_length=100)  # offset == size
    assert span.length == 0 and span.chunk_count == 0
    span = chunk_range(2 * CHUNK_SIZE, CHUNK_SIZE, 1, header_length=0)
    assert (span.first_chunk, span.last_chunk, span.start, span.end, span.skip) == (
        1,
        1,
        SEALED_CHUNK_SIZE,
        2 * SEALED_CHUNK_SIZE,
        0,
    )
    for bad in ((5, 11, 1), (5, -1, 1), (5, 0, -1)):
        with pytest.raises(InvalidInputError):
            chunk_range(bad[0], bad[1], bad[2], header_length=0)


def test_decrypt_range_refuses_the_wrong_bytes() -> None:
    blob = encrypt(KEY, _blob(3 * CHUNK_SIZE), rng=DeterministicRng(b"r"))
    header = decode_header(blob, KEY)
    assert isinstance(header, Header)
    span = header.range(CHUNK_SIZE + 5, 10)
    with pytest.raises(DecryptionError):
        decrypt_range(header, blob[span.start : span.end - 1], span)
    shifted = blob[span.start + SEALED_CHUNK_SIZE : span.end + SEALED_CHUNK_SIZE]
    with pytest.raises(DecryptionError):
        decrypt_range(header, shifted, span)


_RANGE_SIZE = 3 * CHUNK_SIZE + 123
_RANGE_DATA = _blob(_RANGE_SIZE, b"ranges")
_RANGE_BLOB = encrypt(KEY, _RANGE_DATA, rng=DeterministicRng(b"ranges"))


@settings(max_examples=150, deadline=None)
@given(
    offset=st.integers(0, _RANGE_SIZE),
    length=st.one_of(st.integers(0, 3), st.integers(0, _RANGE_SIZE + 10)),
)
def test_random_ranges_decrypt_to_the_right_bytes(offset: int, length: int) -> None:
    header = decode_header(_RANGE_BLOB, KEY)
    assert isinstance(header, Header)
    span = header.range(offset, length)
    assert header.length <= span.start <= span.end <= len(_RANGE_BLOB)
    got = decrypt_range(header, _RANGE_BLOB[span.start : span.end], span)
    assert got == _RANGE_DATA[offset : offset + length]
    # No more ciphertext is fetched than the chunks that hold the range.
    if length and offset < _RANGE_SIZE:
        assert span.end - span.start <= SEALED_CHUNK_SIZE * (
            (offset + min(length, _RANGE_SIZE - offset) - 1) // CHUNK_SIZE
            - offset // CHUNK_SIZE
            + 1
        )


# --- properties --------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.one_of(
        st.integers(0, 300),
        st.sampled_from([CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE]),
        st.integers(0, 3 * CHUNK_SIZE + 100),
    ),
    enc_cuts=st.lists(st.integers(0, 3 * CHUNK_SIZE + 100), max_size=6),
    dec_cuts=st.lists(st.integers(0, 4 * CHUNK_SIZE), max_size=6),
)
def test_round_trip_with_any_pieces(size: int, enc_cuts: list[int], dec_cuts: list[int]) -> None:
    data = _blob(size, b"prop")
    enc = Encryptor(KEY, name="p", media_type=OCTET, size=size, rng=DeterministicRng(b"x"))
    bounds = sorted({0, size, *(c for c in enc_cuts if c <= size)})
    out = [enc.push(data[a:b]) for a, b in itertools.pairwise(bounds)]
    out.append(enc.finish())
    blob = b"".join(out)
    assert blob == encrypt(KEY, data, name="p", media_type=OCTET, rng=DeterministicRng(b"x"))
    dec = Decryptor(KEY)
    bounds = sorted({0, len(blob), *(c for c in dec_cuts if c <= len(blob))})
    plain = b"".join(dec.push(blob[a:b]) for a, b in itertools.pairwise(bounds))
    dec.finish()
    assert plain == data
    together = Decryptor(KEY)  # the same pieces in one push_all call
    assert together.push_all([blob[a:b] for a, b in itertools.pairwise(bounds)]) == data
    together.finish()


_FLIP_BLOB = encrypt(KEY, _blob(CHUNK_SIZE + 100), name="f.bin", media_type=OCTET)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, len(_FLIP_BLOB) - 1), bit=st.integers(0, 7))
def test_any_flipped_bit_fails_coarsely(position: int, bit: int) -> None:
    tampered = bytearray(_FLIP_BLOB)
    tampered[position] ^= 1 << bit
    with pytest.raises(IpfsShareError) as info:
        decrypt(KEY, bytes(tampered))
    # Only the structural prefix fields can fail as format errors (before any crypto);
    # everything else, including a metadata length that is still valid, is one error.
    structural = position < 6 or 22 <= position < 26
    expected = {"format_invalid", "decryption_failed"} if structural else {"decryption_failed"}
    assert info.value.code in expected
    if info.value.code == "decryption_failed":
        assert str(info.value) == "expected an authentic envelope, found one that does not decrypt"


def test_decryption_errors_are_one_message_and_carry_no_secret() -> None:
    messages = set()
    for vector in (v for v in ENVELOPE_VECTORS if v.expect == "decryption_failed"):
        assert vector.body is not None
        with pytest.raises(DecryptionError) as info:
            decrypt(FileKey(vector.hex("file_key")), vector.body)
        text = repr(info.value) + str(info.value) + info.value.hint
        assert vector.fields["file_key"] not in text
        messages.add(str(info.value))
    assert len(messages) == 1


def test_decryptor_refuses_use_after_finish_and_before_any_header() -> None:
    with pytest.raises(DecryptionError):
        Decryptor(KEY).finish()
    blob = encrypt(KEY, b"x")
    dec = Decryptor(KEY)
    dec.push(blob)
    dec.finish()
    with pytest.raises(DecryptionError):
        dec.push(b"")
    with pytest.raises(DecryptionError):
        dec.finish()


# --- fuzz: any input gives a value or a typed error ---------------------------------------


def _fuzz_decode(data: bytes, pieces: list[int]) -> None:
    try:
        result = decode_header(data, KEY)
        assert isinstance(result, Header | NeedMore)
    except IpfsShareError:
        pass
    dec = Decryptor(KEY)
    try:
        start = 0
        for cut in [*pieces, len(data)]:
            dec.push(data[start : max(start, cut)])
            start = max(start, cut)
        dec.finish()
    except IpfsShareError:
        pass


_SEED = encrypt(
    KEY, _blob(300), name="seed.txt", media_type="text/plain", rng=DeterministicRng(b"s")
)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid envelope with a few random edits: reaches far deeper than random bytes."""
    data = bytearray(_SEED)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=40))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 40))]
        else:
            del data[position:]
    return bytes(data)


_FUZZ_INPUT = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda tail: b"IPSE\x01\x10" + tail, st.binary(max_size=400)),
    _mutated(),
)


@settings(max_examples=300, deadline=None)
@given(data=_FUZZ_INPUT, pieces=st.lists(st.integers(0, 500), max_size=4))
def test_fuzz_short(data: bytes, pieces: list[int]) -> None:
    _fuzz_decode(data, sorted(pieces))


# By hand: .venv/bin/pytest tests/test_envelope.py -m fuzz_long (200k inputs, ~3 min).
@pytest.mark.fuzz_long
@settings(max_examples=200_000, deadline=None)
@given(data=_FUZZ_INPUT, pieces=st.lists(st.integers(0, 500), max_size=4))
def test_fuzz_long(data: bytes, pieces: list[int]) -> None:
    _fuzz_decode(data, sorted(pieces))


def test_doctests() -> None:
    assert doctest.testmod(envelope_module).failed == 0


def test_spec_lists_every_vector() -> None:
    spec = (ROOT / "docs" / "spec" / "envelope.md").read_text(encoding="utf-8")
    listed = spec[spec.index("## 11. Vectors") :]
    for vector in ENVELOPE_VECTORS:
        assert f"`{vector.name}`" in listed, vector.name


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 3 * 65536 + 5),
    cuts=st.lists(st.integers(1, 100_000), max_size=8),
)
def test_unsized_encryptor_makes_the_same_envelope_as_the_sized_one(
    size: int, cuts: list[int]
) -> None:
    from ipfs_share.formats.envelope import UnsizedEncryptor

    key = FileKey(bytes(range(32)))
    data = bytes(i % 251 for i in range(size))
    sized = Encryptor(
        key, name="f", media_type="text/plain", size=size, rng=DeterministicRng(b"same")
    )
    expected = sized.push(data) + sized.finish()
    unsized = UnsizedEncryptor(
        key, name="f", media_type="text/plain", rng=DeterministicRng(b"same")
    )
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(unsized.push(data[pos : pos + cut]))
        pos += cut
    chunks.append(unsized.push(data[pos:]))
    header, last = unsized.finish()
    assert header + b"".join(chunks) + last == expected
