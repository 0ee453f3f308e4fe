"""The shared signed-object machinery: the decoder's order of checks, did:key, list peeking."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import FormatError, IntegrityError, SignatureInvalidError
from ipfs_share.formats import dagcbor, signed
from ipfs_share.formats.signed import (
    Schema,
    block_of,
    check_block,
    decode_signed,
    did,
    did_key,
    list_of,
    parse_did_key,
    peek_list_length,
    run_walk,
    sign_object,
    text,
    uint,
)

KEY = SigningKey.from_seed(b"\x01" * 32)
OTHER = SigningKey.from_seed(b"\x02" * 32)
NOTE = Schema(
    "note",
    b"ipfs-share/v1/test-note",
    {"by": did, "n": uint, "items": list_of(uint, 3), "text": text(8)},
    "by",
    max_size=200,
    max_counts={"items": 3},
)


def _note(**over: Any) -> dict[str, Any]:
    fields = {"by": did_key(KEY.public_key), "n": 1, "items": [1, 2], "text": "hi"}
    fields.update(over)
    return fields


def _resign(value: dict[str, Any], key: SigningKey = KEY) -> bytes:
    """Encode ``value`` (with "v") signed as NOTE would, whatever its fields."""
    body = {k: v for k, v in value.items() if k != "sig"}
    body["sig"] = key.sign(NOTE.label + dagcbor.encode(body))
    return dagcbor.encode(body)


def test_docstring_examples() -> None:
    assert doctest.testmod(signed).failed == 0


def test_round_trip_and_cid() -> None:
    block = sign_object(NOTE, _note(), KEY)
    value = decode_signed(NOTE, block.data)
    assert value["v"] == 1 and value["items"] == [1, 2]
    assert block.cid == block_of(value).cid


def test_signature_input_is_label_and_unsigned_map() -> None:
    block = sign_object(NOTE, _note(), KEY)
    value = dagcbor.decode(block.data)
    unsigned = {k: v for k, v in value.items() if k != "sig"}
    KEY.public_key.verify(NOTE.label + dagcbor.encode(unsigned), value["sig"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": 2}, "version 1, found 2"),
        ({"v": True}, "version 1, found True"),
        ({"extra": 1}, "unknown 'extra'"),
        ({"n": -1}, r"\[0, 2\^63-1\]"),
        ({"n": True}, r"\[0, 2\^63-1\]"),
        ({"n": 2**63}, r"\[0, 2\^63-1\]"),
        ({"text": "x" * 9}, "at most 8 bytes"),
        ({"by": "did:key:z6Mk"}, "did:key"),
    ],
)
def test_structure_checked_before_signature(change: dict[str, Any], message: str) -> None:
    # The signature is made by OTHER (wrong) on purpose: a structural error must win.
    value = {"v": 1, **_note(), **change}
    with pytest.raises(FormatError, match=message):
        decode_signed(NOTE, _resign(value, OTHER))


def test_missing_field() -> None:
    value = {"v": 1, **_note()}
    del value["n"]
    with pytest.raises(FormatError, match="missing 'n'"):
        decode_signed(NOTE, _resign(value))


def test_count_checked_before_decoding() -> None:
    value = {"v": 1, **_note(items=[1, 2, 3, 4])}
    data = _resign(value)
    with pytest.raises(FormatError, match=r"at most 3 items in note\.items, found 4"):
        decode_signed(NOTE, data)
    # Even when the rest of the bytes are garbage: the head alone decides.
    with pytest.raises(FormatError, match="found 4"):
        decode_signed(NOTE, data[: data.index(b"\x84") + 1] + b"\xff" * 5)


def test_size_checked_first() -> None:
    with pytest.raises(FormatError, match="at most 200 bytes"):
        decode_signed(NOTE, b"\xff" * 201)


def test_wrong_signer_and_bad_signature() -> None:
    block = sign_object(NOTE, _note(), KEY)
    with pytest.raises(SignatureInvalidError, match="signed by"):
        decode_signed(NOTE, block.data, signer=did_key(OTHER.public_key))
    forged = _resign({"v": 1, **_note()}, OTHER)  # claims KEY, signed by OTHER
    with pytest.raises(SignatureInvalidError):
        decode_signed(NOTE, forged)
    with pytest.raises(SignatureInvalidError):
        sign_object(NOTE, _note(), OTHER)


def test_writer_refuses_what_reader_refuses() -> None:
    with pytest.raises(FormatError):
        sign_object(NOTE, _note(n=-5), KEY)
    with pytest.raises(FormatError):
        sign_object(NOTE, {**_note(), "x": 1}, KEY)


def test_did_key() -> None:
    text_did = did_key(KEY.public_key)
    assert text_did.startswith("did:key:z6Mk")
    assert parse_did_key(text_did) == KEY.public_key
    for bad in [text_did + "1", text_did[:-1], "did:key:" + text_did[8:].upper(), 5, ""]:
        with pytest.raises(FormatError):
            parse_did_key(bad)  # type: ignore[arg-type]


def test_peek_list_length() -> None:
    data = dagcbor.encode({"a": {"x": [1, [2, 3]], "y": b"zz"}, "list": list(range(30))})
    assert peek_list_length(data, "list") == 30
    assert peek_list_length(data, "nope") is None
    assert peek_list_length(dagcbor.encode([1, 2]), "list") is None
    assert peek_list_length(dagcbor.encode({"list": 5}), "list") is None
    for bad in [b"", b"\xa1", b"\xa1\x64list", b"\xa2\x61a\x9b" + b"\xff" * 8, b"\xbf"]:
        with pytest.raises(FormatError):
            peek_list_length(bad, "list")


def test_run_walk_checks_blocks() -> None:
    a, b = block_of({"n": 1}), block_of({"n": 2})

    def walk() -> signed.BlockWalk[bytes]:
        return (yield a.cid)

    assert run_walk(walk(), {a.cid: a.data}.__getitem__) == a.data
    with pytest.raises(IntegrityError):
        run_walk(walk(), {a.cid: b.data}.__getitem__)
    assert check_block(a.cid, a.data) == a.data
